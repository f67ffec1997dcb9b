"""GET /openapi.json (OpenAPI 3.1) and GET /asyncapi.json (AsyncAPI 3.0), generated from the models."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from client_sdk.protocol import (
    EVENT_DATA_MODELS,
    PRIMARY_ROOMS,
    Ack,
    ConnectAuth,
    EventType,
    FilterRequest,
    RoomRequest,
)
from server.api.bodies import json_response
from server.api.docs import RouteDoc
from server.auth import Role
from server.paths import SOCKETIO_PATH

REF = "#/components/schemas/{model}"
PROBLEM_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["title", "status", "code"],
}


def _documented_routes(app: web.Application) -> list[tuple[str, str, Any, RouteDoc]]:
    found = []
    for route in app.router.routes():
        doc = getattr(route.handler, "route_doc", None)
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if doc is not None and path and route.method != "HEAD":  # aiohttp adds a HEAD to every GET
            found.append((route.method.lower(), path, route.handler, doc))
    return found


def build_openapi(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route."""
    routes = _documented_routes(app)
    models: list[type[BaseModel]] = []
    for _, _, _, doc in routes:
        for model in (doc.body, doc.response):
            if model is not None and model not in models:
                models.append(model)
    keyed = [(model, "validation" if model in {d.body for *_, d in routes} else "serialization") for model in models]
    refs, defs = models_json_schema(keyed, ref_template=REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler, doc in routes:
        role: Role | None = getattr(handler, "required_role", None)
        operation: dict[str, Any] = {
            "summary": doc.summary,
            "operationId": f"{method}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
            "tags": [doc.tag],
            "responses": {},
        }
        if doc.public:
            operation["security"] = []
        elif role is not None:
            operation["security"] = [{"bearer": []}]
            operation["description"] = f"Needs role `{role.name.lower()}` or above."
        if doc.emits:
            operation["description"] = operation.get("description", "") + " Emits: " + ", ".join(doc.emits) + "."
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if doc.query is not None:
            for name, field in doc.query.model_fields.items():
                schema = doc.query.model_json_schema()["properties"][name]
                parameters.append({"name": name, "in": "query", "required": field.is_required(), "schema": schema})
        if parameters:
            operation["parameters"] = parameters
        if doc.body is not None:
            ref = refs[(doc.body, "validation")]
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        success: dict[str, Any] = {"description": doc.summary}
        if doc.response is not None:
            ref = refs[(doc.response, "serialization")]
            success["content"] = {doc.content_type: {"schema": ref}}
        elif doc.status != 204:
            schema = {"type": "string"} if doc.content_type.startswith("text/") else {"type": "object"}
            success["content"] = {doc.content_type: {"schema": schema}}
        operation["responses"][str(doc.status)] = success
        for status in doc.errors:
            operation["responses"][str(status)] = {
                "description": "problem",
                "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Active Immune Core", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@cache
def build_asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the Socket.IO events (server → client and client → server)."""
    event_models = list(dict.fromkeys(EVENT_DATA_MODELS.values()))
    extra: list[type[BaseModel]] = [ConnectAuth, RoomRequest, FilterRequest, Ack]
    keyed = [(model, "serialization") for model in [*event_models, *extra]]
    refs, defs = models_json_schema(keyed, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    messages: dict[str, Any] = {}
    for event_type, model in EVENT_DATA_MODELS.items():
        messages[event_type.value] = {
            "name": event_type.value,
            "summary": f"`{event_type.value}` to {PRIMARY_ROOMS.get(event_type) or 'one connection'}",
            "payload": {
                "type": "object",
                "required": ["event_type", "event_id", "timestamp", "data", "source", "room"],
                "properties": {
                    "event_type": {"const": event_type.value},
                    "event_id": {"type": ["integer", "null"]},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "source": {"type": "string"},
                    "room": {"type": ["string", "null"]},
                    "data": refs[(model, "serialization")],
                },
            },
        }
    requests: dict[str, type[BaseModel] | None] = {
        "ping": None,
        "join": RoomRequest,
        "leave": RoomRequest,
        "subscribe": FilterRequest,
        "unsubscribe": FilterRequest,
        "info": None,
    }
    for name, request_model in requests.items():
        messages[f"request_{name}"] = {
            "name": name,
            "summary": f"client → server `{name}`, acknowledged with an Ack",
            "payload": refs[(request_model, "serialization")] if request_model else {"type": "object"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Active Immune Core real-time events", "version": "1.0.0"},
        "defaultContentType": "application/json",
        "servers": {"socketio": {"host": "localhost:8000", "pathname": SOCKETIO_PATH, "protocol": "ws"}},
        "channels": {
            "events": {
                "address": "/",
                "description": "The default Socket.IO namespace. Connect with `auth` as in ConnectAuth.",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/events"},
                "messages": [
                    {"$ref": f"#/channels/events/messages/{t.value}"} for t in EventType if t.value in messages
                ],
            },
            "sendRequests": {
                "action": "send",
                "channel": {"$ref": "#/channels/events"},
                "messages": [{"$ref": f"#/channels/events/messages/request_{n}"} for n in requests],
            },
        },
        "components": {"schemas": dict(defs.get("$defs", {})), "messages": messages},
    }


async def openapi(request: web.Request) -> web.Response:
    """The REST API as OpenAPI 3.1."""
    return json_response(build_openapi(request.app))


async def asyncapi(_request: web.Request) -> web.Response:
    """The Socket.IO events as AsyncAPI 3.0."""
    return json_response(build_asyncapi())


def add_routes(app: web.Application) -> None:
    """Register the API documents."""
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/asyncapi.json", asyncapi)
