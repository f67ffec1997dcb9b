"""The acknowledged client events of SPEC §5: ping, join, leave, subscribe, unsubscribe, info."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from client_sdk.protocol import (
    Ack,
    ErrorCode,
    FilterData,
    FilterRequest,
    InfoData,
    PongData,
    RoomRequest,
    RoomsData,
    utc_now,
)
from server.config import Settings
from server.realtime.connection import Connection
from server.realtime.errors import ProtocolError
from server.realtime.rooms import check_event_types, check_room

Handler = Callable[[Connection, Any], Awaitable[Ack]]
SetMembership = Callable[[Connection, list[str], list[str]], None]
"""Move a connection to exactly these rooms and this filter, atomically."""
Describe = Callable[[Connection], InfoData]
"""The `info` data of a connection."""
M = TypeVar("M", bound=BaseModel)


class ClientRequests:
    """Validates and executes client events; every outcome is an Ack, never an exception.

    It knows the rest of the real-time layer only through the two callables it is given.
    """

    def __init__(self, settings: Settings, set_membership: SetMembership, describe: Describe) -> None:
        self.settings = settings
        self._set_membership = set_membership
        self._describe = describe
        self.handlers: dict[str, Handler] = {
            "ping": self.ping,
            "join": self.join,
            "leave": self.leave,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "info": self.info,
        }

    async def ping(self, conn: Connection, _arg: Any) -> Ack:
        """Answer `pong` with the server's clock."""
        return _ok("pong", PongData(server_time=utc_now()))

    async def join(self, conn: Connection, arg: Any) -> Ack:
        """Join one public room."""
        room = _parse(RoomRequest, arg).room
        check_room(room, conn.identity)
        if room in conn.rooms:
            return _ok("already in room", RoomsData(room=room, rooms=list(conn.rooms)))
        if len(conn.rooms) >= self.settings.max_rooms_per_connection:
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST,
                "too many rooms for one connection",
                {"limit": self.settings.max_rooms_per_connection},
            )
        self._set_membership(conn, [*conn.rooms, room], conn.event_types)
        return _ok(f"joined {room}", RoomsData(room=room, rooms=list(conn.rooms)))

    async def leave(self, conn: Connection, arg: Any) -> Ack:
        """Leave one public room (leaving a room not joined is a no-op)."""
        room = _parse(RoomRequest, arg).room
        check_room(room, identity=None)  # leaving needs no permission
        if room not in conn.rooms:
            return _ok("not in room", RoomsData(room=room, rooms=list(conn.rooms)))
        self._set_membership(conn, [r for r in conn.rooms if r != room], conn.event_types)
        return _ok(f"left {room}", RoomsData(room=room, rooms=list(conn.rooms)))

    async def subscribe(self, conn: Connection, arg: Any) -> Ack:
        """Add types to the filter; all or nothing."""
        wanted = check_event_types(_parse(FilterRequest, arg).event_types)
        merged = list(dict.fromkeys([*conn.event_types, *wanted]))
        if len(merged) > self.settings.max_filter_size:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "filter too large", {"limit": self.settings.max_filter_size})
        self._set_membership(conn, conn.rooms, merged)
        return _ok("subscribed", FilterData(event_types=list(conn.event_types)))

    async def unsubscribe(self, conn: Connection, arg: Any) -> Ack:
        """Remove types from the filter; removing the last one means "all types" again."""
        unwanted = set(check_event_types(_parse(FilterRequest, arg).event_types))
        self._set_membership(conn, conn.rooms, [t for t in conn.event_types if t not in unwanted])
        return _ok("unsubscribed", FilterData(event_types=list(conn.event_types)))

    async def info(self, conn: Connection, _arg: Any) -> Ack:
        """Describe this connection."""
        return _ok("info", self._describe(conn))


def _ok(message: str, data: BaseModel | InfoData) -> Ack:
    return Ack(success=True, message=message, data=data.model_dump(mode="json"))


def _parse(model: type[M], arg: Any) -> M:
    if not isinstance(arg, dict):
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "argument must be an object", {"expected": "object"})
    try:
        return model.model_validate(arg)
    except ValidationError as exc:
        details = [
            {"loc": ".".join(str(p) for p in err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ProtocolError(ErrorCode.INVALID_REQUEST, "invalid request", details) from None
