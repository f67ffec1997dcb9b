"""A background job run every few seconds; one shape for every periodic task of the server."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger(__name__)


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
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
