"""The REST middleware chain, kept off the Socket.IO path.

aiohttp runs an application's middlewares around every route, the Socket.IO endpoint included. An
`async def` middleware stays suspended for as long as its handler runs, which for a WebSocket is
the connection's whole life: four of them cost every idle connection about 2 KB of frames and
context. Each middleware here is therefore wrapped by `rest_only`, a plain function that, for a
Socket.IO request, hands back the handler's own awaitable and leaves no frame behind.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Awaitable

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.api.cors import cors_middleware
from server.api.problem import problem_middleware
from server.api.security import auth_middleware
from server.paths import SOCKETIO_PATH


def rest_only(middleware: Middleware) -> Middleware:
    """Apply `middleware` to REST requests; Socket.IO requests go straight to their handler."""

    @web.middleware
    def apply(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if request.path.startswith(SOCKETIO_PATH):
            return handler(request)
        return middleware(request, handler)

    return apply


# A request id only has to tell requests apart in the logs: a random per-process prefix and a
# counter do that without a uuid4 per request (an os.urandom system call, ~5 % of a publish).
_ID_PREFIX = secrets.token_hex(4)
_id_counter = itertools.count(1)


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID")
    return given[:64] if given else f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFF:08x}"


async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id to every log line of the request and echo it back.

    Bound in the request's context without unbinding: aiohttp serves a connection's requests in
    one task, and the next request binds its own id over this one (as `socketio_request_id` does).
    """
    request_id = _request_id(request)
    structlog.contextvars.bind_contextvars(request_id=request_id)
    response = await handler(request)
    response.headers["X-Request-ID"] = request_id
    return response


@web.middleware
def socketio_request_id(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Socket.IO requests get a request id in their log lines too, without a frame of their own.

    The binding is left in the request task's context: the next request on a kept-alive polling
    connection binds its own id over it, and a WebSocket never has a next request.
    """
    if request.path.startswith(SOCKETIO_PATH):
        structlog.contextvars.bind_contextvars(request_id=_request_id(request))
    return handler(request)


MIDDLEWARES: list[Middleware] = [
    socketio_request_id,
    *(rest_only(m) for m in (request_id_middleware, cors_middleware, problem_middleware, auth_middleware)),
]
