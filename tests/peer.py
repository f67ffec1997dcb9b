"""A scripted Socket.IO server for SDK tests: it sends exactly the frames a test gives it.

Our server never sends a malformed event or repeats an id on a connection, but a buggy or newer
server could, and the SDK must handle that. This peer lets such frames reach the SDK the way every
frame does, over a real WebSocket, instead of calling the SDK's private handler.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import socketio
from aiohttp import web


def now() -> str:
    """A wire timestamp for the current time."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def envelope(event_id: int | None, event_type: str, data: object = None, room: str | None = "agents") -> dict[str, Any]:
    """An event's envelope as the server would send it (`data` is sent as given, valid or not)."""
    return {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": now(),
        "data": {} if data is None else data,
        "room": room,
    }


class ScriptedPeer:
    """Accepts every connect with a valid `connected`, then sends what `send` is given to every client."""

    def __init__(self) -> None:
        # always_connect: the CONNECT answer goes out before the handler, so `connected` follows it.
        self.sio = socketio.AsyncServer(async_mode="aiohttp", always_connect=True)
        self.app = web.Application()
        self.sio.attach(self.app)
        self.runner = web.AppRunner(self.app)
        self.sids: list[str] = []
        self.url = ""
        self.sio.on("connect", self._on_connect)
        self.sio.on("disconnect", self._on_disconnect)

    async def start(self) -> None:
        """Listen on an ephemeral port of 127.0.0.1."""
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        await self.runner.cleanup()

    async def send(self, name: str, payload: Any) -> None:
        """Emit one event to every connected client (frames on one connection keep their order)."""
        for sid in self.sids:
            await self.sio.emit(name, payload, to=sid)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        rooms = auth.get("rooms", []) if isinstance(auth, dict) else []
        data = {
            "connection_id": sid,
            "client_id": "scripted",
            "user": None,
            "roles": [],
            "rooms": rooms,
            "event_types": [],
            "last_event_id": 0,
            "epoch": "scripted-peer",
            "recovered": None,
            "replayed": 0,
            "server_time": now(),
            "node_id": "peer",
        }
        await self.sio.emit("connected", envelope(None, "connected", data, room=None), to=sid)
        self.sids.append(sid)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        if sid in self.sids:
            self.sids.remove(sid)
