"""The carrier between nodes: one suite, run against the in-process hub and a real redis-server.

Like Centrifuge's broker_memory.go / broker_redis.go, the two implementations must behave the same:
a node's committed batches reach every other node in the order it published them, never back to
itself; an outage drops batches (counted, shown in the state) and the carrier comes back by itself.
The Redis-only tests below cover what only a network can do: a hung Redis and a killed subscription.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import redis

from server.cluster.carrier import Carrier, decode_batch, encode_batch
from server.cluster.carrier_memory import MemoryCarrier, MemoryHub
from server.cluster.carrier_redis import RedisCarrier
from server.events.model import PublishedEvent
from tests.redis_server import RedisServer
from tests.support import wait_until

HEARTBEAT_S = 0.2
DEAD_AFTER_S = 1.0


@dataclass
class Medium:
    """What the suite needs of a carrier's medium: carriers on it, and an outage on demand."""

    make: Callable[[str], Carrier]
    fail: Callable[[], None]
    restore: Callable[[], None]
    carriers: list[Carrier] = field(default_factory=list)


@pytest.fixture(params=["memory", "redis"])
async def medium(request: pytest.FixtureRequest) -> AsyncIterator[Medium]:
    if request.param == "memory":
        hub = MemoryHub()
        built = Medium(lambda node: MemoryCarrier(hub, node), hub.fail, hub.restore)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        if server.proc is None or server.proc.poll() is not None:
            server.start()
        channel = f"test-{request.node.name}"

        def make(node: str) -> Carrier:
            return RedisCarrier(server.url, node, channel=channel, heartbeat_s=HEARTBEAT_S, dead_after_s=DEAD_AFTER_S)

        built = Medium(make, server.kill, server.start)
    yield built
    for carrier in built.carriers:
        await carrier.stop()


@dataclass
class Node:
    carrier: Carrier
    received: list[list[PublishedEvent]] = field(default_factory=list)

    def ids(self) -> list[list[int]]:
        return [[event.event_id for event in batch] for batch in self.received]


async def start_nodes(medium: Medium, count: int) -> list[Node]:
    nodes = []
    for index in range(count):
        carrier = medium.make(f"node-{index}")
        medium.carriers.append(carrier)
        node = Node(carrier)
        await carrier.start(node.received.append)
        nodes.append(node)
    await wait_until(lambda: all(node.carrier.state.status == "up" for node in nodes), timeout=10)
    return nodes


def batch(first: int, count: int = 2, rooms: tuple[str, ...] = ("agents",)) -> list[PublishedEvent]:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return [
        PublishedEvent(first + n, "agent_created", moment, {"n": first + n, "name": "ü✓"}, "api", rooms)
        for n in range(count)
    ]


async def test_a_batch_reaches_every_other_node_unchanged_and_never_its_own(medium: Medium) -> None:
    a, b, c = await start_nodes(medium, 3)
    sent = batch(1, 3, rooms=("agents", "tasks"))
    a.carrier.publish(sent)
    await wait_until(lambda: len(b.received) == 1 and len(c.received) == 1, timeout=10)
    for node in (b, c):
        (got,) = node.received
        assert [(e.event_id, e.event_type, e.timestamp, e.data, e.source, e.rooms) for e in got] == [
            (e.event_id, e.event_type, e.timestamp, e.data, e.source, e.rooms) for e in sent
        ]
    a.carrier.publish(batch(4, 1, rooms=()))  # a deployment-wide event has no rooms
    await wait_until(lambda: len(b.received) == 2, timeout=10)
    assert b.received[1][0].rooms == () and b.received[1][0].room is None
    assert a.received == []  # never echoed to the node that committed it
    assert a.carrier.state.batches_published == 2
    assert b.carrier.state.batches_received == 2


async def test_each_publisher_order_is_kept_on_every_node(medium: Medium) -> None:
    a, b, c = await start_nodes(medium, 3)
    for n in range(50):
        a.carrier.publish(batch(1000 + 2 * n))
        b.carrier.publish(batch(5000 + 2 * n))
    await wait_until(lambda: len(c.received) == 100 and len(a.received) == 50 and len(b.received) == 50, timeout=10)
    from_a = [ids for ids in c.ids() if ids[0] < 5000]
    from_b = [ids for ids in c.ids() if ids[0] >= 5000]
    assert from_a == [[1000 + 2 * n, 1001 + 2 * n] for n in range(50)]
    assert from_b == [[5000 + 2 * n, 5001 + 2 * n] for n in range(50)]
    assert b.ids() == from_a and a.ids() == from_b


