"""domain: agents, tasks, election, proposals

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("agent_type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(120), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("health", sa.Float, nullable=False),
        sa.Column("energy", sa.Float, nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_index("ix_agents_type_status", "agents", ["agent_type", "status"])
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("task_type", sa.String(80), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(64), nullable=True),
        sa.Column("result", JSONType, nullable=True),
        sa.Column("error", sa.String(2000), nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
    )
    op.create_index("ix_tasks_status", "tasks", ["status"])
    election = op.create_table(
        "election",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("leader_id", sa.String(64), nullable=True),
        sa.Column("elected_at", Stamp, nullable=True),
    )
    op.bulk_insert(election, [{"id": 1, "term": 0, "leader_id": None, "elected_at": None}])
    op.create_table(
        "proposals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("proposal_type", sa.String(80), nullable=False),
        sa.Column("data", JSONType, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("votes", JSONType, nullable=False),
        sa.Column("eligible_voters", JSONType, nullable=False),
        sa.Column("approval_rate", sa.Float, nullable=True),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("expires_at", Stamp, nullable=True),
        sa.Column("decided_at", Stamp, nullable=True),
    )
    op.create_index("ix_proposals_status_expires", "proposals", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_table("proposals")
    op.drop_table("election")
    op.drop_table("tasks")
    op.drop_table("agents")
