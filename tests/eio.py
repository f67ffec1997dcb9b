"""Raw Engine.IO clients (EIO=4) for tests that speak below python-socketio: polling and WebSocket."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
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


def masked_text_frame(text: str) -> bytes:
    """One client → server WebSocket text frame, masked as RFC 6455 requires of clients."""
    data = text.encode()
    mask = os.urandom(4)
    header = bytearray([0x81])
    if len(data) < 126:
        header.append(0x80 | len(data))
    else:
        header.append(0x80 | 126)
        header += len(data).to_bytes(2, "big")
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def raw_socketio_websocket(
    port: int, auth: dict[str, Any], opened: list[socket.socket], timeout: float = 10.0
) -> tuple[socket.socket, bytes]:
    """A WebSocket on a bare socket with a tiny receive window (noted in `opened`, for the caller to close):
    the Engine.IO handshake by hand, then the Socket.IO CONNECT with `auth`. Returns the socket and what
    it read (the 101 response and the Engine.IO open packet)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    opened.append(sock)
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
    while b'"sid"' not in received:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
        assert chunk, "server closed during the handshake"
        received += chunk
    await loop.sock_sendall(sock, masked_text_frame("40" + json.dumps(auth)))
    return sock, received
