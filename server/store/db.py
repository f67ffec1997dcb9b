"""Database engine, sessions and migrations (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SqliteSynchronous = Literal["full", "normal"]
MIGRATION_LOCK_KEY = 0x1A11_0001
"""PostgreSQL advisory lock held while migrating (any constant no other lock of the database uses)."""


class Database:
    """Owns the async engine; hands out write transactions that are serialized on SQLite."""

    def __init__(
        self,
        url: str,
        *,
        synchronous: SqliteSynchronous = "full",
        busy_timeout_s: float = 2.0,
        application_name: str | None = None,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        options: dict[str, Any] = {
            "pool_pre_ping": not self.is_sqlite,
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        if self.is_sqlite:
            # How long a statement waits for another process's lock before failing (then the
            # writer answers 503 `unavailable` rather than holding every caller for 30 s).
            options["connect_args"] = {"timeout": busy_timeout_s}
        elif application_name and url.startswith("postgresql+asyncpg"):
            # pg_stat_activity names the node that holds each connection.
            options["connect_args"] = {"server_settings": {"application_name": application_name[:63]}}
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.is_sqlite:
            pragmas = functools.partial(_sqlite_pragmas, synchronous.upper(), int(busy_timeout_s * 1000))
            event.listen(self.engine.sync_engine, "connect", pragmas)
        # SQLite allows one writer; serializing writers in-process avoids "database is locked"
        # retries. PostgreSQL needs no such lock: the log counter's row lock orders commits.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write_lock(self) -> AsyncIterator[None]:
        """Held around every write transaction of this process on SQLite (a no-op on PostgreSQL)."""
        if self._write_lock is None:
            yield
            return
        async with self._write_lock:
            yield

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction outside the event writer (retention): commits on normal exit."""
        async with self.write_lock(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Apply Alembic migrations up to head."""
        if self.is_sqlite:
            Path(self.url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                # Nodes of a cluster start together: one migrates, the others wait and find it done.
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        """Dispose of the connection pool."""
        await self.engine.dispose()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _upgrade_to_head(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(synchronous: str, busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns (one fsync of the WAL per group commit); NORMAL
    # survives a crash of this process but may lose the last commits on power loss.
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.close()
