"""The Engine.IO server: the real peer address, per-IP handshake bounds, bounded polling, checked frames.

Engine.IO's stock server trusts its peer more than an internet-facing server may: it reads the
client address as 127.0.0.1 for everyone (aiohttp driver), lets anyone open sessions that never
send a Socket.IO CONNECT, answers some polling POSTs never, and logs a client's garbage as
tracebacks. `ImmuneEngineServer` closes those gaps; its sessions are `SessionGuard`'s.
"""

from __future__ import annotations

import asyncio
from typing import Any

import engineio
import structlog
from aiohttp import StreamReader, web
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import aiohttp as eio_aiohttp

from server.realtime.engine.sessions import SessionGuard, refusal
from server.realtime.engine.websockets import guarded_websocket, record_websockets
from server.realtime.lean_queue import LeanQueue

log = structlog.get_logger(__name__)

POLL_POST_TIMEOUT_S = 10.0
"""A long-polling POST whose body has not arrived by then is answered 408 and its session closed."""


def _peer_environ(request: web.Request) -> dict[str, Any]:
    """engineio's aiohttp environ, with the real peer address (the driver puts 127.0.0.1 for all)."""
    environ: dict[str, Any] = eio_aiohttp.translate_request(request)
    environ["REMOTE_ADDR"] = request.remote or "unknown"
    return environ


async def _read_body(content: StreamReader, limit: int) -> bytes | None:
    """The request body, or None once it is over `limit` bytes (reading stops there)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await content.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


class ImmuneEngineServer(engineio.AsyncServer):
    """Engine.IO server with per-IP handshake limits, bounded polling, checked frames and lean queues."""

    guard: SessionGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._async: dict[str, Any] = {**self._async, "translate_request": _peer_environ}

    def create_queue(self, *args: Any, **kwargs: Any) -> LeanQueue:
        """One connection's outgoing queue."""
        return LeanQueue(*args, **kwargs)

    def record_websockets(self, registry: dict[str, tuple[Any, Any, Any]]) -> None:
        """While a socket runs on a WebSocket, keep (socket, TCP transport, queue) under its sid in `registry`.

        Every Engine.IO socket learns its aiohttp response: the fast path writes to its transport,
        and the send watchdog reads the transport's buffer either way.
        """
        self._async = {**self._async, "websocket": record_websockets(self._async["websocket"], registry)}

    def guard_websockets(self) -> None:
        """Check every WebSocket frame before Engine.IO decodes it (call after other wrappers)."""
        self._async = {**self._async, "websocket": guarded_websocket(self._async["websocket"], self.guard)}

    async def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        """Long-polling POSTs to a session are answered here; everything else by Engine.IO."""
        request: web.Request = args[0]
        sid = request.query.get("sid")
        if request.method != "POST" or sid is None:
            try:
                return await super().handle_request(*args, **kwargs)
            except ConnectionResetError:
                # The client left during the handshake or the WebSocket upgrade: there is no one to
                # answer, and it is not an error of ours (aiohttp would log it with a traceback).
                log.debug("client_gone", path=request.path, transport=request.query.get("transport"))
                return web.Response(status=400)
        environ = _peer_environ(request)
        socket = self.sockets.get(sid)
        if socket is None or socket.closed or not socket.connected or socket.upgraded:
            # Stock Engine.IO answers a closed session's POST with a 500 and a traceback.
            answer = refusal(400, "invalid_session", "no such long-polling session", {})
        else:
            task = asyncio.current_task()
            assert task is not None
            self.guard.posts.add(task)  # cancelled at shutdown: no POST body holds the server up
            try:
                async with asyncio.timeout(POLL_POST_TIMEOUT_S):
                    answer = await self._handle_post(request, socket)
            except TimeoutError:
                self.guard.close_session(socket.sid, "post_timeout")
                answer = refusal(
                    408, "request_timeout", "the request body did not arrive in time", {"limit_s": POLL_POST_TIMEOUT_S}
                )
            finally:
                self.guard.posts.discard(task)
        return await self._make_response(answer, environ)

    async def _handle_post(self, request: web.Request, socket: Any) -> dict[str, Any]:
        """One long-polling POST: bounded in size, every packet checked, then handed to the socket."""
        limit = self.max_http_buffer_size
        body = None
        if (request.content_length or 0) <= limit:
            body = await _read_body(request.content, limit)
        if body is None:
            self.guard.protocol_error(socket.sid, "too_large", f"POST body over {limit} bytes", fatal=True)
            return refusal(413, "payload_too_large", "request body too large", {"limit": limit})
        try:
            packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
        except Exception as exc:  # any undecodable payload is the client's error, never a traceback
            self.guard.protocol_error(socket.sid, "engineio_packet", f"undecodable payload: {exc!r}", fatal=True)
            return refusal(400, "invalid_packet", "undecodable Engine.IO payload", {})
        for pkt in packets:
            problem = ("binary", "binary Engine.IO message") if pkt.binary else _client_packet_error(pkt.packet_type)
            if problem is not None:
                self.guard.protocol_error(socket.sid, problem[0], problem[1], fatal=True)
                return refusal(400, "invalid_packet", problem[1], {})
            await socket.receive(pkt)
            if self.guard.was_refused(socket.sid):
                return refusal(400, "invalid_packet", "protocol error: session closed", {})
        ok: dict[str, Any] = self._ok()
        return ok

    async def _handle_connect(self, environ: Any, transport: str, jsonp_index: int | None = None) -> Any:
        refusal = self.guard.reserve(environ)
        if refusal is not None:
            return refusal
        try:
            return await super()._handle_connect(environ, transport, jsonp_index)
        finally:
            self.guard.release_unused(environ)

    async def disconnect(self, sid: str | None = None) -> None:
        """Close a session without waiting for the client to fetch the CLOSE packet.

        Stock Engine.IO waits until the queue is drained, which for a long-polling client that
        stopped polling is forever: the POST that triggered it never got an answer.
        """
        if sid is None:
            await super().disconnect()
            return
        socket = self.sockets.get(sid)
        if socket is not None and not socket.closed:
            await socket.close(wait=False, reason=self.reason.SERVER_DISCONNECT)
        self.sockets.pop(sid, None)


def _client_packet_error(packet_type: int) -> tuple[str, str] | None:
    if packet_type in (eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE):
        return None
    return "engineio_packet", f"unexpected Engine.IO packet type {packet_type}"
