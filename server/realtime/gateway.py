"""The real-time layer put together: the Socket.IO server, its parts, and the connect and disconnect handlers.

Each part holds one concept: admission (admission.py), a connection's start and replay
(activation.py), client events (client_events.py, handlers in requests.py), native rooms
(membership.py), delivery (delivery.py), closing and shutdown (closing.py), and every
connection by sid (registry.py), each with its state in its `Connection` (connection.py).
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import socketio
import structlog
from aiohttp import web

from client_sdk.protocol import DisconnectReason, InfoData
from server.auth import TokenAuthority
from server.client_address import ClientAddresses
from server.config import Settings
from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.paths import SOCKETIO_PATH
from server.rate_limits import KeyedBuckets
from server.realtime import codec
from server.realtime.activation import Activation, encode_event
from server.realtime.admission import Admission
from server.realtime.backpressure import SendWatchdog
from server.realtime.client_events import ClientEvents
from server.realtime.closing import ConnectionCloser
from server.realtime.connection import Connection
from server.realtime.delivery import Delivery
from server.realtime.engine import ImmuneSocketServer, SessionGuard, TransportMetrics
from server.realtime.errors import ProtocolError
from server.realtime.lean_queue import LeanQueue
from server.realtime.manager import FanoutManager
from server.realtime.membership import Membership
from server.realtime.reaper import ConnectionReaper
from server.realtime.registry import ConnectionRegistry
from server.realtime.replay_frames import ReplayFrames
from server.realtime.requests import ClientRequests
from server.realtime.resume import RecentEvents, ResumePlanner
from server.realtime.stats import RealtimeMetrics, RealtimeStats

log = structlog.get_logger(__name__)


class RealtimeGateway:
    """Owns the Socket.IO server and the parts of the real-time layer; the event sink of the dispatcher."""

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
        self.metrics = metrics
        self.stats = RealtimeStats()
        self.manager = manager or FanoutManager(max_queue=settings.max_queue, fast_path=settings.fast_path)
        self.client_addresses = ClientAddresses(settings.trusted_proxies)
        self.guard = SessionGuard(
            self.client_addresses,
            KeyedBuckets(settings.connects_per_min_per_ip, settings.connects_burst_per_ip),
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
        # Every Engine.IO socket learns its aiohttp response: the fast path writes to it, and the
        # send watchdog reads its transport's buffer either way.
        eio = self.sio.eio
        eio.record_websockets(self.manager.websockets)
        eio.guard_websockets()
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)

        self.registry = ConnectionRegistry(
            settings.node_id,
            self.stats,
            lambda: self.manager.deliveries,
            lambda sid: self.manager.sent_by_sid.get(sid, 0),
        )
        self.admission = Admission(settings, authority, self.guard, self.manager, self.registry, self.stats)
        self.delivery = Delivery(self.manager, self.stats, metrics)
        self.membership = Membership(self.manager)
        self.recent = RecentEvents()
        dispatcher.add_sink(self.recent)
        self.replay_frames = ReplayFrames(
            partial(encode_event, self.sio.packet_class), settings.replay_budget_bytes, settings.replay_cache_bytes
        )
        self.resumer = ResumePlanner(
            event_log, dispatcher, self.recent, self.replay_frames, settings.replay_cap, settings.replay_max_bytes
        )
        self.activation = Activation(
            settings,
            event_log,
            dispatcher,
            self.resumer,
            self.registry,
            self.manager,
            self.delivery,
            self.membership,
            self.stats,
            metrics,
        )
        self.closer = ConnectionCloser(
            self.sio, self.manager, self.registry, self.delivery, self.stats, metrics, settings.send_timeout_s
        )
        self.requests = ClientRequests(settings, self.membership.set_membership, self.registry.describe)
        self.client_events = ClientEvents(
            settings, self.registry, self.requests, self.closer, self.delivery, self.stats, metrics
        )
        self.sio.gateway = self.client_events
        self.manager.on_connected = self.activation.activate
        self.manager.on_overflow = self.closer.on_overflow
        self.watchdog = SendWatchdog(settings.send_timeout_s, self._sending, self.closer.on_overflow)
        self.reaper = ConnectionReaper(
            lambda: self.registry.by_sid.values(),
            self.closer.close_soon,
            settings.idle_timeout_s,
            settings.jwt_leeway_s,
        )
        metrics.replay_bytes.set_function(lambda: self.replay_frames.pinned_bytes)
        metrics.replay_cache_bytes.set_function(lambda: self.replay_frames.idle_bytes)
        # Computed when scraped: keeping it current on every connect would cost O(connections) each.
        metrics.rooms.set_function(lambda: len(self.registry.room_members()))

    def attach(self, app: web.Application) -> None:
        """Serve Socket.IO at /socket.io/ on this aiohttp app."""
        self.sio.attach(app, socketio_path=SOCKETIO_PATH.strip("/"))

    async def start(self) -> None:
        """Load what every `connected` carries and start the background sweeps."""
        await self.activation.start()
        self.watchdog.start()
        self.reaper.start()
        self.guard.start()

    async def stop(self) -> None:
        """Stop background work."""
        await self.watchdog.stop()
        await self.reaper.stop()
        await self.guard.stop()

    async def shutdown(self) -> None:
        """Tell every connection the server is going away, then close them all (at most ~1 s each, together)."""
        await self.closer.close_all()
        await self.guard.close_all()  # sessions with no Socket.IO connection: no long-poll outlives this

    def _sending(self) -> list[tuple[str, LeanQueue, Any, int]]:
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

    # ------------------------------------------------------------------ Socket.IO handlers

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        """Validate the connect (token, origin, client_id, rooms, filter) or refuse it with a code."""
        try:
            conn, request = self.admission.admit(sid, environ, auth)
        except ProtocolError as exc:
            self.metrics.refused.labels(code=exc.code.value).inc()
            log.info("connect_refused", code=exc.code.value, reason=exc.message)
            raise socketio.exceptions.ConnectionRefusedError(exc.message, exc.to_connect_error()) from None
        # Registered before the backlog is read: concurrent connects of one user count against its
        # limit, and a close meanwhile (a shutdown) finds the connection; its replay is then released.
        self.registry.add(conn)
        try:
            return await self.activation.plan_resume(conn, request)
        except BaseException:  # the connect fails: it must not stay registered
            self.registry.remove(conn)
            raise

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        """Forget the connection."""
        conn = self.registry.pop(sid)
        self.watchdog.forget(sid)
        if conn is None:
            return
        conn.release_replay()
        if conn.active:
            self.stats.total_disconnections += 1
            self.metrics.disconnects.inc()
        self.metrics.connections.set(len(self.registry))
        log.info("disconnected", connection_id=sid, client_id=conn.client_id, reason=str(reason))

    # ------------------------------------------------------------------ the public face

    def deliver(self, event: PublishedEvent) -> None:
        """EventSink: emit a committed event to exactly the connections of the §5 predicate."""
        self.delivery.deliver(event)

    def deliver_many(self, events: list[PublishedEvent]) -> None:
        """EventSink: emit several committed events in id order, one transport write per WebSocket recipient."""
        self.delivery.deliver_many(events)

    def describe(self, conn: Connection) -> InfoData:
        """The `info` data of a connection (also served by GET /ws/connections/{id})."""
        return self.registry.describe(conn)

    async def close_connection(
        self,
        sid: str,
        reason: DisconnectReason,
        message: str = "",
        grace_s: float | None = None,
        wait_for_flush: bool = True,
    ) -> bool:
        """Send `disconnected` with the reason, then close the connection (see `ConnectionCloser`)."""
        return await self.closer.close_connection(sid, reason, message, grace_s, wait_for_flush)
