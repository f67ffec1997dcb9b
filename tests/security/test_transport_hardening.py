"""Below the Socket.IO CONNECT, against a real `immune-core serve`: binary attachments, log flooding,
unanswered long-polling POSTs and shutdown with long-polls pending (SPEC §7)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.auth import TokenAuthority
from server.config import Settings
from tests.eio import SEP, closed_within, open_polling, open_websocket, rss_kb, socketio_connect
from tests.support import ServerProcess

SECRET = "test-secret-" + "x" * 32


def _token(data_dir: Path, role: str = "viewer") -> str:
    return TokenAuthority(Settings(data_dir=data_dir, jwt_secret=SECRET)).mint("mallory", [role], ttl_s=600)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServerProcess]:
    """A child server logging JSON at info, with the connect timeout long enough not to interfere."""
    proc = ServerProcess(tmp_path, env={"IMMUNE_LOG_FORMAT": "json", "IMMUNE_LOG_LEVEL": "info"})
    proc.start()
    yield proc
    proc.stop()


def log_lines(proc: ServerProcess) -> list[str]:
    """The child's log lines, without the dashboard link `serve` prints on stdout."""
    text = (proc.data_dir / "server.log").read_text()
    return [line for line in text.splitlines() if line and not line.startswith(("Dashboard:", "(admin token"))]


def assert_json_lines(lines: list[str]) -> list[dict[str, Any]]:
    """Every line is one JSON object and none carries a traceback."""
    records = []
    for line in lines:
        assert "Traceback" not in line, line
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


async def health_ok(url: str) -> bool:
    async with aiohttp.ClientSession() as http, http.get(url + "/health", timeout=aiohttp.ClientTimeout(10)) as r:
        return r.status == 200


async def test_binary_attachments_close_the_connection_and_memory_stays_bounded(served: ServerProcess) -> None:
    assert served.proc is not None
    before = rss_kb(served.proc.pid)
    frame = b"\x00" * 99_000
    sent = 0
    async with aiohttp.ClientSession() as http:
        ws = await open_websocket(http, served.url)
        frames = await socketio_connect(ws, {"token": _token(served.data_dir)})
        assert frames[-1].startswith("40{"), frames
        # A packet announcing a million attachments, then attachments as fast as the socket takes them.
        await ws.send_str('451000000-["ping",{"_placeholder":true,"num":0}]')
        closing = asyncio.ensure_future(closed_within(ws, timeout=30))
        deadline = time.monotonic() + 30
        while not closing.done() and sent < 300 and time.monotonic() < deadline:  # at most ~30 MB
            try:
                await ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                break
            sent += 1
            await asyncio.sleep(0)
        # The server closed it (before the fix it buffered every attachment and never did).
        message = await asyncio.wait_for(closing, timeout=30)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
    assert await health_ok(served.url)
    assert rss_kb(served.proc.pid) - before < 64 * 1024
    records = assert_json_lines(log_lines(served))
    errors = [r for r in records if r.get("event") == "protocol_error"]
    assert len(errors) == 1 and errors[0]["kind"] == "binary" and errors[0]["closing"] is True, errors


async def test_garbage_before_connect_is_logged_once_as_json_and_closes_the_session(served: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        # Long-polling: each POST carries `49` (a client CONNECT_ERROR), the case that logged two
        # tracebacks per packet. A few are tolerated, then the session is closed.
        _, _, session = await open_polling(http, served.url)
        assert session is not None
        statuses = [(await session.post("49"))[0] for _ in range(20)]
        assert statuses[:2] == [200, 200] and set(statuses[3:]) == {400}, statuses
        # WebSocket: the same, and frames Engine.IO cannot decode.
        ws = await open_websocket(http, served.url)
        for _ in range(3):
            await ws.send_str("49")
        message = await closed_within(ws, timeout=10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        ws = await open_websocket(http, served.url)
        await ws.send_str("x garbage")
        await closed_within(ws, timeout=10)
        # Engine.IO's own complaints (an unknown session) come through the same JSON formatter.
        async with http.get(served.url + "/socket.io/?EIO=4&transport=polling&sid=nope") as response:
            assert response.status == 400
    assert await health_ok(served.url)
    served.stop()
    records = assert_json_lines(log_lines(served))
    errors = [r for r in records if r.get("event") == "protocol_error"]
    assert len(errors) == 3, errors  # one per session, whatever the number of bad packets
    assert len(records) < 30, records
    assert any(r.get("logger") == "engineio.server" for r in records), records


async def test_every_polling_post_is_answered_and_a_bad_one_closes_its_session(served: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        _, opened, session = await open_polling(http, served.url)
        assert session is not None
        status, body = await session.post("6")  # NOOP: the server's packet, never the client's
        assert status == 400 and json.loads(body)["code"] == "invalid_packet"
        status, _ = await session.get()
        assert status == 400  # the session is gone

        _, opened, session = await open_polling(http, served.url)
        assert session is not None
        status, body = await session.post("4" + "x" * (opened["maxPayload"] + 10))
        assert status == 413 and json.loads(body)["details"]["limit"] == opened["maxPayload"]

        _, _, session = await open_polling(http, served.url)
        assert session is not None
        for body in ("", "9", "4" + SEP * 20, "bAAAA", "d=", "2"):
            status, _ = await session.post(body)
            assert status in (200, 400), (body, status)
    assert await health_ok(served.url)


async def test_sigterm_with_long_polls_and_posts_pending_exits_promptly(served: ServerProcess) -> None:
    assert served.proc is not None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sessions = []
        for _ in range(25):
            _, _, session = await open_polling(http, served.url)
            assert session is not None
            sessions.append(session)
        # Half wait on a long-poll, half on a POST whose body never finishes arriving.
        polls = [asyncio.ensure_future(s.get(timeout=60)) for s in sessions]

        async def trickle() -> Any:
            yield b"4"
            await asyncio.sleep(60)

        posts = [asyncio.ensure_future(s.post(trickle(), timeout=60)) for s in sessions]  # type: ignore[arg-type]
        await asyncio.sleep(1.0)
        started = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(served.proc.wait, 30)
        took = time.monotonic() - started
        for task in (*polls, *posts):
            task.cancel()
        await asyncio.gather(*polls, *posts, return_exceptions=True)
    print(f"shutdown with 25 long-polls and 25 POSTs pending took {took:.2f} s")
    assert served.proc.returncode == 0
    assert took < 8.0, f"shutdown took {took:.1f} s"  # a bound on behaviour: nothing waits for a client
    assert_json_lines(log_lines(served))
