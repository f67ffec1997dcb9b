"""Strict input (issue 10 F, G, H): token claims, integer ranges, exact names, JSON media type."""

from __future__ import annotations

import time
from typing import Any

import jwt

from tests.conftest import ServerFactory
from tests.support import Clients, RunningServer, connect_error, rest

SECRET = "test-secret-" + "x" * 32
INT64_MAX = 2**63 - 1


def token(**claims: Any) -> str:
    """A correctly signed HS256 token with these claims over a valid default."""
    return jwt.encode({"sub": "mallory", "roles": ["viewer"], "exp": int(time.time()) + 600, **claims}, SECRET)


async def rest_status(server: RunningServer, bearer: str) -> tuple[int, Any]:
    status, problem, _ = await rest(server, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {bearer}"})
    return status, problem


async def test_malformed_role_claims_are_unauthorized_on_rest_and_socketio(server: RunningServer) -> None:
    for roles in ("admin", ["ADMIN"], ["janitor"], ["viewer", 1], {"admin": True}, None):
        bad = token(roles=roles)
        status, problem = await rest_status(server, bad)
        assert status == 401 and problem["code"] == "unauthorized", roles
        error = await connect_error(server.url, auth={"token": bad})
        assert error["code"] == "unauthorized", roles


async def test_a_token_without_viewer_cannot_connect_or_read(server: RunningServer, socket_clients: Clients) -> None:
    """`roles: []` is a well-formed token that holds no role: 403 on REST, `forbidden` at connect."""
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.secret", "room": "agents"})
    nobody = token(roles=[])
    status, problem = await rest_status(server, nobody)
    assert status == 403 and problem["code"] == "forbidden"
    error = await connect_error(server.url, auth={"token": nobody, "rooms": ["agents"], "last_event_id": 0})
    assert error["code"] == "forbidden"
    # Without a roles claim a token is a viewer (documented), so it does connect.
    plain = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, SECRET)
    rec = await socket_clients.connect(server.url, auth={"token": plain})
    assert rec.of_type("connected")[0]["data"]["roles"] == ["viewer"]


async def test_time_claims_must_be_numbers_in_range(server: RunningServer) -> None:
    future = int(time.time()) + 600
    for claims in (
        {"exp": str(future)},  # PyJWT alone accepts a numeric string and the server stored no expiry
        {"exp": f"{future}.0"},
        {"exp": 10**400},
        {"exp": True},
        {"nbf": str(int(time.time()) - 10)},
        {"iat": 10**30},
    ):
        bad = token(**claims)
        status, problem = await rest_status(server, bad)
        assert status == 401 and problem["code"] == "unauthorized", claims
        error = await connect_error(server.url, auth={"token": bad})
        assert error["code"] == "unauthorized", claims
    # Numbers are honoured, a float included.
    status, _ = await rest_status(server, token(exp=future + 0.5, nbf=time.time() - 1, iat=int(time.time())))
    assert status == 200


async def test_a_numeric_exp_ends_the_connection_with_token_expired(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(jwt_leeway_s=0)
    rec = await socket_clients.connect(server.url, auth={"token": token(exp=time.time() + 1.5)})
    goodbye = await rec.wait_event("disconnected", timeout=6)
    assert goodbye[0]["data"]["reason"] == "token_expired"
    await rec.wait_for(lambda: not rec.client.connected)


async def test_integers_out_of_range_are_422_not_500(server: RunningServer) -> None:
    for path in (
        f"/events?after={INT64_MAX + 1}",
        "/events?after=-1",
        "/events?limit=99999999999999999999999",
        "/agents?offset=9223372036854775808",
        "/coordination/tasks?limit=-5",
    ):
        status, problem, _ = await rest(server, "GET", path, role="viewer")
        assert status == 422 and problem["code"] == "invalid_request", path
    status, page, _ = await rest(server, "GET", f"/events?after={INT64_MAX}", role="viewer")
    assert status == 200 and page["items"] == []
    status, problem, _ = await rest(server, "POST", "/coordination/tasks", json={"task_type": "t", "priority": 2**64})
    assert status == 422


async def test_last_event_id_must_be_an_integer_in_range(server: RunningServer, socket_clients: Clients) -> None:
    viewer = server.token("viewer")
    for value in ("5", 5.0, True, -1, INT64_MAX + 1, 2**64 - 1):
        error = await connect_error(server.url, auth={"token": viewer, "last_event_id": value})
        assert error["code"] == "invalid_request" and error["details"]["fields"] == ["last_event_id"], value
    rec = await socket_clients.connect(server.url, auth={"token": viewer, "last_event_id": INT64_MAX})
    assert rec.of_type("connected")[0]["data"]["recovered"] is False  # ahead of the log: refetch


async def test_room_names_match_exactly(server: RunningServer, socket_clients: Clients) -> None:
    viewer = server.token("viewer")
    error = await connect_error(server.url, auth={"token": viewer, "rooms": ["agent:abc\n"]})
    assert error["code"] == "invalid_request"
    rec = await socket_clients.connect(server.url, auth={"token": viewer})
    for room in ("agent:abc\n", "task:t1\n", "agents\n"):
        ack = await rec.call("join", {"room": room})
        assert ack["success"] is False and ack["error"]["code"] == "unknown_room", room
    ack = await rec.call("subscribe", {"event_types": ["custom.x\n"]})
    assert ack["error"]["code"] == "unknown_event_type"
    ack = await rec.call("join", {"room": 5})
    assert ack["error"]["code"] == "invalid_request"
    assert (await rec.call("join", {"room": "agent:abc"}))["success"] is True
    await rec.client.disconnect()
    status, _, _ = await rest(server, "GET", "/events?rooms=agent:abc%0A", role="viewer")
    assert status == 422


async def test_rest_bodies_need_application_json(server: RunningServer) -> None:
    body = b'{"agent_type": "b_cell"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        status, problem, response = await rest(server, "POST", "/agents", role="operator", data=body, headers=headers)
        assert status == 415, content_type
        assert response.content_type == "application/problem+json"
        assert problem["code"] == "unsupported_media_type"
    status, problem, _ = await rest(server, "POST", "/agents", role="operator")  # no body at all
    assert status == 400
    headers = {"Content-Type": "application/json; charset=utf-8"}
    status, agent, _ = await rest(server, "POST", "/agents", role="operator", data=body, headers=headers)
    assert status == 201 and agent["agent_type"] == "b_cell"


async def test_rest_body_fields_are_strict(server: RunningServer) -> None:
    for body in (
        {"task_type": "t", "priority": "5"},
        {"task_type": "t", "priority": 5.0},
        {"task_type": "t", "priority": True},
    ):
        status, problem, _ = await rest(server, "POST", "/coordination/tasks", role="operator", json=body)
        assert status == 422 and problem["code"] == "invalid_request", body
    status, task, _ = await rest(
        server, "POST", "/coordination/tasks", role="operator", json={"task_type": "t", "priority": 5}
    )
    assert status == 201 and task["priority"] == 5
    status, _, _ = await rest(server, "PATCH", "/agents/none", role="operator", json={"health": 1})
    assert status == 404  # an integer where a float is wanted is still a number
