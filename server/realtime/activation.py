"""A connection's start: the resume read at connect, then `connected`, the replay and its rooms at once."""

from __future__ import annotations

from typing import Any

import structlog
from socketio import packet as sio_packet

from client_sdk.protocol import ConnectAuth, ConnectedData, EventType, utc_now
from server.config import Settings
from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.realtime.connection import Connection
from server.realtime.delivery import Delivery
from server.realtime.manager import FanoutManager
from server.realtime.membership import Membership
from server.realtime.registry import ConnectionRegistry
from server.realtime.resume import ResumePlan, ResumePlanner
from server.realtime.rooms import NAMESPACE
from server.realtime.stats import RealtimeMetrics, RealtimeStats

log = structlog.get_logger(__name__)


def encode_event(packet_class: Any, event: PublishedEvent) -> str:
    """A logged event as the Socket.IO EVENT packet text every connection receives (what a replay sends)."""
    packet = packet_class(
        sio_packet.EVENT, namespace=NAMESPACE, data=[event.event_type, event.envelope()], binary=False
    )
    return str(packet.encode())


class Activation:
    """Reads a resuming connect's backlog, then activates the connection right after its CONNECT packet."""

    def __init__(
        self,
        settings: Settings,
        event_log: EventLog,
        dispatcher: Dispatcher,
        resumer: ResumePlanner,
        registry: ConnectionRegistry,
        manager: FanoutManager,
        delivery: Delivery,
        membership: Membership,
        stats: RealtimeStats,
        metrics: RealtimeMetrics,
    ) -> None:
        self.settings = settings
        self.event_log = event_log
        self.dispatcher = dispatcher
        self.resumer = resumer
        self.registry = registry
        self.manager = manager
        self.delivery = delivery
        self.membership = membership
        self.stats = stats
        self.metrics = metrics
        self.epoch = ""

    async def start(self) -> None:
        """Load the log's epoch, which every `connected` carries and every resume is checked against."""
        self.epoch = await self.event_log.epoch()

    async def plan_resume(self, conn: Connection, request: ConnectAuth) -> bool:
        """Read the backlog a resuming connect asks for (none without `last_event_id`).

        False when the connection was closed while it was read (a shutdown): its replay is released.
        """
        if request.last_event_id is None:
            return True
        plan = await self.resumer.plan(request.last_event_id, request.epoch, self.epoch, conn.rooms, conn.event_types)
        if self.registry.get(conn.sid) is not conn:  # closed while its backlog was read
            plan.release()
            return False
        conn.resume = plan
        return True

    def activate(self, sid: str) -> None:
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
        self.delivery.send_direct(conn, EventType.CONNECTED, data.model_dump(mode="json"))
        if plan is not None:
            self._replay(conn, plan)
        self.membership.enter(conn)
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
