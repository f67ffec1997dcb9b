"""Stopping background tasks: a stop() returns even when a task lost its first cancellation.

On Python 3.11, `asyncio.wait_for` returns the awaited result instead of raising CancelledError
when the cancellation arrives just as that result is ready. A loop that catches only `Exception`
then goes on, and a stop() that cancels once and waits would wait forever (seen as a hang in the
Redis carrier's and the cluster presence's stop under load).
"""

from __future__ import annotations

import asyncio
import contextlib

from server.periodic import Periodic, cancel_and_wait


async def test_stop_ends_a_job_whose_wait_for_lost_the_cancellation() -> None:
    loop = asyncio.get_running_loop()
    gate: asyncio.Future[None] = loop.create_future()
    waiting = asyncio.Event()

    async def job() -> None:
        waiting.set()
        await asyncio.wait_for(gate, 10)  # finished as stop() cancels: on 3.11 it returns, the cancel is lost
        await asyncio.sleep(10)  # ...and the job goes on as if nothing happened

    periodic = Periodic("stubborn", 0.01, job, run_first=True)
    periodic.start()
    await asyncio.wait_for(waiting.wait(), 5)
    gate.set_result(None)  # the awaited result is ready in the same turn of the loop as the cancel
    stopping = asyncio.create_task(periodic.stop())
    try:
        done, _ = await asyncio.wait({stopping}, timeout=5)  # a hang bound
        assert done, "stop() is still waiting for a job that lost its cancellation"
    finally:
        stopping.cancel()  # (after a failure) cancelling stop() also cancels the job it waits for


async def test_cancel_and_wait_ends_every_task_even_one_that_swallows_a_cancel() -> None:
    async def swallows_once() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # what a lost cancellation looks like from outside
            await asyncio.sleep(10)
        await asyncio.sleep(10)

    async def fails() -> None:
        raise RuntimeError("ended with its own error")

    tasks = [asyncio.create_task(swallows_once()), asyncio.create_task(asyncio.sleep(10)), asyncio.create_task(fails())]
    await asyncio.sleep(0)  # every task has started
    stopping = asyncio.create_task(cancel_and_wait(*tasks))
    try:
        done, _ = await asyncio.wait({stopping}, timeout=5)  # a hang bound
        assert done and all(task.done() for task in tasks)
    finally:
        for task in [stopping, *tasks]:
            task.cancel()
