"""The fan-out's per-sid room index answers exactly what python-socketio's room scan answers."""

from __future__ import annotations

from typing import Any

import socketio
from hypothesis import given, settings
from hypothesis import strategies as st

from server.realtime.manager import FanoutManager

NS = "/"
SIDS = [f"s{i}" for i in range(4)]
ROOMS = ["agents", "tasks", "agent:a1"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("connect"), st.sampled_from(SIDS)),
        st.tuples(st.just("enter"), st.sampled_from(SIDS), st.sampled_from(ROOMS)),
        st.tuples(st.just("leave"), st.sampled_from(SIDS), st.sampled_from(ROOMS + SIDS)),
        st.tuples(st.just("close"), st.sampled_from(ROOMS)),
        st.tuples(st.just("disconnect"), st.sampled_from(SIDS)),
    ),
    max_size=40,
)


def apply(manager: socketio.AsyncManager, operation: tuple[Any, ...]) -> str:
    """Run one operation the way python-socketio's server does; returns its outcome."""
    kind, *args = operation
    try:
        if kind == "connect":  # pre_connect's two joins, with our own ids
            sid = args[0]
            manager.basic_enter_room(sid, NS, None, eio_sid="e" + sid)
            manager.basic_enter_room(sid, NS, sid, eio_sid="e" + sid)
        elif kind == "enter":
            manager.basic_enter_room(args[0], NS, args[1])
        elif kind == "leave":
            manager.basic_leave_room(args[0], NS, args[1])
        elif kind == "close":
            manager.basic_close_room(args[0], NS)
        else:
            manager.basic_disconnect(args[0], NS)
    except Exception as exc:  # the same refusals (not connected, duplicate) must happen in both
        return type(exc).__name__
    return "ok"


def state(manager: socketio.AsyncManager) -> tuple[Any, ...]:
    rooms = {ns: {room: dict(members) for room, members in by_room.items()} for ns, by_room in manager.rooms.items()}
    return rooms, {sid: sorted(manager.get_rooms(sid, NS), key=str) for sid in SIDS}


@settings(max_examples=300, deadline=None)
@given(operations)
def test_room_index_matches_the_stock_manager(ops: list[tuple[Any, ...]]) -> None:
    stock, ours = socketio.AsyncManager(), FanoutManager()
    for manager in (stock, ours):
        socketio.AsyncServer(client_manager=manager)
    for operation in ops:
        assert apply(ours, operation) == apply(stock, operation), operation
        assert state(ours) == state(stock), operation
    # The index holds nothing for a sid that is in no room any more.
    for sid in SIDS:
        in_a_room = any(sid in members for by_room in ours.rooms.values() for members in by_room.values())
        assert (sid in ours.rooms_of.get(NS, {})) == in_a_room
