"""Admission of a Socket.IO connect (SPEC §7): origin, attempt budget, token, role, limits, rooms, filter."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError

from client_sdk.protocol import ConnectAuth, ErrorCode
from server.auth import AuthError, Role, TokenAuthority
from server.config import Settings
from server.origins import OriginPolicy
from server.rate_limits import TokenBucket
from server.realtime.connection import Connection
from server.realtime.engine import SessionGuard
from server.realtime.errors import ProtocolError
from server.realtime.manager import FanoutManager
from server.realtime.registry import ConnectionRegistry
from server.realtime.rooms import NAMESPACE, check_event_types, check_room
from server.realtime.stats import RealtimeStats


class Admission:
    """Turns a connect's environ and auth into a `Connection`, or refuses it with a `ProtocolError`."""

    def __init__(
        self,
        settings: Settings,
        authority: TokenAuthority,
        guard: SessionGuard,
        manager: FanoutManager,
        registry: ConnectionRegistry,
        stats: RealtimeStats,
    ) -> None:
        self.settings = settings
        self.authority = authority
        self.origins = OriginPolicy(settings)
        self.guard = guard
        self.manager = manager
        self.registry = registry
        self.stats = stats

    def admit(self, sid: str, environ: dict[str, Any], auth: Any) -> tuple[Connection, ConnectAuth]:
        """The connection to register and the validated connect request; raises ProtocolError to refuse."""
        if not self.origins.allows(environ.get("HTTP_ORIGIN"), environ.get("HTTP_HOST")):
            raise ProtocolError(ErrorCode.ORIGIN_NOT_ALLOWED, "origin not allowed")
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE) or ""
        # The address and the attempt budget were settled at the Engine.IO handshake (engine.py).
        address, retry_after = self.guard.connect_attempt(eio_sid, environ)
        if retry_after:
            self.stats.rate_limited += 1
            raise ProtocolError(
                ErrorCode.RATE_LIMITED, "too many connection attempts", {"retry_after_s": round(retry_after, 3)}
            )
        query = parse_qs(environ.get("QUERY_STRING", ""))
        fields: dict[str, Any] = dict(auth) if isinstance(auth, dict) else {}
        if auth is not None and not isinstance(auth, dict):
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "auth must be an object")
        for name in ("token", "client_id"):
            if fields.get(name) is None and query.get(name):
                fields[name] = query[name][0]
        try:
            request = ConnectAuth.model_validate(fields)
        except ValidationError as exc:
            bad = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST, f"invalid auth field(s): {', '.join(bad)}", {"fields": bad}
            ) from None
        try:
            identity = self.authority.verify(request.token)
        except AuthError as exc:
            raise ProtocolError(ErrorCode.UNAUTHORIZED, str(exc)) from None
        if not identity.has_role(Role.VIEWER):  # real-time reads events: it needs viewer
            raise ProtocolError(ErrorCode.FORBIDDEN, "real-time needs role viewer", {"required_role": "viewer"})
        if self.registry.held_by(identity.subject) >= self.settings.max_connections_per_user:
            raise ProtocolError(
                ErrorCode.TOO_MANY_CONNECTIONS,
                "too many concurrent connections for this user",
                {"limit": self.settings.max_connections_per_user},
            )
        rooms = list(dict.fromkeys(request.rooms))
        for room in rooms:
            check_room(room, identity, unknown=ErrorCode.INVALID_REQUEST)
        if len(rooms) > self.settings.max_rooms_per_connection:
            raise ProtocolError(
                ErrorCode.INVALID_REQUEST, "too many rooms", {"limit": self.settings.max_rooms_per_connection}
            )
        event_types = check_event_types(list(dict.fromkeys(request.event_types)), unknown=ErrorCode.INVALID_REQUEST)
        if len(event_types) > self.settings.max_filter_size:
            raise ProtocolError(ErrorCode.INVALID_REQUEST, "filter too large", {"limit": self.settings.max_filter_size})
        conn = Connection(
            sid=sid,
            eio_sid=eio_sid,
            client_id=request.client_id or f"client-{secrets.token_hex(6)}",
            identity=identity,
            remote_addr=address,
            rooms=rooms,
            event_types=event_types,
            bucket=TokenBucket(self.settings.client_events_per_min / 60.0, self.settings.client_events_burst),
        )
        return conn, request