async def test_an_outage_is_shown_drops_batches_and_heals_by_itself(medium: Medium) -> None:
    a, b = await start_nodes(medium, 2)
    medium.fail()
    await wait_until(lambda: a.carrier.state.status == "down" and b.carrier.state.status == "down", timeout=10)
    assert a.carrier.state.reason
    a.carrier.publish(batch(1))
    await wait_until(lambda: a.carrier.state.batches_dropped >= 1, timeout=10)
    medium.restore()
    await wait_until(lambda: a.carrier.state.status == "up" and b.carrier.state.status == "up", timeout=15)
    assert a.carrier.state.outages >= 1
    a.carrier.publish(batch(3))
    await wait_until(lambda: len(b.received) >= 1, timeout=10)
    assert b.ids() == [[3, 4]]  # the batch published during the outage is not carried late


async def test_a_stopped_carrier_delivers_nothing(medium: Medium) -> None:
    a, b, c = await start_nodes(medium, 3)
    await b.carrier.stop()
    assert b.carrier.state.status == "stopped"
    a.carrier.publish(batch(1))
    # A running node received the batch: by then the medium has handed it to every subscriber.
    await wait_until(lambda: c.ids() == [[1, 2]], timeout=10)
    assert b.received == []


def test_the_encoding_round_trips_and_refuses_other_bytes() -> None:
    events = batch(7, 2)
    origin, decoded = decode_batch(encode_batch("node-x", events))
    assert origin == "node-x" and [e.envelope() for e in decoded] == [e.envelope() for e in events]
    with pytest.raises(ValueError):
        decode_batch(b"no newline here")


# --- Redis only: a hung server and a killed subscription -----------------------------------------


async def redis_nodes(redis_server: RedisServer, channel: str, count: int) -> tuple[list[Node], list[Carrier]]:
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    medium = Medium(
        lambda node: RedisCarrier(
            redis_server.url, node, channel=channel, heartbeat_s=HEARTBEAT_S, dead_after_s=DEAD_AFTER_S
        ),
        redis_server.kill,
        redis_server.start,
    )
    return await start_nodes(medium, count), medium.carriers


async def test_a_hung_redis_is_noticed_by_the_heartbeat_and_the_carrier_heals(redis_server: RedisServer) -> None:
    (a, b), carriers = await redis_nodes(redis_server, "test-hung", 2)
    try:
        redis_server.pause()
        try:
            # Connections stay open and silent: only the heartbeat can tell.
            await wait_until(lambda: b.carrier.state.status == "down", timeout=10)
            assert "nothing heard" in (b.carrier.state.reason or "") or "Timeout" in (b.carrier.state.reason or "")
        finally:
            redis_server.unpause()
        await wait_until(lambda: a.carrier.state.status == "up" and b.carrier.state.status == "up", timeout=15)
        a.carrier.publish(batch(10))
        await wait_until(lambda: b.ids() == [[10, 11]], timeout=10)
    finally:
        for carrier in carriers:
            await carrier.stop()


async def test_a_killed_subscription_is_made_again(redis_server: RedisServer) -> None:
    (a, b), carriers = await redis_nodes(redis_server, "test-killed", 2)
    try:
        assert isinstance(b.carrier, RedisCarrier)
        before = b.carrier.resubscriptions
        admin = redis.Redis(host="127.0.0.1", port=redis_server.port)
        try:
            assert admin.client_kill_filter(_type="pubsub") >= 2  # type: ignore[no-untyped-call]
        finally:
            admin.close()
        await wait_until(lambda: b.carrier.resubscriptions > before, timeout=10)
        await wait_until(lambda: b.carrier.state.status == "up", timeout=10)
        a.carrier.publish(batch(20))
        await wait_until(lambda: b.ids() == [[20, 21]], timeout=10)
    finally:
        for carrier in carriers:
            await carrier.stop()
