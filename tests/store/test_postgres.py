"""The same code on a real PostgreSQL (asyncpg): domain flow, events, gapless ids under concurrency, resume."""

from __future__ import annotations

import asyncio

from tests.domain.test_agents_api import create, room_events, settle
from tests.events.test_concurrency import writer
from tests.support import Clients, RunningServer, rest


async def test_domain_flow_and_events_on_postgres(pg_server: RunningServer, socket_clients: Clients) -> None:
    server = pg_server
    rec = await socket_clients.listen(server, "agents", "tasks", "coordination")
    agent = await create(server, name="pg")
    status, task, _ = await rest(
        server, "POST", "/coordination/tasks", json={"task_type": "scan", "agent_id": agent["agent_id"]}
    )
    assert status == 201 and task["status"] == "assigned"
    status, result, _ = await rest(server, "POST", "/coordination/election/trigger")
    assert result["leader_id"] == agent["agent_id"]
    status, proposal, _ = await rest(
        server,
        "POST",
        "/coordination/consensus/propose",
        json={"proposal_type": "p", "votes": {agent["agent_id"]: True}},
    )
    assert proposal["status"] == "approved"
    status, _, _ = await rest(server, "PATCH", f"/agents/{agent['agent_id']}", json={"metadata": {"k": [1, 2]}})
    assert status == 200
    status, page, _ = await rest(server, "GET", "/agents?agent_type=macrophage")
    assert page["total"] == 1 and page["items"][0]["metadata"] == {"k": [1, 2]}
    await settle(server, rec)
    assert [name for name, _, _ in room_events(rec)] == [
        "agent_created",
        "task_created",
        "task_assigned",
        "election_triggered",
        "leader_elected",
        "consensus_proposed",
        "consensus_decided",
        "agent_updated",
    ]
    ids = [payload["event_id"] for _, payload in rec.events if payload.get("event_id")]
    assert ids == list(range(1, len(ids) + 1))


async def test_concurrent_writers_and_resume_on_postgres(pg_server: RunningServer, socket_clients: Clients) -> None:
    server = pg_server
    results = await asyncio.gather(*(writer(server, n) for n in range(6)))
    total = sum(len(accepted) for accepted in results)
    assert sorted(i for accepted in results for i in accepted) == list(range(1, total + 1))
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": 0}
    )
    _, page, _ = await rest(server, "GET", "/events?rooms=agents&limit=1000")
    expected = [item["event_id"] for item in page["items"]]
    await rec.wait_for(lambda: len([p for _, p in rec.events if p.get("event_id")]) >= len(expected))
    assert rec.of_type("connected")[0]["data"]["recovered"] is True
    assert [p["event_id"] for _, p in rec.events if p.get("event_id")] == expected
