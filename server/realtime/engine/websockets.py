"""Wrappers of engineio's aiohttp WebSocket driver: one records each socket's transport, one checks frames.

`ImmuneEngineServer` swaps them into its driver table (`record_websockets`, `guard_websockets`).
"""

from __future__ import annotations

from typing import Any

from server.realtime.engine.access import aiohttp_response_of, transport_of
from server.realtime.engine.sessions import SessionGuard

# What a client may send at the Engine.IO level (EIO=4): CLOSE, PING (only "probe", during the
# upgrade), PONG, MESSAGE, UPGRADE. OPEN and NOOP are the server's; anything else is garbage.
_CLIENT_ENGINE_TYPES = frozenset("12345")


def engine_packet_error(frame: str | bytes) -> tuple[str, str] | None:
    """Why a WebSocket frame from a client is refused, as (kind, detail), or None when it is fine.

    A binary frame is an Engine.IO binary MESSAGE (an attachment): the Socket.IO layer bounds it.
    """
    if not isinstance(frame, str):
        return None
    if not frame:
        return "engineio_packet", "empty packet"
    if frame[0] not in _CLIENT_ENGINE_TYPES:  # also "b…": base64 binary is for long-polling only
        return "engineio_packet", f"unexpected Engine.IO packet type {frame[:1]!r}"
    return None


def guarded_websocket(websocket_class: Any, guard: SessionGuard) -> Any:
    """engineio's aiohttp WebSocket whose `wait` refuses frames this protocol never sends."""

    class GuardedWebSocket(websocket_class):
        def __init__(self, handler: Any, server: Any) -> None:
            super().__init__(handler, server)
            self.eio_sid: str | None = getattr(getattr(handler, "__self__", None), "sid", None)

        async def wait(self) -> Any:
            data = await super().wait()
            eio_sid = self.eio_sid
            if eio_sid is not None:
                if guard.is_closing(eio_sid):
                    raise OSError("session closed by the server")
                problem = engine_packet_error(data)
                if problem is not None:
                    guard.protocol_error(eio_sid, problem[0], problem[1], fatal=True)
                    raise OSError(problem[1])  # Engine.IO ends the session on a read error
            return data

    return GuardedWebSocket


def record_websockets(websocket_class: Any, registry: dict[str, tuple[Any, Any, Any]]) -> Any:
    """engineio's aiohttp WebSocket that tells each Engine.IO socket its aiohttp response.

    While the WebSocket runs, `registry` maps the Engine.IO sid to (socket, TCP transport, queue):
    the fast path writes to that transport, and the send watchdog reads its buffer.
    """

    class RecordingWebSocket(websocket_class):
        async def __call__(self, environ: Any) -> Any:
            handler: Any = getattr(self, "handler")  # noqa: B009 - set by engineio's constructor
            socket = getattr(handler, "__self__", None)

            async def recording_handler(ws: Any) -> Any:
                if socket is not None:
                    socket.fast_path_ws = aiohttp_response_of(ws)
                    transport = transport_of(socket)
                    if transport is not None:
                        registry[socket.sid] = (socket, transport, socket.queue)
                try:
                    return await handler(ws)
                finally:
                    if socket is not None:
                        socket.fast_path_ws = None
                        registry.pop(socket.sid, None)

            self.handler = recording_handler
            return await super().__call__(environ)

    return RecordingWebSocket
