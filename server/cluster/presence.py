"""The cluster seen from any node: live nodes' figures, every connection, kicks and per-user counts (SPEC §8, §9).

Each node writes its figures to `immune:node:<id>` every `interval_s` with a TTL of `ttl_s`, so a
dead node drops out within `ttl_s`. Operations that need another node's hands (listing its
connections, kicking one of them) go as requests onto that node's list `immune:ops:<id>`, which the
node pops with BLPOP (a request/response command with a timeout, so a dead connection is noticed
on the next pop, unlike a silent subscription) and answers on a reply list the asker waits on.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from server.periodic import cancel_and_wait

log = structlog.get_logger(__name__)

NODE_KEY = "immune:node:"
OPS_KEY = "immune:ops:"
REPLY_KEY = "immune:reply:"
REPLY_TTL_S = 10
"""Replies nobody reads any more (the asker timed out) expire after this long."""

SUMMED = (
    "active_connections",
    "total_connections",
    "total_disconnections",
    "messages_sent",
    "messages_received",
    "events_replayed",
    "rate_limited",
    "slow_consumer_disconnects",
)
"""Figures that add up across nodes; every node delivers every event, so `events_published` is the most any saw."""


class ClusterUnavailable(Exception):
    """Redis cannot be reached: a cluster-wide answer is not possible right now."""


class LocalNode:
    """What the cluster view needs from this node's gateway (plain callables, so the view stays testable)."""

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        per_user: Callable[[], dict[str, int]],
        connections: Callable[[], list[dict[str, Any]]],
        kick: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.snapshot = snapshot
        self.per_user = per_user
        self.connections = connections
        self.kick = kick


