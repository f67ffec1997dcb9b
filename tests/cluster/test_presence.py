"""The cluster view on a real redis-server: live nodes, totals, listing and kicks across nodes, per-user counts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.cluster.presence import ClusterUnavailable, ClusterView, LocalNode
from tests.redis_server import RedisServer
from tests.support import wait_until


@dataclass
class FakeGateway:
    """A node's connections as plain data (the view only needs these four answers)."""

    node_id: str
    conns: dict[str, str] = field(default_factory=dict)  # connection id -> user
    kicked: list[str] = field(default_factory=list)

    def local(self) -> LocalNode:
        return LocalNode(self.snapshot, self.per_user, self.connections, self.kick)

    def snapshot(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "active_connections": len(self.conns),
            "messages_sent": 10,
            "events_published": 7,
            "rooms": {"agents": len(self.conns)},
        }

    def per_user(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for user in self.conns.values():
            counts[user] = counts.get(user, 0) + 1
        return counts

    def connections(self) -> list[dict[str, Any]]:
        return [{"connection_id": sid, "user": user} for sid, user in self.conns.items()]

    async def kick(self, connection_id: str) -> bool:
        if self.conns.pop(connection_id, None) is None:
            return False
        self.kicked.append(connection_id)
        return True


@pytest.fixture
async def views(redis_server: RedisServer) -> AsyncIterator[tuple[list[FakeGateway], list[ClusterView]]]:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    gateways = [
        FakeGateway("node-a", {"a1": "alice", "a2": "bob"}),
        FakeGateway("node-b", {"b1": "alice"}),
    ]
    started = [ClusterView(redis_server.url, g.node_id, g.local(), interval_s=0.1, ttl_s=0.5) for g in gateways]
    for view in started:
        view.start()
    await wait_until(lambda: all(view.error is None for view in started), timeout=10)
    yield gateways, started
    for view in started:
        await view.stop()


async def test_stats_add_up_every_live_node_and_list_each(
    views: tuple[list[FakeGateway], list[ClusterView]],
) -> None:
    _, (a, b) = views
    await wait_until(lambda: a.remote_connections("alice") == 1, timeout=10)
    stats = await a.stats()
    assert stats["node_id"] == "node-a"
    assert stats["active_connections"] == 3 and stats["messages_sent"] == 20
    assert stats["events_published"] == 7  # every node delivers every event: not summed
    assert stats["rooms"] == {"agents": 3}
    assert [node["node_id"] for node in stats["nodes"]] == ["node-a", "node-b"]
    assert a.remote_connections("alice") == 1 and a.remote_connections("bob") == 0
    assert b.remote_connections("bob") == 1


async def test_a_dead_node_drops_out_within_its_ttl(views: tuple[list[FakeGateway], list[ClusterView]]) -> None:
    _, (a, b) = views
    # Die without saying goodbye: the tasks stop, the key is left to expire. A crash has no public
    # API (stop() says goodbye), so this fault is made by cancelling the view's own tasks.
    for task in b._tasks:
        task.cancel()

    async def node_ids() -> list[str]:
        return [node["node_id"] for node in await a.nodes()]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while await node_ids() != ["node-a"]:
        assert loop.time() < deadline
        await asyncio.sleep(0.1)
    assert a.remote_connections("alice") == 0


async def test_connections_of_every_node_are_listed_and_a_kick_reaches_the_holder(
    views: tuple[list[FakeGateway], list[ClusterView]],
) -> None:
    (gateway_a, gateway_b), (a, _) = views
    listed = await a.connections()
    assert sorted((item["connection_id"], item["node_id"]) for item in listed) == [
        ("a1", "node-a"),
        ("a2", "node-a"),
        ("b1", "node-b"),
    ]
    assert await a.kick("b1") is True
    assert gateway_b.kicked == ["b1"] and gateway_a.kicked == []
    assert await a.kick("b1") is False  # gone now
    assert await a.kick("nobody") is False


async def test_without_redis_stats_fall_back_to_this_node_and_listing_is_refused(
    views: tuple[list[FakeGateway], list[ClusterView]], redis_server: RedisServer
) -> None:
    _, (a, _) = views
    redis_server.kill()
    try:
        stats = await a.stats()
        assert stats["cluster_error"] and [node["node_id"] for node in stats["nodes"]] == ["node-a"]
        with pytest.raises(ClusterUnavailable):
            await a.connections()
        await wait_until(lambda: a.error is not None, timeout=10)
        assert a.remote_connections("alice") == 0
    finally:
        redis_server.start()
    await wait_until(lambda: a.error is None, timeout=10)
