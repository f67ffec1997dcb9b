"""Cluster chaos with real processes (SPEC §4, §9): three nodes behind HAProxy on PostgreSQL and Redis.

python-socketio, SDK and Node socket.io-client clients with different rooms and filters connect through
the balancer; a producer posts to every node. During the run a node is SIGKILLed and restarted,
redis-server is restarted, Redis is frozen (SIGSTOP) for 5 s, and one node's PostgreSQL connections
are terminated. At the end every client holds exactly the log's selection for its rooms and filter,
in order, without duplicates, and every acknowledged write is in the log.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from client_sdk.client import Event, ImmuneClient
from tests.cluster.support import Cluster
from tests.conftest import ClusterFactory
from tests.haproxy import HAProxy
from tests.js_runner import NodeResumer
from tests.support import Clients, wait_until
from tests.system.test_process import token_for
from tests.system.test_resume_restart import ResumingClient

BODIES = [
    {"event_type": "custom.a", "room": "agents"},
    {"event_type": "custom.b", "room": "agents"},
    {"event_type": "custom.a", "room": "tasks"},
    {"event_type": "custom.all", "room": None},
]


class SelectiveClient(ResumingClient):
    """A raw python-socketio client with its own rooms and filter, resuming with its last id."""

    def __init__(self, token: str, rooms: list[str], event_types: list[str], opened: Clients) -> None:
        super().__init__(token, opened=opened)
        self.rooms = rooms
        self.event_types = event_types

    def auth(self) -> dict[str, Any]:
        return {**super().auth(), "rooms": self.rooms, "event_types": self.event_types}


class Producer:
    """Posts to one node until stopped, retrying through its outages; keeps every acknowledged id."""

    def __init__(self, url: str, token: str, name: str) -> None:
        self.url, self.token, self.name = url, token, name
        self.acknowledged: list[int] = []
        self.refused = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as session:
            n = 0
            while not self._stop.is_set():
                n += 1
                body = {**BODIES[n % len(BODIES)], "data": {"n": n, "by": self.name}}
                try:
                    async with session.post(f"{self.url}/ws/broadcast", json=body) as response:
                        if response.status == 202:
                            self.acknowledged.append((await response.json())["event_id"])
                        else:
                            self.refused += 1
                except (aiohttp.ClientError, TimeoutError):
                    self.refused += 1
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


async def logged(
    url: str, token: str, rooms: list[str] | None = None, event_types: list[str] | None = None
) -> list[int]:
    """The log's ids for a selection, paging through GET /events."""
    ids: list[int] = []
    after = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            params: dict[str, Any] = {"after": after, "limit": 1000}
            if rooms:
                params["rooms"] = ",".join(rooms)
            if event_types:
                params["event_types"] = ",".join(event_types)
            async with session.get(f"{url}/events", params=params) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            ids.extend(item["event_id"] for item in page["items"])
            if page["next_after"] >= page["head"]:
                return ids
            after = page["next_after"]


async def broadcast(url: str, token: str, body: dict[str, Any]) -> None:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.post(f"{url}/ws/broadcast", json=body) as response,
    ):
        assert response.status == 202, await response.text()


async def pump(node: NodeResumer) -> None:
    """Read the Node client's lines as they come (a full pipe would stall it)."""
    assert node.proc is not None and node.proc.stdout is not None
    while raw := await node.proc.stdout.readline():
        node.lines.append(json.loads(raw))


async def terminate_backends(cluster: Cluster, node_id: str) -> int:
    """pg_terminate_backend every PostgreSQL connection of one node (they carry its name)."""
    conn = await asyncpg.connect(cluster.postgres.url.replace("postgresql+asyncpg", "postgresql"))
    try:
        killed: int = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            f"immune-core {node_id}",
        )
        return killed
    finally:
        await conn.close()


