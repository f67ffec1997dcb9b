"""Hostile input (SPEC §5, §7): random payloads to every client event and REST body get documented errors,
the server stays up, and a bystander keeps receiving every event meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Clients, Recorder, rest
from tests.threaded import ThreadedServer, threaded_server

ACK_CODES = {"invalid_request", "unknown_room", "forbidden", "unknown_event_type", "unknown_action", "rate_limited"}
REST_ERRORS = {400, 404, 409, 413, 422}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=50),
    st.sampled_from(["agents", "agent:", "custom.", "task:" + "x" * 70, "\x00", "💥" * 20, "#agents", "*"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=30,
)
deep = st.integers(min_value=20, max_value=200).map(lambda n: _nest(n))
binary = st.binary(min_size=1, max_size=256)
huge_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=3000)
# Over IMMUNE_MAX_PAYLOAD_BYTES (100 000) but under the frame limit: an `invalid_request` ack, not a cut.
over_limit = st.integers(100_001, 180_000).map(lambda n: {"room": "x" * n})
payloads = st.one_of(json_values, deep, binary, huge_text, st.dictionaries(st.just("room"), huge_text), over_limit)
field_payloads = st.dictionaries(
    st.sampled_from(["room", "event_types", "rooms", "x"]), st.one_of(json_values, st.lists(st.text(max_size=90)))
)

EVENTS = ["ping", "join", "leave", "subscribe", "unsubscribe", "info", "self_destruct", "connected", ""]
REST_TARGETS = [
    ("POST", "/agents"),
    ("PATCH", "/agents/{agent}"),
    ("POST", "/agents/{agent}/actions"),
    ("POST", "/coordination/tasks"),
    ("POST", "/coordination/consensus/propose"),
    ("POST", "/alerts"),
    ("POST", "/ws/broadcast"),
]


def _nest(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


class Stage:
    """One server, one bystander that must keep receiving, and one agent to aim at."""

    def __init__(self, live: ThreadedServer, clients: Clients) -> None:
        self.live = live
        self.bystander: Recorder = live.run(
            clients.connect(live.server.url, auth={"token": live.server.token(), "rooms": ["system"]})
        )
        status, agent, _ = live.run(rest(live.server, "POST", "/agents", json={"agent_type": "b_cell"}))
        assert status == 201
        self.agent = agent["agent_id"]
        self.heartbeats = 0

    def heartbeat(self) -> None:
        """The bystander receives an event published after the abuse (it lost nothing)."""
        server = self.live.server
        self.heartbeats += 1

        async def beat() -> None:
            status, body, _ = await rest(
                server, "POST", "/ws/broadcast", json={"event_type": "custom.beat", "room": "system"}
            )
            assert status == 202
            await self.bystander.wait_for(
                lambda: any(p.get("event_id") == body["event_id"] for _, p in self.bystander.events)
            )
            assert "disconnected" not in self.bystander.names()

        self.live.run(beat())


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    limits = {
        "client_events_per_min": 1_000_000,
        "client_events_burst": 1_000_000,
        "rest_per_min": 1_000_000,
        "rest_burst": 1_000_000,
        "connects_per_min_per_ip": 1_000_000,
        "connects_burst_per_ip": 1_000_000,
    }
    with threaded_server(Path(tmp_path_factory.mktemp("fuzz")), **limits) as live:
        clients = Clients()
        try:
            yield Stage(live, clients)
        finally:
            live.run(clients.close())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls=st.lists(st.tuples(st.sampled_from(EVENTS), st.one_of(payloads, field_payloads)), min_size=1, max_size=6))
def test_client_events_answer_hostile_payloads_with_documented_errors(
    stage: Stage, calls: list[tuple[str, Any]]
) -> None:
    server = stage.live.server

    async def abuse() -> None:
        async with Clients() as clients:
            rec = await clients.connect(server.url, auth={"token": server.token("viewer")})
            for event, payload in calls:
                ack = await rec.client.call(event, payload, timeout=10)
                assert isinstance(ack, dict) and isinstance(ack.get("success"), bool), ack
                if not ack["success"]:
                    assert ack["error"]["code"] in ACK_CODES, ack
            # Still connected, still answering, and its state is a valid one.
            info = await rec.call("info")
            assert info["success"] is True
            assert all(isinstance(room, str) and not room.startswith("#") for room in info["data"]["rooms"])

    stage.live.run(abuse())
    stage.heartbeat()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(target=st.sampled_from(REST_TARGETS), body=st.one_of(payloads, field_payloads, st.just("{not json")))
def test_rest_bodies_answer_hostile_payloads_with_documented_errors(
    stage: Stage, target: tuple[str, str], body: Any
) -> None:
    method, path = target
    server = stage.live.server

    async def abuse() -> None:
        url_path = path.format(agent=stage.agent)
        if isinstance(body, bytes | str):
            raw = body.encode() if isinstance(body, str) else body
            status, problem, response = await rest(
                server, method, url_path, data=raw, headers={"Content-Type": "application/json"}
            )
        else:
            status, problem, response = await rest(server, method, url_path, json=body)
        if status >= 400:
            assert status in REST_ERRORS, (status, problem)
            assert response.headers["Content-Type"].startswith("application/problem+json")
            assert problem["status"] == status
        else:
            assert status in {200, 201, 202}, (status, problem)

    stage.live.run(abuse())
    stage.heartbeat()
    status, health, _ = stage.live.run(rest(server, "GET", "/health", role=None))
    assert status == 200 and health["status"] == "healthy"
