"""Election and consensus rules with their edge cases; alerts; metrics and health events."""

from __future__ import annotations

from typing import Any

from tests.conftest import ServerFactory
from tests.domain.test_agents_api import create, room_events, settle
from tests.support import Clients, RunningServer, rest


async def trigger(server: RunningServer) -> dict[str, Any]:
    status, result, _ = await rest(server, "POST", "/coordination/election/trigger", role="operator")
    assert status == 200, result
    return dict(result)


async def set_agent(server: RunningServer, agent_id: str, **changes: Any) -> None:
    status, _, _ = await rest(server, "PATCH", f"/agents/{agent_id}", json=changes)
    assert status == 200


async def test_election_rules(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.listen(server, "coordination")
    # No eligible agent: no leader, but the term still advances.
    assert await trigger(server) == {"term": 1, "leader_id": None, "previous_leader_id": None, "leader_changed": False}

    old = await create(server)
    young = await create(server)
    # Tie on energy: the oldest wins.
    result = await trigger(server)
    assert result == {"term": 2, "leader_id": old["agent_id"], "previous_leader_id": None, "leader_changed": True}
    # The leader stays while eligible, even when another has more energy.
    await set_agent(server, old["agent_id"], energy=10)
    assert (await trigger(server))["leader_id"] == old["agent_id"]
    # Leader becomes inactive: the highest energy among the eligible takes over.
    await set_agent(server, old["agent_id"], status="inactive")
    result = await trigger(server)
    assert result == {
        "term": 4,
        "leader_id": young["agent_id"],
        "previous_leader_id": old["agent_id"],
        "leader_changed": True,
    }
    # Last eligible agent deleted: no leader.
    await rest(server, "DELETE", f"/agents/{young['agent_id']}")
    result = await trigger(server)
    assert result["leader_id"] is None and result["leader_changed"] is True
    status, state, _ = await rest(server, "GET", "/coordination/election", role="viewer")
    assert status == 200 and state["term"] == 5 and state["leader_id"] is None

    await settle(server, rec)
    assert room_events(rec) == [
        ("election_triggered", "coordination", {"term": 1}),
        ("election_triggered", "coordination", {"term": 2}),
        ("leader_elected", "coordination", {"leader_id": old["agent_id"], "previous_leader_id": None, "term": 2}),
        ("election_triggered", "coordination", {"term": 3}),
        ("election_triggered", "coordination", {"term": 4}),
        (
            "leader_elected",
            "coordination",
            {"leader_id": young["agent_id"], "previous_leader_id": old["agent_id"], "term": 4},
        ),
        ("election_triggered", "coordination", {"term": 5}),
        ("leader_elected", "coordination", {"leader_id": None, "previous_leader_id": young["agent_id"], "term": 5}),
    ]


async def propose(server: RunningServer, **body: Any) -> tuple[int, dict[str, Any]]:
    status, proposal, _ = await rest(
        server, "POST", "/coordination/consensus/propose", json={"proposal_type": "quarantine", **body}
    )
    return status, proposal


async def vote(server: RunningServer, proposal_id: str, agent_id: str, approve: bool) -> tuple[int, dict[str, Any]]:
    status, body, _ = await rest(
        server,
        "POST",
        f"/coordination/consensus/{proposal_id}/votes",
        json={"agent_id": agent_id, "approve": approve},
    )
    return status, body


async def test_threshold_exactly_reached_approves(server: RunningServer, socket_clients: Clients) -> None:
    voters = [(await create(server))["agent_id"] for _ in range(4)]
    rec = await socket_clients.listen(server, "coordination")
    status, proposal = await propose(server, threshold=0.5, data={"zone": "lung"})
    assert status == 201 and proposal["status"] == "pending" and sorted(proposal["eligible_voters"]) == sorted(voters)
    status, after_one = await vote(server, proposal["proposal_id"], voters[0], True)
    assert status == 200 and after_one["status"] == "pending"
    status, decided = await vote(server, proposal["proposal_id"], voters[1], True)  # 2/4 = 0.5
    assert decided["status"] == "approved" and decided["approval_rate"] == 1.0 and decided["decided_at"]
    status, _problem = await vote(server, proposal["proposal_id"], voters[2], False)
    assert status == 409  # already decided
    await settle(server, rec)
    events = room_events(rec)
    assert [name for name, _, _ in events] == ["consensus_proposed", "consensus_decided"]
    assert events[0][2]["proposal_id"] == proposal["proposal_id"] and events[0][2]["status"] == "pending"
    assert events[1][2] == {
        "proposal_id": proposal["proposal_id"],
        "decision": "approved",
        "approval_rate": 1.0,
        "votes_for": 2,
        "votes_against": 0,
    }


async def test_inline_votes_reject_once_approval_is_impossible(server: RunningServer, socket_clients: Clients) -> None:
    voters = [(await create(server))["agent_id"] for _ in range(3)]
    sleeper = await create(server)
    await set_agent(server, sleeper["agent_id"], status="inactive")
    rec = await socket_clients.listen(server, "coordination")
    # Threshold 0.66 of 3 needs 2 approvals; two rejections leave at most 1.
    status, proposal = await propose(server, votes={voters[0]: False, voters[1]: False})
    assert status == 201 and proposal["status"] == "rejected" and proposal["approval_rate"] == 0.0
    assert sleeper["agent_id"] not in proposal["eligible_voters"]
    status, _ = await propose(server, votes={sleeper["agent_id"]: True})
    assert status == 422  # inactive agents do not vote
    await settle(server, rec)
    assert [name for name, _, _ in room_events(rec)] == ["consensus_proposed", "consensus_decided"]
    assert room_events(rec)[1][2]["decision"] == "rejected" and room_events(rec)[1][2]["votes_against"] == 2
    status, _problem = await vote(server, "missing", voters[0], True)
    assert status == 404


async def test_vote_rules(server: RunningServer) -> None:
    voters = [(await create(server))["agent_id"] for _ in range(3)]
    status, proposal = await propose(server, threshold=1.0)
    pid = proposal["proposal_id"]
    assert (await vote(server, pid, voters[0], True))[0] == 200
    assert (await vote(server, pid, voters[0], False))[0] == 409  # voted already
    assert (await vote(server, pid, "stranger", True))[0] == 422
    status, _body, _ = await rest(server, "POST", f"/coordination/consensus/{pid}/votes", json={"agent_id": voters[1]})
    assert status == 422
    status, decided = await vote(server, pid, voters[1], False)
    assert decided["status"] == "rejected" and decided["approval_rate"] == 0.5
    status, page, _ = await rest(server, "GET", "/coordination/consensus?status=rejected", role="viewer")
    assert page["total"] == 1 and page["items"][0]["proposal_id"] == pid
    status, got, _ = await rest(server, "GET", f"/coordination/consensus/{pid}", role="viewer")
    assert got["votes"] == {voters[0]: True, voters[1]: False}


async def test_no_eligible_voter_rejects_at_once(server: RunningServer) -> None:
    status, proposal = await propose(server)
    assert status == 201 and proposal["status"] == "rejected" and proposal["eligible_voters"] == []


async def test_proposal_expires_at_its_timeout(server_factory: ServerFactory, socket_clients: Clients) -> None:
    server = await server_factory(expiry_interval_s=0.05)
    voter = (await create(server))["agent_id"]
    other = (await create(server))["agent_id"]
    rec = await socket_clients.listen(server, "coordination")
    status, proposal = await propose(server, timeout_s=0.3, votes={voter: True})
    assert status == 201 and proposal["expires_at"]
    decided = await rec.wait_event("consensus_decided", timeout=5)
    assert decided[0]["data"] == {
        "proposal_id": proposal["proposal_id"],
        "decision": "expired",
        "approval_rate": 1.0,
        "votes_for": 1,
        "votes_against": 0,
    }
    status, got, _ = await rest(server, "GET", f"/coordination/consensus/{proposal['proposal_id']}")
    assert got["status"] == "expired"
    status, _problem = await vote(server, proposal["proposal_id"], other, True)
    assert status == 409


async def test_alerts_go_to_the_system_room(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.listen(server, "system")
    status, accepted, _ = await rest(
        server, "POST", "/alerts", role="operator", json={"level": "critical", "message": "breach", "details": {"n": 1}}
    )
    assert status == 202
    await settle(server, rec)
    assert room_events(rec) == [
        ("alert_triggered", "system", {"level": "critical", "message": "breach", "details": {"n": 1}})
    ]
    assert rec.of_type("alert_triggered")[0]["event_id"] == accepted["event_id"]
    for body in ({"level": "panic", "message": "x"}, {"level": "info", "message": ""}, {"level": "info"}):
        status, _, _ = await rest(server, "POST", "/alerts", json=body)
        assert status == 422, body
    status, _, _ = await rest(server, "POST", "/alerts", role="viewer", json={"level": "info", "message": "x"})
    assert status == 403


async def test_metrics_updated_reaches_the_system_room(server_factory: ServerFactory, socket_clients: Clients) -> None:
    server = await server_factory(metrics_interval_s=0.1)
    await create(server)
    rec = await socket_clients.listen(server, "system")

    # A tick whose figures were taken just before this listener connected can still reach it
    # (its publish was in flight), so the figures to check are those of a later tick.
    def counting_this_listener() -> list[dict[str, Any]]:
        return [e for e in rec.of_type("metrics_updated") if e["data"]["connections"] == 1]

    await rec.wait_for(lambda: bool(counting_this_listener()), timeout=5)
    data = counting_this_listener()[0]["data"]
    assert all(e["data"]["connections"] in (0, 1) for e in rec.of_type("metrics_updated"))
    assert data["agents_by_status"] == {"active": 1}
    assert data["tasks_by_status"] == {}
    assert data["events_published"] >= 1
