"""A node of a cluster: its carrier and log follower, its lease on the once-only jobs, its presence.

`ClusterLink` is the delivery side: this node's committed batches go to the dispatcher and out on
the carrier; other nodes' batches come in from the carrier, and the log follower reads whatever
the carrier missed. `ClusterNode` adds the jobs' lease and the cluster view (SPEC §9).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

from server.cluster.carrier import Carrier
from server.cluster.carrier_redis import RedisCarrier
from server.cluster.follower import LogFollower
from server.cluster.lease import AdvisoryLease
from server.cluster.presence import ClusterView, LocalNode
from server.config import Settings
from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.store.db import Database

log = structlog.get_logger(__name__)


class ClusterLink:
    """Publishes this node's committed batches; feeds its dispatcher from the carrier and, as a net, the log."""

    def __init__(
        self, carrier: Carrier, event_log: EventLog, dispatcher: Dispatcher, follow_interval_s: float = 0.5
    ) -> None:
        self.carrier = carrier
        self.dispatcher = dispatcher
        self.follower = LogFollower(
            event_log, dispatcher, lambda: carrier.state.status == "up", interval_s=follow_interval_s
        )

    def submit(self, events: Iterable[PublishedEvent]) -> None:
        """After a local commit (the writer's CommittedSink): deliver here and carry the batch to the other nodes."""
        batch = list(events)
        self.dispatcher.submit(batch)
        self.carrier.publish(batch)

    async def start(self) -> None:
        """Subscribe (after the dispatcher knows where it starts) and begin following the log."""
        await self.carrier.start(self.dispatcher.submit)
        self.follower.start()

    async def stop(self) -> None:
        """Stop carrying and following."""
        await self.follower.stop()
        await self.carrier.stop()

    def snapshot(self) -> dict[str, Any]:
        """The carrier's state and how much the log had to fill in (for /ready and /ws/stats)."""
        return {
            **self.carrier.state.snapshot(),
            "events_from_log": self.follower.events_from_log,
            "log_follow_error": self.follower.error,
        }


class ClusterNode:
    """Everything that makes this process one node of several (built only when IMMUNE_REDIS_URL is set)."""

    def __init__(self, settings: Settings, db: Database, event_log: EventLog, dispatcher: Dispatcher) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        carrier = RedisCarrier(
            settings.redis_url,
            settings.node_id,
            heartbeat_s=settings.carrier_heartbeat_s,
            dead_after_s=settings.carrier_dead_after_s,
        )
        self.link = ClusterLink(carrier, event_log, dispatcher, settings.log_follow_interval_s)
        self.lease = AdvisoryLease(db, settings.node_id)
        self.view: ClusterView | None = None

    def attach(self, local: LocalNode) -> None:
        """Give the cluster view this node's own figures and connections."""
        assert self.settings.redis_url is not None
        self.view = ClusterView(self.settings.redis_url, self.settings.node_id, local)

    async def start(self) -> None:
        """Start carrying, following, competing for the lease and announcing this node."""
        await self.link.start()
        self.lease.start()
        if self.view is not None:
            self.view.start()

    async def stop(self) -> None:
        """Leave the cluster: this node's presence goes at once, its lease is released."""
        if self.view is not None:
            await self.view.stop()
        await self.lease.stop()
        await self.link.stop()

    def snapshot(self) -> dict[str, Any]:
        """The carrier's figures plus whether this node holds the jobs' lease."""
        return {**self.link.snapshot(), "jobs_lease": self.lease.held}
