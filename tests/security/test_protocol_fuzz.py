"""Protocol fuzz (SPEC §7): random and mutated Engine.IO / Socket.IO packets over WebSocket and
long-polling to a real `immune-core serve`. The process stays up and serves others, its memory
stays bounded, no traceback reaches its log, and every answer is a documented one or a clean close."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.auth import TokenAuthority
from server.config import Settings
from tests.eio import SEP, open_polling, open_websocket, rss_kb
from tests.security.test_transport_hardening import SECRET, assert_json_lines, log_lines
from tests.support import Clients, ServerProcess

ACK_CODES = {"invalid_request", "unknown_room", "forbidden", "unknown_event_type", "unknown_action", "rate_limited"}
CONNECT_CODES = {"unauthorized", "invalid_request", "forbidden", "rate_limited", "too_many_connections"}
POST_ANSWERS = {200: None, 400: {"invalid_packet", "invalid_session"}, 413: {"payload_too_large"}}
CLOSE_CODES = {aiohttp.WSCloseCode.OK, aiohttp.WSCloseCode.MESSAGE_TOO_BIG, aiohttp.WSCloseCode.GOING_AWAY, None}
MAX_PAYLOAD = 4096
MAX_FRAME = 16384

SEEDS = [
    "40",
    '40{"token":"TOKEN"}',
    '40{"token":"TOKEN","rooms":["agents"],"last_event_id":0}',
    '42["ping",{}]',
    '421["join",{"room":"agents"}]',
    '422["subscribe",{"event_types":["custom.x"]}]',
    '423["info"]',
    '42["nope"]',
    "41",
    "43[]",
    "44{}",
    "49",
    '451-["ping",{"_placeholder":true,"num":0}]',
    '451000000-["ping",{"_placeholder":true,"num":0}]',
    '42/admin,["ping"]',
    "3",
    "2probe",
    "5",
    "6",
    "1",
    "0",
    "4",
    "",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A seed packet with a few characters inserted, deleted or replaced, or cut short."""
    text = list(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        at = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(list('0123456789[]{}",:-/\x1eb\\x\u00e9 ')))
        if op == "insert":
            text.insert(at, char)
        elif text and op == "delete":
            del text[min(at, len(text) - 1)]
        elif text and op == "replace":
            text[min(at, len(text) - 1)] = char
        elif op == "cut":
            text = text[:at]
    return "".join(text)


big = st.integers(MAX_PAYLOAD // 2, MAX_FRAME * 2).map(lambda n: '42["join",{"room":"' + "x" * n + '"}]')
frames = st.one_of(
    mutated(),
    st.text(max_size=40),
    st.binary(min_size=1, max_size=64),
    st.sampled_from(SEEDS),
    big,
)


class Target:
    """One child server with limits loose enough that the fuzz is never simply rate-limited."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = ServerProcess(
            data_dir,
            env={
                "IMMUNE_LOG_FORMAT": "json",
                "IMMUNE_LOG_LEVEL": "info",
                "IMMUNE_MAX_PAYLOAD_BYTES": str(MAX_PAYLOAD),
                "IMMUNE_MAX_FRAME_BYTES": str(MAX_FRAME),
                "IMMUNE_CONNECTS_BURST_PER_IP": "100000",
                "IMMUNE_CONNECTS_PER_MIN_PER_IP": "100000",
                "IMMUNE_MAX_PENDING_SESSIONS_PER_IP": "100000",
                "IMMUNE_CLIENT_EVENTS_BURST": "100000",
                "IMMUNE_CLIENT_EVENTS_PER_MIN": "100000",
                # A long-poll with nothing to carry is answered by the next PING (or the close of a
                # session that never connected): short here, so each example ends within a second.
                "IMMUNE_PING_INTERVAL_S": "1",
                "IMMUNE_PING_TIMEOUT_S": "2",
                "IMMUNE_CONNECT_TIMEOUT_S": "1",
            },
        )
        self.proc.start()
        self.token = TokenAuthority(Settings(data_dir=data_dir, jwt_secret=SECRET)).mint("fuzz", ["viewer"], 3600)
        assert self.proc.proc is not None
        self.pid = self.proc.proc.pid
        self.rss_start = rss_kb(self.pid)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    served = Target(tmp_path_factory.mktemp("protocol-fuzz"))
    yield served
    served.proc.stop()
    # After every example: one JSON object per line, no traceback, whatever was sent.
    assert_json_lines(log_lines(served.proc))


def _check_server_frame(text: str) -> None:
    """A frame from the server is an Engine.IO packet; a failed ack carries a documented code."""
    assert text and text[0] in "0123456", text
    if text.startswith("43"):
        body = json.loads(text[text.index("[") :])[0]
        if not body["success"]:
            assert body["error"]["code"] in ACK_CODES, body
    elif text.startswith("44"):
        assert json.loads(text[2:])["data"]["code"] in CONNECT_CODES, text


async def _over_websocket(url: str, sequence: list[str | bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await open_websocket(http, url)
        for frame in sequence:
            if ws.closed:
                break
            try:
                await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
            except (ConnectionError, RuntimeError):
                break
        while True:  # read what comes back until it is quiet or closed
            try:
                message = await ws.receive(timeout=0.3)
            except TimeoutError:
                break
            if message.type == aiohttp.WSMsgType.TEXT:
                _check_server_frame(message.data)
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                assert ws.close_code in CLOSE_CODES or message.type != aiohttp.WSMsgType.CLOSE, ws.close_code
                break
        await ws.close()


async def _over_polling(url: str, sequence: list[str | bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        status, _, session = await open_polling(http, url)
        assert status == 200 and session is not None
        for frame in sequence:
            body = frame if isinstance(frame, bytes) else frame.replace("\x1e", SEP)
            status, text = await session.post(body, timeout=15)
            assert status in POST_ANSWERS, (status, text)
            if status != 200:
                assert json.loads(text)["code"] in POST_ANSWERS[status], text
                break
        async with http.get(session.endpoint, timeout=aiohttp.ClientTimeout(total=15)) as response:
            # Whatever was queued for the session (acks, CLOSE), or a clean "no such session".
            assert response.status in (200, 400), response.status
            if response.status == 200:
                for packet in (await response.text()).split(SEP):
                    _check_server_frame(packet)


async def _bystander_is_served(url: str, token: str) -> None:
    async with Clients() as clients:
        rec = await clients.connect(url, auth={"token": token})
        assert (await rec.call("ping"))["success"] is True


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(
    websocket=st.booleans(),
    connect_first=st.booleans(),
    sequence=st.lists(frames, min_size=1, max_size=8),
)
def test_random_and_mutated_packets_never_hurt_the_server(
    target: Target, websocket: bool, connect_first: bool, sequence: list[Any]
) -> None:
    packets = [p.replace("TOKEN", target.token) if isinstance(p, str) else p for p in sequence]
    if connect_first:
        packets.insert(0, '40{"token":"' + target.token + '"}')

    async def run() -> None:
        send = _over_websocket if websocket else _over_polling
        await asyncio.wait_for(send(target.proc.url, packets), timeout=20)
        await asyncio.wait_for(_bystander_is_served(target.proc.url, target.token), timeout=20)

    asyncio.run(run())
    assert target.proc.proc is not None and target.proc.proc.poll() is None
    assert rss_kb(target.pid) - target.rss_start < 128 * 1024
