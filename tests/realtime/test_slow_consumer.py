"""Slow consumers (SPEC §4): a client that stops reading is cut off; the others never notice."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest

from server.api.keys import GATEWAY, PUBLISHER
from server.events.model import PublishedEvent
from server.realtime.manager import transport_of, unsent_bytes
from tests.conftest import ServerFactory
from tests.eio import raw_socketio_websocket
from tests.support import Clients, RunningServer, rest, wait_until

PAYLOAD = "x" * 20_000


async def raw_client(server: RunningServer, rooms: list[str] | None = None) -> tuple[socket.socket, bytes]:
    """Complete the Engine.IO and Socket.IO handshakes by hand; returns the socket and the frames read so far."""
    port = int(server.url.rsplit(":", 1)[1])
    auth = {"token": server.token(sub="stalled"), "rooms": rooms or ["agents"]}
    sock, received = await raw_socketio_websocket(port, auth, opened=[], timeout=5)
    assert b" 101 " in received
    return sock, received.split(b"\r\n\r\n", 1)[1]


async def stalled_client(server: RunningServer) -> socket.socket:
    """A client that completes the handshakes, then never reads again."""
    sock, _ = await raw_client(server)
    return sock


def parse_frames(data: bytes) -> tuple[list[str], bytes]:
    """Server → client WebSocket frames (unmasked) as text; returns the texts and the incomplete rest."""
    texts: list[str] = []
    while len(data) >= 2:
        size, offset = data[1] & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                break
            size, offset = int.from_bytes(data[2:4], "big"), 4
        elif size == 127:
            if len(data) < 10:
                break
            size, offset = int.from_bytes(data[2:10], "big"), 10
        if len(data) < offset + size:
            break
        if data[0] & 0x0F == 1:
            texts.append(data[offset : offset + size].decode())
        data = data[offset + size :]
    return texts, data


async def read_until_closed(
    sock: socket.socket, limit_bytes: int = 256 << 20, timeout: float = 30.0, until: bytes | None = None
) -> bytes:
    """Read what the server sent until it closes or resets the TCP connection, or sends `until` (bounded)."""
    loop = asyncio.get_running_loop()
    data = b""
    deadline = loop.time() + timeout
    while len(data) < limit_bytes:
        if until is not None and data.endswith(until):
            return data
        remaining = deadline - loop.time()
        assert remaining > 0, f"server did not close the connection ({len(data)} bytes read)"
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 16), remaining)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError("read limit reached before the server closed")


def stalled_socket(server: RunningServer) -> tuple[str, Any]:
    """(sid, server-side Engine.IO socket) of the connection made by `raw_client`."""
    gateway = server.app[GATEWAY]
    [sid] = [sid for sid, conn in gateway.registry.by_sid.items() if conn.identity.subject == "stalled"]
    return sid, gateway.sio.eio.sockets[gateway.registry.by_sid[sid].eio_sid]


async def wait_for_stats(server: RunningServer, check: str, value: int, timeout: float = 20.0) -> dict[str, int]:
    """Poll the node's /ws/stats figures (read in-process: polling REST would hit its rate limit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = server.app[GATEWAY].registry.snapshot()
        if stats[check] == value:
            return dict(stats)
        assert loop.time() < deadline, f"{check} never reached {value}: {stats}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("limits", "burst"),
    [
        pytest.param({"max_queue": 50, "send_timeout_s": 5.0}, 400, id="queue-bound"),
        pytest.param({"max_queue": 100_000, "send_timeout_s": 2.0}, 400, id="send-timeout"),
        # Under the fast path's write-buffer bound (4 MiB): only the stalled transport buffer tells.
        pytest.param({"max_queue": 100_000, "send_timeout_s": 2.0}, 120, id="send-timeout-low-volume"),
        pytest.param({"max_queue": 100_000, "send_timeout_s": 2.0, "fast_path": False}, 120, id="queue-path-timeout"),
    ],
)
async def test_stalled_client_is_cut_off_while_a_healthy_one_gets_everything(
    server_factory: ServerFactory,
    limits: dict[str, object],
    burst: int,
    socket_clients: Clients,
) -> None:
    server = await server_factory(**limits)
    gateway = server.app[GATEWAY]
    healthy = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    stalled = await stalled_client(server)
    peak = 0
    sampling = True

    async def sample(queue: asyncio.Queue[Any]) -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, queue.qsize())
            await asyncio.sleep(0.005)

    try:
        await wait_for_stats(server, "active_connections", 2)
        _sid, eio_socket = stalled_socket(server)
        transport = transport_of(eio_socket)
        assert transport is not None
        sampler = asyncio.create_task(sample(eio_socket.queue))
        ids = []
        for i in range(burst):
            event = await server.app[PUBLISHER].publish("custom.big", {"i": i, "pad": PAYLOAD}, ["agents"])
            ids.append(event.event_id)
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        await wait_for_stats(server, "slow_consumer_disconnects", 1)
        # The cut is immediate; the Socket.IO connection ends a moment later, in the close task.
        await wait_for_stats(server, "active_connections", 1)
        await healthy.wait_event("custom.big", count=burst, timeout=30)
        assert [e["event_id"] for e in healthy.of_type("custom.big")] == ids
        assert "disconnected" not in healthy.names()
        # The healthy client is still connected and served.
        assert (await healthy.call("ping"))["success"] is True
        # The stalled peer never takes its last frames: its TCP transport is aborted (bounded by the
        # send timeout), so neither its socket nor its queue outlives it.
        await wait_until(transport.is_closing, timeout=30)
        await wait_until(lambda: eio_socket.closed, timeout=10)
        sampling = False
        await sampler
        assert peak <= gateway.settings.max_queue + 3  # the bound, plus disconnected, DISCONNECT, CLOSE
        assert gateway.registry.snapshot()["slow_consumer_disconnects"] == 1
        await read_until_closed(stalled)
    finally:
        sampling = False
        stalled.close()
        await healthy.client.disconnect()


