"""Running one client event: the rate limit, the size and depth checks, the handler, the ack or `error`."""

from __future__ import annotations

from typing import Any

import structlog

from client_sdk.protocol import DisconnectReason, ErrorCode, ErrorData, EventType
from server.config import Settings
from server.json_limits import json_depth
from server.realtime.closing import ConnectionCloser
from server.realtime.connection import Connection
from server.realtime.delivery import Delivery
from server.realtime.engine import OversizedMessage
from server.realtime.errors import ProtocolError
from server.realtime.registry import ConnectionRegistry
from server.realtime.requests import ClientRequests
from server.realtime.stats import RealtimeMetrics, RealtimeStats

log = structlog.get_logger(__name__)


class ClientEvents:
    """What the socket server hands each client event to (engine.py's `ClientEventHandler`).

    The handlers themselves are `ClientRequests`' (requests.py); every outcome is an ack body.
    """

    def __init__(
        self,
        settings: Settings,
        registry: ConnectionRegistry,
        requests: ClientRequests,
        closer: ConnectionCloser,
        delivery: Delivery,
        stats: RealtimeStats,
        metrics: RealtimeMetrics,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.requests = requests
        self.closer = closer
        self.delivery = delivery
        self.stats = stats
        self.metrics = metrics

    async def handle_client_event(self, sid: str, event: Any, args: list[Any], wants_ack: bool) -> dict[str, Any]:
        """Run one client event; the reply is the ack body (also the basis of an `error` event)."""
        conn = self.registry.get(sid)
        name = event if isinstance(event, str) else repr(event)
        if conn is None:
            ack = ProtocolError(ErrorCode.INVALID_REQUEST, "not connected").to_ack()
            return ack.model_dump(mode="json")
        conn.touch()
        self.stats.messages_received += 1
        handler = self.requests.handlers.get(name)
        try:
            self._check_rate(conn)
            if args and isinstance(args[0], OversizedMessage):
                raise ProtocolError(
                    ErrorCode.INVALID_REQUEST,
                    "message too large",
                    {"limit": args[0].limit, "size": args[0].size},
                )
            if json_depth(args, self.settings.max_json_depth + 1) > self.settings.max_json_depth + 1:
                raise ProtocolError(
                    ErrorCode.INVALID_REQUEST, "payload nested too deeply", {"limit": self.settings.max_json_depth}
                )
            if handler is None:
                raise ProtocolError(ErrorCode.UNKNOWN_ACTION, f"unknown action: {name[:64]}", {"event": name[:64]})
            ack = await handler(conn, args[0] if args else {})
        except ProtocolError as exc:
            ack = exc.to_ack()
        except Exception:
            log.exception("client_event_failed", connection_id=sid, client_id=conn.client_id, request=name[:64])
            ack = ProtocolError(ErrorCode.INTERNAL_ERROR, "internal error").to_ack()
        outcome = "ok" if ack.success else (ack.error.code.value if ack.error else "error")
        self.metrics.client_events.labels(event=name if handler else "unknown", outcome=outcome).inc()
        if not ack.success and not wants_ack and ack.error is not None:
            error = ErrorData(code=ack.error.code, message=ack.message, details=ack.error.details, request=name[:64])
            self.delivery.send_direct(conn, EventType.ERROR, error.model_dump(mode="json"))
        return ack.model_dump(mode="json", exclude_none=True)

    def _check_rate(self, conn: Connection) -> None:
        """Token bucket per connection; a client that keeps hammering is disconnected."""
        retry_after = conn.bucket.take() if conn.bucket else 0.0
        if not retry_after:
            conn.strikes = 0
            return
        conn.strikes += 1
        self.stats.rate_limited += 1
        if conn.strikes >= self.settings.rate_limit_strikes:
            self.closer.close_soon(conn.sid, DisconnectReason.RATE_LIMITED, "too many requests")
        raise ProtocolError(ErrorCode.RATE_LIMITED, "too many requests", {"retry_after_s": round(retry_after, 3)})
