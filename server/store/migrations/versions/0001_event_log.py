"""event log: events, event_rooms, log_meta

Revision ID: 0001
Revises:
"""

import secrets

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    meta = op.create_table(
        "log_meta",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("last_event_id", sa.BigInteger, nullable=False),
        sa.Column("pruned_through", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(meta, [{"id": 1, "epoch": secrets.token_hex(8), "last_event_id": 0, "pruned_through": 0}])
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("event_type", sa.String(80), nullable=False),
        sa.Column("room", sa.String(80), nullable=True),
        sa.Column("rooms", JSONType, nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_events_created_at", "events", ["created_at"])
    op.create_table(
        "event_rooms",
        sa.Column("room", sa.String(80), primary_key=True),
        sa.Column("event_id", sa.BigInteger, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("event_rooms")
    op.drop_table("events")
    op.drop_table("log_meta")
