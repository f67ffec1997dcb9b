"""REST over the real-time layer: /ws/stats, /ws/broadcast, /ws/connections (SPEC §6, §8)."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, RootModel, ValidationError

from client_sdk.protocol import DisconnectReason, InfoData, parse_event_data
from client_sdk.rest_models import (
    BatchAccepted,
    BroadcastBatch,
    BroadcastRequest,
    ConnectionInfo,
    ConnectionList,
    NodeStats,
    RealtimeStats,
)
from server.api.bodies import json_response, read_json
from server.api.docs import documented
from server.api.keys import CLUSTER, GATEWAY, PUBLISHER, SETTINGS
from server.api.problem import Problem, validation_problem
from server.api.security import requires
from server.auth import Role
from server.cluster.presence import ClusterUnavailable
from server.events.writer import EventSpec

M = TypeVar("M", bound=BaseModel)
RETRY = {"Retry-After": "1"}


class BroadcastAccepted(BaseModel):
    """`POST /ws/broadcast` response."""

    event_id: int


class BroadcastBody(RootModel[BroadcastRequest | BroadcastBatch]):
    """`POST /ws/broadcast` body: one event, or `{events: [...]}` (up to 1 000)."""


class BroadcastAnswer(RootModel[BroadcastAccepted | BatchAccepted]):
    """`POST /ws/broadcast` response: `{event_id}` for one event, `{event_ids}` for a batch."""


@requires(Role.VIEWER)
@documented(
    "Real-time figures: connections, rooms, messages, events published and replayed",
    response=RealtimeStats,
    errors=(401,),
    tag="realtime",
)
async def get_stats(request: web.Request) -> web.Response:
    """Real-time figures; `nodes` lists each node's own (one node when not clustered)."""
    cluster = request.app.get(CLUSTER)
    if cluster is None or cluster.view is None:
        node = NodeStats.model_validate(request.app[GATEWAY].snapshot())
        return json_response(RealtimeStats(**dict(node), nodes=[node]))
    stats = await cluster.view.stats()
    return json_response(RealtimeStats.model_validate({**stats, "carrier": cluster.snapshot()}))


@requires(Role.ADMIN)
@documented(
    "Publish a custom or standard event",
    body=BroadcastBody,
    response=BroadcastAnswer,
    status=202,
    errors=(400, 401, 403, 413, 422, 503),
    tag="realtime",
)
async def post_broadcast(request: web.Request) -> web.Response:
    """Publish custom or validated standard events to a room or the whole deployment."""
    payload = await read_json(request)
    publisher = request.app[PUBLISHER]
    if isinstance(payload, dict) and "events" in payload:
        batch = _validated(BroadcastBatch, payload)
        specs, errors = [], []
        for index, item in enumerate(batch.events):
            try:
                specs.append(_spec(item))
            except Problem as problem:
                errors += [{**error, "loc": ["events", str(index), *error["loc"]]} for error in problem.errors or []]
        if errors:
            raise Problem(422, "request validation failed", errors=errors, code="invalid_request")
        events = await publisher.publish_many(specs, wait=False)
        return json_response(BatchAccepted(event_ids=[event.event_id for event in events]), status=202)
    event_type, data, rooms, source = _spec(_validated(BroadcastRequest, payload))
    event = await publisher.publish(event_type, data, rooms, source=source, wait=False)
    return json_response(BroadcastAccepted(event_id=event.event_id), status=202)


def _validated(model: type[M], payload: Any) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def _spec(body: BroadcastRequest) -> EventSpec:
    """The event to publish, with standard types' data validated against their schema."""
    try:
        parsed = parse_event_data(body.event_type, body.data)
    except ValidationError as exc:
        problem = validation_problem(exc)
        for error in problem.errors or []:
            error["loc"] = ["data", *error["loc"]]
        raise problem from None
    data = parsed if isinstance(parsed, dict) else parsed.model_dump(mode="json")
    return body.event_type, data, [body.room] if body.room else [], body.source


@requires(Role.ADMIN)
@documented(
    "List the deployment's connections (each with its node_id)",
    response=ConnectionList,
    errors=(401, 403, 503),
    tag="realtime",
)
async def list_connections(request: web.Request) -> web.Response:
    """Every connection of the deployment, each with the `node_id` of the node that holds it."""
    cluster = request.app.get(CLUSTER)
    if cluster is not None and cluster.view is not None:
        try:
            everyone = await cluster.view.connections()
        except ClusterUnavailable as exc:
            raise Problem(
                503, f"cannot list every node's connections: {exc}", code="unavailable", headers=RETRY
            ) from None
        return json_response(ConnectionList.model_validate({"items": everyone, "total": len(everyone)}))
    gateway = request.app[GATEWAY]
    node_id = request.app[SETTINGS].node_id
    items = [
        ConnectionInfo.model_validate({**gateway.describe(conn).model_dump(mode="json"), "node_id": node_id})
        for conn in gateway.connections.values()
        if conn.active
    ]
    return json_response(ConnectionList(items=items, total=len(items)))


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
@documented(
    "Kick a connection on whichever node holds it (it receives disconnected: kicked)",
    status=204,
    errors=(401, 403, 404, 503),
    tag="realtime",
)
async def kick_connection(request: web.Request) -> web.Response:
    """Send `disconnected` (kicked) and close the connection, on whichever node holds it."""
    gateway = request.app[GATEWAY]
    sid = request.match_info["connection_id"]
    cluster = request.app.get(CLUSTER)
    if cluster is not None and cluster.view is not None:
        try:
            kicked = await cluster.view.kick(sid)
        except ClusterUnavailable as exc:
            raise Problem(503, f"cannot reach the other nodes: {exc}", code="unavailable", headers=RETRY) from None
        if not kicked:
            raise Problem(404, "no such connection")
        return web.Response(status=204)
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
