"""REST budgets on a cluster (SPEC §7, §8): shared by the nodes through Redis, per node while Redis is down.

Two real nodes on PostgreSQL and Redis, with a budget of 3 calls that refills one call a minute
(nothing refills within the test): an identity that spends it on node A is refused on node B; another
identity is unaffected; an address spending its no-token budget on A is refused on B; with
redis-server killed or hung both nodes still answer, each from its own budget, and say so once in the log.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from server.auth import TokenAuthority
from server.config import Settings
from tests.conftest import ClusterFactory
from tests.redis_server import RedisServer
from tests.support import ServerProcess
from tests.system.test_process import SECRET

BURST = 3
LIMITS = {"IMMUNE_REST_PER_MIN": "1", "IMMUNE_REST_BURST": str(BURST)}


def token(sub: str) -> str:
    return TokenAuthority(Settings(data_dir=Path("."), jwt_secret=SECRET)).mint(sub, ["viewer"], ttl_s=600)


async def get_agents(
    node: ServerProcess, sub: str | None, forwarded_for: str | None = None, bearer: str | None = None
) -> tuple[int, str | None]:
    """GET /agents as `sub` (no token when None) or with the token `bearer`; returns the status and Retry-After."""
    bearer = bearer or (token(sub) if sub is not None else None)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer is not None else {}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    async with aiohttp.ClientSession() as session, session.get(node.url + "/agents", headers=headers) as response:
        await response.read()
        return response.status, response.headers.get("Retry-After")


def log_events(node: ServerProcess, name: str) -> list[dict[str, object]]:
    lines = (node.data_dir / "server.log").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    return [event for event in events if event.get("event") == name]


async def test_an_identity_budget_spent_on_one_node_is_spent_on_the_other(cluster_factory: ClusterFactory) -> None:
    cluster = await cluster_factory(2, **LIMITS)
    a, b = cluster.nodes
    for _ in range(BURST):
        assert (await get_agents(a, "alice"))[0] == 200
    status, retry_after = await get_agents(b, "alice")
    assert status == 429
    assert retry_after is not None and int(retry_after) >= 1
    assert (await get_agents(a, "alice"))[0] == 429
    # Another identity has its own budget, on either node.
    assert (await get_agents(b, "bob"))[0] == 200
    assert (await get_agents(a, "bob"))[0] == 200


async def test_an_address_without_a_token_is_refused_on_every_node(cluster_factory: ClusterFactory) -> None:
    # The client's address comes from X-Forwarded-For (the test is the trusted proxy), so that spending
    # it leaves 127.0.0.1, which the fixtures' probes and the other tests use, alone.
    cluster = await cluster_factory(2, IMMUNE_TRUSTED_PROXIES='["127.0.0.1"]', **LIMITS)
    a, b = cluster.nodes
    client = "203.0.113.7"
    # A valid token only looks at its address's budget; node B remembers it as verified.
    dave = token("dave")
    assert (await get_agents(b, None, client, bearer=dave))[0] == 200
    for _ in range(BURST):
        assert (await get_agents(a, None, client))[0] == 401
    status, retry_after = await get_agents(b, None, client)
    assert status == 429
    assert retry_after is not None and int(retry_after) >= 1
    # The address is refused before its token is looked at, as on a single node.
    assert (await get_agents(b, "carol", client))[0] == 429
    # So is a token node B verified before: its address and identity budgets are settled in one script.
    assert (await get_agents(b, None, client, bearer=dave))[0] == 429
    # Another address is unaffected.
    assert (await get_agents(b, None, "203.0.113.8"))[0] == 401


async def test_with_redis_down_each_node_answers_from_its_own_budget(
    cluster_factory: ClusterFactory, redis_server: RedisServer
) -> None:
    cluster = await cluster_factory(2, **LIMITS)
    a, b = cluster.nodes
    assert (await get_agents(a, "dave"))[0] == 200  # one of dave's 3 shared calls
    redis_server.kill()
    for _ in range(BURST):
        assert (await get_agents(a, "dave"))[0] == 200  # A's own bucket: a fresh budget of 3
    assert (await get_agents(a, "dave"))[0] == 429  # still limited, per node
    for _ in range(BURST):
        assert (await get_agents(b, "dave"))[0] == 200  # B's own bucket
    assert (await get_agents(b, "dave"))[0] == 429
    for node in (a, b):
        assert len(log_events(node, "rest_limits_local")) == 1


async def test_a_hung_redis_does_not_hold_rest_calls(
    cluster_factory: ClusterFactory, redis_server: RedisServer
) -> None:
    cluster = await cluster_factory(2, **LIMITS)
    a, _ = cluster.nodes
    redis_server.pause()  # connections stay open, nothing answers
    try:
        # Answered from A's own budget once the bounded Redis call gives up (the client's own
        # timeout is far above the limiter's 100 ms, so a hold would show as a failure here).
        async with asyncio.timeout(10):
            assert (await get_agents(a, "erin"))[0] == 200
        assert len(log_events(a, "rest_limits_local")) == 1
    finally:
        redis_server.unpause()
    # Redis is asked again a second after the failure: the shared budget comes back, and says so.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not log_events(a, "rest_limits_shared"):
        assert loop.time() < deadline, "the node never went back to the shared budget"
        assert (await get_agents(a, f"frank-{loop.time()}"))[0] == 200
        await asyncio.sleep(0.2)
