"""Engine.IO's per-socket outgoing queue in a fraction of `asyncio.Queue`'s memory.

Every connection owns one. `asyncio.Queue` costs about 3 KB even when empty (three deques and an
Event), and Engine.IO's writer awaits `asyncio.wait_for(queue.get(), …)`, which wraps the `get()`
coroutine in a Task per wait. This queue keeps the same behaviour for the calls Engine.IO makes
(`put`, `put_nowait`, `get`, `get_nowait`, `task_done`, `join`, `qsize`, `empty`), with plain
lists, and its `get()` returns a Future, which `wait_for` awaits without a Task.

Two of its lists are public, for the fan-out's fast path (a frame may go straight to the
transport only while a reader is parked and nothing waits) and the send watchdog (the head of
the queue): `pending`, the items waiting, and `readers`, the futures of parked readers. Read
them; only the queue's methods change them.

Engine.IO's `poll()` takes one item with `get()` and then everything else with `get_nowait()`,
and a long-polling GET answers all of it in one response body, encoded for that connection
alone. A queued replay can hold megabytes of frames shared with other connections; so that one
response never copies all of them, `get_nowait()` reports the queue empty once the items taken
since the last `get()` hold `MAX_BATCH_BYTES` or number `MAX_PACKETS_PER_POLL`: the rest goes in
the next poll (or, on a WebSocket, the writer's next round).
"""

from __future__ import annotations

import asyncio
from typing import Any

MAX_BATCH_BYTES = 1 << 20
"""Payload bytes one `poll()` takes from the queue (at least one item, whatever its size)."""

MAX_PACKETS_PER_POLL = 16
"""Most packets Engine.IO takes in one drain (one long-polling response, one WebSocket send round).

python-engineio's client refuses a polling payload of more than 16 packets (`Payload.
max_decode_packets`) and drops the connection; group commit hands the fan-out many events at once,
so one poll could otherwise hold hundreds. The rest go in the next response, in order.
"""


def _size(item: Any) -> int:
    data = getattr(item, "data", None)
    return len(data) if isinstance(data, str | bytes) else 16


class LeanQueue:
    """An unbounded FIFO with asyncio.Queue's interface, as Engine.IO uses it."""

    __slots__ = ("_batch", "_bulk", "_drained", "_finished", "_unfinished", "pending", "readers")

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize:
            raise ValueError("LeanQueue is unbounded; the fan-out bounds it (IMMUNE_MAX_QUEUE)")
        self.pending: list[Any] = []
        self.readers: list[asyncio.Future[Any]] = []
        self._unfinished = 0
        self._finished: asyncio.Event | None = None  # made on the first join() that must wait
        self._batch = 0  # payload bytes taken since the last get()
        self._drained = 0  # items taken since the last `get`: Engine.IO's poll is one get, then get_nowait
        self._bulk = 0  # queued items put with `put_bulk` (a replay), not counted by `live_size`

    def qsize(self) -> int:
        """Items waiting."""
        return len(self.pending)

    def live_size(self) -> int:
        """Items waiting that were not put as bulk: what the live queue bound (`max_queue`) counts."""
        return len(self.pending) - self._bulk

    def put_bulk(self, items: list[Any]) -> None:
        """Queue a replay in order behind what is queued, outside the live count.

        Items must have a true `bulk` attribute, so that taking one decrements the count.
        """
        for item in items:
            self.put_nowait(item)
            if self.pending and self.pending[-1] is item:  # not handed straight to a parked reader
                self._bulk += 1

    def empty(self) -> bool:
        """True when no item waits."""
        return not self.pending

    def full(self) -> bool:
        """Never: the queue is unbounded."""
        return False

    def put_nowait(self, item: Any) -> None:
        """Hand the item to the oldest parked reader, or queue it."""
        self._unfinished += 1
        if self._finished is not None:
            self._finished.clear()
        while self.readers:
            getter = self.readers.pop(0)
            if not getter.done():
                getter.set_result(item)
                self._batch = _size(item)
                self._drained = 1
                return
        self.pending.append(item)

    async def put(self, item: Any) -> None:
        """Same as `put_nowait` (there is no bound to wait for)."""
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        """The oldest item; raises `asyncio.QueueEmpty` when there is none or this drain is full."""
        if not self.pending:
            self._batch = 0
            raise asyncio.QueueEmpty
        if self._batch >= MAX_BATCH_BYTES or self._drained >= MAX_PACKETS_PER_POLL:
            raise asyncio.QueueEmpty
        item = self._take()
        self._batch += _size(item)
        self._drained += 1
        return item

    def get(self) -> asyncio.Future[Any]:
        """A future for the oldest item (already resolved when one waits)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.pending:
            item = self._take()
            self._batch = _size(item)
            self._drained = 1
            future.set_result(item)
        else:
            self.readers.append(future)
            future.add_done_callback(self._forget_getter)
        return future

    def _take(self) -> Any:
        item = self.pending.pop(0)
        if self._bulk and getattr(item, "bulk", False):
            self._bulk -= 1
        return item

    def _forget_getter(self, future: asyncio.Future[Any]) -> None:
        # A reader that gave up (wait_for timed out, task cancelled) must not look parked.
        if future.cancelled() and future in self.readers:
            self.readers.remove(future)

    def task_done(self) -> None:
        """Mark one item taken by `get` as processed (for `join`)."""
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._finished is not None:
            self._finished.set()

    async def join(self) -> None:
        """Wait until every item put has been marked done."""
        if self._unfinished:
            if self._finished is None:
                self._finished = asyncio.Event()
            await self._finished.wait()
