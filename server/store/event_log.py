"""The durable event log on SQLAlchemy (SQLite or PostgreSQL): the `EventLog` of server/events/log.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from client_sdk.protocol import utc_now
from server.events.model import BROADCAST_ROOM, PublishedEvent
from server.store.db import Database
from server.store.tables import event_rooms, events, log_meta

# Built once: constructing and cache-keying a statement per batch costs more than running it.
# Writing the row to itself takes its lock (PostgreSQL) or the write lock (SQLite).
_LOCK_HEAD = (
    update(log_meta)
    .where(log_meta.c.id == 1)
    .values(last_event_id=log_meta.c.last_event_id)
    .returning(log_meta.c.last_event_id)
)
_SET_HEAD = update(log_meta).where(log_meta.c.id == 1).values(last_event_id=bindparam("head"))
_INSERT_EVENT = insert(events)
_INSERT_EVENT_ROOM = insert(event_rooms)


class SqlEventLog:
    """Append-only log with dense, commit-ordered ids (SPEC §4), in the `events` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._epoch: str | None = None

    async def lock_head(self, conn: AsyncConnection) -> int:
        """Take the counter row's lock for this transaction and return the newest id.

        Held until commit, so concurrent writers (other nodes on PostgreSQL) append one batch at a
        time and ids are handed out in commit order, without gaps.
        """
        return int((await conn.execute(_LOCK_HEAD)).scalar_one())

    async def write(self, conn: AsyncConnection, staged: Sequence[PublishedEvent]) -> None:
        """Insert staged events (dense ids after the locked head) and move the counter past them."""
        await conn.execute(
            _INSERT_EVENT,
            [
                {
                    "id": event.event_id,
                    "event_type": event.event_type,
                    "room": event.room,
                    "rooms": list(event.rooms),
                    "data": event.data,
                    "source": event.source,
                    "created_at": event.timestamp,
                }
                for event in staged
            ],
        )
        await conn.execute(
            _INSERT_EVENT_ROOM,
            [
                {"room": room, "event_id": event.event_id}
                for event in staged
                for room in (event.rooms or (BROADCAST_ROOM,))
            ],
        )
        await conn.execute(_SET_HEAD, {"head": staged[-1].event_id})

    async def head(self) -> int:
        """The newest committed event id (0 for an empty log)."""
        async with self.db.read() as conn:
            return int((await conn.execute(select(log_meta.c.last_event_id))).scalar_one())

    async def epoch(self) -> str:
        """The log's epoch, fixed when the log was created."""
        if self._epoch is None:
            async with self.db.read() as conn:
                self._epoch = str((await conn.execute(select(log_meta.c.epoch))).scalar_one())
        return self._epoch

    async def pruned_through(self) -> int:
        """Ids up to this one may have been removed by retention."""
        async with self.db.read() as conn:
            return int((await conn.execute(select(log_meta.c.pruned_through))).scalar_one())

    async def read(
        self,
        after: int,
        *,
        rooms: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        up_to: int | None = None,
        limit: int = 1000,
    ) -> list[PublishedEvent]:
        """Events with id > after (and <= up_to), in id order, optionally for rooms and types.

        `rooms` selects events published to any of them or deployment-wide; None means all.
        """
        query = _selection(select(events), after, rooms, event_types, up_to, limit)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row_to_event(row) for row in rows]

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
        query = _selection(select(events.c.id), after, rooms, event_types, up_to, limit)
        async with self.db.read() as conn:
            return [int(event_id) for event_id in (await conn.execute(query)).scalars()]

    async def read_by_ids(self, ids: Sequence[int]) -> list[PublishedEvent]:
        """These events (those still in the log), in id order."""
        if not ids:
            return []
        query = select(events).where(events.c.id.in_(list(ids))).order_by(events.c.id)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_row_to_event(row) for row in rows]

    async def prune(self, keep_count: int, max_age_s: float) -> int:
        """Apply retention by count and age; returns how many events were removed."""
        cutoff = utc_now() - timedelta(seconds=max_age_s)
        async with self.db.transaction() as conn:
            head = int((await conn.execute(select(log_meta.c.last_event_id))).scalar_one())
            by_count = head - keep_count
            by_age = (
                await conn.execute(select(func.max(events.c.id)).where(events.c.created_at < cutoff))
            ).scalar_one()
            through = max(by_count, int(by_age or 0))
            if through <= 0:
                return 0
            await conn.execute(delete(event_rooms).where(event_rooms.c.event_id <= through))
            removed = (await conn.execute(delete(events).where(events.c.id <= through))).rowcount
            await conn.execute(
                update(log_meta)
                .where(log_meta.c.id == 1, log_meta.c.pruned_through < through)
                .values(pruned_through=through)
            )
            return int(removed or 0)


def _selection(
    query: Select[Any],
    after: int,
    rooms: Sequence[str] | None,
    event_types: Sequence[str] | None,
    up_to: int | None,
    limit: int,
) -> Select[Any]:
    """Narrow a select over `events` to id > after (<= up_to), rooms and types, in id order."""
    query = query.where(events.c.id > after).order_by(events.c.id).limit(limit)
    if up_to is not None:
        query = query.where(events.c.id <= up_to)
    if rooms is not None:
        in_rooms = select(event_rooms.c.event_id).where(
            event_rooms.c.room.in_([*rooms, BROADCAST_ROOM]), event_rooms.c.event_id > after
        )
        query = query.where(events.c.id.in_(in_rooms))
    if event_types:
        query = query.where(events.c.event_type.in_(list(event_types)))
    return query


def _row_to_event(row: Any) -> PublishedEvent:
    return PublishedEvent(
        event_id=int(row["id"]),
        event_type=row["event_type"],
        timestamp=row["created_at"],  # aware: the column is a UtcDateTime
        data=row["data"],
        source=row["source"],
        rooms=tuple(row["rooms"]),
    )
