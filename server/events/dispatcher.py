"""Delivers committed events to the fan-out in id order, filling any gap from the log."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterable
from typing import Protocol

import structlog

from server.events.log import EventLog
from server.events.model import PublishedEvent

log = structlog.get_logger(__name__)

MAX_PENDING = 10_000
"""Out-of-order events held in memory at most; past it an event is left in the log and read back."""


class EventSink(Protocol):
    """Where dispatched events go (the real-time fan-out)."""

    def deliver(self, event: PublishedEvent) -> None:
        """Send one event to every connection that should receive it."""
        ...


class BatchEventSink(EventSink, Protocol):
    """A sink that also takes a run of consecutive events at once (the fan-out: one write per socket)."""

    def deliver_many(self, events: list[PublishedEvent]) -> None:
        """Send these events, in order, to every connection that should receive each."""
        ...


class CommittedSink(Protocol):
    """Where the writer hands each batch it committed: the dispatcher, or a cluster node that also carries it."""

    def submit(self, events: Iterable[PublishedEvent]) -> None:
        """Accept committed events."""
        ...


class Dispatcher:
    """Orders committed events by id and delivers each exactly once, without gaps.

    Committers hand events over after commit; two transactions can finish in either order,
    so a later id waits here until the earlier one arrives (or is read back from the log).
    At most `max_pending` events wait in memory: an event handed over past that bound is
    dropped here (it is committed, so it is in the log) and read back in its turn.
    """

    def __init__(self, log: EventLog, gap_timeout_s: float = 0.2, max_pending: int = MAX_PENDING) -> None:
        self._log = log
        self._sinks: list[EventSink] = []
        self._pending: list[tuple[int, PublishedEvent]] = []
        self._max_pending = max_pending
        self._gap_timeout_s = gap_timeout_s
        self._gap_task: asyncio.Task[None] | None = None
        self.last_delivered = 0
        # The highest id handed over: everything up to it is committed, held in memory or not.
        self.handed_up_to = 0
        self.dropped = 0

    def add_sink(self, sink: EventSink) -> None:
        """Register a consumer of dispatched events."""
        self._sinks.append(sink)

    async def start(self) -> None:
        """Begin after the log's current head: earlier events are reachable by resume only."""
        self.last_delivered = await self._log.head()

    async def stop(self) -> None:
        """Cancel the gap filler."""
        if self._gap_task is not None:
            self._gap_task.cancel()

    @property
    def pending(self) -> int:
        """Events held in memory until the ids before them are delivered (at most `max_pending`)."""
        return len(self._pending)

    def submit(self, events: Iterable[PublishedEvent]) -> None:
        """Accept committed events (any order) and deliver every one that is now in sequence."""
        ready: list[PublishedEvent] = []
        for event in events:
            event_id = event.event_id
            if event_id > self.handed_up_to:
                self.handed_up_to = event_id
            if event_id <= self.last_delivered:
                continue
            if event_id == self.last_delivered + 1:
                # In sequence: out at once, so the bound never holds back the next id (a read-back
                # of a gap, ascending, always gets through however full the heap is).
                self.last_delivered = event_id
                ready.append(event)
                self._pop_in_sequence(ready)
            elif len(self._pending) < self._max_pending:
                heapq.heappush(self._pending, (event_id, event))
            else:
                self.dropped += 1  # committed, so in the log: read back once the ids before it are out
        if ready:
            self._deliver(ready)
        self._schedule_fill()

    async def reach(self, event_id: int, timeout_s: float = 2.0) -> bool:
        """Deliver every committed event up to `event_id` now, reading the log; False if it is not in the log.

        Clustered, a client may have seen `event_id` on a node that is a few milliseconds ahead of
        this one; before it resumes here, this node catches up from the log instead of telling it
        that its position is ahead of the log.
        """
        if event_id <= self.last_delivered:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                if event_id > await self._log.head():
                    return False
                while self.last_delivered < event_id:
                    found = await self._log.read(self.last_delivered, up_to=event_id, limit=1000)
                    if not found:
                        self.skip_to(event_id)  # pruned meanwhile: nothing left to deliver there
                    self.submit(found)
        except Exception as exc:  # TimeoutError, or the database is away: the caller says "not recovered"
            log.warning("dispatcher_catch_up_failed", event_id=event_id, error=type(exc).__name__)
            return False
        return True

    def skip_to(self, event_id: int) -> None:
        """Treat every id up to `event_id` as delivered (retention pruned them before this node saw them)."""
        if event_id > self.last_delivered:
            log.warning("event_range_skipped", after=self.last_delivered, through=event_id)
            self.last_delivered = event_id
            self._drain()

    def _drain(self) -> None:
        ready: list[PublishedEvent] = []
        self._pop_in_sequence(ready)
        if ready:
            self._deliver(ready)
        self._schedule_fill()

    def _pop_in_sequence(self, ready: list[PublishedEvent]) -> None:
        """Move the held events that are now next in sequence to `ready`."""
        pending = self._pending
        while pending and pending[0][0] <= self.last_delivered + 1:
            event_id, event = heapq.heappop(pending)
            if event_id <= self.last_delivered:
                continue
            self.last_delivered = event_id
            ready.append(event)

    def _schedule_fill(self) -> None:
        """Read the missing ids back from the log while anything committed is still undelivered."""
        if (self._pending or self.handed_up_to > self.last_delivered) and (
            self._gap_task is None or self._gap_task.done()
        ):
            self._gap_task = asyncio.get_running_loop().create_task(self._fill_gap())

    def _deliver(self, ready: list[PublishedEvent]) -> None:
        """Hand a run of consecutive events to every sink: all at once to a sink that takes batches."""
        for sink in self._sinks:
            deliver_many = getattr(sink, "deliver_many", None)
            try:
                if deliver_many is not None and len(ready) > 1:
                    deliver_many(ready)
                else:
                    for event in ready:
                        sink.deliver(event)
            except Exception:  # one failing sink must not stall the stream
                log.exception("sink_failed", first_event_id=ready[0].event_id, count=len(ready))

    async def _fill_gap(self) -> None:
        await asyncio.sleep(self._gap_timeout_s)
        while self._pending or self.handed_up_to > self.last_delivered:
            # Up to the first id held in memory, or, with none held, up to the last one handed over.
            missing_up_to = self._pending[0][0] - 1 if self._pending else self.handed_up_to
            if missing_up_to <= self.last_delivered:
                self._drain()
                continue
            try:
                found = await self._log.read(self.last_delivered, up_to=missing_up_to, limit=1000)
            except Exception as exc:  # the database is away: the events wait here, bounded by the log
                log.warning("event_gap_fill_failed", after=self.last_delivered, error=type(exc).__name__)
                await asyncio.sleep(max(self._gap_timeout_s, 0.5))
                continue
            log.warning("event_gap_filled", after=self.last_delivered, count=len(found))
            if not found:
                # The ids were handed out but never committed is impossible with the counter
                # row lock; an empty read means a pruned range, so skip past it.
                self.last_delivered = missing_up_to
            self.submit(found)
