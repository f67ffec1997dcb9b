"""Two nodes behind a real HAProxy (scripts/haproxy_cfg.py): WebSocket clients spread over both nodes with no
stickiness, a long-polling client stays on one node thanks to the sticky backend, and every client gets
exactly the log's selection, in order, whichever node committed each event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster.support import Cluster
from tests.conftest import ClusterFactory
from tests.haproxy import HAProxy
from tests.support import Clients, wait_until
from tests.system.test_chaos import log_events
from tests.system.test_process import token_for
from tests.system.test_resume_restart import ROOMS, TYPES, ResumingClient, assert_exactly, post_batch


@pytest.fixture
async def balanced(cluster_factory: ClusterFactory, tmp_path: Path) -> AsyncIterator[tuple[Cluster, HAProxy]]:
    # A short Engine.IO heartbeat: a polling client's disconnect waits for its pending long poll.
    cluster = await cluster_factory(
        2, IMMUNE_TRUSTED_PROXIES='["127.0.0.1"]', IMMUNE_PING_INTERVAL_S="1", IMMUNE_PING_TIMEOUT_S="2"
    )
    proxy = HAProxy(tmp_path, [node.port for node in cluster.nodes])
    await asyncio.to_thread(proxy.start)
    yield cluster, proxy
    await asyncio.to_thread(proxy.stop)


async def test_websocket_spreads_polling_sticks_and_everyone_gets_the_log_in_order(
    balanced: tuple[Cluster, HAProxy], socket_clients: Clients
) -> None:
    cluster, proxy = balanced
    token = token_for(Path("."))
    sockets = [ResumingClient(token, opened=socket_clients) for _ in range(4)]
    polling = ResumingClient(token, opened=socket_clients)
    try:
        for client in sockets:
            await client.connect(proxy.url)
        await polling.client.connect(proxy.url, auth=polling.auth, transports=["polling"], wait_timeout=5)
        await polling.rec.wait_event("connected")

        # No stickiness for WebSocket: the balancer put connections on both nodes.
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
            session.get(f"{proxy.url}/ws/connections") as response,
        ):
            assert response.status == 200
            listed = await response.json()
        assert listed["total"] == 5
        assert {item["node_id"] for item in listed["items"]} == {"node-0", "node-1"}

        # Producers on each node directly and through the balancer.
        await asyncio.gather(
            post_batch(cluster.nodes[0].url, token, 5),
            post_batch(cluster.nodes[1].url, token, 5),
            post_batch(proxy.url, token, 5),
        )
        expected = await log_events(proxy.url, token, ",".join(ROOMS), ",".join(TYPES))
        assert len(expected) == 30
        for client in [*sockets, polling]:
            await wait_until(lambda client=client: len(client.ids) >= len(expected), timeout=20)
        await assert_exactly([*sockets, polling], proxy.url, token, expected)
        # The polling session never broke (a request reaching the other node would end it).
        assert len(polling.connects()) == 1 and polling.client.transport() == "polling"
    finally:
        for client in [*sockets, polling]:
            await client.client.disconnect()
