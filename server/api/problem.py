"""RFC 9457 problem+json responses: the one way REST reports an error."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from server.domain.errors import DomainError, InvalidInput, InvalidTransition, NotFound
from server.events.errors import WriteRefused

log = structlog.get_logger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

# The `code` of a problem raised without one: every problem+json carries a code (docs/protocol.md).
# One line per status, so a new status (415, 503 ...) is one line here.
DEFAULT_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def default_code(status: int) -> str:
    """The problem code of an HTTP status when the raiser gave none."""
    return DEFAULT_CODES.get(status, "internal_error" if status >= 500 else "invalid_request")


class Problem(Exception):
    """An HTTP error with an RFC 9457 body; raise it from any handler."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.errors = errors
        self.headers = headers or {}
        self.code = code or default_code(status)

    def response(self, instance: str | None = None) -> web.Response:
        """The problem+json response."""
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body["code"] = self.code
        if self.errors is not None:
            body["errors"] = self.errors
        return web.Response(
            status=self.status,
            body=orjson.dumps(body),
            content_type=PROBLEM_CONTENT_TYPE,
            headers=self.headers,
        )


def validation_problem(exc: ValidationError) -> Problem:
    """422 with one entry per invalid field."""
    errors = [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return Problem(422, "request validation failed", errors=errors, code="invalid_request")


def domain_problem(error: DomainError) -> Problem:
    """404 for a missing entity, 409 for a refused transition, 422 for an unacceptable field."""
    if isinstance(error, NotFound):
        return Problem(404, str(error), code="not_found")
    if isinstance(error, InvalidTransition):
        return Problem(409, str(error), code="conflict")
    if isinstance(error, InvalidInput):
        loc = error.field.split(".")
        return Problem(
            422, str(error), errors=[{"loc": loc, "msg": str(error), "type": "value_error"}], code="invalid_request"
        )
    return Problem(400, str(error))


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn Problems, aiohttp HTTP errors and crashes into problem+json."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(request.path)
    except DomainError as error:
        return domain_problem(error).response(request.path)
    except WriteRefused as refused:
        retry = {"Retry-After": str(refused.retry_after_s)}
        return Problem(503, refused.detail, code=refused.code, headers=retry).response(request.path)
    except web.HTTPRequestEntityTooLarge:
        return Problem(413, "request body too large").response(request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return Problem(exc.status, exc.reason or HTTPStatus(exc.status).phrase, headers=_passthrough(exc)).response(
            request.path
        )
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        return Problem(500, "internal error").response(request.path)


def _passthrough(exc: web.HTTPException) -> dict[str, str]:
    return {k: v for k, v in exc.headers.items() if k.lower() in {"allow", "retry-after", "www-authenticate"}}
