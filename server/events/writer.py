"""The single writer: group commit of every ready unit of work, one savepoint each (SPEC §4, §6).

Publishers queue units; the writer takes every unit that is ready, runs them one after another in
one transaction (a savepoint each, so a failing unit rolls back alone), writes their events with
dense ids after the log's locked head, commits once, answers each caller, then hands the events to
the dispatcher. One commit (one fsync) is shared by the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.events.dispatcher import CommittedSink
from server.events.errors import Overloaded, StoreUnavailable
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.events.unit_of_work import StagedEvents, UnitOfWork
from server.periodic import cancel_and_wait

log = structlog.get_logger(__name__)

T = TypeVar("T")
Work = Callable[[UnitOfWork[Any]], Awaitable[T]]
EventSpec = tuple[str, dict[str, Any], Sequence[str], str]
"""(event_type, data, rooms, source) of an event published without other writes."""


class WriteTarget(Protocol):
    """The database the writer commits to (the store's `Database`): its engine and write lock."""

    @property
    def engine(self) -> AsyncEngine:
        """The SQLAlchemy engine the writer takes its own connection from."""
        ...

    def write_lock(self) -> AbstractAsyncContextManager[None]:
        """Held around each commit, so this process's writes never contend with each other."""
        ...


class BatchAppender(Protocol):
    """A fast path for batches of events only (the store's SQLite appender): lock, append, commit."""

    async def append(self, stage: Callable[[int], list[PublishedEvent]]) -> list[PublishedEvent]:
        """Lock the log, let `stage(head)` build the events with their ids, write them and commit."""
        ...

    async def close(self) -> None:
        """Release the appender's connection."""
        ...


MAX_BATCH_EVENTS = 5000
"""A batch stops taking units once this many events are planned (bounds one transaction's size)."""


@dataclass(eq=False, slots=True)
class _Unit:
    work: Work[Any] | None
    appends: Sequence[EventSpec]
    future: asyncio.Future[Any]
    deadline: float | None
    started: bool = False
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.appends) if self.work is None else 1


