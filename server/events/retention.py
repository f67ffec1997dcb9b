"""Retention: keep the event log within its count and age bounds (SPEC §4)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from server.events.log import EventLog

log = structlog.get_logger(__name__)


class Retention:
    """Prunes the log now and then every `interval_s` seconds, in the background."""

    def __init__(self, event_log: EventLog, keep_count: int, max_age_s: float, interval_s: float) -> None:
        self.event_log = event_log
        self.keep_count = keep_count
        self.max_age_s = max_age_s
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    async def prune_once(self) -> int:
        """Apply retention now; returns how many events left the log."""
        removed = await self.event_log.prune(self.keep_count, self.max_age_s)
        if removed:
            log.info("event_log_pruned", removed=removed, pruned_through=await self.event_log.pruned_through())
        return removed

    def start(self) -> None:
        """Begin the periodic pruning."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop pruning."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception:  # a failed prune is retried next round; the log only grows meanwhile
                log.exception("event_log_prune_failed")
            await asyncio.sleep(self.interval_s)
