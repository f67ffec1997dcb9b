"""The /ws/* REST routes, /health and /metrics (SPEC §6, §8)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support import Clients, RunningServer, rest

STATS_FIELDS = {
    "active_connections",
    "total_connections",
    "total_disconnections",
    "total_rooms",
    "messages_sent",
    "messages_received",
    "rooms",
    "node_id",
    "uptime_s",
    "events_published",
    "events_replayed",
    "rate_limited",
    "slow_consumer_disconnects",
    "nodes",
}


async def test_stats_count_connections_rooms_and_messages(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents", "tasks"]})
    other = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    await rec.call("ping")
    status, _, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.x", "room": "agents"})
    assert status == 202
    await rec.wait_event("custom.x")
    await other.wait_event("custom.x")

    status, stats, _ = await rest(server, "GET", "/ws/stats", role="viewer")
    assert status == 200
    assert stats.keys() >= STATS_FIELDS
    assert stats["active_connections"] == 2
    assert stats["total_connections"] == 2
    assert stats["rooms"] == {"agents": 2, "tasks": 1}
    assert stats["total_rooms"] == 2
    assert stats["messages_received"] == 1
    # `connected` to each, plus the broadcast to each
    assert stats["messages_sent"] == 4
    assert stats["events_published"] == 1
    assert stats["node_id"] == server.settings.node_id
    assert [node["node_id"] for node in stats["nodes"]] == [server.settings.node_id]

    await other.client.disconnect()
    for _ in range(50):
        _, stats, _ = await rest(server, "GET", "/ws/stats")
        if stats["total_disconnections"] == 1:
            break
        await asyncio.sleep(0.05)
    assert stats["total_disconnections"] == 1 and stats["active_connections"] == 1
    assert stats["rooms"] == {"agents": 1, "tasks": 1}


async def test_broadcast_reaches_the_room_and_returns_its_event_id(
    server: RunningServer, socket_clients: Clients
) -> None:
    in_room = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["system"]})
    elsewhere = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    status, body, _ = await rest(
        server,
        "POST",
        "/ws/broadcast",
        json={"event_type": "alert_triggered", "room": "system", "data": {"level": "warning", "message": "hot"}},
    )
    assert status == 202
    events = await in_room.wait_event("alert_triggered")
    assert events[0]["event_id"] == body["event_id"]
    assert events[0]["room"] == "system"
    assert events[0]["source"] == "broadcast"
    assert events[0]["data"]["level"] == "warning" and events[0]["data"]["message"] == "hot"
    # A later broadcast to everyone reaches the other client; the room-scoped one never did.
    status, body2, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.all", "source": "ops"})
    assert status == 202 and body2["event_id"] == body["event_id"] + 1
    everyone = await elsewhere.wait_event("custom.all")
    assert everyone[0]["room"] is None and everyone[0]["source"] == "ops"
    assert "alert_triggered" not in elsewhere.names()


async def test_broadcast_validation_errors_are_problems_and_emit_nothing(
    server: RunningServer, socket_clients: Clients
) -> None:
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    cases = [
        ({"event_type": "Custom.Bad!"}, "event_type"),
        ({"event_type": "custom.ok", "room": "nowhere"}, "room"),
        ({"event_type": "connected"}, "event_type"),
        ({"event_type": "agent_created", "room": "agents", "data": {"agent_id": 5}}, "data"),
        ({"event_type": "custom.ok", "extra": 1}, "extra"),
        ({"data": {}}, "event_type"),
    ]
    for body, field in cases:
        status, problem, response = await rest(server, "POST", "/ws/broadcast", json=body)
        assert status == 422, body
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert problem["status"] == 422
        assert any(error["loc"][0] == field for error in problem["errors"]), (body, problem)

    status, problem, _ = await rest(
        server, "POST", "/ws/broadcast", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and problem["status"] == 400

    # Nothing above reached the client: the next event it sees is the first valid one, id 1.
    status, accepted, _ = await rest(
        server, "POST", "/ws/broadcast", json={"event_type": "custom.ok", "room": "agents"}
    )
    assert status == 202 and accepted["event_id"] == 1
    await rec.wait_event("custom.ok")
    assert rec.names() == ["connected", "custom.ok"]


async def test_ws_routes_need_a_token_and_the_right_role(server: RunningServer) -> None:
    status, problem, response = await rest(server, "GET", "/ws/stats", role=None)
    assert status == 401 and "WWW-Authenticate" in response.headers
    status, _, _ = await rest(server, "GET", "/ws/stats", role="viewer")
    assert status == 200
    for method, path in [("POST", "/ws/broadcast"), ("GET", "/ws/connections"), ("DELETE", "/ws/connections/x")]:
        status, problem, _ = await rest(server, method, path, role="operator", json={"event_type": "custom.x"})
        assert status == 403, (method, path)
        assert problem["status"] == 403


async def test_connections_list_inspect_and_kick(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token("viewer", sub="bob"), "client_id": "phone-7", "rooms": ["tasks"]}
    )
    watcher = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["tasks"]})
    connection_id = rec.of_type("connected")[0]["data"]["connection_id"]

    status, listing, _ = await rest(server, "GET", "/ws/connections")
    assert status == 200 and listing["total"] == 2
    assert {item["client_id"] for item in listing["items"]} >= {"phone-7"}

    status, info, _ = await rest(server, "GET", f"/ws/connections/{connection_id}")
    assert status == 200
    assert info["connection_id"] == connection_id and info["client_id"] == "phone-7"
    assert info["user"] == "bob" and info["roles"] == ["viewer"] and info["rooms"] == ["tasks"]

    status, _, _ = await rest(server, "DELETE", f"/ws/connections/{connection_id}")
    assert status == 204
    kicked = await rec.wait_event("disconnected")
    assert kicked[0]["data"]["reason"] == "kicked"
    await rec.wait_for(lambda: not rec.client.connected)

    status, problem, _ = await rest(server, "GET", f"/ws/connections/{connection_id}")
    assert status == 404 and problem["status"] == 404
    status, _, _ = await rest(server, "DELETE", f"/ws/connections/{connection_id}")
    assert status == 404
    # The other connection is untouched and still receives events.
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.after", "room": "tasks"})
    await watcher.wait_event("custom.after")
    assert "disconnected" not in watcher.names()


async def test_health_ready_and_metrics_need_no_token(server: RunningServer, socket_clients: Clients) -> None:
    status, health, _ = await rest(server, "GET", "/health", role=None)
    assert status == 200 and health["status"] == "healthy"
    status, ready, _ = await rest(server, "GET", "/ready", role=None)
    assert status == 200 and ready["ready"] is True and ready["checks"]["database"] == "ok"

    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    await rec.call("ping")
    await rec.call("join", {"room": "nowhere"})
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.m", "room": "agents"})
    await rec.wait_event("custom.m")

    status, text, response = await rest(server, "GET", "/metrics", role=None)
    assert status == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("immune_ws_connections") == 1
    assert value("immune_ws_connects_total") == 1
    assert value("immune_ws_client_events_total", event="ping", outcome="ok") == 1
    assert value("immune_ws_client_events_total", event="join", outcome="unknown_room") == 1
    assert value("immune_events_published_total", event_type="custom.m") == 1
    assert value("immune_ws_deliveries_total") == 1


async def test_rest_responses_echo_or_assign_a_request_id(server: RunningServer) -> None:
    status, _, response = await rest(server, "GET", "/ws/stats", headers={"X-Request-ID": "trace-42"})
    assert status == 200 and response.headers["X-Request-ID"] == "trace-42"
    # Errors from the inner middlewares (here: no token) carry it too; one is made up when absent.
    status, _, response = await rest(server, "GET", "/ws/stats", role=None)
    assert status == 401 and re.fullmatch(r"[0-9a-f]{16}", response.headers["X-Request-ID"])
    # Each request gets its own, also on one kept-alive connection (one aiohttp task serves them all).
    async with aiohttp.ClientSession() as session:
        made_up = set()
        for _ in range(3):
            async with session.get(server.url + "/ws/stats") as reply:
                made_up.add(reply.headers["X-Request-ID"])
    assert len(made_up) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in made_up)
