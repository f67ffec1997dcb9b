"""The send-timeout half of slow-consumer protection (SPEC §4).

`FanoutManager` bounds each connection's queue by length (`IMMUNE_MAX_QUEUE`). This watchdog
adds the time bound: a connection whose oldest queued message has not been taken by its writer
for `IMMUNE_SEND_TIMEOUT_S` (the writer is stuck on a socket the peer stopped reading) is a slow
consumer too, even when it receives too little to ever fill the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from server.periodic import Periodic
from server.realtime.engine import unsent_bytes
from server.realtime.lean_queue import LeanQueue

SendingView = Callable[[], Iterable[tuple[str, LeanQueue, Any, int]]]
"""(sid, Engine.IO queue, TCP transport or None when polling, frames sent so far) per live connection."""


class SendWatchdog:
    """Calls `on_stalled(sid)` for connections that made no sending progress for `send_timeout_s`.

    No progress: the same message has headed the Engine.IO queue, or bytes written to the
    transport (by the fast path or the writer) have sat there without shrinking, for that long.
    """

    def __init__(self, send_timeout_s: float, sending: SendingView, on_stalled: Callable[[str], None]) -> None:
        self.send_timeout_s = send_timeout_s
        self._sending = sending
        self._on_stalled = on_stalled
        self._heads: dict[str, tuple[Any, float]] = {}
        self._buffers: dict[str, tuple[int, float]] = {}
        # sid → frames sent when its transport was last found drained. Most connections are idle
        # most of the time; while that count has not moved there is nothing new to measure, and
        # the kernel's send queue is not asked (one ioctl per connection per sweep otherwise).
        # Engine.IO pings and acks are not counted: a peer that stops taking those misses its
        # pongs, and Engine.IO's ping timeout ends it.
        self._drained_at: dict[str, int] = {}
        interval = min(max(send_timeout_s / 4, 0.05), 1.0)
        self._periodic = Periodic("send-watchdog", interval, self.sweep)

    def sweep(self, now: float | None = None) -> list[str]:
        """Check every connection once; returns the sids reported as stalled."""
        now = time.monotonic() if now is None else now
        stalled: list[str] = []
        for sid, queue, transport, sent in self._sending():
            if self._queue_stuck(sid, queue, now) or self._transport_stuck(sid, transport, sent, now):
                stalled.append(sid)
                self._heads.pop(sid, None)
                self._buffers.pop(sid, None)
                self._on_stalled(sid)
        return stalled

    def forget(self, sid: str) -> None:
        """Drop what was noted about a connection that has ended."""
        self._heads.pop(sid, None)
        self._buffers.pop(sid, None)
        self._drained_at.pop(sid, None)

    def drained(self) -> set[str]:
        """The sids whose transport was last found drained (not measured again until sent more)."""
        return set(self._drained_at)

    def tracked(self) -> set[str]:
        """The sids the watchdog holds notes on (each ends with its connection, see `forget`)."""
        return self._heads.keys() | self._buffers.keys() | self._drained_at.keys()

    def _queue_stuck(self, sid: str, queue: LeanQueue, now: float) -> bool:
        pending = queue.pending
        if not pending:
            self._heads.pop(sid, None)
            return False
        head = pending[0]
        seen = self._heads.get(sid)
        if seen is None or seen[0] is not head:
            self._heads[sid] = (head, now)
            return False
        return now - seen[1] >= self.send_timeout_s

    def _transport_stuck(self, sid: str, transport: Any, sent: int, now: float) -> bool:
        if transport is None or self._drained_at.get(sid) == sent:
            return False
        buffered = unsent_bytes(transport)
        if not buffered:
            self._buffers.pop(sid, None)
            self._drained_at[sid] = sent
            return False
        self._drained_at.pop(sid, None)
        seen = self._buffers.get(sid)
        if seen is None or buffered < seen[0]:
            self._buffers[sid] = (buffered, now)  # first sight, or the peer is reading: restart
            return False
        return now - seen[1] >= self.send_timeout_s

    def start(self) -> None:
        """Sweep in the background, several times per timeout."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._periodic.stop()
