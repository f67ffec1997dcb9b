"""Property: each event reaches exactly the connections the SPEC §5 predicate selects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.api.keys import PUBLISHER
from tests.support import Clients, Recorder
from tests.threaded import ThreadedServer, threaded_server

ROOMS = ["agents", "tasks", "coordination", "system", "agent:a1", "agent:a2", "task:t1"]
TYPES = ["agent_created", "agent_updated", "task_created", "alert_triggered", "custom.x", "custom.y.z"]

client_spec = st.fixed_dictionaries(
    {
        "rooms": st.lists(st.sampled_from(ROOMS), unique=True, max_size=4),
        "types": st.lists(st.sampled_from(TYPES), unique=True, max_size=3),
        # how the client states its rooms/filter: in the connect auth, or by acknowledged requests
        "via_requests": st.booleans(),
        # an unsubscribe that removes everything, returning to "all types"
        "clear_filter": st.booleans(),
    }
)
event_spec = st.tuples(
    st.sampled_from(TYPES),
    st.one_of(st.just([]), st.lists(st.sampled_from(ROOMS), unique=True, min_size=1, max_size=2)),
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    # Hundreds of connects in seconds from one address: lift the per-IP connect limit (tested elsewhere).
    limits = {"connects_per_min_per_ip": 1_000_000, "connects_burst_per_ip": 1_000_000}
    with threaded_server(Path(tmp_path_factory.mktemp("prop")), **limits) as running:
        yield running


def selected(spec: dict[str, Any], event_type: str, rooms: list[str]) -> bool:
    """SPEC §5: (deployment-wide or in one of the rooms) and (empty filter or type in filter)."""
    types = [] if spec["clear_filter"] else spec["types"]
    in_room = not rooms or bool(set(rooms) & set(spec["rooms"]))
    return in_room and (not types or event_type in types)


async def scenario(live: ThreadedServer, clients: list[dict[str, Any]], events: list[tuple[str, list[str]]]) -> None:
    server = live.server
    recorders: list[Recorder] = []
    async with Clients() as opened:
        for spec in clients:
            if spec["via_requests"]:
                rec = await opened.connect(server.url, auth={"token": server.token("viewer")})
                for room in spec["rooms"]:
                    assert (await rec.call("join", {"room": room}))["success"]
                if spec["types"]:
                    assert (await rec.call("subscribe", {"event_types": spec["types"]}))["success"]
            else:
                auth = {"token": server.token("viewer"), "rooms": spec["rooms"], "event_types": spec["types"]}
                rec = await opened.connect(server.url, auth=auth)
            if spec["clear_filter"] and spec["types"]:
                ack = await rec.call("unsubscribe", {"event_types": spec["types"]})
                assert ack["data"]["event_types"] == []
            recorders.append(rec)

        published: list[int] = []
        for event_type, rooms in events:
            event = await server.app[PUBLISHER].publish(event_type, {"n": len(published)}, rooms)
            published.append(event.event_id)

        for spec, rec in zip(clients, recorders, strict=True):
            expected = [
                event_id
                for event_id, (event_type, rooms) in zip(published, events, strict=True)
                if selected(spec, event_type, rooms)
            ]
            # A ping's ack is queued after every event already delivered to this connection,
            # so once it returns, everything the server sent has been received.
            await rec.call("ping")
            got = [payload["event_id"] for name, payload in rec.events if name != "connected"]
            assert got == expected, (spec, events)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clients=st.lists(client_spec, min_size=1, max_size=4), events=st.lists(event_spec, min_size=1, max_size=8))
def test_each_event_reaches_exactly_the_selected_connections(
    live: ThreadedServer, clients: list[dict[str, Any]], events: list[tuple[str, list[str]]]
) -> None:
    live.run(scenario(live, clients, events))
