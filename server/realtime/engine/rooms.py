"""python-socketio's client manager with a per-sid room index, for O(own rooms) lookups and disconnects."""

from __future__ import annotations

from typing import Any

import socketio

from server.realtime.engine.access import room_members


class IndexedRoomsManager(socketio.AsyncManager):
    """Rooms as python-socketio keeps them, plus the rooms of each sid.

    python-socketio answers "which rooms is this sid in" by scanning every room of the namespace,
    and each connection has a room of its own, so a disconnect cost O(connections) and a mass
    disconnect (a restart, a network blip) O(connections²).
    """

    def __init__(self) -> None:
        super().__init__()
        # namespace → sid → the rooms it is in (None, the namespace's own, included), in join order.
        self.rooms_of: dict[str, dict[str, dict[Any, None]]] = {}

    def participants(self, namespace: str, room: Any) -> dict[str, str]:
        """sid → Engine.IO sid of everyone in `room` (one room or several), without a generator.

        With one room this is python-socketio's own dict: iterate it, do not keep or change it.
        """
        rooms = self.rooms.get(namespace, {})
        if isinstance(room, str) or not hasattr(room, "__len__"):
            members = rooms.get(room)
            return room_members(members) if members is not None else {}
        merged: dict[str, str] = {}
        for name in room:
            members = rooms.get(name)
            if members is not None:
                merged.update(room_members(members))
        return merged

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> None:
        """Join as python-socketio does, and remember the room under the sid."""
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.rooms_of.setdefault(namespace, {}).setdefault(sid, {})[room] = None

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        """Leave as python-socketio does, and forget the room under the sid."""
        super().basic_leave_room(sid, namespace, room)
        by_sid = self.rooms_of.get(namespace)
        if by_sid is None or sid not in by_sid:
            return
        joined = by_sid[sid]
        joined.pop(room, None)
        if not joined:
            del by_sid[sid]
            if not by_sid:
                del self.rooms_of[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms a client is in, from the per-sid index (python-socketio scans every room)."""
        joined = self.rooms_of.get(namespace, {}).get(sid, {})
        return [room for room in joined if room is not None]

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's disconnect bookkeeping, leaving only the sid's own rooms.

        A re-implementation rather than a call to the stock method: that one finds the sid's
        rooms by scanning every room of the namespace (with a copy), which is the O(connections)
        cost the index exists to avoid, and nothing in it can be skipped from outside. The
        start-up self-check verifies that the stock method still tends exactly these fields.
        """
        if namespace not in self.rooms:
            return
        for room in list(self.rooms_of.get(namespace, {}).get(sid, ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]
