"""This node's gateway as the cluster view sees it: its figures, per-user counts, connections and kicks."""

from __future__ import annotations

from typing import Any

from client_sdk.protocol import DisconnectReason
from server.cluster.presence import LocalNode
from server.realtime.gateway import RealtimeGateway


def gateway_as_local_node(gateway: RealtimeGateway) -> LocalNode:
    """The four answers the cluster view asks of this node."""

    def connections() -> list[dict[str, Any]]:
        return [gateway.describe(conn).model_dump(mode="json") for conn in gateway.connections.values() if conn.active]

    async def kick(connection_id: str) -> bool:
        conn = gateway.connections.get(connection_id)
        if conn is None or not conn.active:
            return False
        # The answer does not wait for a stalled peer to take its last frames (bounded by the send timeout).
        await gateway.close_connection(
            connection_id, DisconnectReason.KICKED, "closed by an administrator", wait_for_flush=False
        )
        return True

    return LocalNode(
        snapshot=gateway.snapshot,
        per_user=lambda: dict(gateway.connections_per_user),
        connections=connections,
        kick=kick,
    )
