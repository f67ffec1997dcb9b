"""REST over the real-time layer: /ws/stats, /ws/broadcast, /ws/connections (SPEC §6, §8)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, field_validator

from client_sdk.protocol import (
    CONNECTION_EVENT_TYPES,
    DisconnectReason,
    EventType,
    InfoData,
    is_custom_type,
    is_valid_room,
    parse_event_data,
)
from server.api.bodies import json_response, parse_body
from server.api.docs import documented
from server.api.keys import GATEWAY, PUBLISHER
from server.api.problem import Problem, validation_problem
from server.api.security import requires
from server.auth import Role


class BroadcastRequest(BaseModel):
    """`POST /ws/broadcast` body."""

    model_config = {"extra": "forbid"}

    event_type: str = Field(min_length=1, max_length=80)
    data: dict[str, Any] = Field(default_factory=dict)
    room: str | None = Field(default=None, max_length=80)
    source: str = Field(default="broadcast", min_length=1, max_length=64)

    @field_validator("event_type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if is_custom_type(value):
            return value
        if value in EventType.__members__.values() and value not in CONNECTION_EVENT_TYPES:
            return value
        raise ValueError("must be custom.<name> ([a-z0-9_.-]{1,64}) or a standard room event type")

    @field_validator("room")
    @classmethod
    def _known_room(cls, value: str | None) -> str | None:
        if value is not None and not is_valid_room(value):
            raise ValueError("unknown room")
        return value


class BroadcastAccepted(BaseModel):
    """`POST /ws/broadcast` response."""

    event_id: int


@requires(Role.VIEWER)
@documented(
    "Real-time figures: connections, rooms, messages, events published and replayed", errors=(401,), tag="realtime"
)
async def get_stats(request: web.Request) -> web.Response:
    """Real-time figures; `nodes` lists each node's own (one node when not clustered)."""
    node = request.app[GATEWAY].snapshot()
    return json_response({**node, "nodes": [node]})


@requires(Role.ADMIN)
@documented(
    "Publish a custom or standard event",
    body=BroadcastRequest,
    response=BroadcastAccepted,
    status=202,
    errors=(400, 401, 403, 413, 422),
    tag="realtime",
)
async def post_broadcast(request: web.Request) -> web.Response:
    """Publish a custom or validated standard event to a room or the whole deployment."""
    body = await parse_body(request, BroadcastRequest)
    try:
        parsed = parse_event_data(body.event_type, body.data)
    except ValidationError as exc:
        problem = validation_problem(exc)
        for error in problem.errors or []:
            error["loc"] = ["data", *error["loc"]]
        raise problem from None
    data = parsed if isinstance(parsed, dict) else parsed.model_dump(mode="json")
    rooms = [body.room] if body.room else []
    event = await request.app[PUBLISHER].publish(body.event_type, data, rooms, source=body.source)
    return json_response(BroadcastAccepted(event_id=event.event_id), status=202)


@requires(Role.ADMIN)
@documented("List connections on this node", errors=(401, 403), tag="realtime")
async def list_connections(request: web.Request) -> web.Response:
    """Every connection on this node."""
    gateway = request.app[GATEWAY]
    items = [gateway.describe(conn).model_dump(mode="json") for conn in gateway.connections.values() if conn.active]
    return json_response({"items": items, "total": len(items)})


@requires(Role.ADMIN)
@documented("Inspect a connection", response=InfoData, errors=(401, 403, 404), tag="realtime")
async def get_connection(request: web.Request) -> web.Response:
    """One connection's `info`."""
    gateway = request.app[GATEWAY]
    conn = gateway.connections.get(request.match_info["connection_id"])
    if conn is None or not conn.active:
        raise Problem(404, "no such connection")
    return json_response(gateway.describe(conn))


@requires(Role.ADMIN)
@documented("Kick a connection (it receives disconnected: kicked)", status=204, errors=(401, 403, 404), tag="realtime")
async def kick_connection(request: web.Request) -> web.Response:
    """Send `disconnected` (kicked) and close the connection."""
    gateway = request.app[GATEWAY]
    sid = request.match_info["connection_id"]
    conn = gateway.connections.get(sid)
    if conn is None or not conn.active:
        raise Problem(404, "no such connection")
    # The answer does not wait for a stalled peer to take its last frames: that goes on (bounded
    # by the send timeout) after the connection is already gone from every room and list.
    await gateway.close_connection(sid, DisconnectReason.KICKED, "closed by an administrator", wait_for_flush=False)
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    """Register the /ws/* routes."""
    app.router.add_get("/ws/stats", get_stats)
    app.router.add_post("/ws/broadcast", post_broadcast)
    app.router.add_get("/ws/connections", list_connections)
    app.router.add_get("/ws/connections/{connection_id}", get_connection)
    app.router.add_delete("/ws/connections/{connection_id}", kick_connection)