async def test_clients_end_with_exactly_the_log_through_kills_redis_outages_and_cut_database_sessions(
    cluster_factory: ClusterFactory, tmp_path: Path, socket_clients: Clients
) -> None:
    cluster = await cluster_factory(3, IMMUNE_REST_PER_MIN="1000000", IMMUNE_REST_BURST="100000")
    proxy = HAProxy(tmp_path, [node.port for node in cluster.nodes])
    await asyncio.to_thread(proxy.start)
    token = token_for(Path("."))
    py_clients = [
        SelectiveClient(token, ["agents"], ["custom.a", "custom.all"], socket_clients),
        SelectiveClient(token, ["agents", "tasks"], [], socket_clients),
        SelectiveClient(token, ["tasks"], ["custom.a"], socket_clients),
    ]
    sdk_ids: list[int] = []
    sdk = ImmuneClient(proxy.url, token=token, rooms=["tasks"], backoff_initial_s=0.05, backoff_max_s=0.5)

    @sdk.on("*")
    def record(event: Event) -> None:
        assert event.event_id is not None
        sdk_ids.append(event.event_id)

    node = NodeResumer(
        {
            "URL": proxy.url,
            "TOKEN": token,
            "TOTAL": "1000000",
            "ROOMS": "agents",
            "EVENT_TYPES": "custom.b,custom.all",
            "DEADLINE_MS": "120000",
        }
    )
    producers = [Producer(n.url, token, f"p{i}") for i, n in enumerate(cluster.nodes)]
    tasks: list[asyncio.Task[Any]] = []
    try:
        for client in py_clients:
            await client.connect(proxy.url)
        await sdk.connect()
        await node.start()
        tasks.append(asyncio.create_task(pump(node)))
        await wait_until(lambda: any(line["step"] == "connected" for line in node.lines), timeout=20)
        tasks += [asyncio.create_task(producer.run()) for producer in producers]
        redis = cluster.redis

        await asyncio.sleep(1.0)
        victim = cluster.nodes[1]
        await asyncio.to_thread(victim.kill)  # its clients come back through HAProxy on the others
        await asyncio.sleep(0.5)
        await asyncio.to_thread(victim.start)

        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis.kill)  # restart redis-server: an empty one on the same port
        await asyncio.sleep(0.5)
        await asyncio.to_thread(redis.start)

        await asyncio.sleep(1.0)
        redis.pause()  # a hung Redis: only the heartbeat notices
        await asyncio.sleep(5.0)
        redis.unpause()

        await asyncio.sleep(1.0)
        assert await terminate_backends(cluster, "node-2") >= 1
        await asyncio.sleep(1.5)
    finally:
        for producer in producers:
            producer.stop()
        cluster.redis.unpause()
    try:
        await asyncio.gather(*tasks[1:])
        head_url = cluster.nodes[0].url
        everything = set(await logged(head_url, token))
        acknowledged = [event_id for producer in producers for event_id in producer.acknowledged]
        assert len(acknowledged) > 100
        assert set(acknowledged) <= everything  # every 2xx write is in the log

        # Last, two markers that every client selects one of (custom.a in tasks, or custom.all):
        # events reach a connection in id order, so a client that has its last marker has had
        # everything before it, a duplicate included. No need to wait and see.
        for marker in ({"event_type": "custom.all", "room": None}, {"event_type": "custom.a", "room": "tasks"}):
            await broadcast(head_url, token, marker)
        expectations = []
        for client in py_clients:
            start = client.connects()[0]["last_event_id"]
            want = [i for i in await logged(head_url, token, client.rooms, client.event_types) if i > start]
            expectations.append((client.ids, want))
        sdk_want = await logged(head_url, token, ["tasks"])
        node_want = await logged(head_url, token, ["agents"], ["custom.b", "custom.all"])
        for got, want in [*expectations, (sdk_ids, sdk_want)]:
            await wait_until(lambda got=got, want=want: got[-1:] == want[-1:], timeout=30)
        await wait_until(lambda: node.event_ids()[-1:] == node_want[-1:], timeout=30)

        for got, want in expectations:
            assert got == want
        assert sdk_ids == sdk_want
        assert node.of("duplicate") == [] and node.event_ids() == node_want
        # The faults did reach the clients: the node's clients reconnected elsewhere.
        reconnects = sum(len(client.connects()) - 1 for client in py_clients) + len(node.of("connected")) - 1
        assert reconnects + sdk.connects - 1 >= 1
    finally:
        for client in py_clients:
            await client.client.disconnect()
        await sdk.close()
        await node.close()
        tasks[0].cancel()
        await asyncio.to_thread(proxy.stop)
    await asyncio.to_thread(cluster.stop)  # a clean exit too: no traceback in any node's log
    for server in cluster.nodes:
        text = (server.data_dir / "server.log").read_text()
        assert "Traceback" not in text, text[text.index("Traceback") - 500 :][:3000]
