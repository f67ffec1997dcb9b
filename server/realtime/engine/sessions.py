"""Each Engine.IO session from its handshake to its close: per-IP bounds, protocol strikes, the connect timeout.

Anyone can open an Engine.IO session without a token. `SessionGuard` holds each session's state
until it closes (its client address, whether it completed the Socket.IO CONNECT, its protocol
strikes), refuses handshakes over the per-IP bounds and closes sessions that never CONNECT.
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
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as MetricCounter

from server.client_address import ClientAddresses
from server.periodic import cancel_and_wait
from server.rate_limits import KeyedBuckets
from server.realtime.engine.access import transport_of

log = structlog.get_logger(__name__)


class EngineSockets(Protocol):
    """What the guard needs of the Engine.IO server (`ImmuneEngineServer`): its sockets and close reasons."""

    sockets: dict[str, Any]
    reason: Any


PROTOCOL_ERROR_LIMIT = 3
"""Malformed Socket.IO packets one session may send before it is closed (the first is logged)."""
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
        self.engine: EngineSockets | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.posts: set[asyncio.Task[Any]] = set()  # long-polling POSTs being handled

    # ------------------------------------------------------------------ session life cycle

    def reserve(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        """At a handshake: hold a pending slot for the client's IP, or return the HTTP refusal."""
        address = environ[CLIENT_ADDRESS] = self._address(environ)
        if self.pending_per_ip[address] >= self.max_pending_per_ip:
            self.metrics.sessions_refused.labels(reason="too_many_pending").inc()
            return refusal(
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
            await cancel_and_wait(self._sweeper)
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


def refusal(
    status: int, code: str, message: str, details: dict[str, Any], retry_after_s: float | None = None
) -> dict[str, Any]:
    """An Engine.IO response dict for a refused request, with a JSON body that names the code."""
    body = socketio.packet.Packet.json.dumps({"code": code, "message": message, "details": details})
    headers = [("Content-Type", "application/json")]
    if retry_after_s is not None:
        headers.append(("Retry-After", str(max(1, round(retry_after_s)))))
    reasons = {400: "BAD REQUEST", 408: "REQUEST TIMEOUT", 413: "PAYLOAD TOO LARGE", 429: "TOO MANY REQUESTS"}
    return {"status": f"{status} {reasons[status]}", "headers": headers, "response": body.encode()}