class GroupCommitWriter:
    """Owns every write of the event log and the domain tables; one transaction per batch of units."""

    def __init__(
        self,
        db: WriteTarget,
        event_log: EventLog,
        dispatcher: CommittedSink,
        *,
        queue_max: int,
        admission_timeout_s: float,
        repositories: Callable[[AsyncConnection], Any] = lambda conn: None,
        appender: BatchAppender | None = None,
        probe_interval_s: float = 1.0,
    ) -> None:
        self._repositories = repositories
        self._conn: AsyncConnection | None = None
        self._db = db
        self._appender = appender
        self._log = event_log
        self._dispatcher = dispatcher
        self._queue: asyncio.Queue[_Unit] = asyncio.Queue(queue_max)
        self._admission_timeout_s = admission_timeout_s
        self._probe_interval_s = probe_interval_s
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.unavailable_reason: str | None = None
        """Why the last write failed to commit; None while writes commit."""
        self.batches = 0

    @property
    def queue_max(self) -> int:
        """Units that may wait; a REST write past this is refused as overloaded."""
        return self._queue.maxsize

    def start(self) -> None:
        """Begin taking units."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-writer")

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Commit what is queued (bounded), then stop; a unit still queued is refused."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), drain_timeout_s)
        if self._task is not None:
            await cancel_and_wait(self._task)
        while not self._queue.empty():
            unit = self._queue.get_nowait()
            if not unit.future.done():
                unit.future.set_exception(StoreUnavailable("the server is shutting down"))
        if self._appender is not None:
            await self._appender.close()
        await self._discard_connection()

    async def transact(self, work: Work[T], *, wait: bool) -> T:
        """Run `work` in the next batch; its result once that batch committed.

        `wait=False` (a client's request) is refused at once when the queue is full or the database
        cannot commit, and after `admission_timeout_s` if the writer has not taken it; `wait=True`
        (the server's own jobs) waits for room and for the writer.
        """
        result: T = await self._submit(_Unit(work, (), self._new_future(), self._deadline(wait)), wait)
        return result

    async def append(self, specs: Sequence[EventSpec], *, wait: bool) -> list[PublishedEvent]:
        """Publish events that go with no other write; their ids once committed."""
        events: list[PublishedEvent] = await self._submit(
            _Unit(None, specs, self._new_future(), self._deadline(wait)), wait
        )
        return events

    def _new_future(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # A caller that went away never reads its outcome; mark it read so asyncio does not log it.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        return future

    def _deadline(self, wait: bool) -> float | None:
        return None if wait else asyncio.get_running_loop().time() + self._admission_timeout_s

    async def _submit(self, unit: _Unit, wait: bool) -> Any:
        if self._task is not None and asyncio.current_task() is self._task:
            # A unit that queued another would wait for the writer that is running it, forever.
            raise RuntimeError("a unit of work cannot start another; publish through uow.publish")
        if self._closing:
            raise StoreUnavailable("the server is shutting down")
        if wait:
            await self._queue.put(unit)
            return await unit.future
        if self.unavailable_reason is not None:
            raise StoreUnavailable(f"the database cannot commit: {self.unavailable_reason}")
        try:
            self._queue.put_nowait(unit)
        except asyncio.QueueFull:
            raise Overloaded(f"the write queue is full ({self.queue_max} writes waiting)") from None
        assert unit.deadline is not None
        # A timer instead of wait_for(shield(...)): no task or extra future per request.
        timer = asyncio.get_running_loop().call_at(unit.deadline, self._not_taken_in_time, unit)
        try:
            return await unit.future
        finally:
            timer.cancel()

    def _not_taken_in_time(self, unit: _Unit) -> None:
        # Once the writer has started a unit it is in a transaction: its outcome is the only
        # honest answer, so only a unit still waiting in the queue is refused.
        if not unit.started and not unit.future.done():
            unit.future.set_exception(
                StoreUnavailable(f"the database did not take the write within {self._admission_timeout_s:g} s")
            )

    async def _run(self) -> None:
        while True:
            if self.unavailable_reason is None:
                first = await self._queue.get()
            else:
                try:
                    first = await asyncio.wait_for(self._queue.get(), self._probe_interval_s)
                except TimeoutError:
                    await self._commit([])  # a probe: does a transaction commit again?
                    continue
            units, planned = [first], first.size
            while planned < MAX_BATCH_EVENTS and not self._queue.empty():
                unit = self._queue.get_nowait()
                units.append(unit)
                planned += unit.size
            try:
                await self._commit(units)
            finally:
                for _ in units:
                    self._queue.task_done()

    async def _commit(self, units: list[_Unit]) -> None:
        now = asyncio.get_running_loop().time()
        live: list[_Unit] = []
        for unit in units:
            if unit.future.done():  # the caller gave up before the writer reached it
                continue
            if unit.deadline is not None and now > unit.deadline:
                unit.future.set_exception(StoreUnavailable("the database did not take the write in time"))
                continue
            unit.started = True
            live.append(unit)
        if units and not live:
            return
        outcomes: list[tuple[_Unit, BaseException | None, Any]] = []
        try:
            if self._appender is not None and live and all(unit.work is None for unit in live):
                events = await self._commit_appends(self._appender, live, outcomes)
            else:
                events = await self._commit_units(live, outcomes)
        except asyncio.CancelledError:
            for unit in live:
                if not unit.future.done():
                    unit.future.set_exception(StoreUnavailable("the server is shutting down"))
            raise
        except Exception as exc:
            self._batch_failed(live, outcomes, exc)
            return
        self.batches += 1
        if self.unavailable_reason is not None:
            log.info("writes_recovered", after=self.unavailable_reason)
            self.unavailable_reason = None
        for unit, error, value in outcomes:
            if unit.future.done():
                continue
            if error is None:
                unit.future.set_result(value)
            else:
                unit.future.set_exception(error)
        self._dispatcher.submit(events)

    async def _commit_units(
        self, live: list[_Unit], outcomes: list[tuple[_Unit, BaseException | None, Any]]
    ) -> list[PublishedEvent]:
        """The general path: each unit in a savepoint of one SQLAlchemy transaction."""
        async with self._db.write_lock():
            conn = await self._connection()
            try:
                return await self._commit_on(conn, live, outcomes)
            except BaseException:
                # The connection's state is unknown (broken, mid-transaction): never reuse it.
                await self._discard_connection()
                raise

    async def _commit_on(
        self, conn: AsyncConnection, live: list[_Unit], outcomes: list[tuple[_Unit, BaseException | None, Any]]
    ) -> list[PublishedEvent]:
        """Lock the log, run each unit (in a savepoint when it shares the batch), write the events, commit."""
        staged = StagedEvents(await self._log.lock_head(conn))
        # A unit alone in its batch needs no savepoint: if it fails, the whole transaction
        # (holding nothing else) rolls back.
        isolate = len(live) > 1
        for unit in live:
            outcomes.append(await self._run_unit(conn, staged, unit, isolate))
        if not isolate and outcomes and outcomes[0][1] is not None:
            await conn.rollback()
            return []
        if staged.events:
            await self._log.write(conn, staged.events)
        await conn.commit()
        return staged.events

    async def _commit_appends(
        self, appender: BatchAppender, live: list[_Unit], outcomes: list[tuple[_Unit, BaseException | None, Any]]
    ) -> list[PublishedEvent]:
        """The SQLite fast path for a batch of events only: lock, append and commit in one thread hop."""
        per_unit: list[list[PublishedEvent]] = []

        def stage(head: int) -> list[PublishedEvent]:
            staged = StagedEvents(head)
            per_unit[:] = [[staged.stage(*spec) for spec in unit.appends] for unit in live]
            return staged.events

        async with self._db.write_lock():
            events = await appender.append(stage)
        outcomes.extend((unit, None, unit_events) for unit, unit_events in zip(live, per_unit, strict=True))
        return events

    async def _run_unit(
        self, conn: AsyncConnection, staged: StagedEvents, unit: _Unit, isolate: bool
    ) -> tuple[_Unit, Any, Any]:
        if unit.work is None:
            return unit, None, [staged.stage(*spec) for spec in unit.appends]
        mark = staged.mark()
        savepoint = await conn.begin_nested() if isolate else None
        try:
            value = await unit.work(UnitOfWork(conn, staged, self._repositories(conn)))
        except Exception as exc:
            if savepoint is not None:
                await savepoint.rollback()
            staged.rollback_to(mark)
            return unit, _refusal(exc), None
        if savepoint is not None:
            await savepoint.commit()
        return unit, None, value

    async def _connection(self) -> AsyncConnection:
        """The writer's own connection, kept between batches: no pool checkout, ping or reset per batch."""
        if self._conn is None:
            self._conn = await self._db.engine.connect()
        return self._conn

    async def _discard_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    def _batch_failed(
        self, live: list[_Unit], outcomes: list[tuple[_Unit, BaseException | None, Any]], exc: Exception
    ) -> None:
        reason = _describe(exc)
        if self.unavailable_reason != reason:
            log.error("writes_failing", reason=reason, units=len(live), error=type(exc).__name__)
        self.unavailable_reason = reason
        # A unit that failed on its own keeps its own error (it would not have committed anyway).
        own = {id(unit): error for unit, error, _ in outcomes if error is not None}
        refusal = StoreUnavailable(f"the database cannot commit: {reason}")
        for unit in live:
            if not unit.future.done():
                unit.future.set_exception(own.get(id(unit)) or refusal)


def _refusal(exc: Exception) -> BaseException:
    """A unit's own failure as its caller should see it: a database fault is `unavailable`."""
    if isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError):
        return StoreUnavailable(f"the database cannot commit: {_describe(exc)}")
    return exc


def _describe(exc: BaseException) -> str:
    """A short, stable reason (the driver's message without SQL or parameters)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig).splitlines()[0][:200] or type(exc.orig).__name__
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]
