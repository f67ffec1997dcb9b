"""The send-timeout half of slow-consumer protection (SPEC §4).

`FanoutManager` bounds each connection's queue by length (`IMMUNE_MAX_QUEUE`). This watchdog
adds the time bound: a connection whose oldest queued message has not been taken by its writer
for `IMMUNE_SEND_TIMEOUT_S` (the writer is stuck on a socket the peer stopped reading) is a slow
consumer too, even when it receives too little to ever fill the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from server.periodic import Periodic

QueueView = Callable[[], Iterable[tuple[str, "asyncio.Queue[Any]", int]]]
"""(sid, Engine.IO queue, bytes waiting in the socket's transport) for every live connection."""


class SendWatchdog:
    """Calls `on_stalled(sid)` for connections that made no sending progress for `send_timeout_s`.

    No progress: the same message has headed the Engine.IO queue, or bytes written straight to the
    transport by the fast path have sat there without the buffer shrinking, for that long.
    """

    def __init__(self, send_timeout_s: float, queues: QueueView, on_stalled: Callable[[str], None]) -> None:
        self.send_timeout_s = send_timeout_s
        self._queues = queues
        self._on_stalled = on_stalled
        self._heads: dict[str, tuple[Any, float]] = {}
        self._buffers: dict[str, tuple[int, float]] = {}
        interval = min(max(send_timeout_s / 4, 0.05), 1.0)
        self._periodic = Periodic("send-watchdog", interval, self.sweep)

    def sweep(self, now: float | None = None) -> list[str]:
        """Check every queue once; returns the sids reported as stalled."""
        now = time.monotonic() if now is None else now
        stalled: list[str] = []
        live: set[str] = set()
        for sid, queue, buffered in self._queues():
            live.add(sid)
            if self._queue_stuck(sid, queue, now) or self._buffer_stuck(sid, buffered, now):
                stalled.append(sid)
                self._heads.pop(sid, None)
                self._buffers.pop(sid, None)
                self._on_stalled(sid)
        for gone in self._heads.keys() - live:
            del self._heads[gone]
        for gone in self._buffers.keys() - live:
            del self._buffers[gone]
        return stalled

    def _queue_stuck(self, sid: str, queue: asyncio.Queue[Any], now: float) -> bool:
        pending = queue._queue  # type: ignore[attr-defined]  # the deque behind asyncio.Queue
        if not pending:
            self._heads.pop(sid, None)
            return False
        head = pending[0]
        seen = self._heads.get(sid)
        if seen is None or seen[0] is not head:
            self._heads[sid] = (head, now)
            return False
        return now - seen[1] >= self.send_timeout_s

    def _buffer_stuck(self, sid: str, buffered: int, now: float) -> bool:
        if not buffered:
            self._buffers.pop(sid, None)
            return False
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