async def test_slow_consumer_always_gets_disconnected_even_with_a_full_queue(server_factory: ServerFactory) -> None:
    """The queue is full when the cut happens: `disconnected` goes past the bound, then the close."""
    server = await server_factory(max_queue=50, send_timeout_s=30.0, fast_path=False)
    sock, early = await raw_client(server)
    try:
        await wait_for_stats(server, "active_connections", 1)
        ids = []
        for i in range(300):
            event = await server.app[PUBLISHER].publish("custom.big", {"i": i, "pad": PAYLOAD}, ["agents"])
            ids.append(event.event_id)
            if server.app[GATEWAY].registry.snapshot()["slow_consumer_disconnects"]:
                break
        await wait_for_stats(server, "slow_consumer_disconnects", 1)
        # Now the client reads again: it must find a gap-free prefix, `disconnected`, then the close.
        # A real client closes its side on the Engine.IO CLOSE packet ("1"), the last frame sent.
        texts, rest = parse_frames(early + await read_until_closed(sock, until=b"\x81\x011"))
        assert not rest
        packets = [t for t in texts if t != "2" and not t.startswith("0")]  # pings, the open packet
        assert packets[0].startswith("40")
        names = [json.loads(t[2:])[0] for t in packets[1:] if t.startswith("42")]
        envelopes = [json.loads(t[2:])[1] for t in packets[1:] if t.startswith("42")]
        assert names[0] == "connected" and names[-1] == "disconnected", names[-3:]
        assert envelopes[-1]["data"]["reason"] == "slow_consumer"
        got = [e["event_id"] for e in envelopes[1:-1]]
        assert got == ids[: len(got)] and len(got) < len(ids)  # a prefix: nothing after the cut
        assert packets[-2:] == ["41", "1"]  # Socket.IO DISCONNECT, then Engine.IO CLOSE
        assert server.app[GATEWAY].registry.snapshot()["slow_consumer_disconnects"] == 1
    finally:
        sock.close()


