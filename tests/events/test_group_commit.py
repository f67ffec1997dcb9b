"""Group commit: concurrent units share transactions, a failing unit rolls back alone (SPEC §4)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import insert

from client_sdk.protocol import utc_now
from server.api.keys import DATABASE, PUBLISHER
from server.events.unit_of_work import UnitOfWork
from server.store.tables import agents
from tests.conftest import ServerFactory
from tests.support import Clients, Recorder, RunningServer, rest

UNITS = 200


def ids(rec: Recorder) -> list[int]:
    return [payload["event_id"] for _, payload in rec.events if payload.get("event_id") is not None]


def agent_row(agent_id: str) -> dict[str, Any]:
    now = utc_now()
    return {
        "id": agent_id,
        "agent_type": "b_cell",
        "name": None,
        "status": "active",
        "health": 1.0,
        "energy": 100.0,
        "metadata": {},
        "created_at": now,
        "updated_at": now,
    }


async def test_concurrent_units_share_commits_with_dense_ids_in_commit_order(
    server: RunningServer, socket_clients: Clients
) -> None:
    publisher = server.app[PUBLISHER]
    watchers = [
        await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]}) for _ in "ab"
    ]
    batches_before = publisher.writer.batches

    events = await asyncio.gather(*(publisher.publish("custom.n", {"n": n}, ["agents"]) for n in range(UNITS)))

    assert [event.event_id for event in events] == list(range(1, UNITS + 1)), "dense, in the order queued"
    assert publisher.writer.batches - batches_before < UNITS, "units ready together commit together"
    for rec in watchers:
        await rec.wait_for(lambda rec=rec: len(ids(rec)) == UNITS, timeout=20)
        assert ids(rec) == list(range(1, UNITS + 1))
        assert [payload["data"]["n"] for _, payload in rec.events if payload.get("event_id")] == list(range(UNITS))
        await rec.client.disconnect()


async def test_a_failing_unit_rolls_back_alone_and_the_rest_commit_and_are_emitted(
    server: RunningServer, socket_clients: Clients
) -> None:
    publisher = server.app[PUBLISHER]
    watcher = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})

    async def raises_after_writing(uow: UnitOfWork) -> None:
        await uow.conn.execute(insert(agents).values(**agent_row("agent-doomed")))
        await uow.publish("custom.doomed", {}, ["agents"])
        raise ValueError("the rule refused it")

    async def duplicate_key(uow: UnitOfWork) -> None:
        await uow.publish("custom.duplicate", {}, ["agents"])
        await uow.conn.execute(insert(agents).values(**agent_row("agent-twin")))
        await uow.conn.execute(insert(agents).values(**agent_row("agent-twin")))

    async def creates(uow: UnitOfWork) -> int:
        await uow.conn.execute(insert(agents).values(**agent_row("agent-kept")))
        return (await uow.publish("custom.kept", {}, ["agents"])).event_id

    outcomes = await asyncio.gather(
        publisher.publish("custom.before", {}, ["agents"]),
        publisher.transact(raises_after_writing),
        publisher.transact(creates),
        publisher.transact(duplicate_key),
        publisher.publish("custom.after", {}, ["agents"]),
        return_exceptions=True,
    )

    assert isinstance(outcomes[1], ValueError)
    assert "UNIQUE" in str(outcomes[3]) or "unique" in str(outcomes[3]), outcomes[3]
    assert [outcomes[0].event_id, outcomes[2], outcomes[4].event_id] == [1, 2, 3]  # type: ignore[union-attr]
    await watcher.wait_for(lambda: len(ids(watcher)) == 3, timeout=10)
    assert [payload["event_type"] for _, payload in watcher.events if payload.get("event_id")] == [
        "custom.before",
        "custom.kept",
        "custom.after",
    ]
    _, page, _ = await rest(server, "GET", "/events?after=0&limit=100")
    assert [item["event_type"] for item in page["items"]] == ["custom.before", "custom.kept", "custom.after"]
    assert (await rest(server, "GET", "/agents/agent-kept"))[0] == 200
    assert (await rest(server, "GET", "/agents/agent-doomed"))[0] == 404
    assert (await rest(server, "GET", "/agents/agent-twin"))[0] == 404
    # Nothing more arrives: the rolled-back events were never emitted.
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.last", "room": "agents"})
    await watcher.wait_for(lambda: len(ids(watcher)) == 4, timeout=10)
    assert ids(watcher) == [1, 2, 3, 4]


async def test_a_write_answers_only_after_its_commit(server: RunningServer) -> None:
    """The 202 carries an id that GET /events already returns (the commit happened first)."""
    for n in range(5):
        status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.x", "data": {"n": n}})
        assert status == 202
        _, page, _ = await rest(server, "GET", f"/events?after={body['event_id'] - 1}&limit=1")
        assert [item["data"]["n"] for item in page["items"]] == [n]


@pytest.mark.parametrize(("synchronous", "pragma"), [("full", 2), ("normal", 1)])
async def test_the_durability_setting_reaches_every_connection(
    server_factory: ServerFactory, synchronous: str, pragma: int
) -> None:
    server = await server_factory(sqlite_synchronous=synchronous)
    status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.x"})
    assert status == 202 and body == {"event_id": 1}
    async with server.app[DATABASE].read() as conn:
        assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one() == pragma


async def test_a_batch_broadcast_commits_together_with_consecutive_ids(
    server: RunningServer, socket_clients: Clients
) -> None:
    watcher = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    events = [{"event_type": "custom.b", "room": "agents", "data": {"n": n}} for n in range(100)]
    events.append({"event_type": "agent_deleted", "room": "agents", "data": {"agent_id": "agent-1"}})
    status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"events": events})
    assert status == 202 and body == {"event_ids": list(range(1, 102))}
    await watcher.wait_for(lambda: len(ids(watcher)) == 101, timeout=10)
    assert ids(watcher) == list(range(1, 102))
    assert [payload["data"].get("n") for _, payload in watcher.events if payload.get("event_id")][:100] == list(
        range(100)
    )


async def test_a_batch_with_bad_items_is_refused_whole_with_an_error_per_item(server: RunningServer) -> None:
    events: list[dict[str, Any]] = [{"event_type": "custom.ok", "data": {}} for _ in range(5)]
    events[1] = {"event_type": "nonsense", "data": {}}
    events[3] = {"event_type": "agent_deleted", "room": "agents", "data": {"agent_id": 5}}
    events[4] = {"event_type": "custom.ok", "room": "no-such-room"}
    status, body, response = await rest(server, "POST", "/ws/broadcast", json={"events": events})
    assert status == 422 and body["code"] == "invalid_request"
    assert response.content_type == "application/problem+json"
    locs = [error["loc"] for error in body["errors"]]
    assert ["events", "1", "event_type"] in locs
    assert ["events", "4", "room"] in locs
    assert {tuple(loc[:2]) for loc in locs} == {("events", "1"), ("events", "4")}
    # Schema errors first; once the shape is right, a standard type's data is checked per item too.
    events[1] = {"event_type": "custom.ok"}
    events[4] = {"event_type": "custom.ok"}
    status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"events": events})
    assert status == 422
    assert [error["loc"][:4] for error in body["errors"]] == [["events", "3", "data", "agent_id"]]
    for bad in ({"events": []}, {"events": [{"event_type": "custom.ok"}] * 1001}, {"events": "x"}):
        assert (await rest(server, "POST", "/ws/broadcast", json=bad))[0] == 422
    _, page, _ = await rest(server, "GET", "/events?after=0&limit=10")
    assert page["items"] == [], "nothing of a refused batch was published"


async def test_a_unit_that_starts_another_fails_alone_instead_of_hanging_the_writer(server: RunningServer) -> None:
    publisher = server.app[PUBLISHER]

    async def nested(uow: UnitOfWork) -> None:
        await publisher.publish("custom.inner", {}, ["agents"])

    with pytest.raises(RuntimeError, match="cannot start another"):
        await publisher.transact(nested)
    assert (await publisher.publish("custom.next", {}, ["agents"])).event_id == 1


async def test_a_failing_unit_alone_in_its_batch_leaves_nothing_behind(server: RunningServer) -> None:
    publisher = server.app[PUBLISHER]

    async def raises_after_writing(uow: UnitOfWork) -> None:
        await uow.conn.execute(insert(agents).values(**agent_row("agent-alone")))
        await uow.publish("custom.alone", {}, ["agents"])
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await publisher.transact(raises_after_writing)
    assert (await rest(server, "GET", "/agents/agent-alone"))[0] == 404
    assert (await publisher.publish("custom.next", {}, ["agents"])).event_id == 1
