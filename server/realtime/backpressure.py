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

QueueView = Callable[[], Iterable[tuple[str, "asyncio.Queue[Any]"]]]


class SendWatchdog:
    """Calls `on_stalled(sid)` for connections whose queue head waited longer than `send_timeout_s`."""

    def __init__(self, send_timeout_s: float, queues: QueueView, on_stalled: Callable[[str], None]) -> None:
        self.send_timeout_s = send_timeout_s
        self._queues = queues
        self._on_stalled = on_stalled
        self._heads: dict[str, tuple[Any, float]] = {}
        interval = min(max(send_timeout_s / 4, 0.05), 1.0)
        self._periodic = Periodic("send-watchdog", interval, self.sweep)

    def sweep(self, now: float | None = None) -> list[str]:
        """Check every queue once; returns the sids reported as stalled."""
        now = time.monotonic() if now is None else now
        stalled: list[str] = []
        live: set[str] = set()
        for sid, queue in self._queues():
            live.add(sid)
            pending = queue._queue  # type: ignore[attr-defined]  # the deque behind asyncio.Queue
            if not pending:
                self._heads.pop(sid, None)
                continue
            head = pending[0]
            seen = self._heads.get(sid)
            if seen is None or seen[0] is not head:
                self._heads[sid] = (head, now)
            elif now - seen[1] >= self.send_timeout_s:
                stalled.append(sid)
                self._heads.pop(sid, None)
                self._on_stalled(sid)
        for gone in self._heads.keys() - live:
            del self._heads[gone]
        return stalled

    def start(self) -> None:
        """Sweep in the background, several times per timeout."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._periodic.stop()
