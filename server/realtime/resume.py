"""Resume at connect (SPEC §4): replay what a reconnecting client missed, then go live, no gap.

The backlog is read from the durable log while the connect is validated (async), up to the id
the dispatcher had delivered at that moment. Between that read and the moment the connection
joins its rooms (synchronous, in `Activation.activate`) a few more events may be
delivered; they are taken from `RecentEvents`, a short in-memory tail of the dispatched stream,
so the replay ends exactly where live delivery begins.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.realtime.replay_frames import ReplayFrames, ReplayLease

log = structlog.get_logger(__name__)
READ_PAGE = 500
"""Events of a backlog read (and, when not encoded yet, decoded) at once."""
CONCURRENT_PAGE_READS = 2
CAP = "backlog exceeds the replay cap"
"""Events decoded at once while a backlog is read (the rest stays in the database until then)."""


def selects(rooms: Sequence[str], event_types: Sequence[str], event: PublishedEvent) -> bool:
    """The §5 predicate: deployment-wide or in a joined room, and passing the filter."""
    in_scope = not event.rooms or any(room in rooms for room in event.rooms)
    return in_scope and (not event_types or event.event_type in event_types)


class RecentEvents:
    """The last `capacity` dispatched events, in id order (an EventSink)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._events: deque[PublishedEvent] = deque(maxlen=capacity)

    def deliver(self, event: PublishedEvent) -> None:
        """Remember a dispatched event."""
        self._events.append(event)

    def after(self, event_id: int, up_to: int) -> list[PublishedEvent] | None:
        """Events with event_id < id <= up_to, or None when the tail no longer reaches back that far."""
        if up_to <= event_id:
            return []
        if not self._events or self._events[0].event_id > event_id + 1:
            return None
        return [event for event in self._events if event_id < event.event_id <= up_to]


@dataclass(slots=True)
class ResumePlan:
    """What a resuming connection gets: `recovered` and the replay through `through`.

    A recovered plan holds a lease on the shared encoded frames of its backlog; whoever drops
    the plan releases it (the replay was sent, or the connection went away first).
    """

    recovered: bool
    through: int
    lease: ReplayLease | None = None
    reason: str = ""

    @property
    def replayed(self) -> int:
        """How many events the replay holds."""
        return len(self.lease.frames) if self.lease else 0

    def release(self) -> None:
        """Give the frames back (idempotent)."""
        if self.lease is not None:
            self.lease.release()


class ResumePlanner:
    """Decides whether a resume can be honoured and collects its backlog as shared encoded frames.

    The backlog is read page by page and each event pinned as it is read, so a resume never
    holds more than one decoded page and stops as soon as it exceeds the replay cap (events),
    its byte budget or the process's (see `ReplayFrames`).
    """

    def __init__(
        self,
        event_log: EventLog,
        dispatcher: Dispatcher,
        recent: RecentEvents,
        frames: ReplayFrames,
        replay_cap: int,
        replay_max_bytes: int,
    ) -> None:
        self.event_log = event_log
        self.dispatcher = dispatcher
        self.recent = recent
        self.frames = frames
        self.replay_cap = replay_cap
        self.replay_max_bytes = replay_max_bytes
        self._readers = asyncio.Semaphore(CONCURRENT_PAGE_READS)

    async def plan(
        self,
        last_event_id: int,
        epoch: str | None,
        current_epoch: str,
        rooms: Sequence[str],
        event_types: Sequence[str],
    ) -> ResumePlan:
        """Read the backlog after `last_event_id` for this selection, or say why it cannot be replayed."""
        if last_event_id > self.dispatcher.last_delivered:
            # Clustered, the client came from a node ahead of this one: catch up from the log first.
            await self.dispatcher.reach(last_event_id)
        through = self.dispatcher.last_delivered
        if epoch is not None and epoch != current_epoch:
            return ResumePlan(False, through, reason="epoch changed: the log was recreated")
        if last_event_id > through:
            return ResumePlan(False, through, reason="last_event_id is ahead of the log")
        if last_event_id < await self.event_log.pruned_through():
            return ResumePlan(False, through, reason="last_event_id is older than retention")
        lease = ReplayLease(self.frames)
        cursor: int | None = last_event_id
        try:
            while cursor is not None and cursor < through:
                cursor, refused = await self._read_page(lease, cursor, through, rooms, event_types)
                if refused:
                    return ResumePlan(False, through, reason=refused)
        except BaseException:  # a failed read or a cancelled connect must not keep frames pinned
            lease.release()
            raise
        # A retention sweep may have run while the backlog was read: whatever it removed may be
        # missing from the backlog, so only a log still reaching back to `last_event_id` counts.
        if last_event_id < await self.event_log.pruned_through():
            lease.release()
            return ResumePlan(False, through, reason="retention removed part of the backlog while it was read")
        return ResumePlan(True, through, lease)

    def complete(self, plan: ResumePlan, rooms: Sequence[str], event_types: Sequence[str]) -> ResumePlan:
        """At activation: add what was dispatched since the backlog was read (synchronous)."""
        if not plan.recovered or plan.lease is None:
            return plan
        now = self.dispatcher.last_delivered
        tail = self.recent.after(plan.through, now)
        if tail is None:
            log.warning("resume_tail_lost", through=plan.through, now=now)
            plan.release()
            return ResumePlan(False, now, reason="too many events while connecting")
        refused = self._take(plan.lease, [event for event in tail if selects(rooms, event_types, event)])
        if refused:
            return ResumePlan(False, now, reason=refused)
        return ResumePlan(True, now, plan.lease)

    async def _read_page(
        self, lease: ReplayLease, cursor: int, through: int, rooms: Sequence[str], event_types: Sequence[str]
    ) -> tuple[int | None, str | None]:
        """Pin the next page of the backlog into the lease: (the next cursor or None at the end, a refusal).

        Only the ids are read first: events whose frame some other resume already encoded are
        neither read nor decoded again, which is most of them in a reconnect storm.
        """
        # A few pages at a time: decoded events in memory stay bounded, the loop keeps answering
        # others, and in a reconnect storm the resumes behind the first find its frames encoded.
        async with self._readers:
            ids = await self.event_log.read_ids(
                cursor, rooms=list(rooms), event_types=list(event_types), up_to=through, limit=READ_PAGE
            )
            held = self.frames.pin_cached(ids)  # pinned now, so no eviction can take them during the read
            try:
                missing = [event_id for event_id in ids if event_id not in held]
                loaded = {event.event_id: event for event in await self.event_log.read_by_ids(missing)}
            except BaseException:
                self.frames.unpin(list(held.values()))
                raise
        for event_id in ids:
            frame = held.pop(event_id, None)
            if frame is None:
                event = loaded.get(event_id)
                if event is None:  # pruned since its id was read: the retention check catches it
                    continue
                frame = self.frames.pin(event)
            if len(lease.frames) >= self.replay_cap:
                refused: str | None = CAP
                lease.release()
                if frame is not None:
                    self.frames.unpin([frame])
            else:
                refused = lease.add(frame, self.replay_max_bytes)  # on refusal the lease is released
            if refused:
                self.frames.unpin(list(held.values()))
                return None, refused
        return (ids[-1] if len(ids) == READ_PAGE else None), None

    def _take(self, lease: ReplayLease, events: Sequence[PublishedEvent]) -> str | None:
        """Pin in-memory `events` into the lease; on refusal the lease is released and the reason returned."""
        for event in events:
            if len(lease.frames) >= self.replay_cap:
                lease.release()
                return CAP
            refused = lease.add(self.frames.pin(event), self.replay_max_bytes)
            if refused:
                return refused
        return None
