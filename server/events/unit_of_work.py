"""A unit of work: one caller's share of a group-committed transaction, and the events it announces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection

from client_sdk.protocol import utc_now
from server.events.model import PublishedEvent

R = TypeVar("R")


class StagedEvents:
    """The events of one batch, with dense ids after the log's locked head, written at commit."""

    def __init__(self, head: int) -> None:
        self.head = head
        self.events: list[PublishedEvent] = []

    def stage(self, event_type: str, data: dict[str, Any], rooms: Sequence[str], source: str) -> PublishedEvent:
        """Give the event the next id of this batch; it is written, and emitted, only if the batch commits."""
        event = PublishedEvent(
            self.head + len(self.events) + 1, event_type, utc_now(), data, source, tuple(dict.fromkeys(rooms))
        )
        self.events.append(event)
        return event

    def mark(self) -> int:
        """A point to roll back to when a unit fails."""
        return len(self.events)

    def rollback_to(self, mark: int) -> None:
        """Forget what was staged since `mark` (its ids are handed out again, so none is skipped)."""
        del self.events[mark:]


class UnitOfWork(Generic[R]):
    """One caller's writes and events inside the writer's transaction (its own savepoint).

    `repos` holds the repositories bound to that transaction; `conn` is the raw connection, for
    the store's own code (the domain goes through `repos`).
    """

    def __init__(self, conn: AsyncConnection, staged: StagedEvents, repos: R) -> None:
        self.conn = conn
        self.repos = repos
        self._staged = staged
        self.events: list[PublishedEvent] = []

    async def publish(
        self, event_type: str, data: Mapping[str, Any], rooms: Sequence[str] = (), *, source: str = "api"
    ) -> PublishedEvent:
        """Announce a change; the event is emitted if and only if this unit commits."""
        event = self._staged.stage(str(event_type), dict(data), rooms, source)
        self.events.append(event)
        return event
