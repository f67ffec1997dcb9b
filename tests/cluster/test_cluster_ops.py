"""Cluster-wide operations and once-only jobs, with real node processes on PostgreSQL and Redis (SPEC §8, §9).

/ws/stats adds up every live node and lists each (a killed node drops out); /ws/connections lists
every node's connections; a kick reaches the node that holds the connection; the per-user
connection limit counts the whole cluster; proposal expiry emits one consensus_decided per
proposal, and its lease moves to another node when the holder is SIGKILLed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from server.auth import TokenAuthority
from server.config import Settings
from tests.cluster.support import stats
from tests.conftest import ClusterFactory
from tests.support import Clients, Recorder, ServerProcess, connect_error
from tests.system.test_process import SECRET, token_for


def token(sub: str, role: str = "admin") -> str:
    return TokenAuthority(Settings(data_dir=Path("."), jwt_secret=SECRET)).mint(sub, [role], ttl_s=600)


async def call(node: ServerProcess, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token_for(Path('.'))}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, node.url + path, headers=headers, **kwargs) as response,
    ):
        body = await response.json(content_type=None) if response.status != 204 else None
        return response.status, body


async def lease_holders(nodes: list[ServerProcess]) -> list[ServerProcess]:
    holders = []
    for node in nodes:
        if node.proc is not None and node.proc.poll() is None and (await stats(node.url))["carrier"]["jobs_lease"]:
            holders.append(node)
    return holders


async def test_stats_listing_kicks_and_the_per_user_limit_span_the_cluster(
    cluster_factory: ClusterFactory, socket_clients: Clients
) -> None:
    cluster = await cluster_factory(2, IMMUNE_MAX_CONNECTIONS_PER_USER="2")
    a, b = cluster.nodes
    alice = token("alice", "viewer")
    on_a = await socket_clients.connect(a.url, auth={"token": alice, "rooms": ["agents"]})
    on_b = await socket_clients.connect(b.url, auth={"token": alice, "rooms": ["agents", "tasks"]})
    clients = [on_a, on_b]
    try:
        # Each node announces itself every second: wait until A sees B's connection.
        async def totals() -> dict[str, Any]:
            return await stats(a.url)

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while (await totals())["active_connections"] != 2:
            assert loop.time() < deadline, await totals()
            await asyncio.sleep(0.2)
        figures = await totals()
        assert [node["node_id"] for node in figures["nodes"]] == ["node-0", "node-1"]
        assert [node["active_connections"] for node in figures["nodes"]] == [1, 1]
        assert figures["rooms"]["agents"] == 2 and figures["rooms"]["tasks"] == 1

        # alice holds 2 connections, one per node: a third, on either node, is refused.
        refused = await connect_error(a.url, auth={"token": alice})
        assert refused["code"] == "too_many_connections"

        status, listed = await call(a, "GET", "/ws/connections")
        assert status == 200 and listed["total"] == 2
        where = {item["connection_id"]: item["node_id"] for item in listed["items"]}
        b_id = on_b.of_type("connected")[0]["data"]["connection_id"]
        assert where[b_id] == "node-1" and sorted(where.values()) == ["node-0", "node-1"]

        # Kicked through node A, held by node B.
        status, _ = await call(a, "DELETE", f"/ws/connections/{b_id}")
        assert status == 204
        kicked = await on_b.wait_event("disconnected", timeout=10)
        assert kicked[0]["data"]["reason"] == "kicked"
        status, problem = await call(a, "DELETE", f"/ws/connections/{b_id}")
        assert status == 404, problem

        # A killed node drops out of the totals within its presence TTL.
        b.kill()
        deadline = loop.time() + 15
        while [node["node_id"] for node in (await totals())["nodes"]] != ["node-0"]:
            assert loop.time() < deadline
            await asyncio.sleep(0.2)
    finally:
        for client in clients:
            await client.client.disconnect()


async def test_proposal_expiry_runs_once_and_its_lease_moves_when_the_holder_dies(
    cluster_factory: ClusterFactory, socket_clients: Clients
) -> None:
    cluster = await cluster_factory(2, IMMUNE_EXPIRY_INTERVAL_S="0.1", IMMUNE_METRICS_INTERVAL_S="0.5")
    nodes = cluster.nodes
    await wait_until_async(lambda: lease_holders(nodes), lambda holders: len(holders) == 1)
    (holder,) = await lease_holders(nodes)
    other = next(node for node in nodes if node is not holder)
    listener = await socket_clients.connect(
        other.url, auth={"token": token("watcher", "viewer"), "rooms": ["coordination", "system"]}
    )
    try:
        agent = await post(holder, "/agents", {"agent_type": "macrophage"})
        await post(holder, "/agents", {"agent_type": "macrophage"})  # a second voter keeps proposals pending
        proposals = [
            (await post(node, "/coordination/consensus/propose", proposal(agent["agent_id"])))["proposal_id"]
            for node in (holder, other, holder, other)
        ]
        await listener.wait_event("consensus_decided", count=4, timeout=15)

        # metrics_updated comes from every node, each naming itself.
        await listener.wait_for(lambda: len(metrics_nodes(listener)) == 2, timeout=15)

        holder.kill()
        await wait_until_async(lambda: lease_holders([other]), lambda holders: holders == [other], timeout=15)
        proposals += [
            (await post(other, "/coordination/consensus/propose", proposal(agent["agent_id"])))["proposal_id"]
            for _ in range(2)
        ]
        await listener.wait_event("consensus_decided", count=6, timeout=15)
        # A second expiry of a proposal would come from a later round of the holder's expiry job
        # (every 0.1 s): wait for two more of its metrics_updated (every 0.5 s, by its own clock).
        # Events arrive in id order, so a duplicate committed before them has arrived before them.
        holder_id = f"node-{nodes.index(other)}"
        seen = len(from_node(listener, holder_id))
        await listener.wait_for(lambda: len(from_node(listener, holder_id)) >= seen + 2, timeout=15)
        decided = Counter(event["data"]["proposal_id"] for event in listener.of_type("consensus_decided"))
        assert decided == Counter(proposals) and set(decided.values()) == {1}
        assert all(event["data"]["decision"] == "expired" for event in listener.of_type("consensus_decided"))
    finally:
        await listener.client.disconnect()


def proposal(agent_id: str) -> dict[str, Any]:
    return {"proposal_type": "quarantine", "timeout_s": 0.5, "votes": {agent_id: True}, "threshold": 1.0}


def from_node(listener: Recorder, node_id: str) -> list[dict[str, Any]]:
    """The metrics_updated events this node published."""
    return [event for event in listener.of_type("metrics_updated") if event["data"].get("node_id") == node_id]


def metrics_nodes(listener: Recorder) -> set[str]:
    return {event["data"].get("node_id") for event in listener.of_type("metrics_updated")}


async def post(node: ServerProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await call(node, "POST", path, json=body)
    assert status in (200, 201, 202), answer
    return dict(answer)


async def wait_until_async(fetch: Any, check: Any, timeout: float = 15.0) -> None:
    """Poll an async `fetch` until `check(result)` holds (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check(await fetch()):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)
