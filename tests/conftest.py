"""Fixtures: a real server on an ephemeral port, started per test."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.support import Cluster
from tests.peer import ScriptedPeer
from tests.postgres import PostgresServer
from tests.redis_server import RedisServer
from tests.support import Clients, RunningServer, SdkClients, start_server, test_settings

ServerFactory = Callable[..., Awaitable[RunningServer]]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what importing the tests created, so the collection after each test only scans what tests made."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """A garbage collection when each test ends (after its other fixtures): an unclosed socket, HTTP
    session or child process then fails the test that leaked it (ResourceWarning is an error),
    not whichever later test the collector happens to run in."""
    yield
    gc.collect()


@pytest.fixture
async def server_factory(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    """Start servers with custom settings; all are stopped after the test."""
    started: list[RunningServer] = []

    async def factory(**overrides: Any) -> RunningServer:
        data_dir = overrides.pop("data_dir", tmp_path / f"data{len(started)}")
        running = await start_server(test_settings(data_dir, **overrides))
        started.append(running)
        return running

    yield factory
    for running in reversed(started):
        await running.runner.cleanup()


@pytest.fixture
async def server(server_factory: ServerFactory) -> RunningServer:
    """A server with default settings."""
    return await server_factory()


@pytest.fixture
async def socket_clients(server_factory: ServerFactory) -> AsyncIterator[Clients]:
    """Connected python-socketio clients, all disconnected after the test (before its servers stop)."""
    async with Clients() as clients:
        yield clients


@pytest.fixture
async def sdk_clients(server_factory: ServerFactory) -> AsyncIterator[SdkClients]:
    """A maker of `ImmuneClient`s, all closed after the test (before its servers stop)."""
    clients = SdkClients()
    try:
        yield clients
    finally:
        await clients.close()


@pytest.fixture
async def peer() -> AsyncIterator[ScriptedPeer]:
    """A scripted Socket.IO server (tests/peer.py) that sends the SDK frames our server never would."""
    scripted = ScriptedPeer()
    await scripted.start()
    yield scripted
    await scripted.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session."""
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def pg_server(server_factory: ServerFactory, postgres: PostgresServer) -> RunningServer:
    """Our server on a fresh PostgreSQL database."""
    await asyncio.to_thread(postgres.reset)
    return await server_factory(database_url=postgres.url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (tests may kill, pause and restart it)."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def cluster_factory(
    tmp_path: Path, postgres: PostgresServer, redis_server: RedisServer
) -> AsyncIterator[ClusterFactory]:
    """Start a cluster of real node processes on a fresh database and a running Redis; stopped after."""
    started: list[Cluster] = []

    async def factory(size: int = 2, **env: str) -> Cluster:
        await asyncio.to_thread(postgres.reset)
        if redis_server.proc is None or redis_server.proc.poll() is not None:
            await asyncio.to_thread(redis_server.start)
        redis_server.unpause()
        cluster = Cluster(tmp_path / f"cluster{len(started)}", postgres, redis_server, size, **env)
        started.append(cluster)
        await cluster.start()
        return cluster

    yield factory
    redis_server.unpause()
    for cluster in started:
        await asyncio.to_thread(cluster.stop)
