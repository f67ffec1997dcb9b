"""SQLAlchemy tables. Migrations in `migrations/` create them; nothing calls `create_all`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

metadata = MetaData()

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    PostgreSQL returns aware datetimes; SQLite keeps no zone and hands back naive ones, which were
    written as UTC. The fix lives here once, so no row reader has to remember it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to a naive value read back (SQLite)."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


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
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_events_created_at", "created_at"),
)

event_rooms = Table(
    "event_rooms",
    metadata,
    Column("room", String(80), primary_key=True),
    Column("event_id", BigInteger, ForeignKey("events.id", ondelete="CASCADE"), primary_key=True),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("agent_type", String(32), nullable=False),
    Column("name", String(120), nullable=True),
    Column("status", String(16), nullable=False),
    Column("health", Float, nullable=False),
    Column("energy", Float, nullable=False),
    Column("metadata", JSONType, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_agents_type_status", "agent_type", "status"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("task_type", String(80), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("payload", JSONType, nullable=False),
    Column("status", String(16), nullable=False),
    Column("agent_id", String(64), nullable=True),
    Column("result", JSONType, nullable=True),
    Column("error", String(2000), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_tasks_status", "status"),
)

election = Table(
    "election",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("term", BigInteger, nullable=False),
    Column("leader_id", String(64), nullable=True),
    Column("elected_at", UtcDateTime(), nullable=True),
)

proposals = Table(
    "proposals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("proposal_type", String(80), nullable=False),
    Column("data", JSONType, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("votes", JSONType, nullable=False),
    Column("eligible_voters", JSONType, nullable=False),
    Column("approval_rate", Float, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=True),
    Column("decided_at", UtcDateTime(), nullable=True),
    Index("ix_proposals_status_expires", "status", "expires_at"),
)
