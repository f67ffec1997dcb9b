"""Every connection of this node, by sid and per user, and the figures taken from them (Centrifuge's hub.go)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from client_sdk.protocol import InfoData
from server.realtime.connection import Connection
from server.realtime.stats import RealtimeStats


class ConnectionRegistry:
    """The one place that knows every connection of this node; each one's state stays in its Connection.

    A connection is registered from its connect handler (before its backlog is read, so that
    concurrent connects of one user count against its limit) until its disconnect; it is listed,
    found for a kick and counted in the stats only once active (its `connected` was sent).
    """

    def __init__(
        self,
        node_id: str,
        stats: RealtimeStats,
        messages_sent: Callable[[], int],
        sent_to: Callable[[str], int],
    ) -> None:
        self.node_id = node_id
        self.stats = stats
        self._messages_sent = messages_sent
        # Frames sent to one connection: counted by the fan-out per recipient (manager.sent_by_sid).
        self._sent_to = sent_to
        self._by_sid: dict[str, Connection] = {}
        self._per_user: Counter[str] = Counter()
        # A user's connections on the other nodes of a cluster (server/cluster/presence.py).
        self.remote_connections: Callable[[str], int] = lambda subject: 0

    def __len__(self) -> int:
        return len(self._by_sid)

    @property
    def by_sid(self) -> Mapping[str, Connection]:
        """Every registered connection by Socket.IO sid (read-only: register with `add`, forget with `pop`)."""
        return self._by_sid

    def get(self, sid: str) -> Connection | None:
        """The registered connection with this sid, active or not."""
        return self._by_sid.get(sid)

    def get_active(self, connection_id: str) -> Connection | None:
        """The connection an admin can see or kick: registered and active."""
        conn = self._by_sid.get(connection_id)
        return conn if conn is not None and conn.active else None

    def active(self) -> list[Connection]:
        """The connections GET /ws/connections lists."""
        return [conn for conn in self._by_sid.values() if conn.active]

    def add(self, conn: Connection) -> None:
        """Register a connection being admitted; it counts against its user's limit from now on."""
        self._by_sid[conn.sid] = conn
        self._per_user[conn.identity.subject] += 1

    def pop(self, sid: str) -> Connection | None:
        """Forget the connection with this sid and return it (None when it was not registered)."""
        conn = self._by_sid.pop(sid, None)
        if conn is not None:
            self._release_user(conn.identity.subject)
        return conn

    def remove(self, conn: Connection) -> None:
        """Forget this connection, unless its sid now belongs to another one."""
        if self._by_sid.get(conn.sid) is conn:
            self.pop(conn.sid)

    def _release_user(self, subject: str) -> None:
        self._per_user[subject] -= 1
        if self._per_user[subject] <= 0:
            del self._per_user[subject]

    def held_by(self, subject: str) -> int:
        """A user's connections across the deployment: this node's plus the other nodes' (cluster-wide limit)."""
        return self._per_user[subject] + self.remote_connections(subject)

    def per_user(self) -> dict[str, int]:
        """User → connections on this node (what the cluster view shares with the other nodes)."""
        return dict(self._per_user)

    def room_members(self) -> dict[str, int]:
        """Public room → number of local members."""
        counts: dict[str, int] = {}
        for conn in self._by_sid.values():
            for room in conn.rooms:
                counts[room] = counts.get(room, 0) + 1
        return counts

    def describe(self, conn: Connection) -> InfoData:
        """The `info` data of a connection (also served by GET /ws/connections/{id})."""
        return InfoData(
            connection_id=conn.connection_id,
            client_id=conn.client_id,
            user=conn.identity.subject,
            roles=list(conn.identity.roles),
            rooms=list(conn.rooms),
            event_types=list(conn.event_types),
            connected_at=conn.connected_at,
            last_activity=conn.last_activity,
            messages_sent=self._sent_to(conn.sid),
            messages_received=conn.messages_received,
        )

    def snapshot(self) -> dict[str, Any]:
        """This node's figures for GET /ws/stats (SPEC §8)."""
        rooms = self.room_members()
        return {
            "node_id": self.node_id,
            "active_connections": len(self._by_sid),
            "total_connections": self.stats.total_connections,
            "total_disconnections": self.stats.total_disconnections,
            "total_rooms": len(rooms),
            "messages_sent": self._messages_sent(),
            "messages_received": self.stats.messages_received,
            "rooms": rooms,
            "uptime_s": self.stats.uptime_s,
            "events_published": self.stats.events_published,
            "events_replayed": self.stats.events_replayed,
            "rate_limited": self.stats.rate_limited,
            "slow_consumer_disconnects": self.stats.slow_consumer_disconnects,
        }
