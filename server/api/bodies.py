"""Reading and validating JSON bodies and query parameters into pydantic models."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.api.keys import SETTINGS
from server.api.problem import Problem, validation_problem
from server.json_limits import json_depth

M = TypeVar("M", bound=BaseModel)
JSON_CONTENT_TYPE = "application/json"


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400/413/415 problem."""
    if not request.body_exists:
        raise Problem(400, "request body must be JSON")
    if request.content_type != JSON_CONTENT_TYPE:  # media type without parameters (charset…)
        raise Problem(
            415,
            f"request body must be {JSON_CONTENT_TYPE}, not {request.content_type or 'untyped'}",
            code="unsupported_media_type",
        )
    if request.content_length is not None and request.content_length > request.app[SETTINGS].max_payload_bytes:
        raise Problem(413, "request body too large")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Problem(413, "request body too large") from None
    if not raw:
        raise Problem(400, "request body must be JSON")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"malformed JSON: {exc}") from None
    limit = request.app[SETTINGS].max_json_depth
    if json_depth(payload, limit) > limit:
        raise Problem(422, f"JSON nested deeper than {limit} levels", code="invalid_request")
    return payload


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Validate the JSON body against `model` (422 with per-field errors).

    Strict: each field only in its own JSON type, so `"5"` or `true` is not an integer.
    """
    payload = await read_json(request)
    try:
        return model.model_validate(payload, strict=True)
    except ValidationError as exc:
        raise validation_problem(exc) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """Validate query parameters against `model`."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_problem(exc) from None


def json_response(payload: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson (pydantic models are dumped in JSON mode)."""
    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json")
