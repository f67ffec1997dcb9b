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


class SendProgress:
    """What the watchdog last saw of one connection's sending; it ends with the connection."""

    __slots__ = ("buffered", "drained_at", "head")

    def __init__(self) -> None:
        self.head: tuple[Any, float] | None = None  # the message heading its queue, first seen when
        self.buffered: tuple[int, float] | None = None  # bytes its transport held, when they last shrank
        # Frames sent when its transport was last found drained. Most connections are idle most of
        # the time; while that count has not moved there is nothing new to measure, and the
        # kernel's send queue is not asked (one ioctl per connection per sweep otherwise).
        # Engine.IO pings and acks are not counted: a peer that stops taking those misses its
        # pongs, and Engine.IO's ping timeout ends it.
        self.drained_at: int | None = None


class SendWatchdog:
    """Calls `on_stalled(sid)` for connections that made no sending progress for `send_timeout_s`.

    No progress: the same message has headed the Engine.IO queue, or bytes written to the
    transport (by the fast path or the writer) have sat there without shrinking, for that long.
    """

    def __init__(self, send_timeout_s: float, sending: SendingView, on_stalled: Callable[[str], None]) -> None:
        self.send_timeout_s = send_timeout_s
        self._sending = sending
        self._on_stalled = on_stalled
        self._progress: dict[str, SendProgress] = {}  # sid → its notes, dropped at once by `forget`
        interval = min(max(send_timeout_s / 4, 0.05), 1.0)
        self._periodic = Periodic("send-watchdog", interval, self.sweep)

    def sweep(self, now: float | None = None) -> list[str]:
        """Check every connection once; returns the sids reported as stalled."""
        now = time.monotonic() if now is None else now
        stalled: list[str] = []
        notes = self._progress
        for sid, queue, transport, sent in self._sending():
            progress = notes.get(sid)
            if progress is None:
                progress = notes[sid] = SendProgress()
            if self._queue_stuck(progress, queue, now) or self._transport_stuck(progress, transport, sent, now):
                stalled.append(sid)
                progress.head = progress.buffered = None
                self._on_stalled(sid)
        return stalled

    def forget(self, sid: str) -> None:
        """Drop what was noted about a connection that has ended."""
        self._progress.pop(sid, None)

    def drained(self) -> set[str]:
        """The sids whose transport was last found drained (not measured again until sent more)."""
        return {sid for sid, progress in self._progress.items() if progress.drained_at is not None}

    def tracked(self) -> set[str]:
        """The sids the watchdog holds notes on (each ends with its connection, see `forget`)."""
        return set(self._progress)

    def _queue_stuck(self, progress: SendProgress, queue: LeanQueue, now: float) -> bool:
        pending = queue.pending
        if not pending:
            progress.head = None
            return False
        head = pending[0]
        seen = progress.head
        if seen is None or seen[0] is not head:
            progress.head = (head, now)
            return False
        return now - seen[1] >= self.send_timeout_s

    def _transport_stuck(self, progress: SendProgress, transport: Any, sent: int, now: float) -> bool:
        if transport is None or progress.drained_at == sent:
            return False
        buffered = unsent_bytes(transport)
        if not buffered:
            progress.buffered = None
            progress.drained_at = sent
            return False
        progress.drained_at = None
        seen = progress.buffered
        if seen is None or buffered < seen[0]:
            progress.buffered = (buffered, now)  # first sight, or the peer is reading: restart
            return False
        return now - seen[1] >= self.send_timeout_s

    def start(self) -> None:
        """Sweep in the background, several times per timeout."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._periodic.stop()
