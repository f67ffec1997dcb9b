"""Every hook into python-engineio / python-socketio internals, kept in one place and narrow.

Engine.IO's stock server trusts its peer more than an internet-facing server may: it reads the
client address as 127.0.0.1 for everyone (aiohttp driver), lets anyone open sessions that never
send a Socket.IO CONNECT, buffers binary attachments without bound, answers some polling POSTs
never, and logs a client's garbage as tracebacks. The subclasses here close those gaps:

- `ImmuneEngineServer`: the peer address from the aiohttp request, a per-IP budget and cap on
  handshakes, polling POSTs that are always answered within `POLL_POST_TIMEOUT_S`, and
  WebSocket frames checked before Engine.IO decodes them.
- `ImmuneSocketServer`: Socket.IO packets checked before python-socketio acts on them; binary
  attachments refused; a message over `IMMUNE_MAX_PAYLOAD_BYTES` (but under the frame limit)
  reaches the gateway as `OversizedMessage`, so the client gets an error ack instead of a cut.
- `SessionGuard`: the state of each Engine.IO session until it closes (its client address,
  whether it completed CONNECT, its protocol strikes) and the connect-timeout sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import engineio
import socketio
import structlog
from aiohttp import StreamReader, web
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import aiohttp as eio_aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter
from socketio import packet as sio_packet

from server.client_address import ClientAddresses
from server.realtime.lean_queue import LeanQueue
from server.realtime.limits import KeyedBuckets
from server.realtime.manager import transport_of

log = structlog.get_logger(__name__)

MAX_ATTACHMENTS = 10
"""Binary attachments one client message may announce (their bytes count toward IMMUNE_MAX_PAYLOAD_BYTES)."""
PROTOCOL_ERROR_LIMIT = 3
"""Malformed Socket.IO packets one session may send before it is closed (the first is logged)."""
POLL_POST_TIMEOUT_S = 10.0
"""A long-polling POST whose body has not arrived by then is answered 408 and its session closed."""
ABORT_AFTER_CLOSE_S = 0.2
"""After a forced close, how long the peer gets to read the CLOSE packet before its TCP connection is cut."""
CLIENT_ADDRESS = "immune.client_address"
"""environ key: the client address per-IP limits count (peer, or as a trusted proxy names it)."""
_SESSION_RESERVED = "immune.session_reserved"
SESSION_CLOSE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    engineio.exceptions.EngineIOError,
    socketio.exceptions.SocketIOError,
)
"""What closing a session that is already going away may raise (a transport reset, a closed socket)."""

# What a client may send at the Engine.IO level (EIO=4): CLOSE, PING (only "probe", during the
# upgrade), PONG, MESSAGE, UPGRADE. OPEN and NOOP are the server's; anything else is garbage.
_CLIENT_ENGINE_TYPES = frozenset("12345")


class ClientEventHandler(Protocol):
    """What the socket server hands each client event to (the gateway)."""

    async def handle_client_event(self, sid: str, event: Any, args: list[Any], wants_ack: bool) -> dict[str, Any]:
        """Run one client event and return the ack body."""
        ...


@dataclass(frozen=True, slots=True)
class OversizedMessage:
    """Stands in for the arguments of a client event bigger than `IMMUNE_MAX_PAYLOAD_BYTES`."""

    size: int
    limit: int


@dataclass(slots=True)
class Session:
    """One Engine.IO session, from its handshake to its close."""

    address: str
    opened: float
    connected: bool = False
    paid: bool = True  # the handshake took a connection-attempt token
    connects: int = 0
    strikes: int = 0
    closing: bool = False
    pending_bytes: int = 0  # of the message whose binary attachments are being received
    refused: bool = False  # closed for protocol errors


class TransportMetrics:
    """Prometheus counters of what the transport refused or closed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.protocol_errors = MetricCounter(
            "immune_protocol_errors",
            "Malformed or forbidden Engine.IO / Socket.IO packets received, by kind",
            ["kind"],
            registry=registry,
        )
        self.sessions_refused = MetricCounter(
            "immune_eio_handshakes_refused", "Engine.IO handshakes refused, by reason", ["reason"], registry=registry
        )
        self.sessions_closed = MetricCounter(
            "immune_eio_sessions_closed",
            "Engine.IO sessions closed by the server before or outside Socket.IO, by reason",
            ["reason"],
            registry=registry,
        )


