"""The Python SDK against the real server: typed events and results, errors, reconnect and resume."""

from __future__ import annotations

import asyncio
import logging

import pytest

from client_sdk import errors
from client_sdk.client import Event, ImmuneClient
from client_sdk.protocol import Agent, ConnectedData, PongData, RoomsData
from server.api.keys import GATEWAY
from tests.conftest import ServerFactory
from tests.peer import ScriptedPeer, envelope
from tests.proxy import CuttableProxy
from tests.support import RunningServer, SdkClients, wait_until

AGENT = {
    "agent_id": "a-7",
    "agent_type": "macrophage",
    "name": "m7",
    "status": "active",
    "health": 1.0,
    "energy": 100.0,
    "metadata": {},
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z",
}


async def test_handlers_and_iterator_receive_typed_events(server: RunningServer) -> None:
    handled: list[Event] = []
    async with ImmuneClient(server.url, token=server.token(), rooms=["agents"]) as client:

        @client.on("agent_created")
        async def on_agent(event: Event) -> None:
            handled.append(event)

        accepted = await client.rest.ws.broadcast("agent_created", AGENT, room="agents")
        await client.rest.ws.broadcast("custom.note", {"text": "hi"}, room="agents")
        iterator = client.events()
        first = await asyncio.wait_for(anext(iterator), 5)
        second = await asyncio.wait_for(anext(iterator), 5)
    assert isinstance(first.data, Agent) and first.data.agent_id == "a-7"
    assert first.event_id == accepted.event_id and first.room == "agents"
    assert second.event_type == "custom.note" and second.data == {"text": "hi"}
    assert [event.event_id for event in handled] == [accepted.event_id]


async def test_requests_return_typed_results_and_raise_typed_errors(server: RunningServer) -> None:
    token = server.token("viewer", rooms=["agents", "agent:*"])
    async with ImmuneClient(server.url, token=token) as client:
        assert isinstance(await client.ping(), PongData)
        joined = await client.join("agents")
        assert isinstance(joined, RoomsData) and joined.rooms == ["agents"] and client.rooms == ["agents"]
        assert (await client.subscribe("agent_created", "custom.x")).event_types == ["agent_created", "custom.x"]
        assert client.event_types == ["agent_created", "custom.x"]
        assert (await client.unsubscribe("custom.x")).event_types == ["agent_created"]
        info = await client.info()
        assert info.user == "tester" and info.rooms == ["agents"] and info.roles == ["viewer"]

        with pytest.raises(errors.UnknownRoom) as unknown_room:
            await client.join("nowhere")
        assert unknown_room.value.code == "unknown_room"
        with pytest.raises(errors.Forbidden):
            await client.join("tasks")
        with pytest.raises(errors.UnknownEventType):
            await client.subscribe("no_such_type")
        with pytest.raises(errors.InvalidRequest):
            await client.join("")
        assert (await client.leave("agents")).rooms == []


async def test_refused_connect_raises_connect_refused(server: RunningServer, sdk_clients: SdkClients) -> None:
    client = sdk_clients(server.url, token="not-a-jwt")
    with pytest.raises(errors.ConnectRefused) as refused:
        await client.connect()
    assert refused.value.code == "unauthorized"


async def test_rest_helpers_raise_typed_problems(server: RunningServer, sdk_clients: SdkClients) -> None:
    async with ImmuneClient(server.url, token=server.token("viewer")) as viewer:
        stats = await viewer.rest.ws.stats()
        assert stats.active_connections == 1
        with pytest.raises(errors.AccessDenied):
            await viewer.rest.ws.broadcast("custom.x")
    admin = sdk_clients(server.url, token=server.token())
    with pytest.raises(errors.ValidationFailed) as invalid:
        await admin.rest.ws.broadcast("Not A Type")
    assert invalid.value.errors[0]["loc"][0] == "event_type"
    with pytest.raises(errors.NotFound):
        await admin.rest.ws.kick("no-such-connection")
    page = await admin.rest.events()
    assert page.items == [] and page.head == 0
    anonymous = sdk_clients(server.url)
    with pytest.raises(errors.Unauthorized):
        await anonymous.rest.ws.stats()


async def test_network_cut_reconnects_with_a_fresh_token_and_resumes(server: RunningServer) -> None:
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    await proxy.start()
    tokens: list[str] = []

    def provide() -> str:
        tokens.append(server.token(sub=f"refresh-{len(tokens)}"))
        return tokens[-1]

    client = ImmuneClient(proxy.url, token_provider=provide, rooms=["agents"], backoff_initial_s=0.05)
    admin = ImmuneClient(server.url, token=server.token())
    try:
        await client.connect()
        before = await admin.rest.ws.broadcast("custom.one", room="agents")
        await wait_until(lambda: client.received_event_id == before.event_id)
        proxy.cut(stay_down=True)
        await wait_until(lambda: not client.connected)
        during = [(await admin.rest.ws.broadcast("custom.gap", {"i": i}, room="agents")).event_id for i in range(5)]
        proxy.restore()
        connected = await client.wait_connected()
        assert connected.recovered is True and connected.replayed == 5
        await wait_until(lambda: client.received_event_id == during[-1])
        iterator = client.events()
        received = [(await asyncio.wait_for(anext(iterator), 5)).event_id for _ in range(6)]
        assert received == [before.event_id, *during]
        # Every attempt (also the refused ones while the network was down) asked for a fresh token.
        assert client.connects == 2 and len(tokens) >= 2 and connected.user == f"refresh-{len(tokens) - 1}"
    finally:
        await client.close()
        await admin.rest.close()
        await proxy.close()


