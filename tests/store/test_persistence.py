"""Data survives a restart on the same SQLite file: entities, election state and the event log."""

from __future__ import annotations

from pathlib import Path

from tests import support
from tests.domain.test_agents_api import create
from tests.support import rest, start_server


async def test_restart_keeps_agents_tasks_election_and_events(tmp_path: Path) -> None:
    first = await start_server(support.test_settings(tmp_path))
    try:
        agent = await create(first, name="survivor")
        status, task, _ = await rest(
            first, "POST", "/coordination/tasks", json={"task_type": "scan", "agent_id": agent["agent_id"]}
        )
        assert status == 201
        status, election, _ = await rest(first, "POST", "/coordination/election/trigger")
        _, before, _ = await rest(first, "GET", "/events")
    finally:
        await first.runner.cleanup()

    second = await start_server(support.test_settings(tmp_path))
    try:
        status, got, _ = await rest(second, "GET", f"/agents/{agent['agent_id']}")
        assert status == 200 and got == agent
        status, got_task, _ = await rest(second, "GET", f"/coordination/tasks/{task['task_id']}")
        assert got_task == task
        _, state, _ = await rest(second, "GET", "/coordination/election")
        assert state["term"] == election["term"] and state["leader_id"] == agent["agent_id"]
        _, after, _ = await rest(second, "GET", "/events")
        assert after["items"] == before["items"] and after["epoch"] == before["epoch"]
        # Ids continue after the restart.
        status, accepted, _ = await rest(second, "POST", "/ws/broadcast", json={"event_type": "custom.next"})
        assert accepted["event_id"] == before["head"] + 1
    finally:
        await second.runner.cleanup()
