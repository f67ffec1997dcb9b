"""Reads from the log what the carrier did not bring: the safety net that makes the carrier optional.

Every `interval_s` the follower reads the log's head (one row). A head that was already committed
at the previous look but is still not delivered means the carrier missed it (down, silent, or it
dropped the batch): the follower reads the missing range from the log and hands it to the
dispatcher, which keeps id order and drops what it already delivered. While the carrier is known to
be down, it reads up to the head at once instead of granting the carrier one interval.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.periodic import Periodic

log = structlog.get_logger(__name__)

READ_LIMIT = 1000
"""Events read per query while catching up."""


class LogFollower:
    """Polls the log head and fills the dispatcher from the log when the carrier falls behind."""

    def __init__(
        self,
        event_log: EventLog,
        dispatcher: Dispatcher,
        carrier_up: Callable[[], bool],
        interval_s: float = 0.5,
    ) -> None:
        self._log = event_log
        self._dispatcher = dispatcher
        self._carrier_up = carrier_up
        self.interval_s = interval_s
        self._previous_head: int | None = None
        self._periodic = Periodic("log-follower", interval_s, self.look)
        self.events_from_log = 0
        """Events this node delivered because the follower read them (the carrier missed them)."""
        self.error: str | None = None
        """Why the last look at the log failed (None while it works)."""

    def start(self) -> None:
        """Begin following in the background."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop following."""
        await self._periodic.stop()

    async def look(self) -> None:
        """One look at the log's head; catch up from the log what the carrier did not bring."""
        try:
            head = await self._log.head()
            # Grant the carrier one interval for what it should bring, unless it is down.
            target = head if not self._carrier_up() else self._previous_head
            if target is not None and self._dispatcher.last_delivered < target:
                await self.catch_up(target)
            self._previous_head = head
            if self.error is not None:
                log.info("log_follow_recovered", after=self.error)
                self.error = None
        except Exception as exc:  # a database outage: keep looking, say so once
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            if self.error != reason:
                log.warning("log_follow_failing", reason=reason)
            self.error = reason

    async def catch_up(self, up_to: int) -> None:
        """Hand the dispatcher every event after what it delivered, up to `up_to`, from the log."""
        while self._dispatcher.last_delivered < up_to:
            after = self._dispatcher.last_delivered
            found = await self._log.read(after, up_to=up_to, limit=READ_LIMIT)
            if not found:
                # Pruned by retention before this node saw it: nothing left to deliver there.
                self._dispatcher.skip_to(up_to)
                return
            log.info("events_read_from_log", after=after, count=len(found), up_to=up_to)
            self.events_from_log += sum(1 for event in found if event.event_id > self._dispatcher.last_delivered)
            self._dispatcher.submit(found)
