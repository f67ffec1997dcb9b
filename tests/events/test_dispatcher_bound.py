"""The dispatcher's bound on out-of-order events held in memory (docs/delivery.md).

A real dispatcher on a server's real SQLite log: events past the bound are not held, and are read
back from the log in their turn, so the stream stays complete and in order.
"""

from __future__ import annotations

import asyncio

from server.api.keys import EVENT_LOG
from server.events.dispatcher import Dispatcher
from server.events.model import PublishedEvent
from tests.events.test_delivery_gaps import commit_behind_the_dispatcher
from tests.support import RunningServer, wait_until


class RecordingSink:
    """Records what the dispatcher hands over, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def deliver(self, event: PublishedEvent) -> None:
        self.batches.append([event.event_id])

    def deliver_many(self, events: list[PublishedEvent]) -> None:
        self.batches.append([event.event_id for event in events])

    @property
    def ids(self) -> list[int]:
        return [event_id for batch in self.batches for event_id in batch]


async def started_dispatcher(server: RunningServer, max_pending: int) -> tuple[Dispatcher, RecordingSink]:
    dispatcher = Dispatcher(server.app[EVENT_LOG], gap_timeout_s=0.05, max_pending=max_pending)
    sink = RecordingSink()
    dispatcher.add_sink(sink)
    await dispatcher.start()
    return dispatcher, sink


async def test_events_past_the_bound_are_read_back_from_the_log_in_order(server: RunningServer) -> None:
    dispatcher, sink = await started_dispatcher(server, max_pending=5)
    try:
        events = await commit_behind_the_dispatcher(server, 20)
        expected = [event.event_id for event in events]
        # The first id is late; the other 19 arrive newest first (the worst order for a heap).
        dispatcher.submit(reversed(events[1:]))
        assert dispatcher.pending == 5  # never more than the bound
        assert dispatcher.dropped == 14
        assert sink.ids == []  # nothing can go before the first id
        async with asyncio.timeout(10):
            while sink.ids != expected:
                assert len(sink.ids) <= len(expected), sink.ids  # never a repeat
                await asyncio.sleep(0.02)
        assert dispatcher.pending == 0
        assert dispatcher.last_delivered == expected[-1]
        # The late hand-over of the first id changes nothing: it was read back already.
        dispatcher.submit(events[:1])
        assert sink.ids == expected
    finally:
        await dispatcher.stop()


async def test_an_event_in_sequence_passes_a_full_heap_at_once(server: RunningServer) -> None:
    dispatcher, sink = await started_dispatcher(server, max_pending=5)
    try:
        events = await commit_behind_the_dispatcher(server, 20)
        dispatcher.submit(events[15:])  # the five newest fill the heap
        assert dispatcher.pending == 5
        dispatcher.submit(events[:15])  # in sequence: delivered now, with the held five behind them
        assert sink.ids == [event.event_id for event in events]
        assert sink.batches == [sink.ids]  # one run, so the fan-out writes it once per socket
        assert dispatcher.pending == 0 and dispatcher.dropped == 0
    finally:
        await dispatcher.stop()


async def test_a_dropped_tail_is_delivered_with_no_later_event_to_reveal_the_gap(server: RunningServer) -> None:
    dispatcher, sink = await started_dispatcher(server, max_pending=2)
    try:
        events = await commit_behind_the_dispatcher(server, 6)
        dispatcher.submit(events[1:])  # 2 held, 3 dropped; id 1 missing
        assert (dispatcher.pending, dispatcher.dropped) == (2, 3)
        dispatcher.submit(events[:1])  # delivers 1..3 at once; 4..6 are only in the log now
        assert sink.ids == [event.event_id for event in events[:3]]
        await wait_until(lambda: len(sink.ids) >= 6, timeout=10)
        assert sink.ids == [event.event_id for event in events]
    finally:
        await dispatcher.stop()
