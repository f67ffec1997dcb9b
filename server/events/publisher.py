"""The publisher interface the domain and REST call, and its transactional implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.store.db import Database


class EventPublisher(Protocol):
    """What a transaction uses to announce a change: `publish(event_type, data, rooms)`."""

    async def publish(
        self, event_type: str, data: Mapping[str, Any], rooms: Sequence[str] = (), *, source: str = "api"
    ) -> PublishedEvent:
        """Record an event; it is emitted if and only if the surrounding change commits."""
        ...


class UnitOfWork:
    """One database transaction: domain writes plus the events that announce them."""

    def __init__(self, conn: AsyncConnection, log: EventLog) -> None:
        self.conn = conn
        self._log = log
        self.events: list[PublishedEvent] = []

    async def publish(
        self, event_type: str, data: Mapping[str, Any], rooms: Sequence[str] = (), *, source: str = "api"
    ) -> PublishedEvent:
        """Append the event to the log in this transaction; dispatched after commit."""
        event = await self._log.append(self.conn, str(event_type), dict(data), rooms, source)
        self.events.append(event)
        return event


class Publisher:
    """Opens units of work and hands committed events to the dispatcher."""

    def __init__(self, db: Database, log: EventLog, dispatcher: Dispatcher) -> None:
        self.db = db
        self.log = log
        self.dispatcher = dispatcher

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """A transaction whose events are dispatched once, and only if, it commits."""
        async with self.db.transaction() as conn:
            uow = UnitOfWork(conn, self.log)
            yield uow
        # Reached only after a successful commit. A crash right here loses no event: it is
        # in the log, so resuming clients replay it and the dispatcher's gap check fetches it.
        self.dispatcher.submit(uow.events)

    async def publish(
        self, event_type: str, data: Mapping[str, Any], rooms: Sequence[str] = (), *, source: str = "api"
    ) -> PublishedEvent:
        """Publish one event in its own transaction."""
        async with self.unit_of_work() as uow:
            return await uow.publish(event_type, data, rooms, source=source)
