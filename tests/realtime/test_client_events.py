"""Client → server events (SPEC §5): acks, every error code, and no crash on bad input."""

from __future__ import annotations

from typing import Any

import pytest

from server.api.keys import GATEWAY, PUBLISHER
from tests.support import Clients, Recorder, RunningServer, rest


@pytest.fixture
async def client(server: RunningServer, socket_clients: Clients) -> Recorder:
    return await socket_clients.connect(
        server.url, auth={"token": server.token("viewer", sub="bob"), "client_id": "c1"}
    )


def error_code(ack: dict[str, Any]) -> str:
    assert ack["success"] is False, ack
    assert isinstance(ack["message"], str) and ack["message"]
    return str(ack["error"]["code"])


async def test_ping_answers_pong_with_server_time(client: Recorder) -> None:
    for arg in ({}, None, "anything", 42):
        ack = await client.call("ping", arg)
        assert ack["success"] and ack["message"] == "pong" and ack["data"]["server_time"].endswith("Z")


async def test_join_and_leave_report_all_rooms(client: Recorder) -> None:
    ack = await client.call("join", {"room": "agents"})
    assert ack == {"success": True, "message": "joined agents", "data": {"room": "agents", "rooms": ["agents"]}}
    ack = await client.call("join", {"room": "task:t-1"})
    assert ack["data"]["rooms"] == ["agents", "task:t-1"]
    ack = await client.call("join", {"room": "agents"})
    assert ack["success"] and ack["data"]["rooms"] == ["agents", "task:t-1"]
    ack = await client.call("leave", {"room": "agents"})
    assert ack["data"] == {"room": "agents", "rooms": ["task:t-1"]}
    ack = await client.call("leave", {"room": "agents"})
    assert ack["success"] and ack["data"]["rooms"] == ["task:t-1"]


async def test_joined_room_receives_and_left_room_does_not(server: RunningServer, client: Recorder) -> None:
    publisher = server.app[PUBLISHER]
    await client.call("join", {"room": "system"})
    await publisher.publish("custom.a", {}, ["system"])
    await client.call("leave", {"room": "system"})
    await publisher.publish("custom.b", {}, ["system"])
    await client.call("ping")
    assert [n for n in client.names() if n.startswith("custom.")] == ["custom.a"]


async def test_subscribe_and_unsubscribe_return_the_whole_filter(client: Recorder) -> None:
    ack = await client.call("subscribe", {"event_types": ["agent_created", "custom.x"]})
    assert ack["data"] == {"event_types": ["agent_created", "custom.x"]}
    ack = await client.call("subscribe", {"event_types": ["agent_created", "task_created"]})
    assert ack["data"]["event_types"] == ["agent_created", "custom.x", "task_created"]
    ack = await client.call("unsubscribe", {"event_types": ["custom.x", "agent_deleted"]})
    assert ack["data"]["event_types"] == ["agent_created", "task_created"]
    ack = await client.call("unsubscribe", {"event_types": ["agent_created", "task_created"]})
    assert ack["data"]["event_types"] == []


async def test_info_describes_the_connection(client: Recorder) -> None:
    await client.call("join", {"room": "agents"})
    ack = await client.call("info")
    data = ack["data"]
    assert data["client_id"] == "c1" and data["user"] == "bob" and data["roles"] == ["viewer"]
    assert data["rooms"] == ["agents"] and data["event_types"] == []
    assert data["messages_received"] == 2 and data["messages_sent"] == 1  # `connected`
    assert set(data) == {
        "connection_id",
        "client_id",
        "user",
        "roles",
        "rooms",
        "event_types",
        "connected_at",
        "last_activity",
        "messages_sent",
        "messages_received",
    }


async def test_invalid_request(client: Recorder) -> None:
    for event, arg in [
        ("join", {}),
        ("join", {"room": 5}),
        ("join", "agents"),
        ("join", {"room": "agents", "extra": 1}),
        ("join", {"room": "x" * 500}),
        ("subscribe", {"event_types": []}),
        ("subscribe", {"event_types": "agent_created"}),
        ("unsubscribe", None),
        ("leave", [1, 2]),
    ]:
        assert error_code(await client.call(event, arg)) == "invalid_request", (event, arg)


async def test_unknown_room(client: Recorder) -> None:
    for room in ["lobby", "agent:", "agent:bad id", "agents:", "task:" + "x" * 65, "#agents", "*"]:
        ack = await client.call("join", {"room": room})
        assert error_code(ack) == "unknown_room" and ack["error"]["details"] == {"room": room}
    assert error_code(await client.call("leave", {"room": "lobby"})) == "unknown_room"


