"""The SQLite fast path of the event log: a batch of events appended in one thread hop.

The general path (SQLAlchemy over aiosqlite) costs three or four thread hops per statement and
five statements per batch. A batch holding only events (broadcasts, alerts, the monitor's figures)
needs none of that: one call on a dedicated thread with its own sqlite3 connection locks the log,
appends and commits. Rows are written exactly as SQLAlchemy writes them (JSON text, naive UTC
`YYYY-MM-DD HH:MM:SS.ffffff`), so every reader sees one format.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import orjson

from server.events.model import BROADCAST_ROOM, PublishedEvent

T = TypeVar("T")

_HEAD = "SELECT last_event_id FROM log_meta WHERE id = 1"
_INSERT_EVENT = (
    "INSERT INTO events (id, event_type, room, rooms, data, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ROOM = "INSERT INTO event_rooms (room, event_id) VALUES (?, ?)"
_SET_HEAD = "UPDATE log_meta SET last_event_id = ? WHERE id = 1"


class SqliteAppender:
    """Owns one sqlite3 connection on one thread; `append` runs a whole batch there."""

    def __init__(self, path: Path, synchronous: str, busy_timeout_s: float) -> None:
        self._path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_s = busy_timeout_s
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="event-appender")
        self._conn: sqlite3.Connection | None = None

    async def append(self, stage: Callable[[int], list[PublishedEvent]]) -> list[PublishedEvent]:
        """Lock the log, let `stage(head)` build the events with their ids, write them and commit."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._append, stage)

    async def close(self) -> None:
        """Close the connection and stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=False)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, timeout=self._busy_timeout_s, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_s * 1000)}")
            self._conn = conn
        return self._conn

    def _append(self, stage: Callable[[int], list[PublishedEvent]]) -> list[PublishedEvent]:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            events = stage(int(conn.execute(_HEAD).fetchone()[0]))
            if events:
                conn.executemany(_INSERT_EVENT, [_event_row(event) for event in events])
                conn.executemany(
                    _INSERT_ROOM,
                    [(room, event.event_id) for event in events for room in (event.rooms or (BROADCAST_ROOM,))],
                )
                conn.execute(_SET_HEAD, (events[-1].event_id,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return events

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _event_row(event: PublishedEvent) -> tuple[object, ...]:
    return (
        event.event_id,
        event.event_type,
        event.room,
        orjson.dumps(list(event.rooms)).decode(),
        orjson.dumps(event.data).decode(),
        event.source,
        event.timestamp.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f"),
    )


def appender_for(url: str, synchronous: str, busy_timeout_s: float) -> SqliteAppender | None:
    """The fast path for a SQLite file URL (None for PostgreSQL or an in-memory database)."""
    if not url.startswith("sqlite") or ":///" not in url or url.endswith(":memory:"):
        return None
    return SqliteAppender(Path(url.split(":///", 1)[1]), synchronous, busy_timeout_s)


__all__: Sequence[str] = ["SqliteAppender", "appender_for"]
