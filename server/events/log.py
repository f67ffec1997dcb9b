"""The event log's interface: what the writer, the dispatcher, resume and retention use (SPEC §4)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from server.events.model import PublishedEvent


class EventLog(Protocol):
    """An append-only log with dense, commit-ordered ids, an epoch and bounded retention."""

    async def lock_head(self, conn: Any) -> int:
        """In the writer's transaction: lock the log against other writers and return the newest id."""
        ...

    async def write(self, conn: Any, staged: Sequence[PublishedEvent]) -> None:
        """In the writer's transaction: store events whose ids follow the locked head."""
        ...

    async def head(self) -> int:
        """The newest committed event id (0 for an empty log)."""
        ...

    async def epoch(self) -> str:
        """The log's epoch, fixed when the log was created."""
        ...

    async def pruned_through(self) -> int:
        """Ids up to this one may have been removed by retention."""
        ...

    async def read(
        self,
        after: int,
        *,
        rooms: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        up_to: int | None = None,
        limit: int = 1000,
    ) -> list[PublishedEvent]:
        """Events with id > after (and <= up_to), in id order, optionally for rooms and types."""
        ...

    async def read_ids(
        self,
        after: int,
        *,
        rooms: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        up_to: int | None = None,
        limit: int = 1000,
    ) -> list[int]:
        """The ids `read` would return, without reading or decoding the events themselves."""
        ...

    async def read_by_ids(self, ids: Sequence[int]) -> list[PublishedEvent]:
        """These events (those still in the log), in id order."""
        ...

    async def prune(self, keep_count: int, max_age_s: float) -> int:
        """Apply retention by count and age; returns how many events were removed."""
        ...
