"""Tasks over REST: the state machine, assignment rules and the events of each transition."""

from __future__ import annotations

from typing import Any

from tests.domain.test_agents_api import create, room_events, settle
from tests.support import Clients, RunningServer, rest


async def new_task(server: RunningServer, **body: Any) -> dict[str, Any]:
    status, task, _ = await rest(server, "POST", "/coordination/tasks", json={"task_type": "scan", **body})
    assert status == 201, task
    return dict(task)


async def test_lifecycle_emits_one_event_per_transition(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    rec = await socket_clients.listen(server, "tasks")
    task = await new_task(server, priority=7, payload={"zone": "gut"})
    assert task["status"] == "pending" and task["priority"] == 7 and task["agent_id"] is None
    task_id = task["task_id"]
    steps = [
        ({"status": "assigned", "agent_id": agent["agent_id"]}, "task_assigned", "pending"),
        ({"status": "running"}, "task_started", "assigned"),
        ({"status": "completed", "result": {"found": 3}}, "task_completed", "running"),
    ]
    expected: list[tuple[str, str | None, dict[str, Any]]] = [("task_created", "tasks", task)]
    for body, event_type, old in steps:
        status, updated, _ = await rest(server, "PATCH", f"/coordination/tasks/{task_id}", json=body)
        assert status == 200, updated
        assert updated["status"] == body["status"]
        expected.append(
            (
                event_type,
                "tasks",
                {"task_id": task_id, "old_status": old, "new_status": body["status"], "task": updated},
            )
        )
    assert updated["result"] == {"found": 3} and updated["agent_id"] == agent["agent_id"]
    await settle(server, rec)
    assert room_events(rec) == expected


async def test_create_with_agent_is_assigned_and_visible_in_the_task_room(
    server: RunningServer, socket_clients: Clients
) -> None:
    agent = await create(server)
    rec = await socket_clients.listen(server, "tasks")
    task = await new_task(server, agent_id=agent["agent_id"])
    assert task["status"] == "assigned"
    await settle(server, rec)
    assert [name for name, _, _ in room_events(rec)] == ["task_created", "task_assigned"]
    created = room_events(rec)[0][2]
    assert created["status"] == "pending" and created["task_id"] == task["task_id"]

    entity = await socket_clients.listen(server, f"task:{task['task_id']}")
    await rest(server, "PATCH", f"/coordination/tasks/{task['task_id']}", json={"status": "failed"})
    status, _problem, _ = await rest(
        server, "PATCH", f"/coordination/tasks/{task['task_id']}", json={"status": "failed"}
    )
    assert status == 409  # assigned → failed is not a transition
    await rest(server, "PATCH", f"/coordination/tasks/{task['task_id']}", json={"status": "cancelled"})
    await settle(server, entity)
    assert [name for name, _, _ in room_events(entity)] == ["task_cancelled"]


async def test_refused_transitions_and_assignments_emit_nothing(server: RunningServer, socket_clients: Clients) -> None:
    agent = await create(server)
    sleeper = await create(server)
    await rest(server, "POST", f"/agents/{sleeper['agent_id']}/actions", json={"action": "deactivate"})
    task = await new_task(server)
    task_id = task["task_id"]
    rec = await socket_clients.listen(server, "tasks")
    cases = [
        ({"status": "running"}, 409),  # pending → running skips assignment
        ({"status": "completed"}, 409),
        ({"status": "assigned"}, 422),  # no agent
        ({"status": "assigned", "agent_id": "ghost"}, 422),
        ({"status": "assigned", "agent_id": sleeper["agent_id"]}, 409),  # inactive agent
        ({"status": "exploded"}, 422),
    ]
    for body, expected in cases:
        status, problem, _ = await rest(server, "PATCH", f"/coordination/tasks/{task_id}", json=body)
        assert status == expected, (body, problem)
    status, _, _ = await rest(server, "POST", "/coordination/tasks", json={"task_type": "x", "agent_id": "ghost"})
    assert status == 422
    status, _, _ = await rest(server, "POST", "/coordination/tasks", json={"task_type": "x", "priority": 11})
    assert status == 422
    status, _, _ = await rest(server, "PATCH", "/coordination/tasks/missing", json={"status": "cancelled"})
    assert status == 404
    # Terminal states stay terminal.
    await rest(server, "PATCH", f"/coordination/tasks/{task_id}", json={"status": "cancelled"})
    status, _, _ = await rest(server, "PATCH", f"/coordination/tasks/{task_id}", json={"status": "cancelled"})
    assert status == 409
    await settle(server, rec)
    assert [name for name, _, _ in room_events(rec)] == ["task_cancelled"]
    status, page, _ = await rest(server, "GET", "/coordination/tasks?status=cancelled", role="viewer")
    assert page["total"] == 1 and page["items"][0]["task_id"] == task_id
    status, got, _ = await rest(server, "GET", f"/coordination/tasks/{task_id}", role="viewer")
    assert status == 200 and got["status"] == "cancelled"
    assert agent["agent_id"]
