"""Slow consumers (SPEC §4): a client that stops reading is cut off; the others never notice."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import pytest

from server.api.keys import GATEWAY, PUBLISHER
from tests.conftest import ServerFactory
from tests.support import RunningServer, connect_client

PAYLOAD = "x" * 20_000


def _masked_text_frame(text: str) -> bytes:
    data = text.encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(data) < 126:
        header.append(0x80 | len(data))
    else:
        header.append(0x80 | 126)
        header += len(data).to_bytes(2, "big")
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def stalled_client(server: RunningServer) -> socket.socket:
    """Complete the Engine.IO and Socket.IO handshakes by hand, then never read again."""
    loop = asyncio.get_running_loop()
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window fills fast
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    received = b""
    while b'"sid"' not in received:  # the 101 response and the Engine.IO open packet
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
        assert chunk, "server closed during the handshake"
        received += chunk
    assert b" 101 " in received
    auth = json.dumps({"token": server.token(sub="stalled"), "rooms": ["agents"]})
    await loop.sock_sendall(sock, _masked_text_frame("40" + auth))
    return sock


async def wait_for_stats(server: RunningServer, check: str, value: int, timeout: float = 20.0) -> dict[str, int]:
    """Poll the node's /ws/stats figures (read in-process: polling REST would hit its rate limit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stats = server.app[GATEWAY].snapshot()
        if stats[check] == value:
            return dict(stats)
        assert loop.time() < deadline, f"{check} never reached {value}: {stats}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("limits", "burst"),
    [
        pytest.param({"max_queue": 50, "send_timeout_s": 30.0}, 400, id="queue-bound"),
        pytest.param({"max_queue": 100_000, "send_timeout_s": 2.0}, 400, id="send-timeout"),
        # Under the fast path's write-buffer bound (4 MiB): only the stalled transport buffer tells.
        pytest.param({"max_queue": 100_000, "send_timeout_s": 2.0}, 120, id="send-timeout-low-volume"),
        pytest.param({"max_queue": 100_000, "send_timeout_s": 2.0, "fast_path": False}, 120, id="queue-path-timeout"),
    ],
)
async def test_stalled_client_is_cut_off_while_a_healthy_one_gets_everything(
    server_factory: ServerFactory, limits: dict[str, object], burst: int
) -> None:
    server = await server_factory(**limits)
    healthy = await connect_client(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    stalled = await stalled_client(server)
    try:
        await wait_for_stats(server, "active_connections", 2)
        ids = []
        for i in range(burst):
            event = await server.app[PUBLISHER].publish("custom.big", {"i": i, "pad": PAYLOAD}, ["agents"])
            ids.append(event.event_id)
            if i % 20 == 0:
                await asyncio.sleep(0.01)
        stats = await wait_for_stats(server, "slow_consumer_disconnects", 1)
        assert stats["active_connections"] == 1
        await healthy.wait_event("custom.big", count=burst, timeout=30)
        assert [e["event_id"] for e in healthy.of_type("custom.big")] == ids
        assert "disconnected" not in healthy.names()
        # The healthy client is still connected and served.
        assert (await healthy.call("ping"))["success"] is True
    finally:
        stalled.close()
        await healthy.client.disconnect()
