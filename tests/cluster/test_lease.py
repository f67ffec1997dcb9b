"""The jobs' lease on a real PostgreSQL: one holder at a time; it moves when the holder's session ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from server.cluster.lease import AdvisoryLease
from server.store.db import Database
from tests.postgres import PostgresServer
from tests.support import wait_until


@pytest.fixture
async def databases(postgres: PostgresServer) -> AsyncIterator[list[Database]]:
    await asyncio.to_thread(postgres.reset)
    dbs = [Database(postgres.url) for _ in range(3)]
    yield dbs
    for db in dbs:
        await db.close()


async def test_one_holder_at_a_time_and_the_lease_moves_when_its_session_is_terminated(
    databases: list[Database],
) -> None:
    leases = [AdvisoryLease(db, f"node-{i}", check_interval_s=0.1) for i, db in enumerate(databases[:2])]
    for lease in leases:
        lease.start()
    try:
        await wait_until(lambda: any(lease.held for lease in leases), timeout=10)
        await asyncio.sleep(0.5)  # several rounds of trying: the other never takes it too
        assert sum(lease.held for lease in leases) == 1
        holder = next(lease for lease in leases if lease.held)
        other = next(lease for lease in leases if not lease.held)
        # Cut the holder's session from the server side, as an operator or a network fault would.
        async with databases[2].engine.connect() as admin:
            killed = (
                await admin.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    )
                )
            ).scalar_one()
        assert killed == 1
        await wait_until(lambda: other.held, timeout=10)
        await wait_until(lambda: not holder.held, timeout=10)
        assert sum(lease.held for lease in leases) == 1
    finally:
        for lease in leases:
            await lease.stop()


async def test_a_stopped_holder_releases_the_lease_at_once(databases: list[Database]) -> None:
    first = AdvisoryLease(databases[0], "first", check_interval_s=0.1)
    first.start()
    await wait_until(lambda: first.held, timeout=10)
    second = AdvisoryLease(databases[1], "second", check_interval_s=0.1)
    second.start()
    try:
        await asyncio.sleep(0.3)
        assert not second.held
        await first.stop()
        await wait_until(lambda: second.held, timeout=10)
    finally:
        await first.stop()
        await second.stop()
