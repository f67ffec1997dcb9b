"""A background job run every few seconds; one shape for every periodic task of the server."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel each task and wait until it has ended, cancelling again if it lost the cancellation.

    On Python 3.11 `asyncio.wait_for` returns the awaited result instead of raising CancelledError
    when both are ready in the same turn of the loop; a loop that catches only Exception then goes
    on, and waiting after a single cancel would wait forever.
    """
    for task in tasks:
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if not task.cancelled():
            task.exception()  # retrieved (the task ended with its own error): we are stopping anyway


class Periodic:
    """Runs `job` (sync or async) every `interval_s`; a failing round is logged and retried next time."""

    def __init__(self, name: str, interval_s: float, job: Callable[[], Any], run_first: bool = False) -> None:
        self.name = name
        self.interval_s = interval_s
        self.job = job
        self.run_first = run_first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin running in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Stop and wait for the task to end."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def _run(self) -> None:
        if not self.run_first:
            await asyncio.sleep(self.interval_s)
        while True:
            try:
                result = self.job()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("periodic_job_failed", job=self.name)
            await asyncio.sleep(self.interval_s)