class ClusterView:
    """This node's presence in Redis and the cluster-wide operations built on every node's presence."""

    def __init__(
        self,
        url: str,
        node_id: str,
        local: LocalNode,
        *,
        interval_s: float = 1.0,
        ttl_s: float = 3.0,
        request_timeout_s: float = 2.0,
    ) -> None:
        self.node_id = node_id
        self._local = local
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.request_timeout_s = request_timeout_s
        self._client = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=request_timeout_s,
            socket_timeout=request_timeout_s + 2,
            retry=Retry(NoBackoff(), 0),
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._others: list[dict[str, Any]] = []
        self._others_per_user: dict[str, int] = {}
        self.error: str | None = "not started"

    def start(self) -> None:
        """Begin announcing this node and serving other nodes' requests."""
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._announce_forever(), name="cluster-presence"),
            loop.create_task(self._serve_forever(), name="cluster-ops"),
        ]

    async def stop(self) -> None:
        """Stop, and remove this node's presence so that it drops out at once."""
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.delete(NODE_KEY + self.node_id), 1.0)
        with contextlib.suppress(Exception):
            await self._client.aclose()

    # --- what the API asks ------------------------------------------------------------------

    def remote_connections(self, subject: str) -> int:
        """This user's connections on the other live nodes (as of their last announcement, <= interval_s old)."""
        return self._others_per_user.get(subject, 0)

    async def nodes(self) -> list[dict[str, Any]]:
        """Each live node's own figures, this node's fresh (ClusterUnavailable without Redis)."""
        others = await self._read_others()
        return sorted([self._local.snapshot(), *others], key=lambda node: str(node.get("node_id")))

    async def stats(self) -> dict[str, Any]:
        """The deployment's totals plus `nodes`; this node alone, with `cluster_error`, while Redis is down."""
        try:
            nodes = await self.nodes()
        except ClusterUnavailable as exc:
            local = self._local.snapshot()
            return {**local, "nodes": [local], "cluster_error": str(exc)}
        mine = next(node for node in nodes if node.get("node_id") == self.node_id)
        totals: dict[str, Any] = dict(mine)
        for name in SUMMED:
            totals[name] = sum(int(node.get(name, 0)) for node in nodes)
        totals["events_published"] = max(int(node.get("events_published", 0)) for node in nodes)
        rooms: dict[str, int] = {}
        for node in nodes:
            for room, members in node.get("rooms", {}).items():
                rooms[room] = rooms.get(room, 0) + int(members)
        totals["rooms"] = rooms
        totals["total_rooms"] = len(rooms)
        return {**totals, "nodes": nodes}

    async def connections(self) -> list[dict[str, Any]]:
        """Every live node's connections, each with its `node_id`."""
        mine = [{**item, "node_id": self.node_id} for item in self._local.connections()]
        others = [node["node_id"] for node in await self._read_others()]
        answers = await self._ask_all(others, {"op": "list"})
        for node_id, answer in answers.items():
            mine.extend({**item, "node_id": node_id} for item in answer)
        return mine

    async def kick(self, connection_id: str) -> bool:
        """Kick the connection on whichever node holds it; False if no live node does."""
        if await self._local.kick(connection_id):
            return True
        others = [node["node_id"] for node in await self._read_others()]
        answers = await self._ask_all(others, {"op": "kick", "id": connection_id})
        return any(answers.values())

    # --- Redis ------------------------------------------------------------------------------

    async def _read_others(self) -> list[dict[str, Any]]:
        try:
            keys = [key async for key in self._client.scan_iter(match=NODE_KEY + "*", count=1000)]
            values = await self._client.mget(keys) if keys else []
        except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
            raise ClusterUnavailable(f"Redis is unavailable: {type(exc).__name__}") from None
        others = []
        for value in values:
            if value is None:
                continue  # expired between SCAN and MGET
            presence = orjson.loads(value)
            if presence["node"].get("node_id") != self.node_id:
                others.append({**presence["node"], "_per_user": presence["per_user"]})
        per_user: dict[str, int] = {}
        for node in others:
            for subject, count in node.pop("_per_user").items():
                per_user[subject] = per_user.get(subject, 0) + int(count)
        self._others_per_user = per_user
        return others

    async def _ask_all(self, node_ids: list[str], request: dict[str, Any]) -> dict[str, Any]:
        """Send `request` to each node's ops list; answers by node id (a node that does not answer is left out)."""
        if not node_ids:
            return {}
        reply = REPLY_KEY + secrets.token_hex(8)
        message = orjson.dumps({**request, "reply": reply})
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for node_id in node_ids:
                    pipe.rpush(OPS_KEY + node_id, message)
                    pipe.expire(OPS_KEY + node_id, REPLY_TTL_S)
                await pipe.execute()
            answers: dict[str, Any] = {}
            deadline = time.monotonic() + self.request_timeout_s
            while len(answers) < len(node_ids):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning("cluster_request_unanswered", op=request["op"], missing=len(node_ids) - len(answers))
                    break
                popped = await self._client.blpop([reply], timeout=max(remaining, 0.01))
                if popped is None:
                    continue
                answer = orjson.loads(popped[1])
                answers[answer["node_id"]] = answer["result"]
            return answers
        except (RedisError, OSError, TimeoutError, RuntimeError) as exc:
            raise ClusterUnavailable(f"Redis is unavailable: {type(exc).__name__}") from None
        finally:
            with contextlib.suppress(Exception):
                await self._client.delete(reply)

    async def _announce_forever(self) -> None:
        while True:
            try:
                presence = {"node": self._local.snapshot(), "per_user": self._local.per_user()}
                await self._client.set(NODE_KEY + self.node_id, orjson.dumps(presence), px=int(self.ttl_s * 1000))
                await self._read_others()
                if self.error is not None:
                    log.info("cluster_presence_ok", node_id=self.node_id, after=self.error)
                    self.error = None
            except Exception as exc:  # Redis away (or redis-py failing on a dead transport): retry next round
                reason = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self.error != reason:
                    log.warning("cluster_presence_failing", node_id=self.node_id, reason=reason)
                self.error = reason
                self._others_per_user = {}  # unknown: count only what this node sees
            await asyncio.sleep(self.interval_s)

    async def _serve_forever(self) -> None:
        queue = OPS_KEY + self.node_id
        while True:
            try:
                popped = await self._client.blpop([queue], timeout=1)
                if popped is None:
                    continue
                request = orjson.loads(popped[1])
                result: Any
                if request.get("op") == "list":
                    result = self._local.connections()
                elif request.get("op") == "kick":
                    result = await self._local.kick(str(request.get("id")))
                else:
                    continue
                answer = orjson.dumps({"node_id": self.node_id, "result": result})
                async with self._client.pipeline(transaction=False) as pipe:
                    pipe.rpush(request["reply"], answer)
                    pipe.expire(request["reply"], REPLY_TTL_S)
                    await pipe.execute()
            except Exception as exc:  # Redis away or a malformed request: keep serving
                log.debug("cluster_ops_retry", reason=type(exc).__name__)
                await asyncio.sleep(0.5)
