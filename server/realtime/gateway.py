"""The Socket.IO side of the server: connect, client events, rooms, kicks, and event delivery."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

import socketio
import structlog
from aiohttp import web
from pydantic import ValidationError
from socketio import packet as sio_packet

from client_sdk.protocol import (
    ConnectAuth,
    ConnectedData,
    DisconnectedData,
    DisconnectReason,
    ErrorCode,
    ErrorData,
    EventType,
    InfoData,
    format_timestamp,
    utc_now,
)
from server.auth import AuthError, Role, TokenAuthority
from server.client_address import ClientAddresses
from server.config import Settings
from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.json_limits import json_depth
from server.origins import OriginPolicy
from server.paths import SOCKETIO_PATH
from server.realtime import codec
from server.realtime.backpressure import SendWatchdog
from server.realtime.connection import Connection
from server.realtime.engine import (
    SESSION_CLOSE_ERRORS,
    ImmuneSocketServer,
    OversizedMessage,
    SessionGuard,
    TransportMetrics,
)
from server.realtime.errors import ProtocolError
from server.realtime.limits import KeyedBuckets, TokenBucket
from server.realtime.manager import FanoutManager, record_websockets, transport_of, unsent_bytes
from server.realtime.reaper import ConnectionReaper
from server.realtime.registry import ConnectionRegistry
from server.realtime.replay_frames import ReplayFrames
from server.realtime.requests import ClientRequests
from server.realtime.resume import RecentEvents, ResumePlan, ResumePlanner
from server.realtime.rooms import check_event_types, check_room, membership_rooms, target_rooms
from server.realtime.stats import RealtimeMetrics, RealtimeStats

log = structlog.get_logger(__name__)
NAMESPACE = "/"
SHUTDOWN_GRACE_S = 1.0
"""At shutdown, how long peers get to take their last frames before their transports are aborted."""


class RealtimeGateway:
    """Owns the Socket.IO server and its event flow; the event sink of the dispatcher.

    Which connections exist, per user and per room, is the registry's (server/realtime/registry.py).
    """

    def __init__(
        self,
        settings: Settings,
        authority: TokenAuthority,
        event_log: EventLog,
        dispatcher: Dispatcher,
        metrics: RealtimeMetrics,
        manager: FanoutManager | None = None,
    ) -> None:
        self.settings = settings
        self.authority = authority
        self.event_log = event_log
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.stats = RealtimeStats()
        self.origins = OriginPolicy(settings)
        self.manager = manager or FanoutManager(max_queue=settings.max_queue, fast_path=settings.fast_path)
        self.manager.on_connected = self._activate
        self.manager.on_overflow = self._on_overflow
        self.connect_limits = KeyedBuckets(settings.connects_per_min_per_ip, settings.connects_burst_per_ip)
        self.client_addresses = ClientAddresses(settings.trusted_proxies)
        self.guard = SessionGuard(
            self.client_addresses,
            self.connect_limits,
            settings.max_pending_sessions_per_ip,
            settings.connect_timeout_s,
            TransportMetrics(metrics.registry),
        )
        self.sio = ImmuneSocketServer(
            client_manager=self.manager,
            async_mode="aiohttp",
            json=codec,
            # Origins are checked in the connect handler so a browser gets `origin_not_allowed`
            # as connect_error data instead of an opaque HTTP 400.
            cors_allowed_origins="*",
            # The transport's limit is above the application's, so that a message moderately over
            # IMMUNE_MAX_PAYLOAD_BYTES gets an `invalid_request` ack rather than a closed transport.
            max_http_buffer_size=settings.max_frame_bytes,
            max_message_bytes=settings.max_payload_bytes,
            guard=self.guard,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            # Loggers of their own: with `False` each library adds a plain stderr handler.
            logger=logging.getLogger("socketio.server"),
            engineio_logger=logging.getLogger("engineio.server"),
        )
        self.sio.gateway = self
        # Every Engine.IO socket learns its aiohttp response: the fast path writes to it, and the
        # send watchdog reads its transport's buffer either way.
        eio = self.sio.eio
        eio._async = {**eio._async, "websocket": record_websockets(eio._async["websocket"], self.manager.websockets)}
        eio.guard_websockets()
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.requests = ClientRequests(settings, self.set_membership, self.describe)
        self.recent = RecentEvents()
        dispatcher.add_sink(self.recent)
        self.replay_frames = ReplayFrames(self._encode_event, settings.replay_budget_bytes, settings.replay_cache_bytes)
        self.resumer = ResumePlanner(
            event_log, dispatcher, self.recent, self.replay_frames, settings.replay_cap, settings.replay_max_bytes
        )
        metrics.replay_bytes.set_function(lambda: self.replay_frames.pinned_bytes)
        metrics.replay_cache_bytes.set_function(lambda: self.replay_frames.idle_bytes)
        self.watchdog = SendWatchdog(settings.send_timeout_s, self._sending, self._on_overflow)
        self.registry = ConnectionRegistry(settings.node_id, self.stats, lambda: self.manager.deliveries)
        self.reaper = ConnectionReaper(
            lambda: self.registry.by_sid.values(), self._close_soon, settings.idle_timeout_s, settings.jwt_leeway_s
        )
        # Computed when scraped: keeping it current on every connect would cost O(connections) each.
        metrics.rooms.set_function(lambda: len(self.registry.room_members()))
        self.epoch = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutdown_deadline = float("inf")  # loop time by which every close must be done

    def attach(self, app: web.Application) -> None:
        """Serve Socket.IO at /socket.io/ on this aiohttp app."""
        self.sio.attach(app, socketio_path=SOCKETIO_PATH.strip("/"))

    async def start(self) -> None:
        """Load what every `connected` carries and start the send-timeout watchdog."""
        self.epoch = await self.event_log.epoch()
        self.watchdog.start()
        self.reaper.start()
        self.guard.start()

    async def stop(self) -> None:
        """Stop background work."""
        await self.watchdog.stop()
        await self.reaper.stop()
        await self.guard.stop()

    def _sending(self) -> list[tuple[str, asyncio.Queue[Any], Any, int]]:
        """What the send watchdog checks: each live connection's queue, transport and sent count."""
        sockets = self.sio.eio.sockets
        websockets = self.manager.websockets
        sent_by_sid = self.manager.sent_by_sid
        found = []
        for sid, conn in self.registry.by_sid.items():
            if not conn.active or conn.closing:
                continue
            on_websocket = websockets.get(conn.eio_sid)
            if on_websocket is not None:
                socket, transport, queue = on_websocket
            else:  # long-polling, or not upgraded yet: only the queue can tell
                socket, transport = sockets.get(conn.eio_sid), None
                queue = socket.queue if socket is not None else None
            if socket is not None and not socket.closed:
                found.append((sid, queue, transport, sent_by_sid.get(sid, 0)))
        return found

    # ------------------------------------------------------------------ connect / disconnect

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        """Validate the connect (token, origin, client_id, rooms, filter) or refuse it with a code."""
        try:
            conn, request = self._admit(sid, environ, auth)
        except ProtocolError as exc:
            self.metrics.refused.labels(code=exc.code.value).inc()
            log.info("connect_refused", code=exc.code.value, reason=exc.message)
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_connect_error()) from None
        # Registered before the backlog is read: concurrent connects of one user count against its
        # limit, and a close meanwhile (a shutdown) finds the connection; its replay is then released.
        self.registry.add(conn)
        if request.last_event_id is not None:
            try:
                plan = await self.resumer.plan(
                    request.last_event_id, request.epoch, self.epoch, conn.rooms, conn.event_types
                )
            except BaseException:  # the connect fails: it must not stay registered
                self.registry.remove(conn)
                raise
            if self.registry.get(sid) is not conn:  # closed while its backlog was read
                plan.release()
                return False
            conn.resume = plan
        return True

    def _admit(self, sid: str, environ: dict[str, Any], auth: Any) -> tuple[Connection, ConnectAuth]:
        if not self.origins.allows(environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST")):
            raise ProtocolError(ErrorCode.ORIGIN_NOT_ALLOWED, "origin not allowed")
        # The address and the attempt budget were settled at the Engine.IO handshake (engine.py).
        address, retry_after = self.guard.connect_attempt(self.manager.eio_sid_from_sid(sid, NAMESPACE) or "", environ)
        if retry_after:
            self.stats.rate_limited += 1
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many connection attempts", {"retry_after_s": round(retry_after, 3)}
            )
        query = parse_qs(environ.get("QUERY_STRING", ""))
        fields: dict[str, Any] = dict(auth) if isinstance(auth, dict) else {}
        if auth is not None and not isinstance(auth, dict):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "auth must be an object")
        for name in ("token", "client_id"):
            if fields.get(name) is None and query.get(name):
                fields[name] = query[name][0]
        try:
            request = ConnectAuth.model_validate(fields)
        except ValidationError as exc:
            bad = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST, f"invalid auth field(s): {', '.join(bad)}", {"fields": bad}
            ) from None
        try:
            identity = self.authority.verify(request.token)
        except AuthError as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, str(exc)) from None
        if not identity.has_role(Role.VIEWER):  # real-time reads events: it needs viewer
            raise ProtocolError(ErrorCode.FORBIDDEN, "real-time needs role viewer", {"required_role": "viewer"})
        if self.registry.held_by(identity.subject) >= self.settings.max_connections_per_user:
            raise ProtocolError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                "too many concurrent connections for this user",
                {"limit": self.settings.max_connections_per_user},
            )
        rooms = list(dict.fromkeys(request.rooms))
        for room in rooms:
            check_room(room, identity, unknown=ErrorCode.INVALID_REQUEST)
        if len(rooms) > self.settings.max_rooms_per_connection:
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST, "too many rooms", {"limit": self.settings.max_rooms_per_connection}
            )
        event_types = check_event_types(list(dict.fromkeys(request.event_types)), unknown=ErrorCode.INVALID_REQUEST)
        if len(event_types) > self.settings.max_filter_size:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "filter too large", {"limit": self.settings.max_filter_size})
        conn = Connection(
            sid=sid,
            eio_sid=self.manager.eio_sid_from_sid(sid, NAMESPACE) or "",
            client_id=request.client_id or f"client-{secrets.token_hex(6)}",
            identity=identity,
            remote_addr=address,
            rooms=rooms,
            event_types=event_types,
            bucket=TokenBucket(self.settings.client_events_per_min / 60.0, self.settings.client_events_burst),
        )
        return conn, request

    def _activate(self, sid: str) -> None:
        """Right after the CONNECT packet: send `connected`, replay, then join rooms, with no await between.

        Joining here rather than in the connect handler is what makes `connected` the first
        event: nothing can be delivered to the connection before it is in a room, and the
        replay ends exactly at the id from which live delivery starts.
        """
        conn = self.registry.get(sid)
        if conn is None:
            return
        plan = self.resumer.complete(conn.resume, conn.rooms, conn.event_types) if conn.resume else None
        conn.resume = None
        if plan is not None and not plan.recovered:
            self.metrics.replays_refused.labels(reason=plan.reason).inc()
        data = ConnectedData(
            connection_id=conn.connection_id,
            client_id=conn.client_id,
            user=conn.identity.subject,
            roles=list(conn.identity.roles),
            rooms=list(conn.rooms),
            event_types=list(conn.event_types),
            last_event_id=self.dispatcher.last_delivered,
            epoch=self.epoch,
            recovered=plan.recovered if plan else None,
            replayed=plan.replayed if plan else 0,
            server_time=utc_now(),
            node_id=self.settings.node_id,
        )
        self.send_direct(conn, EventType.CONNECTED, data.model_dump(mode="json"))
        if plan is not None:
            self._replay(conn, plan)
        self._join(conn, conn.rooms, conn.event_types, previous=None)
        conn.active = True
        self.stats.total_connections += 1
        self.metrics.connects.inc()
        self.metrics.connections.set(len(self.registry))
        log.info(
            "connected",
            connection_id=sid,
            client_id=conn.client_id,
            user=conn.identity.subject,
            remote=conn.remote_addr,
        )

    def _replay(self, conn: Connection, plan: ResumePlan) -> None:
        # The replay may exceed the live queue bound: it is bounded by the replay cap and byte
        # budgets instead, and its frames are shared with every other connection replaying them.
        replayed = plan.replayed
        if plan.lease is not None:
            conn.replay = plan.lease
            if not self.manager.send_packets(conn.sid, NAMESPACE, plan.lease.packets()):
                plan.release()  # the transport is already gone: nothing will take the frames
        self.stats.events_replayed += replayed
        log.info(
            "resumed",
            connection_id=conn.sid,
            client_id=conn.client_id,
            recovered=plan.recovered,
            replayed=replayed,
            reason=plan.reason or None,
        )

    def _encode_event(self, event: PublishedEvent) -> str:
        """A logged event as the Socket.IO EVENT packet text every connection receives."""
        packet = self.sio.packet_class(
            sio_packet.EVENT, namespace=NAMESPACE, data=[event.event_type, event.envelope()], binary=False
        )
        return str(packet.encode())

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        """Forget the connection."""
        conn = self.registry.pop(sid)
        self.watchdog.forget(sid)
        if conn is None:
            return
        for plan_or_lease in (conn.resume, conn.replay):
            if plan_or_lease is not None:
                plan_or_lease.release()
        if conn.active:
            self.stats.total_disconnections += 1
            self.metrics.disconnects.inc()
        self.metrics.connections.set(len(self.registry))
        log.info("disconnected", connection_id=sid, client_id=conn.client_id, reason=str(reason))

    # ------------------------------------------------------------------ rooms and filters

    def set_membership(self, conn: Connection, rooms: list[str], event_types: list[str]) -> None:
        """Move the connection to exactly these rooms and this filter, atomically."""
        previous = (list(conn.rooms), list(conn.event_types))
        conn.rooms = list(rooms)
        conn.event_types = list(event_types)
        if conn.active:
            self._join(conn, conn.rooms, conn.event_types, previous=previous)

    def _join(
        self,
        conn: Connection,
        rooms: list[str],
        event_types: list[str],
        previous: tuple[list[str], list[str]] | None,
    ) -> None:
        # Synchronous on purpose: no event can be delivered between leaving and entering rooms.
        wanted = membership_rooms(rooms, event_types) | set(rooms)
        current = membership_rooms(*previous) | set(previous[0]) if previous else set()
        for room in current - wanted:
            self.manager.basic_leave_room(conn.sid, NAMESPACE, room)
        for room in wanted - current:
            self.manager.basic_enter_room(conn.sid, NAMESPACE, room)

    # ------------------------------------------------------------------ client events

    async def handle_client_event(self, sid: str, event: Any, args: list[Any], wants_ack: bool) -> dict[str, Any]:
        """Run one client event; the reply is the ack body (also the basis of an `error` event)."""
        conn = self.registry.get(sid)
        name = event if isinstance(event, str) else repr(event)
        if conn is None:
            ack = ProtocolError(ErrorCode.INVALID_REQUEST, "not connected").to_ack()
            return ack.model_dump(mode="json")
        conn.touch()
        self.stats.messages_received += 1
        handler = self.requests.handlers.get(name)
        try:
            self._check_rate(conn)
            if args and isinstance(args[0], OversizedMessage):
                raise ProtocolError(
                    ErrorCode.INVALID_REQUEST,
                    "message too large",
                    {"limit": args[0].limit, "size": args[0].size},
                )
            if json_depth(args, self.settings.max_json_depth + 1) > self.settings.max_json_depth + 1:
                raise ProtocolError(
                    ErrorCode.INVALID_REQUEST, "payload nested too deeply", {"limit": self.settings.max_json_depth}
                )
            if handler is None:
                raise ProtocolError(ErrorCode.UNKNOWN_ACTION, f"unknown action: {name[:64]}", {"event": name[:64]})
            ack = await handler(conn, args[0] if args else {})
        except ProtocolError as exc:
            ack = exc.to_ack()
        except Exception:
            log.exception("client_event_failed", connection_id=sid, client_id=conn.client_id, request=name[:64])
            ack = ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error").to_ack()
        outcome = "ok" if ack.success else (ack.error.code.value if ack.error else "error")
        self.metrics.client_events.labels(event=name if handler else "unknown", outcome=outcome).inc()
        if not ack.success and not wants_ack and ack.error is not None:
            error = ErrorData(code=ack.error.code, message=ack.message, details=ack.error.details, request=name[:64])
            self.send_direct(conn, EventType.ERROR, error.model_dump(mode="json"))
        return ack.model_dump(mode="json", exclude_none=True)

    def _check_rate(self, conn: Connection) -> None:
        """Token bucket per connection; a client that keeps hammering is disconnected."""
        retry_after = conn.bucket.take() if conn.bucket else 0.0
        if not retry_after:
            conn.strikes = 0
            return
        conn.strikes += 1
        self.stats.rate_limited += 1
        if conn.strikes >= self.settings.rate_limit_strikes:
            self._close_soon(conn.sid, DisconnectReason.RATE_LIMITED, "too many requests")
        raise ProtocolError(ErrorCode.RATE_LIMITED, "too many requests", {"retry_after_s": round(retry_after, 3)})

    def _close_soon(self, sid: str, reason: DisconnectReason, message: str) -> None:
        conn = self.registry.get(sid)
        if conn is not None and self._begin_close(conn):
            self._spawn(self._finish_close(conn, reason, message))

    def describe(self, conn: Connection) -> InfoData:
        """The `info` data of a connection (also served by GET /ws/connections/{id})."""
        return InfoData(
            connection_id=conn.connection_id,
            client_id=conn.client_id,
            user=conn.identity.subject,
            roles=list(conn.identity.roles),
            rooms=list(conn.rooms),
            event_types=list(conn.event_types),
            connected_at=conn.connected_at,
            last_activity=conn.last_activity,
            messages_sent=self.manager.sent_by_sid.get(conn.sid, 0),
            messages_received=conn.messages_received,
        )

    # ------------------------------------------------------------------ delivery

    def deliver(self, event: PublishedEvent) -> None:
        """EventSink: emit a committed event to exactly the connections of the §5 predicate."""
        sent = self.manager.emit_now(
            event.event_type, event.envelope(), NAMESPACE, target_rooms(event.rooms, event.event_type), json_only=True
        )
        self.stats.events_published += 1
        self.metrics.events_published.labels(event_type=event.event_type).inc()
        self.metrics.deliveries.inc(sent)

    def deliver_many(self, events: list[PublishedEvent]) -> None:
        """EventSink: emit several committed events in id order, one transport write per WebSocket recipient."""
        items = [(event.event_type, event.envelope(), target_rooms(event.rooms, event.event_type)) for event in events]
        counts = self.manager.emit_many(NAMESPACE, items)
        self.stats.events_published += len(events)
        for event in events:
            self.metrics.events_published.labels(event_type=event.event_type).inc()
        self.metrics.deliveries.inc(sum(counts))

    def send_direct(self, conn: Connection, event_type: EventType, data: dict[str, Any], force: bool = False) -> None:
        """Send a connection-only event (`connected`, `disconnected`, `error`): event_id null.

        `force` sends past the queue bound (one small frame: `disconnected` to a slow consumer).
        """
        envelope = {
            "event_id": None,
            "event_type": event_type.value,
            "timestamp": format_timestamp(utc_now()),
            "data": data,
            "source": "server",
            "room": None,
        }
        self.manager.emit_now(event_type.value, envelope, NAMESPACE, conn.sid, force=force, json_only=True)

    def _begin_close(self, conn: Connection) -> bool:
        """Synchronously stop all event delivery to a connection and mark it closing.

        Returns False when it was already closing. From here on nothing published reaches it, so
        the last event it received is exactly where its resume starts: no hole is possible.
        """
        if conn.closing:
            return False
        conn.closing = True
        self.manager.stop_delivery(conn.sid, NAMESPACE)
        return True

    async def close_connection(
        self,
        sid: str,
        reason: DisconnectReason,
        message: str = "",
        grace_s: float | None = None,
        wait_for_flush: bool = True,
    ) -> bool:
        """Send `disconnected` with the reason, then close the connection.

        With `wait_for_flush=False` it returns once the Socket.IO connection is gone; waiting for
        a stalled peer to take the last frames (or aborting its transport) goes on in the background.
        """
        conn = self.registry.get(sid)
        if conn is None or not self._begin_close(conn):
            return False
        await self._finish_close(conn, reason, message, grace_s, wait_for_flush)
        return True

    async def _finish_close(
        self,
        conn: Connection,
        reason: DisconnectReason,
        message: str,
        grace_s: float | None = None,
        wait_for_flush: bool = True,
    ) -> None:
        """`disconnected` (forced past the bound), Socket.IO DISCONNECT, Engine.IO CLOSE, then flush or abort.

        A peer that does not take those last frames within `grace_s` (default: the send timeout)
        has its TCP transport aborted, so a stalled peer never holds a socket, a queue or shutdown.
        """
        data = DisconnectedData(reason=reason, message=message)
        self.send_direct(conn, EventType.DISCONNECTED, data.model_dump(mode="json"), force=True)
        socket = self.sio.eio.sockets.get(conn.eio_sid)
        try:
            await self.sio.disconnect(conn.sid)
            if socket is not None and not socket.closed:
                await socket.close(wait=False, reason=self.sio.eio.reason.SERVER_DISCONNECT)
        except SESSION_CLOSE_ERRORS:  # a socket closing under us is fine: what matters is that it ends
            log.debug("close_failed", connection_id=conn.sid, exc_info=True)
        if socket is not None:
            flush = self._flush_or_abort(socket, self.settings.send_timeout_s if grace_s is None else grace_s)
            if wait_for_flush:
                await flush
            else:
                self._spawn(flush)

    async def _flush_or_abort(self, socket: Any, grace_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while True:
            deadline = min(deadline, self._shutdown_deadline)
            transport = transport_of(socket)
            if transport is None:
                if socket.upgraded or not socket.queue.qsize():
                    return  # the WebSocket is gone, or a polling client has everything it is owed
            elif transport.is_closing():
                return
            elif not socket.queue.qsize() and not unsent_bytes(transport):
                return  # everything reached the peer; it closes its side on the CLOSE packet
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        transport = transport_of(socket)
        if transport is not None and not transport.is_closing():
            log.info("transport_aborted", eio_sid=socket.sid, reason="peer did not take its last frames")
            transport.abort()

    def _on_overflow(self, sid: str) -> None:
        """A connection over its queue, buffer or time bound: cut it now, tell it, close it."""
        conn = self.registry.get(sid)
        if conn is None or not self._begin_close(conn):
            return
        self.stats.slow_consumer_disconnects += 1
        self.metrics.slow_consumers.inc()
        log.info("slow_consumer", connection_id=sid, client_id=conn.client_id)
        self._spawn(self._finish_close(conn, DisconnectReason.SLOW_CONSUMER, "outgoing queue full"))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def shutdown(self) -> None:
        """Tell every connection the server is going away, then close them all (at most ~1 s each, together)."""
        self._shutdown_deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE_S
        await asyncio.gather(
            *(
                self.close_connection(sid, DisconnectReason.SERVER_SHUTDOWN, "server shutting down")
                for sid in list(self.registry.by_sid)
            ),
            return_exceptions=True,
        )
        if self._tasks:  # closes already under way (slow consumers, kicks): bound by the same deadline
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S + 0.5)
        await self.guard.close_all()  # sessions with no Socket.IO connection: no long-poll outlives this
