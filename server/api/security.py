"""REST authentication: bearer JWT on every route but the open ones, roles per route."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.api.keys import CLIENT_ADDRESSES, REST_LIMITS
from server.api.problem import Problem
from server.auth import AuthError, Identity, Role, TokenAuthority

IDENTITY = web.RequestKey("identity", Identity)
AUTHORITY = web.AppKey("authority", TokenAuthority)
OPEN_PATHS = frozenset(
    {"/health", "/ready", "/metrics", "/", "/favicon.ico", "/openapi.json", "/asyncapi.json", "/docs", "/docs/events"}
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def requires(role: Role) -> Callable[[Handler], Handler]:
    """Mark a handler as needing at least `role`; enforced by `auth_middleware`."""

    def mark(handler: Handler) -> Handler:
        handler.required_role = role  # type: ignore[attr-defined]
        return handler

    return mark


def is_open(path: str) -> bool:
    """Routes that need no token: probes, metrics, the dashboard and the API documents.

    Socket.IO never reaches this middleware: its connect verifies the token itself (SPEC §3).
    """
    return path in OPEN_PATHS or path.startswith(("/static/", "/vendor/"))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Verify the bearer token and the route's role."""
    if is_open(request.path) or request.method == "OPTIONS":
        return await handler(request)
    limits = request.app[REST_LIMITS]
    # Requests without a valid token have no identity to charge, so their address pays: once its
    # budget is spent, it is refused before any signature is checked.
    client = request.app[CLIENT_ADDRESSES].of(request.remote, request.headers.get("X-Forwarded-For"))
    address = f"ip:{client}"
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    known = request.app[AUTHORITY].verified(token.strip()) if scheme.lower() == "bearer" else None
    if known is not None:
        # A token verified before costs no signature check, so the address's budget and the
        # identity's are settled together: one round trip to a cluster's shared budgets, not two.
        request[IDENTITY] = known
        _refuse_when_spent(await limits.take_unless_spent(f"sub:{known.subject}", guard=address))
        return await _call_with_role(request, handler, known)
    _refuse_when_spent(await limits.wait_for(address))
    if scheme.lower() != "bearer" or not token.strip():
        await limits.take(address)
        raise Problem(
            401, "missing bearer token", headers={"WWW-Authenticate": 'Bearer realm="immune-core"'}, code="unauthorized"
        )
    try:
        identity = request.app[AUTHORITY].verify(token.strip())
    except AuthError as exc:
        await limits.take(address)
        raise Problem(
            401,
            str(exc),
            headers={"WWW-Authenticate": 'Bearer realm="immune-core", error="invalid_token"'},
            code="unauthorized",
        ) from None
    request[IDENTITY] = identity
    _refuse_when_spent(await limits.take(f"sub:{identity.subject}"))
    return await _call_with_role(request, handler, identity)


async def _call_with_role(request: web.Request, handler: Handler, identity: Identity) -> web.StreamResponse:
    role: Role = getattr(handler, "required_role", Role.ADMIN)
    if not identity.has_role(role):
        raise Problem(403, f"requires role {role.name.lower()}", code="forbidden")
    return await handler(request)


def _refuse_when_spent(retry_after: float) -> None:
    if retry_after:
        raise Problem(
            429,
            "too many requests",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
            code="rate_limited",
        )
