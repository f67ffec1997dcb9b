"""Retention: keep the event log within its count and age bounds (SPEC §4)."""

from __future__ import annotations

import structlog

from server.cluster.lease import Lease, SoleNode
from server.events.log import EventLog
from server.periodic import Periodic

log = structlog.get_logger(__name__)


class Retention:
    """Prunes the log now and then every `interval_s` seconds, in the background."""

    def __init__(
        self, event_log: EventLog, keep_count: int, max_age_s: float, interval_s: float, lease: Lease | None = None
    ) -> None:
        self.event_log = event_log
        self.lease: Lease = lease or SoleNode()
        """Only the holder prunes (once per cluster)."""
        self.keep_count = keep_count
        self.max_age_s = max_age_s
        self._periodic = Periodic("event-log-retention", interval_s, self.prune_once, run_first=True)

    async def prune_once(self) -> int:
        """Apply retention now, on the lease holder only; returns how many events left the log."""
        if not self.lease.held:
            return 0
        removed = await self.event_log.prune(self.keep_count, self.max_age_s)
        if removed:
            log.info("event_log_pruned", removed=removed, pruned_through=await self.event_log.pruned_through())
        return removed

    def start(self) -> None:
        """Prune now, then every `interval_s`."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop pruning."""
        await self._periodic.stop()
