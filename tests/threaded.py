"""A real server on its own event loop in a background thread, for sync hypothesis tests.

hypothesis drives synchronous test functions; each example runs its coroutine on the
server's loop with `run(...)`, so one server serves every example of a test module.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tests.support import RunningServer, start_server, test_settings

T = TypeVar("T")


class ThreadedServer:
    """Owns a loop thread with a started server; `run` executes coroutines on that loop."""

    def __init__(self, data_dir: Path, **overrides: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: RunningServer = self.run(start_server(test_settings(data_dir, **overrides)))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run a coroutine on the server loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the server and the loop."""
        self.run(self.server.runner.cleanup())
        self.run(_cancel_pending_tasks())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _cancel_pending_tasks() -> None:
    """Cancel what the server left running (engine.io ping tasks) so the loop closes cleanly."""
    current = asyncio.current_task()
    pending = [task for task in asyncio.all_tasks() if task is not current]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@contextmanager
def threaded_server(data_dir: Path, **overrides: Any) -> Iterator[ThreadedServer]:
    """A ThreadedServer for the duration of the block."""
    running = ThreadedServer(data_dir, **overrides)
    try:
        yield running
    finally:
        running.close()
