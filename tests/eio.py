"""Raw Engine.IO clients (EIO=4) for tests that speak below python-socketio: polling and WebSocket."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

SEP = "\x1e"  # Engine.IO v4 separates packets of one polling payload with a record separator


@dataclass
class PollingSession:
    """An Engine.IO session opened over long-polling."""

    http: aiohttp.ClientSession
    url: str
    sid: str

    @property
    def endpoint(self) -> str:
        return f"{self.url}/socket.io/?EIO=4&transport=polling&sid={self.sid}"

    async def post(self, body: str | bytes, timeout: float = 10.0) -> tuple[int, str]:
        """POST a payload; (status, body)."""
        async with self.http.post(self.endpoint, data=body, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return response.status, await response.text()

    async def get(self, timeout: float = 10.0) -> tuple[int, list[str]]:
        """One long-poll GET; (status, the packets it carried)."""
        async with self.http.get(self.endpoint, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = await response.text()
            return response.status, text.split(SEP) if response.status == 200 else [text]


async def open_polling(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, Any, PollingSession | None]:
    """The polling handshake: (status, OPEN data or the refusal body, session when accepted)."""
    async with http.get(
        f"{url}/socket.io/?EIO=4&transport=polling", headers=headers or {}, timeout=aiohttp.ClientTimeout(total=10)
    ) as response:
        text = await response.text()
        if response.status != 200:
            try:
                return response.status, json.loads(text), None
            except ValueError:
                return response.status, text, None
        assert text.startswith("0"), text
        data = json.loads(text[1:])
        return 200, data, PollingSession(http, url, data["sid"])


async def open_websocket(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
    """An Engine.IO session opened directly over WebSocket, its OPEN packet read."""
    ws = await http.ws_connect(
        f"{url}/socket.io/?EIO=4&transport=websocket", timeout=aiohttp.ClientWSTimeout(ws_close=5), **kwargs
    )
    opening = await ws.receive(timeout=10)
    assert opening.type == aiohttp.WSMsgType.TEXT and opening.data.startswith("0"), opening
    return ws


async def socketio_connect(ws: aiohttp.ClientWebSocketResponse, auth: dict[str, Any]) -> list[str]:
    """Send Socket.IO CONNECT over a raw WebSocket and read frames until the CONNECT answer."""
    await ws.send_str("40" + json.dumps(auth))
    frames: list[str] = []
    while True:
        message = await ws.receive(timeout=10)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        frames.append(message.data)
        if message.data.startswith(("40", "44")):
            return frames


async def closed_within(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> aiohttp.WSMessage:
    """Read (and drop) frames until the server closes the WebSocket; the closing message."""
    while True:
        message = await ws.receive(timeout=timeout)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return message


def rss_kb(pid: int) -> int:
    """Resident memory of a process, in KiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
