"""A cluster on this machine for tests: real PostgreSQL, real redis-server, `immune-core serve` nodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp

from server.auth import TokenAuthority
from server.config import Settings
from tests.postgres import PostgresServer
from tests.redis_server import RedisServer
from tests.support import ServerProcess

FAST_CARRIER = {
    # Small periods so that an outage is noticed, and healed, within a test's patience.
    "IMMUNE_CARRIER_HEARTBEAT_S": "0.3",
    "IMMUNE_CARRIER_DEAD_AFTER_S": "1.5",
    "IMMUNE_LOG_FOLLOW_INTERVAL_S": "0.3",
}
ROOMY_REST_LIMITS = {
    # REST budgets are shared by every node of a cluster: producers on several nodes under one test
    # identity would spend the default budget (100 at once) between them. Tests of the limits set their own.
    "IMMUNE_REST_PER_MIN": "1000000",
    "IMMUNE_REST_BURST": "100000",
}


class Cluster:
    """N nodes sharing one PostgreSQL database and one Redis."""

    def __init__(self, root: Path, postgres: PostgresServer, redis: RedisServer, size: int, **env: str) -> None:
        self.postgres = postgres
        self.redis = redis
        self.nodes: list[ServerProcess] = []
        for index in range(size):
            data_dir = root / f"node{index}"
            data_dir.mkdir(parents=True, exist_ok=True)
            node_env = {
                "IMMUNE_DATABASE_URL": postgres.url,
                "IMMUNE_REDIS_URL": redis.url,
                "IMMUNE_NODE_ID": f"node-{index}",
                "IMMUNE_LOG_LEVEL": "info",
                **FAST_CARRIER,
                **ROOMY_REST_LIMITS,
                **env,
            }
            self.nodes.append(ServerProcess(data_dir, env=node_env))

    async def start(self) -> None:
        """Start every node, then wait until each one's carrier is up."""
        await asyncio.gather(*(asyncio.to_thread(node.start) for node in self.nodes))
        await asyncio.gather(*(wait_carrier(node.url, "up") for node in self.nodes))

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            node.stop()  # waits for the SIGTERM above (SIGKILL after 10 s)


async def stats(url: str) -> dict[str, Any]:
    """GET /ws/stats with a token minted for the ServerProcess secret.

    Each probe is its own subject: REST budgets are shared by the nodes, and polling must not
    spend the budget a test sets low for its own identities.
    """
    from tests.system.test_process import SECRET

    probe = TokenAuthority(Settings(data_dir=Path("."), jwt_secret=SECRET)).mint(f"probe-{uuid4().hex}", ["admin"])
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/ws/stats", headers={"Authorization": f"Bearer {probe}"}) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def wait_carrier(url: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait until this node's /ws/stats shows its carrier in `status`; returns the carrier's figures."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        carrier: dict[str, Any] = (await stats(url))["carrier"]
        if carrier["status"] == status:
            return carrier
        assert loop.time() < deadline, f"carrier never {status}: {carrier}"
        await asyncio.sleep(0.1)
