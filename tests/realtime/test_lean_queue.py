"""LeanQueue behaves like asyncio.Queue for every call Engine.IO makes on it."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.realtime.lean_queue import MAX_PACKETS_PER_POLL, LeanQueue

OPS = st.lists(st.one_of(st.integers(0, 99), st.just("get"), st.just("done")), max_size=60)


@given(OPS)
def test_same_results_as_asyncio_queue_for_any_sequence_of_calls(ops: list[int | str]) -> None:
    async def run(queue: asyncio.Queue[int] | LeanQueue) -> list[object]:
        seen: list[object] = []
        for op in ops:
            try:
                if op == "get":
                    seen.append(queue.get_nowait())
                elif op == "done":
                    queue.task_done()
                    seen.append("done")
                else:
                    assert isinstance(op, int)
                    queue.put_nowait(op)
            except asyncio.QueueEmpty:
                seen.append("empty")
            except ValueError:
                seen.append("too many task_done")
            seen.append(queue.qsize())
        return seen

    async def both() -> None:
        assert await run(LeanQueue()) == await run(asyncio.Queue())

    asyncio.run(both())


async def test_a_parked_reader_gets_items_in_order() -> None:
    queue = LeanQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert queue.readers and not queue.pending  # what the fan-out's fast path looks for
    queue.put_nowait("a")
    queue.put_nowait("b")
    assert await reader == "a"
    assert not queue.readers and queue.pending == ["b"]
    assert await queue.get() == "b"


async def test_a_reader_that_times_out_no_longer_looks_parked_and_loses_nothing() -> None:
    queue = LeanQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    assert not queue.readers
    queue.put_nowait("kept")
    assert queue.get_nowait() == "kept"


async def test_join_waits_for_every_item_to_be_done() -> None:
    queue = LeanQueue()
    await asyncio.wait_for(queue.join(), 1)  # nothing put: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.ensure_future(queue.join())
    assert queue.get_nowait() == 1
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    assert await queue.get() == 2
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    queue.put_nowait(3)  # a later put makes join wait again
    rejoined = asyncio.ensure_future(queue.join())
    await asyncio.sleep(0)
    assert not rejoined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(rejoined, 1)


def test_bounded_queues_are_refused() -> None:
    with pytest.raises(ValueError, match="unbounded"):
        LeanQueue(maxsize=10)


class _Packet:
    def __init__(self, size: int) -> None:
        self.data = "x" * size


async def test_one_poll_takes_at_most_a_batch_of_bytes_and_the_rest_waits() -> None:
    """A long-polling response never copies a whole multi-megabyte replay at once."""
    queue = LeanQueue()
    packets = [_Packet(600_000) for _ in range(3)]
    for packet in packets:
        queue.put_nowait(packet)
    assert await queue.get() is packets[0]
    assert queue.get_nowait() is packets[1]  # 1.2 MB taken: this batch is full
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    assert queue.qsize() == 1
    assert await queue.get() is packets[2]  # the next poll


class _Bulk(_Packet):
    bulk = True


async def test_bulk_items_do_not_count_as_live_ones() -> None:
    queue = LeanQueue()
    queue.put_nowait(_Packet(1))
    queue.put_bulk([_Bulk(1), _Bulk(1)])
    queue.put_nowait(_Packet(1))
    assert queue.qsize() == 4 and queue.live_size() == 2
    await queue.get()
    queue.get_nowait()
    assert queue.live_size() == 1
    queue.get_nowait()
    queue.get_nowait()
    assert queue.qsize() == 0 and queue.live_size() == 0
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.put_bulk([_Bulk(1)])  # handed straight to the parked reader
    await reader
    assert queue.live_size() == 0


async def test_one_drain_takes_at_most_what_a_python_engineio_client_accepts() -> None:
    """python-engineio's client refuses a polling payload of more than 16 packets."""
    queue = LeanQueue()
    for n in range(40):
        queue.put_nowait(n)
    drains: list[list[int]] = []
    while not queue.empty():
        batch = [await queue.get()]
        while True:
            try:
                batch.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        drains.append(batch)
    assert [len(batch) for batch in drains] == [MAX_PACKETS_PER_POLL, MAX_PACKETS_PER_POLL, 8]
    assert [n for batch in drains for n in batch] == list(range(40))
