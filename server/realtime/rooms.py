"""Rooms and subscription filters expressed as native Socket.IO rooms (SPEC architecture notes).

A connection joins, for each public room R it is in (and `*` for deployment-wide events):
- `#R` when its filter is empty (it wants every type in R), or
- `#R#T` for each type T in its filter.
An event of type T for rooms Rs is emitted to `#R` and `#R#T` for every R in Rs (or `*`).
So the filter costs nothing per recipient: the manager's room lookup does the selection.

`check_room` and `check_event_types` are the one place a connect or a client event validates
rooms and filters (with the predicates of client_sdk/protocol.py, which REST uses too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from client_sdk.protocol import ErrorCode, unknown_event_types, unknown_rooms
from server.auth import Identity
from server.realtime.errors import ProtocolError

NAMESPACE = "/"
"""The one Socket.IO namespace this server serves: every room below lives in it."""
BROADCAST = "*"
INTERNAL_PREFIX = "#"


def membership_rooms(public_rooms: Iterable[str], event_types: Iterable[str]) -> set[str]:
    """Internal rooms a connection with these public rooms and filter must be in."""
    types = list(event_types)
    result: set[str] = set()
    for room in [BROADCAST, *public_rooms]:
        if types:
            result.update(f"{INTERNAL_PREFIX}{room}{INTERNAL_PREFIX}{t}" for t in types)
        else:
            result.add(f"{INTERNAL_PREFIX}{room}")
    return result


def target_rooms(event_rooms: Sequence[str], event_type: str) -> list[str]:
    """Internal rooms an event must be emitted to so exactly the §5 predicate's connections get it."""
    targets: list[str] = []
    for room in event_rooms or (BROADCAST,):
        targets.append(f"{INTERNAL_PREFIX}{room}")
        targets.append(f"{INTERNAL_PREFIX}{room}{INTERNAL_PREFIX}{event_type}")
    return targets


def check_room(room: str, identity: Identity | None, unknown: ErrorCode = ErrorCode.UNKNOWN_ROOM) -> None:
    """Raise `unknown` unless `room` is a public room, and forbidden when `identity` may not join it."""
    if unknown_rooms([room]):
        raise ProtocolError(unknown, f"unknown room: {room}", {"room": room})
    if identity is not None and not identity.may_join(room):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"token does not allow room {room}", {"room": room})


def check_event_types(event_types: Sequence[str], unknown: ErrorCode = ErrorCode.UNKNOWN_EVENT_TYPE) -> list[str]:
    """The filter without repeats; raise `unknown` naming every type that cannot be subscribed to."""
    bad = unknown_event_types(event_types)
    if bad:
        raise ProtocolError(unknown, "unknown event type", {"event_types": bad})
    return list(dict.fromkeys(event_types))