async def test_forbidden_room_from_token_rooms_claim(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(server.url, auth={"token": server.token("viewer", rooms=["agent:*", "system"])})
    assert (await rec.call("join", {"room": "agent:a9"}))["success"]
    assert (await rec.call("join", {"room": "system"}))["success"]
    assert error_code(await rec.call("join", {"room": "agents"})) == "forbidden"


async def test_unknown_event_type_leaves_filter_unchanged(client: Recorder) -> None:
    await client.call("subscribe", {"event_types": ["agent_created"]})
    ack = await client.call("subscribe", {"event_types": ["task_created", "nope", "custom.UPPER"]})
    assert error_code(ack) == "unknown_event_type"
    assert ack["error"]["details"] == {"event_types": ["nope", "custom.UPPER"]}
    assert error_code(await client.call("subscribe", {"event_types": ["connected"]})) == "unknown_event_type"
    assert error_code(await client.call("unsubscribe", {"event_types": ["bogus"]})) == "unknown_event_type"
    assert (await client.call("info"))["data"]["event_types"] == ["agent_created"]


async def test_unknown_action(client: Recorder) -> None:
    ack = await client.call("launch_missiles", {"now": True})
    assert error_code(ack) == "unknown_action"
    assert ack["error"]["details"] == {"event": "launch_missiles"}


async def test_failed_request_without_ack_gets_error_event(client: Recorder) -> None:
    await client.client.emit("join", {"room": "lobby"})
    await client.client.emit("frobnicate", {})
    errors = await client.wait_event("error", count=2)
    assert [e["data"]["code"] for e in errors] == ["unknown_room", "unknown_action"]
    assert errors[0]["event_id"] is None and errors[0]["data"]["request"] == "join"
    await client.client.emit("ping", {})  # success without ack: no reply at all
    await client.call("ping")
    assert len(client.of_type("error")) == 2


async def test_a_handler_bug_is_an_internal_error_and_the_connection_survives(
    server: RunningServer, client: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(conn: Any, arg: Any) -> Any:
        raise RuntimeError("a bug in the handler")  # the fault: a defect in one handler

    monkeypatch.setitem(server.app[GATEWAY].requests.handlers, "info", broken)
    ack = await client.call("info")
    assert error_code(ack) == "internal_error" and ack["message"] == "internal error"
    assert "a bug" not in str(ack)  # the client learns nothing of the server's internals
    await client.client.emit("info", {})  # without an ack: an `error` event instead
    error = (await client.wait_event("error"))[0]
    assert error["data"]["code"] == "internal_error" and error["data"]["request"] == "info"
    # The connection goes on: other requests work and events still arrive.
    assert (await client.call("join", {"room": "agents"}))["success"]
    await server.app[PUBLISHER].publish("custom.still_alive", {}, ["agents"])
    await client.wait_event("custom.still_alive")
    _status, metrics, _ = await rest(server, "GET", "/metrics")
    assert 'immune_ws_client_events_total{event="info",outcome="internal_error"} 2.0' in metrics


async def test_limits_on_rooms_and_filter(server_factory: Any, socket_clients: Clients) -> None:
    server = await server_factory(max_rooms_per_connection=2, max_filter_size=2)
    rec = await socket_clients.connect(server.url, auth={"token": server.token()})
    assert (await rec.call("join", {"room": "agents"}))["success"]
    assert (await rec.call("join", {"room": "tasks"}))["success"]
    ack = await rec.call("join", {"room": "system"})
    assert error_code(ack) == "invalid_request" and ack["error"]["details"] == {"limit": 2}
    assert (await rec.call("subscribe", {"event_types": ["custom.a", "custom.b"]}))["success"]
    assert error_code(await rec.call("subscribe", {"event_types": ["custom.c"]})) == "invalid_request"
    assert (await rec.call("info"))["data"]["event_types"] == ["custom.a", "custom.b"]


async def test_bad_input_never_drops_the_connection(server: RunningServer, client: Recorder) -> None:
    hostile: list[tuple[str, Any]] = [
        ("join", {"room": None}),
        ("join", {"room": ["agents"]}),
        ("subscribe", {"event_types": [None, 1, {"a": 1}]}),
        ("join", b"\x00\x01binary"),
        ("info", {"deep": [[[[[[[[[[[]]]]]]]]]]]}),
        ("\u2603", {}),
        ("join", {"room": "agent:\u00e9\u00e8"}),
    ]
    for event, arg in hostile:
        ack = await client.call(event, arg)
        assert isinstance(ack, dict) and "success" in ack
    await client.call("join", {"room": "agents"})
    await server.app[PUBLISHER].publish("custom.still_alive", {}, ["agents"])
    assert (await client.wait_event("custom.still_alive"))[0]["data"] == {}
