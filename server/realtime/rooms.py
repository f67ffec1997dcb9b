"""Rooms and subscription filters expressed as native Socket.IO rooms (SPEC architecture notes).

A connection joins, for each public room R it is in (and `*` for deployment-wide events):
- `#R` when its filter is empty (it wants every type in R), or
- `#R#T` for each type T in its filter.
An event of type T for rooms Rs is emitted to `#R` and `#R#T` for every R in Rs (or `*`).
So the filter costs nothing per recipient: the manager's room lookup does the selection.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def is_internal(room: str) -> bool:
    """True for rooms that implement filters (never shown to clients)."""
    return room.startswith(INTERNAL_PREFIX)
