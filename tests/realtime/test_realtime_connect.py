"""Connecting (SPEC §3): auth fields, `connected` first, rooms and filter applied at connect, refusals."""

from __future__ import annotations

import re

from server.api.keys import PUBLISHER
from tests.support import Clients, RunningServer, connect_error, rest

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_connected_is_first_and_describes_the_connection(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(
        server.url,
        auth={
            "token": server.token("operator", sub="alice"),
            "client_id": "dash-1",
            "rooms": ["agents", "agent:a1"],
            "event_types": ["agent_created"],
        },
    )
    assert rec.names()[0] == "connected"
    envelope = rec.of_type("connected")[0]
    assert envelope["event_id"] is None and envelope["room"] is None and envelope["event_type"] == "connected"
    assert TIMESTAMP.match(envelope["timestamp"])
    data = envelope["data"]
    assert data["client_id"] == "dash-1"
    assert data["user"] == "alice" and data["roles"] == ["operator"]
    assert data["rooms"] == ["agents", "agent:a1"]
    assert data["event_types"] == ["agent_created"]
    assert data["recovered"] is None and data["replayed"] == 0
    assert data["connection_id"] and data["node_id"] == server.settings.node_id
    assert isinstance(data["epoch"], str) and data["epoch"]
    assert TIMESTAMP.match(data["server_time"])


async def test_last_event_id_is_the_newest_id_at_connect(server: RunningServer, socket_clients: Clients) -> None:
    for n in range(3):
        await server.app[PUBLISHER].publish("custom.seed", {"n": n}, ["agents"])
    rec = await socket_clients.connect(server.url, auth={"token": server.token()})
    assert rec.of_type("connected")[0]["data"]["last_event_id"] == 3


async def test_rooms_and_filter_from_auth_apply_before_any_event(
    server: RunningServer, socket_clients: Clients
) -> None:
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["tasks"], "event_types": ["task_created", "custom.t"]}
    )
    publisher = server.app[PUBLISHER]
    await publisher.publish("custom.t", {}, ["tasks"])
    await publisher.publish("custom.other", {}, ["tasks"])
    await publisher.publish("custom.t", {}, ["agents"])
    await publisher.publish("custom.t", {}, [])  # deployment-wide
    await rec.call("ping")
    assert [(p["event_type"], p["room"]) for n, p in rec.events[1:]] == [("custom.t", "tasks"), ("custom.t", None)]


async def test_client_id_and_token_from_query_string(server: RunningServer, socket_clients: Clients) -> None:
    url = f"{server.url}?token={server.token(sub='q')}&client_id=legacy-7"
    rec = await socket_clients.connect(url)
    data = rec.of_type("connected")[0]["data"]
    assert data["client_id"] == "legacy-7" and data["user"] == "q"


async def test_generated_client_id_when_none_given(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(server.url, auth={"token": server.token()})
    assert re.match(r"^[A-Za-z0-9_.:-]{1,64}$", rec.of_type("connected")[0]["data"]["client_id"])


async def test_refusals_carry_a_code(server: RunningServer) -> None:
    assert (await connect_error(server.url, auth={}))["code"] == "unauthorized"
    assert (await connect_error(server.url, auth={"token": "not-a-jwt"}))["code"] == "unauthorized"
    token = server.token()
    assert (await connect_error(server.url, auth={"token": token, "client_id": "bad id!"}))["code"] == "invalid_request"
    assert (await connect_error(server.url, auth={"token": token, "rooms": ["nowhere"]}))["code"] == "invalid_request"
    assert (await connect_error(server.url, auth={"token": token, "rooms": "agents"}))["code"] == "invalid_request"
    bad_filter = await connect_error(server.url, auth={"token": token, "event_types": ["no_such_type"]})
    assert bad_filter["code"] == "invalid_request"
    limited = server.token(rooms=["agent:*"])
    assert (await connect_error(server.url, auth={"token": limited, "rooms": ["tasks"]}))["code"] == "forbidden"
    foreign = await connect_error(server.url, auth={"token": token}, headers={"Origin": "https://evil.example"})
    assert foreign["code"] == "origin_not_allowed"


async def test_localhost_origin_is_allowed_by_default(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token()}, headers={"Origin": "http://localhost:5173"}
    )
    assert rec.of_type("connected")


async def test_long_polling_transport_works(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"]}, transports=["polling"]
    )
    await server.app[PUBLISHER].publish("custom.poll", {"ok": True}, ["agents"])
    events = await rec.wait_event("custom.poll")
    assert events[0]["data"] == {"ok": True}
    # The python client's own polling disconnect waits out a whole ping interval, so the server
    # ends this connection instead; that also proves `disconnected` reaches a polling client.
    connection_id = rec.of_type("connected")[0]["data"]["connection_id"]
    status, _, _ = await rest(server, "DELETE", f"/ws/connections/{connection_id}")
    assert status == 204
    kicked = await rec.wait_event("disconnected")
    assert kicked[0]["data"]["reason"] == "kicked"
    await rec.wait_for(lambda: not rec.client.connected)
