"""The scheduler of the running server's background jobs: metrics_updated, health_changed, proposal expiry.

It decides when, not what: the figures and the expiry rule come from the domain services.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from client_sdk.protocol import EventType, HealthChangedData, HealthStatus, MetricsUpdatedData
from server.cluster.lease import Lease, SoleNode
from server.domain import Domain
from server.events.publisher import Publisher
from server.events.writer import GroupCommitWriter
from server.periodic import Periodic
from server.realtime.gateway import RealtimeGateway
from server.store.db import Database

log = structlog.get_logger(__name__)
SYSTEM = ["system"]


async def health_checks(db: Database, writer: GroupCommitWriter) -> tuple[HealthStatus, dict[str, Any]]:
    """The status /health reports, with one entry per dependency."""
    try:
        await asyncio.wait_for(db.ping(), 2.0)
        database = "ok"
    except Exception as exc:  # any failure is a finding, not a crash
        database = f"error: {type(exc).__name__}"
    writes = "ok" if writer.unavailable_reason is None else f"error: {writer.unavailable_reason}"
    status: HealthStatus = "healthy" if database == writes == "ok" else "degraded"
    return status, {"database": database, "writes": writes, "event_loop": "ok"}


class Monitor:
    """Publishes live figures and health transitions to `system`; expires due proposals."""

    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        gateway: RealtimeGateway,
        domain: Domain,
        metrics_interval_s: float,
        expiry_interval_s: float,
        lease: Lease | None = None,
    ) -> None:
        self.db = db
        self.lease: Lease = lease or SoleNode()
        """Health alerts and proposal expiry run only on the node that holds it (once per cluster)."""
        self.publisher = publisher
        self.gateway = gateway
        self.domain = domain
        self.metrics_interval_s = metrics_interval_s
        self.expiry_interval_s = expiry_interval_s
        self.health: HealthStatus | None = None
        self._transitions: list[HealthChangedData] = []
        self._jobs = [
            Periodic("metrics-and-health", metrics_interval_s, self.tick),
            Periodic("proposal-expiry", expiry_interval_s, self.expire_due),
        ]
        self._last = (time.monotonic(), 0)

    def start(self) -> None:
        """Start the periodic jobs."""
        for job in self._jobs:
            job.start()

    async def stop(self) -> None:
        """Stop them."""
        for job in self._jobs:
            await job.stop()

    async def expire_due(self) -> int:
        """Expire due proposals, on the lease holder only."""
        return await self.domain.consensus.expire_due() if self.lease.held else 0

    async def tick(self) -> None:
        """One round: announce health transitions, then the live figures."""
        status, checks = await health_checks(self.db, self.publisher.writer)
        # Every node watches its own health; only the lease holder announces changes (once per cluster).
        if self.health is not None and status != self.health and self.lease.held:
            self._transitions.append(HealthChangedData(status=status, previous_status=self.health, checks=checks))
        self.health = status
        # Every event goes through the durable log, so a transition seen while the database is
        # down is announced, in order, as soon as it can be recorded.
        while self._transitions:
            try:
                transition = self._transitions[0].model_dump(mode="json")
                await self.publisher.publish(EventType.HEALTH_CHANGED, transition, SYSTEM, source="server")
            except Exception:
                log.warning("health_changed_deferred", pending=len(self._transitions))
                return
            self._transitions.pop(0)
        if status != "healthy":
            return
        agents = await self.domain.agents.count_by_status()
        tasks = await self.domain.tasks.count_by_status()
        now, published = time.monotonic(), self.gateway.stats.events_published
        then, before = self._last
        self._last = (now, published)
        figures = MetricsUpdatedData(
            node_id=self.gateway.settings.node_id,
            connections=len(self.gateway.connections),
            events_per_s=round((published - before) / max(now - then, 1e-6), 3),
            events_published=published,
            agents_by_status=agents,
            tasks_by_status=tasks,
        )
        await self.publisher.publish(
            EventType.METRICS_UPDATED, figures.model_dump(mode="json"), SYSTEM, source="server"
        )
