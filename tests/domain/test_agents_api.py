"""Agents over REST (SPEC §6): each route's success, errors, and exactly the events it emits."""

from __future__ import annotations

from typing import Any

from tests.support import Clients, Recorder, RunningServer, rest


def room_events(rec: Recorder) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(type, room, data) of every logged event received, in order."""
    return [(name, p["room"], p["data"]) for name, p in rec.events if p.get("event_id") is not None]


async def create(server: RunningServer, **body: Any) -> dict[str, Any]:
    status, agent, _ = await rest(server, "POST", "/agents", role="operator", json={"agent_type": "macrophage", **body})
    assert status == 201, agent
    return dict(agent)


async def settle(server: RunningServer, rec: Recorder) -> None:
    """Wait until a marker broadcast arrives: everything emitted before it has arrived too."""
    status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.mark"})
    assert status == 202
    await rec.wait_for(lambda: any(p.get("event_id") == body["event_id"] for _, p in rec.events))
    rec.events[:] = [(n, p) for n, p in rec.events if n != "custom.mark"]


async def test_create_get_list_and_the_agent_created_event(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.listen(server, "agents")
    agent = await create(server, name="m1", metadata={"zone": "lung"})
    assert agent["status"] == "active" and agent["health"] == 1.0 and agent["energy"] == 100.0
    assert agent["name"] == "m1" and agent["metadata"] == {"zone": "lung"}
    await settle(server, rec)
    assert room_events(rec) == [("agent_created", "agents", agent)]

    status, fetched, _ = await rest(server, "GET", f"/agents/{agent['agent_id']}", role="viewer")
    assert status == 200 and fetched == agent
    await create(server, agent_type="neutrophil")
    status, page, _ = await rest(server, "GET", "/agents?agent_type=neutrophil", role="viewer")
    assert status == 200 and page["total"] == 1 and page["items"][0]["agent_type"] == "neutrophil"
    status, page, _ = await rest(server, "GET", "/agents?limit=1&offset=1")
    assert page["total"] == 2 and len(page["items"]) == 1 and page["items"][0]["agent_type"] == "neutrophil"


async def test_entity_room_receives_the_agents_events(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    rec = await socket_clients.listen(server, f"agent:{agent['agent_id']}")
    status, updated, _ = await rest(server, "PATCH", f"/agents/{agent['agent_id']}", json={"health": 0.5})
    assert status == 200 and updated["health"] == 0.5
    await settle(server, rec)
    assert room_events(rec) == [("agent_updated", "agents", updated)]


async def test_patch_status_emits_updated_and_status_changed(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    rec = await socket_clients.listen(server, "agents")
    status, updated, _ = await rest(
        server, "PATCH", f"/agents/{agent['agent_id']}", json={"status": "resting", "name": "sleepy"}
    )
    assert status == 200 and updated["status"] == "resting" and updated["name"] == "sleepy"
    await settle(server, rec)
    assert room_events(rec) == [
        ("agent_updated", "agents", updated),
        (
            "agent_status_changed",
            "agents",
            {"agent_id": agent["agent_id"], "old_status": "active", "new_status": "resting"},
        ),
    ]


async def test_delete_emits_agent_deleted_then_404(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    rec = await socket_clients.listen(server, "agents")
    status, _, _ = await rest(server, "DELETE", f"/agents/{agent['agent_id']}", role="operator")
    assert status == 204
    await settle(server, rec)
    assert room_events(rec) == [("agent_deleted", "agents", {"agent_id": agent["agent_id"]})]
    for method in ("GET", "DELETE"):
        status, problem, _ = await rest(server, method, f"/agents/{agent['agent_id']}")
        assert status == 404 and problem["status"] == 404


async def test_actions_change_status_and_energy(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    agent_id = agent["agent_id"]
    rec = await socket_clients.listen(server, "agents")
    status, result, _ = await rest(
        server, "POST", f"/agents/{agent_id}/actions", json={"action": "attack", "parameters": {"target": "virus-1"}}
    )
    assert status == 200
    assert result["agent"]["status"] == "attacking" and result["agent"]["energy"] == 80.0
    assert result["result"] == {
        "previous_status": "active",
        "status": "attacking",
        "energy_delta": -20.0,
        "energy": 80.0,
        "target": "virus-1",
    }
    await settle(server, rec)
    assert room_events(rec) == [
        ("agent_action", "agents", {"agent_id": agent_id, "action": "attack", "result": result["result"]}),
        ("agent_status_changed", "agents", {"agent_id": agent_id, "old_status": "active", "new_status": "attacking"}),
    ]
    rec.events.clear()

    status, result, _ = await rest(server, "POST", f"/agents/{agent_id}/actions", json={"action": "rest"})
    assert result["agent"]["status"] == "resting" and result["agent"]["energy"] == 100.0  # capped at 100
    status, result, _ = await rest(server, "POST", f"/agents/{agent_id}/actions", json={"action": "patrol"})
    assert result["agent"]["status"] == "patrolling" and result["agent"]["energy"] == 95.0
    # An action that keeps the status emits agent_action only.
    status, result, _ = await rest(server, "POST", f"/agents/{agent_id}/actions", json={"action": "patrol"})
    await settle(server, rec)
    assert [name for name, _, _ in room_events(rec)] == [
        "agent_action",
        "agent_status_changed",
        "agent_action",
        "agent_status_changed",
        "agent_action",
    ]


async def test_refused_actions_are_409_or_422_and_emit_nothing(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    agent_id = agent["agent_id"]
    await rest(server, "PATCH", f"/agents/{agent_id}", json={"energy": 10})
    rec = await socket_clients.listen(server, "agents")
    cases = [
        ({"action": "attack", "parameters": {"target": "x"}}, 409),  # energy 10 < 20
        ({"action": "attack"}, 422),  # no target
        ({"action": "fly"}, 422),  # unknown action
    ]
    for body, expected in cases:
        status, problem, _ = await rest(server, "POST", f"/agents/{agent_id}/actions", json=body)
        assert status == expected, (body, problem)
    await rest(server, "POST", f"/agents/{agent_id}/actions", json={"action": "deactivate"})
    status, problem, _ = await rest(server, "POST", f"/agents/{agent_id}/actions", json={"action": "patrol"})
    assert status == 409 and "inactive" in problem["detail"]
    status, _, _ = await rest(server, "POST", "/agents/missing/actions", json={"action": "rest"})
    assert status == 404
    await settle(server, rec)
    # Only the successful deactivate produced events.
    assert [name for name, _, _ in room_events(rec)] == ["agent_action", "agent_status_changed"]


async def test_validation_errors_name_the_field(server: RunningServer) -> None:
    agent = await create(server)
    cases = [
        ("POST", "/agents", {"agent_type": "t_rex"}, "agent_type"),
        ("POST", "/agents", {"agent_type": "b_cell", "color": "red"}, "color"),
        ("PATCH", f"/agents/{agent['agent_id']}", {"health": 1.5}, "health"),
        ("PATCH", f"/agents/{agent['agent_id']}", {"energy": -1}, "energy"),
        ("PATCH", f"/agents/{agent['agent_id']}", {"status": "sleeping"}, "status"),
        ("PATCH", f"/agents/{agent['agent_id']}", {}, "body"),
    ]
    for method, path, body, field in cases:
        status, problem, response = await rest(server, method, path, json=body)
        assert status == 422, (body, problem)
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert problem["errors"][0]["loc"][0] == field, problem
    status, problem, _ = await rest(server, "GET", "/agents?limit=0")
    assert status == 422
    status, problem, _ = await rest(server, "GET", "/agents?status=flying")
    assert status == 422
    status, _, _ = await rest(server, "POST", "/agents", data=b"{oops", headers={"Content-Type": "application/json"})
    assert status == 400
    status, _, _ = await rest(
        server, "POST", "/agents", json={"agent_type": "b_cell", "metadata": {"x": "y" * 200_000}}
    )
    assert status == 413


async def test_roles_on_agent_routes(server: RunningServer) -> None:
    status, _, _ = await rest(server, "POST", "/agents", role="viewer", json={"agent_type": "b_cell"})
    assert status == 403
    status, _, _ = await rest(server, "GET", "/agents", role=None)
    assert status == 401
    status, _, _ = await rest(server, "GET", "/agents", role="viewer")
    assert status == 200