async def test_the_cut_is_immediate_and_resume_has_no_hole(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    """Judged slow between two events: nothing from that event on reaches the connection; resume fills in."""
    server = await server_factory()
    gateway = server.app[GATEWAY]
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    sid = rec.client.get_sid()
    assert sid is not None
    deliver = gateway.deliver
    judged_at: list[int] = []

    def judging_deliver(event: PublishedEvent) -> None:
        if event.event_id == trigger:
            judged_at.append(event.event_id)
            # The send watchdog and the queue bound may both fire (both call this): one cut, counted once.
            gateway.manager.on_overflow(sid)
            gateway.manager.on_overflow(sid)
        deliver(event)

    first = [await publish(server, i) for i in range(3)]
    await rec.wait_event("custom.n", count=3)
    trigger = first[-1] + 2
    gateway.deliver = judging_deliver  # type: ignore[method-assign]
    try:
        rest = [await publish(server, i) for i in range(3, 8)]
    finally:
        gateway.deliver = deliver  # type: ignore[method-assign]
    assert judged_at == [trigger]
    await rec.wait_for(lambda: not rec.client.connected, timeout=10)
    received = [e["event_id"] for e in rec.of_type("custom.n")]
    assert received == [*first, trigger - 1]  # nothing from the judgement on
    assert rec.names()[-1] == "disconnected"
    assert rec.of_type("disconnected")[0]["data"]["reason"] == "slow_consumer"
    assert gateway.registry.snapshot()["slow_consumer_disconnects"] == 1

    resumed = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": received[-1]}
    )
    await resumed.wait_event("custom.n", count=len(rest) - 1)
    assert resumed.of_type("connected")[0]["data"]["recovered"] is True
    replayed = [e["event_id"] for e in resumed.of_type("custom.n")]
    assert received + replayed == first + rest  # no hole, no duplicate


async def back_up_stalled_peer(server: RunningServer, connections: int) -> tuple[str, Any]:
    """Fill the stalled peer's socket buffers (far from any bound); returns its sid and TCP transport."""
    await wait_for_stats(server, "active_connections", connections)
    sid, eio_socket = stalled_socket(server)
    transport = transport_of(eio_socket)
    assert transport is not None
    for i in range(60):
        await publish(server, i, pad=PAYLOAD)
    await wait_until(lambda: unsent_bytes(transport) > 0)
    return sid, transport


async def test_shutdown_does_not_wait_for_a_stalled_peer(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    """A peer that stopped reading (not yet judged slow) is aborted at shutdown after a short grace."""
    server = await server_factory(max_queue=100_000, send_timeout_s=60.0)
    gateway = server.app[GATEWAY]
    healthy = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    stalled = await stalled_client(server)
    try:
        _sid, transport = await back_up_stalled_peer(server, connections=2)
        await healthy.wait_event("custom.n", count=60, timeout=30)
        await asyncio.wait_for(gateway.shutdown(), 30)  # a hang bound, not a speed claim
        assert transport.is_closing()
        await healthy.wait_event("disconnected")
        assert healthy.of_type("disconnected")[0]["data"]["reason"] == "server_shutdown"
        assert gateway.registry.snapshot()["slow_consumer_disconnects"] == 0
        await read_until_closed(stalled)
    finally:
        stalled.close()
        await healthy.client.disconnect()


async def test_kicking_a_stalled_peer_answers_at_once_and_aborts_it_later(server_factory: ServerFactory) -> None:
    """DELETE /ws/connections/{id} answers once the connection is gone, not after the send timeout."""
    server = await server_factory(max_queue=100_000, send_timeout_s=5.0)
    stalled = await stalled_client(server)
    try:
        sid, transport = await back_up_stalled_peer(server, connections=1)
        status, _, _ = await rest(server, "DELETE", f"/ws/connections/{sid}")
        assert status == 204
        # Answered before the 5 s flush grace ran out: the transport is still waiting to be aborted.
        assert not transport.is_closing()
        status, _, _ = await rest(server, "GET", f"/ws/connections/{sid}")
        assert status == 404
        await wait_until(transport.is_closing, timeout=20)  # then aborted in the background
        await read_until_closed(stalled)
    finally:
        stalled.close()


async def publish(server: RunningServer, i: int, pad: str = "") -> int:
    data: dict[str, Any] = {"i": i, "pad": pad} if pad else {"i": i}
    return (await server.app[PUBLISHER].publish("custom.n", data, ["agents"])).event_id
