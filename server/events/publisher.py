"""The publisher interface the domain and REST call, backed by the group-commit writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

from server.events.dispatcher import Dispatcher
from server.events.log import EventLog
from server.events.model import PublishedEvent
from server.events.writer import EventSpec, GroupCommitWriter, Work

T = TypeVar("T")


class EventPublisher(Protocol):
    """What a transaction uses to announce a change: `publish(event_type, data, rooms)`."""

    async def publish(
        self, event_type: str, data: Mapping[str, Any], rooms: Sequence[str] = (), *, source: str = "api"
    ) -> PublishedEvent:
        """Record an event; it is emitted if and only if the surrounding change commits."""
        ...


class Publisher:
    """Hands units of work and events to the writer; committed events reach the dispatcher."""

    def __init__(self, writer: GroupCommitWriter, log: EventLog, dispatcher: Dispatcher) -> None:
        self.writer = writer
        self.log = log
        self.dispatcher = dispatcher

    async def transact(self, work: Work[T], *, wait: bool = False) -> T:
        """Run `work` (domain writes plus the events announcing them) in its own savepoint of the next batch.

        The result comes back after the commit that holds it. `wait=False` (a client's request) is
        refused with Overloaded or StoreUnavailable rather than queued without bound.
        """
        return await self.writer.transact(work, wait=wait)

    async def publish(
        self,
        event_type: str,
        data: Mapping[str, Any],
        rooms: Sequence[str] = (),
        *,
        source: str = "api",
        wait: bool = True,
    ) -> PublishedEvent:
        """Publish one event; returns it with its id once committed."""
        (event,) = await self.writer.append([(str(event_type), dict(data), rooms, source)], wait=wait)
        return event

    async def publish_many(self, specs: Sequence[EventSpec], *, wait: bool = False) -> list[PublishedEvent]:
        """Publish several events in one unit: all commit together, with consecutive ids."""
        return await self.writer.append(specs, wait=wait)