async def test_gap_past_the_replay_cap_calls_on_gap(server_factory: ServerFactory) -> None:
    server = await server_factory(replay_cap=2)
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    await proxy.start()
    gaps: list[ConnectedData] = []
    client = ImmuneClient(proxy.url, token=server.token(), rooms=["agents"], on_gap=gaps.append, backoff_initial_s=0.05)
    admin = ImmuneClient(server.url, token=server.token())
    try:
        await client.connect()
        proxy.cut(stay_down=True)
        await wait_until(lambda: not client.connected)
        ids = [(await admin.rest.ws.broadcast("custom.lost", room="agents")).event_id for _ in range(4)]
        proxy.restore()
        await client.wait_connected()
        await wait_until(lambda: len(gaps) == 1)
        assert gaps[0].recovered is False and gaps[0].last_event_id == ids[-1]
        assert client.received_event_id == ids[-1]
        after = await admin.rest.ws.broadcast("custom.after", room="agents")
        await wait_until(lambda: client.received_event_id == after.event_id)
    finally:
        await client.close()
        await admin.rest.close()
        await proxy.close()


async def test_duplicate_ids_are_dropped(peer: ScriptedPeer) -> None:
    # Our server never repeats an id on one connection (a resume asks for what follows the last id
    # received); a buggy server, or a replay overlapping what was received, could. The SDK must absorb
    # it: a scripted peer sends one over the wire.
    async with ImmuneClient(peer.url, rooms=["agents"]) as client:
        iterator = client.events()
        await peer.send("custom.once", envelope(1, "custom.once"))
        await peer.send("custom.once", envelope(1, "custom.once"))
        await peer.send("custom.after", envelope(2, "custom.after"))
        received = [await asyncio.wait_for(anext(iterator), 5) for _ in range(2)]
        # The event the application sees after the first is the one after, not the duplicate.
        assert [(event.event_id, event.event_type) for event in received] == [(1, "custom.once"), (2, "custom.after")]
        assert client.duplicates_dropped == 1


async def test_server_side_cut_reconnects_and_resumes_but_a_kick_is_final(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """After `disconnected` (slow_consumer) the SDK comes back with no gap; after `kicked` it stays away."""
    caplog.set_level(logging.WARNING, logger="immune.client")
    gateway = server.app[GATEWAY]
    client = ImmuneClient(server.url, token=server.token(sub="mobile"), rooms=["agents"], backoff_initial_s=0.05)
    admin = ImmuneClient(server.url, token=server.token())
    try:
        await client.connect()
        first = await admin.rest.ws.broadcast("custom.first", room="agents")
        await wait_until(lambda: client.received_event_id == first.event_id)
        [sid] = [sid for sid, conn in gateway.registry.by_sid.items() if conn.identity.subject == "mobile"]
        # What the queue bound or the send watchdog does to a slow consumer.
        gateway.manager.on_overflow(sid)
        missed = [(await admin.rest.ws.broadcast("custom.missed", {"i": i}, room="agents")).event_id for i in range(3)]
        await wait_until(lambda: client.connects == 2 and client.connected)
        await wait_until(lambda: client.received_event_id == missed[-1])
        assert client.last_disconnect is not None and client.last_disconnect.reason == "slow_consumer"
        iterator = client.events()
        received = [(await asyncio.wait_for(anext(iterator), 5)).event_id for _ in range(4)]
        assert received == [first.event_id, *missed]

        [sid] = [sid for sid, conn in gateway.registry.by_sid.items() if conn.identity.subject == "mobile"]
        await admin.rest.ws.kick(sid)
        await wait_until(lambda: not client.connected)
        await admin.rest.ws.broadcast("custom.after_kick", room="agents")
        # The SDK says it gives up, and only then has its reconnect loop ended.
        await wait_until(lambda: any("not reconnecting" in r.getMessage() for r in caplog.records))
        assert client.connects == 2 and not client.connected
        assert client.last_disconnect is not None and client.last_disconnect.reason == "kicked"
    finally:
        await client.close()
        await admin.rest.close()


async def test_publish_many_returns_the_ids_in_order_and_a_bad_item_refuses_the_batch(server: RunningServer) -> None:
    async with ImmuneClient(server.url, token=server.token(), rooms=["agents"]) as client:
        ids = await client.rest.ws.publish_many(
            [{"event_type": "custom.many", "data": {"n": n}, "room": "agents"} for n in range(3)]
        )
        iterator = client.events()
        received = [await asyncio.wait_for(anext(iterator), 5) for _ in ids]
        assert ids == [1, 2, 3]
        assert [(event.event_id, event.data) for event in received] == [(i, {"n": i - 1}) for i in ids]
        # The shape is checked before sending; a standard type's data is checked by the server.
        with pytest.raises(errors.ValidationFailed) as invalid:
            await client.rest.ws.publish_many(
                [{"event_type": "custom.ok"}, {"event_type": "agent_deleted", "data": {"agent_id": 7}}]
            )
        assert invalid.value.errors[0]["loc"][:3] == ["events", "1", "data"]
        page = await client.rest.events()
    assert [item.event_id for item in page.items] == [1, 2, 3]
