"""/health, /ready and health_changed across a real database outage (PostgreSQL stopped and restarted)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from server.api.keys import MONITOR
from tests.conftest import ServerFactory
from tests.postgres import PostgresServer
from tests.support import Clients, rest, wait_until


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL this test may stop (the session one is shared)."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


async def test_outage_is_reported_and_announced_in_order(
    own_postgres: PostgresServer,
    server_factory: ServerFactory,
    socket_clients: Clients,
) -> None:
    # own_postgres first: fixtures end in reverse order, so the server stops before its database.
    server = await server_factory(database_url=own_postgres.url, metrics_interval_s=0.1)
    rec = await socket_clients.listen(server, "system")
    await rec.wait_event("metrics_updated", timeout=10)  # the monitor has seen a healthy database

    await asyncio.to_thread(own_postgres.pause)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        _, health, _ = await rest(server, "GET", "/health", role=None)
        if health["status"] == "degraded":
            break
        assert loop.time() < deadline, health
        await asyncio.sleep(0.1)
    assert health["checks"]["database"].startswith("error")
    status, ready, _ = await rest(server, "GET", "/ready", role=None)
    assert status == 503 and ready["ready"] is False
    # The monitor's own round has seen the outage (what /health reports is computed per request).
    await wait_until(lambda: server.app[MONITOR].health == "degraded", timeout=15)

    await asyncio.to_thread(own_postgres.resume)
    changes = await rec.wait_event("health_changed", count=2, timeout=20)
    assert [(c["data"]["previous_status"], c["data"]["status"]) for c in changes[:2]] == [
        ("healthy", "degraded"),
        ("degraded", "healthy"),
    ]
    assert changes[0]["data"]["checks"]["database"].startswith("error")
    assert changes[0]["event_id"] < changes[1]["event_id"]
    status, ready, _ = await rest(server, "GET", "/ready", role=None)
    assert status == 200
