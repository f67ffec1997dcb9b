"""Once per cluster: a lease on a PostgreSQL advisory lock that moves to another node when its holder dies.

The holder keeps one connection with a session-level advisory lock. If the process dies, or its
connection is cut (pg_terminate_backend, a network fault), PostgreSQL ends the session and frees the
lock; every other node tries to take it every `check_interval_s`, so the lease moves within about
that. The holder checks its connection just as often and stops acting as soon as it has lost it.
Jobs guarded by the lease must still be safe to run twice in that window (the proposal expiry is: it
re-reads the proposal under the log's row lock and expires only a pending one).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from server.periodic import Periodic
from server.store.db import Database

log = structlog.get_logger(__name__)

JOBS_LEASE_KEY = 0x1A11_0002
"""Advisory lock key of the background jobs' lease (distinct from the migration lock)."""


class Lease(Protocol):
    """Whether this node may run the cluster's once-only jobs right now."""

    @property
    def held(self) -> bool:
        """True while this node holds the lease."""
        ...


class SoleNode:
    """The lease of a node that runs alone: always held."""

    held = True


class AdvisoryLease:
    """A session advisory lock on a dedicated connection, taken and checked in the background."""

    def __init__(self, db: Database, node_id: str, key: int = JOBS_LEASE_KEY, check_interval_s: float = 1.0) -> None:
        self._db = db
        self._node_id = node_id
        self._key = key
        self.check_interval_s = check_interval_s
        self._conn: AsyncConnection | None = None
        self._periodic = Periodic("jobs-lease", check_interval_s, self.check, run_first=True)
        self.acquisitions = 0

    @property
    def held(self) -> bool:
        """True while this node holds the lease (as of the last check)."""
        return self._conn is not None

    def start(self) -> None:
        """Begin trying to take the lease, and checking it once held."""
        self._periodic.start()

    async def stop(self) -> None:
        """Release the lease (closing its connection frees the lock) and stop."""
        await self._periodic.stop()
        await self._release()

    async def check(self) -> None:
        """Take the lease if it is free, or check that the connection holding it is still alive."""
        try:
            if self._conn is None:
                await self._try_acquire()
            else:
                await asyncio.wait_for(self._conn.execute(text("SELECT 1")), self.check_interval_s * 2)
        except Exception as exc:  # the database or our connection failed: we may not hold it any more
            if self._conn is not None:
                log.warning("lease_lost", node_id=self._node_id, reason=type(exc).__name__)
            await self._release()

    async def _try_acquire(self) -> None:
        conn = await self._db.engine.connect()
        try:
            taken = (
                await asyncio.wait_for(
                    conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}),
                    self.check_interval_s * 2,
                )
            ).scalar_one()
            # Leave no transaction open on the held connection (the session lock outlives it).
            await conn.commit()
        except BaseException:
            await _discard(conn)
            raise
        if not taken:
            await conn.close()  # holds no lock: back to the pool, no new connection every second
            return
        self._conn = conn
        self.acquisitions += 1
        log.info("lease_acquired", node_id=self._node_id)

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await _discard(conn)


async def _discard(conn: AsyncConnection) -> None:
    # Invalidate rather than return it to the pool: a pooled connection would keep the session lock.
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()