class SessionGuard:
    """Per-IP bounds before the Socket.IO CONNECT, protocol strikes, and the connect timeout."""

    def __init__(
        self,
        addresses: ClientAddresses,
        attempts: KeyedBuckets,
        max_pending_per_ip: int,
        connect_timeout_s: float,
        metrics: TransportMetrics,
    ) -> None:
        self.addresses = addresses
        self.attempts = attempts
        self.max_pending_per_ip = max_pending_per_ip
        self.connect_timeout_s = connect_timeout_s
        self.metrics = metrics
        self.sessions: dict[str, Session] = {}
        self.pending: dict[str, Session] = {}  # the sessions without a Socket.IO connection yet
        self.pending_per_ip: Counter[str] = Counter()
        self.engine: ImmuneEngineServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.posts: set[asyncio.Task[Any]] = set()  # long-polling POSTs being handled

    # ------------------------------------------------------------------ session life cycle

    def reserve(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        """At a handshake: hold a pending slot for the client's IP, or return the HTTP refusal."""
        address = environ[CLIENT_ADDRESS] = self._address(environ)
        if self.pending_per_ip[address] >= self.max_pending_per_ip:
            self.metrics.sessions_refused.labels(reason="too_many_pending").inc()
            return _refusal(
                429,
                "too_many_sessions",
                "too many Engine.IO sessions without a Socket.IO connection from this address",
                {"limit": self.max_pending_per_ip},
                retry_after_s=1.0,
            )
        # An attempt over the per-IP budget still gets its session, so that its CONNECT can be
        # answered `rate_limited` (SPEC §3); the pending cap above is what bounds such sessions.
        environ[_SESSION_RESERVED] = not self.attempts.take(address)
        self.pending_per_ip[address] += 1
        return None

    def _address(self, environ: dict[str, Any]) -> str:
        return self.addresses.of(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"))

    def release_unused(self, environ: dict[str, Any]) -> None:
        """A reserved slot whose session was never opened (the handshake failed) is given back."""
        if environ.pop(_SESSION_RESERVED, None) is not None:
            self._forget_pending(environ[CLIENT_ADDRESS])

    def opened(self, eio_sid: str, environ: dict[str, Any]) -> None:
        """Engine.IO opened the session the reservation was for."""
        paid = environ.pop(_SESSION_RESERVED, None)
        if paid is None:  # not reserved by a handshake of ours (cannot happen over HTTP): count it now
            environ[CLIENT_ADDRESS] = self._address(environ)
            self.pending_per_ip[environ[CLIENT_ADDRESS]] += 1
            paid = True
        loop = asyncio.get_running_loop()
        session = Session(address=environ[CLIENT_ADDRESS], opened=loop.time(), paid=bool(paid))
        self.sessions[eio_sid] = self.pending[eio_sid] = session

    def connect_attempt(self, eio_sid: str, environ: dict[str, Any]) -> tuple[str, float]:
        """A Socket.IO CONNECT: the client address, and seconds to wait when over the per-IP budget.

        The handshake paid for the session's first CONNECT; every further one on the same
        session (a client trying tokens) takes its own token.
        """
        session = self.sessions.get(eio_sid)
        if session is None:  # not opened through this guard (cannot happen over HTTP)
            address = self._address(environ)
            return address, self.attempts.take(address)
        session.connects += 1
        if session.connects == 1 and session.paid:
            return session.address, 0.0
        return session.address, self.attempts.take(session.address)

    def connected(self, eio_sid: str) -> None:
        """The session completed a Socket.IO CONNECT: it no longer counts as pending."""
        session = self.pending.pop(eio_sid, None)
        if session is not None:
            session.connected = True
            self._forget_pending(session.address)

    def closed(self, eio_sid: str) -> None:
        """Engine.IO closed the session."""
        self.sessions.pop(eio_sid, None)
        session = self.pending.pop(eio_sid, None)
        if session is not None:
            self._forget_pending(session.address)

    def _forget_pending(self, address: str) -> None:
        self.pending_per_ip[address] -= 1
        if self.pending_per_ip[address] <= 0:
            del self.pending_per_ip[address]

    # ------------------------------------------------------------------ protocol errors

    def attachments_started(self, eio_sid: str, size: int) -> None:
        """A message announcing binary attachments arrived; its text part has `size` bytes."""
        session = self.sessions.get(eio_sid)
        if session is not None:
            session.pending_bytes = size

    def attachment_bytes(self, eio_sid: str, size: int) -> int:
        """Add one attachment's size to its message's; the message's total so far."""
        session = self.sessions.get(eio_sid)
        if session is None:
            return size
        session.pending_bytes += size
        return session.pending_bytes

    def is_closing(self, eio_sid: str) -> bool:
        """True once the server decided to close the session, or it is closed: nothing more it sends is read.

        Engine.IO keeps reading a WebSocket after its session closed; a CONNECT read then would
        create a Socket.IO connection on a dead session that nothing ever removes.
        """
        session = self.sessions.get(eio_sid)
        return session is None or session.closing

    def was_refused(self, eio_sid: str) -> bool:
        """True when the session was closed for its protocol errors."""
        session = self.sessions.get(eio_sid)
        return session is not None and session.refused

    def protocol_error(self, eio_sid: str, kind: str, detail: str, fatal: bool) -> None:
        """Count a client's protocol error; log the first one of a session; close it when due."""
        self.metrics.protocol_errors.labels(kind=kind).inc()
        session = self.sessions.get(eio_sid)
        if session is None or session.closing:
            return
        session.strikes += 1
        close = fatal or session.strikes >= PROTOCOL_ERROR_LIMIT
        if session.strikes == 1:
            log.info(
                "protocol_error",
                eio_sid=eio_sid,
                remote=session.address,
                kind=kind,
                detail=detail[:120],
                closing=close,
            )
        if close:
            session.refused = True
            self.close_session(eio_sid, "protocol_error")

    def close_session(self, eio_sid: str, reason: str, cut: bool = True) -> None:
        """Close an Engine.IO session now, whatever its state; with `cut`, its TCP connection follows shortly."""
        session = self.sessions.get(eio_sid)
        if session is not None:
            if session.closing:
                return
            session.closing = True
        self.metrics.sessions_closed.labels(reason=reason).inc()
        engine = self.engine
        socket = engine.sockets.get(eio_sid) if engine is not None else None
        if socket is None:
            return
        task = asyncio.get_running_loop().create_task(_close_socket(socket, cut))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ connect timeout

    def start(self) -> None:
        """Start closing sessions that do not CONNECT within the timeout."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        """Stop the sweep; forced closes under way are given a moment to finish."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    async def _sweep_forever(self) -> None:
        interval = min(1.0, self.connect_timeout_s / 4)
        while True:
            await asyncio.sleep(interval)
            self.sweep()

    def sweep(self) -> None:
        """Close every session that has been open past the timeout without a Socket.IO connection."""
        cutoff = asyncio.get_running_loop().time() - self.connect_timeout_s
        for eio_sid, session in list(self.pending.items()):
            if not session.closing and session.opened <= cutoff:
                self.close_session(eio_sid, "connect_timeout")

    async def close_all(self) -> None:
        """At shutdown: close every Engine.IO session and cut short every POST still being read."""
        for task in list(self.posts):
            task.cancel()
        engine = self.engine
        if engine is None:
            return
        for socket in list(engine.sockets.values()):
            if not socket.closed:
                with contextlib.suppress(Exception):
                    await socket.close(wait=False, reason=engine.reason.SERVER_DISCONNECT)


async def _close_socket(socket: Any, cut: bool) -> None:
    """Queue Engine.IO CLOSE (a pending long-poll answers with it), then cut a WebSocket's TCP connection."""
    try:
        if not socket.closed:
            await socket.close(wait=False, reason=socket.server.reason.SERVER_DISCONNECT)
    except SESSION_CLOSE_ERRORS:  # the session ending under us is fine: what matters is that it ends
        log.debug("session_close_failed", eio_sid=socket.sid, exc_info=True)
    transport = transport_of(socket) if cut else None
    if transport is not None and not transport.is_closing():
        await asyncio.sleep(ABORT_AFTER_CLOSE_S)
        if not transport.is_closing():
            transport.abort()


def _refusal(
    status: int, code: str, message: str, details: dict[str, Any], retry_after_s: float | None = None
) -> dict[str, Any]:
    """An Engine.IO response dict for a refused request, with a JSON body that names the code."""
    body = socketio.packet.Packet.json.dumps({"code": code, "message": message, "details": details})
    headers = [("Content-Type", "application/json")]
    if retry_after_s is not None:
        headers.append(("Retry-After", str(max(1, round(retry_after_s)))))
    reasons = {400: "BAD REQUEST", 408: "REQUEST TIMEOUT", 413: "PAYLOAD TOO LARGE", 429: "TOO MANY REQUESTS"}
    return {"status": f"{status} {reasons[status]}", "headers": headers, "response": body.encode()}


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

    def guard_websockets(self) -> None:
        """Check every WebSocket frame before Engine.IO decodes it (call after other wrappers)."""
        self._async = {**self._async, "websocket": _guarded_websocket(self._async["websocket"], self.guard)}

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
            answer = _refusal(400, "invalid_session", "no such long-polling session", {})
        else:
            task = asyncio.current_task()
            assert task is not None
            self.guard.posts.add(task)  # cancelled at shutdown: no POST body holds the server up
            try:
                async with asyncio.timeout(POLL_POST_TIMEOUT_S):
                    answer = await self._handle_post(request, socket)
            except TimeoutError:
                self.guard.close_session(socket.sid, "post_timeout")
                answer = _refusal(
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
            return _refusal(413, "payload_too_large", "request body too large", {"limit": limit})
        try:
            packets = eio_payload.Payload(encoded_payload=body.decode("utf-8")).packets
        except Exception as exc:  # any undecodable payload is the client's error, never a traceback
            self.guard.protocol_error(socket.sid, "engineio_packet", f"undecodable payload: {exc!r}", fatal=True)
            return _refusal(400, "invalid_packet", "undecodable Engine.IO payload", {})
        for pkt in packets:
            problem = ("binary", "binary Engine.IO message") if pkt.binary else _client_packet_error(pkt.packet_type)
            if problem is not None:
                self.guard.protocol_error(socket.sid, problem[0], problem[1], fatal=True)
                return _refusal(400, "invalid_packet", problem[1], {})
            await socket.receive(pkt)
            if self.guard.was_refused(socket.sid):
                return _refusal(400, "invalid_packet", "protocol error: session closed", {})
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


def _guarded_websocket(websocket_class: Any, guard: SessionGuard) -> Any:
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


class ImmuneSocketServer(socketio.AsyncServer):
    """Socket.IO server that checks each packet before python-socketio acts on it."""

    gateway: ClientEventHandler
    eio: ImmuneEngineServer

    def __init__(self, *args: Any, max_message_bytes: int, guard: SessionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_message_bytes = max_message_bytes
        self.guard = guard
        self.eio.guard = guard
        guard.engine = self.eio

    def _engineio_server_class(self) -> type[ImmuneEngineServer]:
        return ImmuneEngineServer

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> None:
        self.guard.opened(eio_sid, environ)
        await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.guard.closed(eio_sid)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Dispatch one Socket.IO packet, refusing what this protocol never sends (and never raising)."""
        guard = self.guard
        if guard.is_closing(eio_sid):
            return
        if not isinstance(data, str):
            await self._handle_attachment(eio_sid, data)
            return
        size = len(data)
        if size > self.max_message_bytes // 4:
            size = len(data.encode("utf-8", "surrogatepass"))
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:  # undecodable input is the client's error, never a traceback
            guard.protocol_error(eio_sid, "socketio_packet", f"undecodable packet: {exc!r}", fatal=False)
            return
        kind = pkt.packet_type
        if kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK) or pkt.attachment_count:
            # This protocol has no binary client events; a few small attachments are assembled so
            # that the request gets its `invalid_request` ack, anything more closes the session.
            if kind != sio_packet.BINARY_EVENT or not 0 < pkt.attachment_count <= MAX_ATTACHMENTS:
                guard.protocol_error(
                    eio_sid, "binary", f"{pkt.attachment_count} binary attachments (at most {MAX_ATTACHMENTS})", True
                )
            elif self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/") is None:
                guard.protocol_error(eio_sid, "socketio_packet", "binary EVENT before CONNECT", fatal=False)
            else:
                self._binary_packet[eio_sid] = pkt
                guard.attachments_started(eio_sid, size)
            return
        namespace = pkt.namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        try:
            if kind == sio_packet.CONNECT:
                if sid is not None:
                    guard.protocol_error(eio_sid, "socketio_packet", "CONNECT on a connected session", fatal=False)
                    return
                await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
                if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
                    guard.connected(eio_sid)
            elif kind == sio_packet.DISCONNECT:
                await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
                # This server serves one namespace: the session has nothing left to do. The client
                # closes its own transport, so it is not cut.
                guard.close_session(eio_sid, "client_disconnect", cut=False)
            elif kind == sio_packet.EVENT:
                args = pkt.data
                if not isinstance(args, list) or not args or not isinstance(args[0], str):
                    guard.protocol_error(eio_sid, "socketio_packet", "EVENT data is not [name, ...]", fatal=False)
                elif sid is None:
                    guard.protocol_error(eio_sid, "socketio_packet", "EVENT before CONNECT", fatal=False)
                else:
                    if size > self.max_message_bytes:
                        args = [args[0], OversizedMessage(size=size, limit=self.max_message_bytes)]
                    await self._handle_event(eio_sid, pkt.namespace, pkt.id, args)
            else:  # ACK (the server never asks for one), CONNECT_ERROR, unknown types
                guard.protocol_error(eio_sid, "socketio_packet", f"unexpected Socket.IO packet type {kind}", False)
        except Exception:  # a bug of ours, not the client's: one structured line, the session goes on
            log.exception("socketio_packet_failed", eio_sid=eio_sid, packet_type=kind)

    async def _handle_attachment(self, eio_sid: str, data: bytes) -> None:
        """One binary attachment of a pending BINARY_EVENT, within the per-message bound."""
        guard = self.guard
        pkt = self._binary_packet.get(eio_sid)
        if pkt is None:
            guard.protocol_error(eio_sid, "binary", "binary message without a packet announcing it", fatal=True)
            return
        if guard.attachment_bytes(eio_sid, len(data)) > self.max_message_bytes:
            del self._binary_packet[eio_sid]
            guard.protocol_error(eio_sid, "binary", f"attachments over {self.max_message_bytes} bytes", fatal=True)
            return
        try:
            complete = pkt.add_attachment(data)
        except Exception as exc:  # placeholders that point nowhere: the client's error
            del self._binary_packet[eio_sid]
            guard.protocol_error(eio_sid, "binary", f"bad attachment placeholders: {exc!r}", fatal=True)
            return
        if complete:
            del self._binary_packet[eio_sid]
            args = pkt.data
            if not isinstance(args, list) or not args or not isinstance(args[0], str):
                guard.protocol_error(eio_sid, "socketio_packet", "EVENT data is not [name, ...]", fatal=False)
                return
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, args)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: list[Any], namespace: str, id: int | None
    ) -> None:
        # Overridden so a handler knows whether the client asked for an ack: a failed request
        # without one is answered with an `error` event instead (SPEC §5).
        event = data[0] if data else None
        reply = await self.gateway.handle_client_event(sid, event, data[1:], wants_ack=id is not None)
        if id is not None:
            await server._send_packet(
                eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=id, data=[reply])
            )
