"""The send watchdog on a real TCP connection whose peer stops reading (the clock is injected)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from server.realtime.backpressure import SendWatchdog
from server.realtime.engine import unsent_bytes
from server.realtime.lean_queue import LeanQueue

TIMEOUT = 10.0


@pytest.fixture
async def connection() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """(our transport, the peer's socket) of a loopback TCP connection whose peer reads only when told."""
    peer_ready: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    loop = asyncio.get_running_loop()

    async def accept() -> None:
        peer, _ = await loop.sock_accept(listener)
        peer_ready.set_result(peer)

    accepting = asyncio.create_task(accept())
    transport, _ = await loop.create_connection(asyncio.Protocol, *listener.getsockname())
    await accepting
    peer = await peer_ready
    try:
        yield transport, peer
    finally:
        transport.abort()
        peer.close()
        listener.close()


async def settled_unsent(transport: asyncio.Transport) -> int:
    """Unsent bytes once the kernel has stopped moving them (two equal readings 20 ms apart)."""
    last = -1
    for _ in range(100):
        now = unsent_bytes(transport)
        if now == last:
            return now
        last = now
        await asyncio.sleep(0.02)
    raise AssertionError("the transport never settled")


async def test_a_quiet_connection_is_not_measured_until_it_is_sent_something(
    connection: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, _peer = connection
    sent = 0
    stalled: list[str] = []
    queue = LeanQueue()
    watchdog = SendWatchdog(TIMEOUT, lambda: [("c1", queue, transport, sent)], stalled.append)
    assert watchdog.sweep(now=0.0) == []  # found drained at sent=0
    for later in (100.0, 1000.0):
        assert watchdog.sweep(now=later) == []
    # Frames the peer never takes: counted as sent, so the next sweep measures them again.
    transport.write(b"x" * (32 << 20))
    sent = 1
    assert await settled_unsent(transport) > 0
    assert watchdog.sweep(now=2000.0) == []  # first sight of the stuck bytes
    assert watchdog.sweep(now=2000.0 + TIMEOUT / 2) == []
    assert watchdog.sweep(now=2000.0 + TIMEOUT) == ["c1"]
    assert stalled == ["c1"]


async def test_a_peer_that_reads_restarts_the_clock(connection: tuple[asyncio.Transport, socket.socket]) -> None:
    transport, peer = connection
    queue = LeanQueue()
    watchdog = SendWatchdog(TIMEOUT, lambda: [("c1", queue, transport, 1)], lambda sid: None)
    transport.write(b"x" * (32 << 20))
    before = await settled_unsent(transport)
    assert watchdog.sweep(now=0.0) == []
    loop = asyncio.get_running_loop()
    taken = 0
    while taken < 1 << 20:  # the peer takes 1 MiB
        taken += len(await loop.sock_recv(peer, 1 << 16))
    assert await settled_unsent(transport) < before
    assert watchdog.sweep(now=TIMEOUT) == []  # progress since the last sweep
    assert watchdog.sweep(now=2 * TIMEOUT) == ["c1"]  # none since


async def test_a_queue_head_nobody_takes_is_a_stall(connection: tuple[asyncio.Transport, socket.socket]) -> None:
    # The transport is drained, but the writer never takes the Engine.IO queue's head (it is stuck
    # elsewhere, or the client stopped polling): the message has waited too long all the same.
    transport, _peer = connection
    stalled: list[str] = []
    queue = LeanQueue()
    queue.put_nowait("first")
    queue.put_nowait("second")
    connections = [("ws", queue, transport, 1), ("polling", queue, None, 1)]
    watchdog = SendWatchdog(TIMEOUT, lambda: connections, stalled.append)
    assert watchdog.sweep(now=0.0) == []  # first sight of the head
    assert watchdog.sweep(now=TIMEOUT / 2) == []
    assert watchdog.sweep(now=TIMEOUT) == ["ws", "polling"]
    assert stalled == ["ws", "polling"]


async def test_a_queue_whose_head_moves_restarts_the_clock(connection: tuple[asyncio.Transport, socket.socket]) -> None:
    transport, _peer = connection
    queue = LeanQueue()
    for message in ("first", "second", "third"):
        queue.put_nowait(message)
    watchdog = SendWatchdog(TIMEOUT, lambda: [("c1", queue, transport, 1)], lambda sid: None)
    assert watchdog.sweep(now=0.0) == []
    queue.get_nowait()  # the writer took one: progress
    assert watchdog.sweep(now=TIMEOUT) == []
    assert watchdog.sweep(now=1.5 * TIMEOUT) == []
    queue.get_nowait()
    queue.get_nowait()  # emptied: nothing waits
    assert watchdog.sweep(now=10 * TIMEOUT) == []
    assert watchdog.sweep(now=20 * TIMEOUT) == []
    queue.put_nowait("fourth")  # a new head starts its own clock
    assert watchdog.sweep(now=30 * TIMEOUT) == []
    assert watchdog.sweep(now=31 * TIMEOUT) == ["c1"]
