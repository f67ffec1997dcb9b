"""A connection's native rooms follow its public rooms and filter (the mapping is in rooms.py)."""

from __future__ import annotations

from server.realtime.connection import Connection
from server.realtime.manager import FanoutManager
from server.realtime.rooms import NAMESPACE, membership_rooms


class Membership:
    """Moves connections between native rooms, synchronously: no event is delivered mid-move."""

    def __init__(self, manager: FanoutManager) -> None:
        self.manager = manager

    def enter(self, conn: Connection) -> None:
        """Join the native rooms of the connection's rooms and filter (at activation)."""
        self._move(conn, conn.rooms, conn.event_types, previous=None)

    def set_membership(self, conn: Connection, rooms: list[str], event_types: list[str]) -> None:
        """Move the connection to exactly these rooms and this filter, atomically."""
        previous = (list(conn.rooms), list(conn.event_types))
        conn.rooms = list(rooms)
        conn.event_types = list(event_types)
        if conn.active:
            self._move(conn, conn.rooms, conn.event_types, previous=previous)

    def _move(
        self,
        conn: Connection,
        rooms: list[str],
        event_types: list[str],
        previous: tuple[list[str], list[str]] | None,
    ) -> None:
        # Synchronous on purpose: no event can be delivered between leaving and entering rooms.
        wanted = membership_rooms(rooms, event_types) | set(rooms)
        current = membership_rooms(*previous) | set(previous[0]) if previous else set()
        for room in current - wanted:
            self.manager.basic_leave_room(conn.sid, NAMESPACE, room)
        for room in wanted - current:
            self.manager.basic_enter_room(conn.sid, NAMESPACE, room)
