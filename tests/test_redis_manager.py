"""The fan-out stays compatible with python-socketio's Redis manager (issue 6).

python-socketio's pub/sub managers publish an emit to Redis and every node then calls its own
local `emit` for the recipients it holds. Mixed in under `AsyncRedisManager`, our
`FanoutManager` is that local emit, so the encode-once fast path runs on every node. Two real
Socket.IO servers share a real redis-server; clients on both nodes get an emit made on one.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import socketio
from aiohttp import web

from server.realtime.manager import FanoutManager, record_websockets
from tests.support import free_port, wait_until


class RedisFanoutManager(socketio.AsyncRedisManager, FanoutManager):  # type: ignore[misc]
    """Redis pub/sub across nodes; FanoutManager's encode-once emit for each node's own clients."""


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free port (no persistence)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required (the README's test command installs it)"
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="immune-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, "redis-server exited at start"
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not come up"
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class Node:
    sio: socketio.AsyncServer
    manager: RedisFanoutManager
    runner: web.AppRunner
    url: str


async def start_node(redis_url: str, channel: str) -> Node:
    manager = RedisFanoutManager(redis_url, channel=channel)
    sio = socketio.AsyncServer(client_manager=manager, async_mode="aiohttp")
    eio: Any = sio.eio
    eio._async = {**eio._async, "websocket": record_websockets(eio._async["websocket"], manager.websockets)}

    @sio.on("connect")
    async def join(sid: str, environ: dict[str, Any], auth: Any) -> None:
        await sio.enter_room(sid, "agents")

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Node(sio, manager, runner, f"http://127.0.0.1:{port}")


@pytest.fixture
async def nodes(redis_url: str, tmp_path: Path) -> AsyncIterator[list[Node]]:
    channel = f"immune-test-{tmp_path.name}"
    started = [await start_node(redis_url, channel) for _ in range(2)]
    try:
        yield started
    finally:
        for node in started:
            await node.runner.cleanup()


async def test_an_emit_on_one_node_reaches_clients_of_both_through_the_fast_path(nodes: list[Node]) -> None:
    received: list[list[tuple[str, Any]]] = [[], []]
    clients = []
    for index, node in enumerate(nodes):
        client = socketio.AsyncClient(reconnection=False)

        @client.on("*")
        async def record(event: str, data: Any, bucket: list[tuple[str, Any]] = received[index]) -> None:
            bucket.append((event, data))

        await client.connect(node.url, transports=["websocket"])
        clients.append(client)
    # Each node subscribes in a background listener; emit only once Redis counts both.
    channel = nodes[0].manager.channel
    deadline = asyncio.get_running_loop().time() + 10
    while dict(await nodes[0].manager.redis.pubsub_numsub(channel)).get(channel.encode(), 0) < 2:
        assert asyncio.get_running_loop().time() < deadline, "the nodes never subscribed"
        await asyncio.sleep(0.05)
    try:
        for n in range(5):
            await nodes[0].sio.emit("custom.cluster", {"n": n, "ü": "✓"}, room="agents")
        await wait_until(lambda: all(len(bucket) == 5 for bucket in received), timeout=10)
        expected = [("custom.cluster", {"n": n, "ü": "✓"}) for n in range(5)]
        assert received == [expected, expected]  # same events, same order, on both nodes
        # Each node delivered to its own client with the direct write, not the stock per-recipient path.
        assert [node.manager.direct_deliveries for node in nodes] == [5, 5]
    finally:
        for client in clients:
            await client.disconnect()
