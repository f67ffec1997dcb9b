"""SQLAlchemy tables. Migrations in `migrations/` create them; nothing calls `create_all`."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

JSONType = JSON().with_variant(JSONB(), "postgresql")

log_meta = Table(
    "log_meta",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", String(64), nullable=False),
    # The gapless id counter: incremented in the appending transaction, so its row lock
    # orders appends by commit (a reader never sees a smaller id appear after a larger one).
    Column("last_event_id", BigInteger, nullable=False),
    Column("pruned_through", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_type", String(80), nullable=False),
    Column("room", String(80), nullable=True),
    Column("rooms", JSONType, nullable=False),
    Column("data", JSONType, nullable=False),
    Column("source", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_events_created_at", "created_at"),
)

event_rooms = Table(
    "event_rooms",
    metadata,
    Column("room", String(80), primary_key=True),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
)
