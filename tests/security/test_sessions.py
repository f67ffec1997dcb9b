"""Engine.IO sessions before the Socket.IO CONNECT (SPEC §7): per-IP handshake budget and cap, the
connect timeout, and per-IP limits that count each client's own address (127.0.0.2 vs 127.0.0.3)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import socketio
from pydantic import ValidationError

from server.api.keys import GATEWAY
from server.config import Settings
from server.realtime.engine import engineio_server
from tests.conftest import ServerFactory
from tests.eio import open_polling, open_websocket, socketio_connect
from tests.support import Clients, connect_error


def from_address(address: str) -> aiohttp.ClientSession:
    """An HTTP session whose connections leave from this loopback address."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def refused_from(address: str, url: str, auth: dict[str, Any]) -> Any:
    """A connect from `address` that the server refuses: its connect_error data."""
    async with from_address(address) as http:
        client = socketio.AsyncClient(reconnection=False, http_session=http)
        errors: list[Any] = []
        client.on("connect_error", lambda data: errors.append(data))
        try:
            await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)
        except socketio.exceptions.ConnectionError:
            pass
        else:
            await client.disconnect()
            raise AssertionError("connection was accepted")
        assert errors, "no connect_error"
        return errors[0]["data"]


async def test_handshakes_past_the_per_ip_cap_are_refused_with_429(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(max_pending_sessions_per_ip=4, connect_timeout_s=60)
    async with aiohttp.ClientSession() as http:
        opened = [await open_polling(http, server.url) for _ in range(3)]
        # A session that completes CONNECT no longer counts: the cap is on sessions without one.
        rec = await socket_clients.connect(server.url, auth={"token": server.token()}, transports=["websocket"])
        opened.append(await open_polling(http, server.url))
        assert [status for status, _, _ in opened] == [200] * 4
        status, body, _ = await open_polling(http, server.url)
        assert status == 429 and body["code"] == "too_many_sessions" and body["details"]["limit"] == 4
        await rec.client.disconnect()
        # Another address has its own cap.
        async with from_address("127.0.0.2") as other:
            assert (await open_polling(other, server.url))[0] == 200


async def test_a_session_that_never_connects_is_closed_after_the_timeout(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(max_pending_sessions_per_ip=2, connect_timeout_s=1.5)
    async with aiohttp.ClientSession() as http:
        sessions = [(await open_polling(http, server.url))[2] for _ in range(2)]
        assert (await open_polling(http, server.url))[0] == 429
        # The long-poll of an idle session is answered with Engine.IO CLOSE once the timeout passes
        # (or, on a slow machine, the session is already gone when the GET arrives).
        assert sessions[0] is not None
        status, packets = await sessions[0].get(timeout=10)
        assert (status, packets) == (200, ["1"]) or status == 400, (status, packets)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while await timed_out_sessions(http, server.url) < 2:
            assert loop.time() < deadline, "the sessions were not closed"
            await asyncio.sleep(0.1)
        # Their pending slots were given back.
        assert (await open_polling(http, server.url))[0] == 200
    # A real client connects well within the timeout, and its session outlives it.
    rec = await socket_clients.connect(server.url, auth={"token": server.token()}, transports=["websocket"])
    async with aiohttp.ClientSession() as http:
        # A marker: a session opened after the client's that never connects. Once it (and the one
        # opened above) has timed out, the client's session is older than the timeout too.
        assert (await open_polling(http, server.url))[0] == 200
        deadline = loop.time() + 10
        while await timed_out_sessions(http, server.url) < 4:
            assert loop.time() < deadline, "the marker session was not closed"
            await asyncio.sleep(0.1)
        assert (await rec.call("ping"))["success"] is True
        assert await timed_out_sessions(http, server.url) == 4


async def timed_out_sessions(http: aiohttp.ClientSession, url: str) -> float:
    """`immune_eio_sessions_closed_total{reason="connect_timeout"}` from /metrics."""
    async with http.get(url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith('immune_eio_sessions_closed_total{reason="connect_timeout"}'):
                return float(line.split()[-1])
    return 0.0


async def test_handshakes_spend_the_per_ip_connection_attempt_budget(server_factory: ServerFactory) -> None:
    server = await server_factory(connects_burst_per_ip=3, connects_per_min_per_ip=1, connect_timeout_s=60)
    async with aiohttp.ClientSession() as http:
        for _ in range(3):
            assert (await open_polling(http, server.url))[0] == 200
    error = await connect_error(server.url, auth={"token": server.token()})
    assert error["code"] == "rate_limited" and error["details"]["retry_after_s"] > 0


async def test_a_flood_from_one_address_does_not_lock_out_another(server_factory: ServerFactory) -> None:
    server = await server_factory(connects_burst_per_ip=5, connects_per_min_per_ip=1)
    for _ in range(5):
        assert (await refused_from("127.0.0.2", server.url, {}))["code"] == "unauthorized"
    assert (await refused_from("127.0.0.2", server.url, {}))["code"] == "rate_limited"
    # Clients closes first (the client disconnects), then its HTTP session, whose TCP connections leave from .3.
    async with from_address("127.0.0.3") as http, Clients() as clients:
        viewer = await clients.connect(server.url, auth={"token": server.token("viewer")}, http_session=http)
        (conn,) = server.app[GATEWAY].registry.by_sid.values()
        assert conn.remote_addr == "127.0.0.3"
        assert (await viewer.call("ping"))["success"] is True


async def test_repeated_connects_on_one_session_each_spend_an_attempt(server_factory: ServerFactory) -> None:
    server = await server_factory(connects_burst_per_ip=3, connects_per_min_per_ip=1)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket")
        await ws.receive(timeout=5)  # OPEN
        codes = []
        for _ in range(4):
            await ws.send_str('40{"token":"not-a-jwt"}')
            while True:
                message = await ws.receive(timeout=5)
                if message.data.startswith("44"):
                    codes.append(message.data)
                    break
        await ws.close()
    assert ['"unauthorized"' in c for c in codes] == [True, True, True, False]
    assert '"rate_limited"' in codes[3]


def test_the_frame_limit_may_not_be_below_the_message_limit() -> None:
    with pytest.raises(ValidationError, match=r"IMMUNE_MAX_FRAME_BYTES .* must be at least IMMUNE_MAX_PAYLOAD_BYTES"):
        Settings(max_payload_bytes=200_000, max_frame_bytes=150_000)
    assert Settings(max_payload_bytes=200_000, max_frame_bytes=200_000).max_frame_bytes == 200_000


async def test_nothing_read_after_a_session_closed_creates_a_connection(server_factory: ServerFactory) -> None:
    server = await server_factory()
    gateway = server.app[GATEWAY]
    async with aiohttp.ClientSession() as http:
        ws = await open_websocket(http, server.url)
        await socketio_connect(ws, {"token": server.token()})
        await ws.send_str("41")  # Socket.IO DISCONNECT: the server closes the Engine.IO session
        await ws.send_str('40{"token":"' + server.token() + '"}')  # read after the close, if at all
        frames = []
        while True:
            message = await ws.receive(timeout=10)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frames.append(message.data)
        assert not [f for f in frames if f.startswith("40{")], frames
    assert gateway.registry.by_sid == {} and gateway.guard.sessions == {}


async def test_a_polling_post_whose_body_never_arrives_is_answered_408(
    server_factory: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engineio_server, "POLL_POST_TIMEOUT_S", 0.5)  # the bound is 10 s; the behaviour is the same
    server = await server_factory()

    async def trickle() -> Any:
        yield b"4"
        await asyncio.sleep(30)

    async with aiohttp.ClientSession() as http:
        _, _, session = await open_polling(http, server.url)
        assert session is not None
        status, body = await session.post(trickle(), timeout=10)  # type: ignore[arg-type]
        assert status == 408 and json.loads(body)["code"] == "request_timeout"
        status, packets = await session.get(timeout=10)  # and the session is closed (or closing)
        assert status == 400 or (status, packets) == (200, ["1"]), (status, packets)
