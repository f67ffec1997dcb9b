"""CORS for the REST API (SPEC §7): allowed origins get CORS headers, others `origin_not_allowed`."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from server.api.keys import ORIGINS
from server.api.problem import Problem

ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, X-Request-ID"
EXPOSE_HEADERS = "Retry-After, X-Request-ID, WWW-Authenticate"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights and stamp CORS headers for allowed browser origins; refuse the rest."""
    origin = request.headers.get("Origin")
    if origin is None:  # non-browser clients; Socket.IO checks the Origin at connect (connect_error)
        return await handler(request)
    if not request.app[ORIGINS].allows(origin, request.host):
        return Problem(403, f"origin {origin[:100]} is not allowed", code="origin_not_allowed").response(request.path)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        response: web.StreamResponse = web.Response(status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = "600"
    else:
        response = await handler(request)
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    response.headers["Vary"] = "Origin"
    return response
