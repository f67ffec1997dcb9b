"""Ends connections whose token expired or that went idle (SPEC §7), within a fraction of a second."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from client_sdk.protocol import DisconnectReason
from server.periodic import Periodic
from server.realtime.connection import Connection

Closer = Callable[[str, DisconnectReason, str], object]


class ConnectionReaper:
    """Sweeps connections every `interval_s`: `token_expired` past `exp` + leeway, `idle_timeout` after silence."""

    def __init__(
        self,
        connections: Callable[[], Iterable[Connection]],
        close: Closer,
        idle_timeout_s: float,
        leeway_s: float = 0.0,
        interval_s: float = 0.25,
    ) -> None:
        self._connections = connections
        self._close = close
        self.idle_timeout_s = idle_timeout_s
        # The clock skew that verification tolerates at connect: a token accepted there must not be
        # ended as expired the moment the connection is up.
        self.leeway_s = leeway_s
        self._periodic = Periodic("connection-reaper", interval_s, self.sweep)

    def sweep(self, wall: float | None = None, mono: float | None = None) -> list[tuple[str, DisconnectReason]]:
        """Close what is due now; returns (sid, reason) for each."""
        wall = time.time() if wall is None else wall
        mono = time.monotonic() if mono is None else mono
        closed: list[tuple[str, DisconnectReason]] = []
        for conn in list(self._connections()):
            if not conn.active:
                continue
            expires_at = conn.identity.expires_at
            if expires_at is not None and wall >= expires_at + self.leeway_s:
                closed.append((conn.sid, DisconnectReason.TOKEN_EXPIRED))
                self._close(conn.sid, DisconnectReason.TOKEN_EXPIRED, "token expired; reconnect with a fresh token")
            elif self.idle_timeout_s and mono - conn.last_activity_monotonic >= self.idle_timeout_s:
                closed.append((conn.sid, DisconnectReason.IDLE_TIMEOUT))
                self._close(conn.sid, DisconnectReason.IDLE_TIMEOUT, "no client event for too long")
        return closed

    def start(self) -> None:
        """Sweep in the background."""
        self._periodic.start()

    async def stop(self) -> None:
        """Stop sweeping."""
        await self._periodic.stop()
