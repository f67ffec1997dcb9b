"""Security (SPEC §7): tokens, roles, room claims, expiry, rate limits, origins, idle timeout, limits."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from server.api.keys import GATEWAY
from tests.conftest import ServerFactory
from tests.eio import closed_within, open_websocket, socketio_connect
from tests.support import ROOT, Clients, RunningServer, connect_error, rest

SECRET = "test-secret-" + "x" * 32


def hs_token(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def base_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "mallory", "roles": ["admin"], "exp": int(time.time()) + 600, **extra}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(claims: dict[str, Any]) -> str:
    """A token with `alg: none` and no signature."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict[str, Any], public_pem: str) -> str:
    """HS256 keyed with the RSA public key (PyJWT refuses to build this, so by hand)."""
    signing_input = f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


BAD_TOKENS = {
    "malformed": "not.a.jwt",
    "wrong signature": hs_token(base_claims(), secret="another-secret-" + "y" * 32),
    "expired": hs_token(base_claims(exp=int(time.time()) - 3600)),
    "no exp": hs_token({"sub": "mallory", "roles": ["admin"]}),
    "no sub": hs_token({"roles": ["admin"], "exp": int(time.time()) + 600}),
    "alg none": unsigned(base_claims()),
    "HS512 instead of HS256": hs_token(base_claims(), secret=SECRET * 2, algorithm="HS512"),
}


async def test_every_bad_token_is_refused_on_connect_and_rest(server: RunningServer) -> None:
    for case, token in BAD_TOKENS.items():
        error = await connect_error(server.url, auth={"token": token})
        assert error["code"] == "unauthorized", case
        status, problem, response = await rest(
            server, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 401, case
        assert problem["code"] == "unauthorized" and "invalid_token" in response.headers["WWW-Authenticate"], case
    assert (await connect_error(server.url, auth={}))["code"] == "unauthorized"
    status, _, response = await rest(server, "GET", "/agents", role=None)
    assert status == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_rs256_deployment_refuses_hs256_tokens_signed_with_the_public_key(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    server = await server_factory(jwt_secret=None, jwt_public_key=public_pem)
    good = jwt.encode(base_claims(), key, algorithm="RS256")
    rec = await socket_clients.connect(server.url, auth={"token": good})
    assert rec.of_type("connected")[0]["data"]["user"] == "mallory"
    await rec.client.disconnect()
    status, _, _ = await rest(server, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {good}"})
    assert status == 200
    # The classic confusion attack: HS256 keyed with the public key the attacker can read.
    confused = hmac_with_public_key(base_claims(), public_pem)
    assert (await connect_error(server.url, auth={"token": confused}))["code"] == "unauthorized"
    status, _, _ = await rest(server, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {confused}"})
    assert status == 401


async def test_role_boundaries_on_each_route_class(server: RunningServer) -> None:
    cases = [
        ("GET", "/agents", None, {"viewer": 200, "operator": 200, "admin": 200}),
        ("GET", "/events", None, {"viewer": 200, "operator": 200, "admin": 200}),
        ("POST", "/agents", {"agent_type": "b_cell"}, {"viewer": 403, "operator": 201, "admin": 201}),
        ("POST", "/alerts", {"level": "info", "message": "m"}, {"viewer": 403, "operator": 202, "admin": 202}),
        ("POST", "/ws/broadcast", {"event_type": "custom.x"}, {"viewer": 403, "operator": 403, "admin": 202}),
        ("GET", "/ws/connections", None, {"viewer": 403, "operator": 403, "admin": 200}),
    ]
    for method, path, body, expected in cases:
        for role, status_expected in expected.items():
            status, _, _ = await rest(server, method, path, role=role, json=body)
            assert status == status_expected, (method, path, role)
    # A well-formed token that holds no role is a viewer of nothing; an unknown role name is a
    # malformed token (SPEC §7).
    nobody = hs_token(base_claims(roles=[]))
    status, _, _ = await rest(server, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {nobody}"})
    assert status == 403
    janitor = hs_token(base_claims(roles=["janitor"]))
    status, _, _ = await rest(server, "GET", "/agents", role=None, headers={"Authorization": f"Bearer {janitor}"})
    assert status == 401


async def test_rooms_claim_narrows_joinable_rooms(server: RunningServer, socket_clients: Clients) -> None:
    token = server.token("viewer", rooms=["agent:*"])
    error = await connect_error(server.url, auth={"token": token, "rooms": ["agents"]})
    assert error["code"] == "forbidden"
    rec = await socket_clients.connect(server.url, auth={"token": token, "rooms": ["agent:a1"]})
    ack = await rec.call("join", {"room": "tasks"})
    assert ack["success"] is False and ack["error"]["code"] == "forbidden"
    assert (await rec.call("join", {"room": "agent:a2"}))["success"] is True


async def test_token_expiry_mid_connection_says_token_expired(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(jwt_leeway_s=0)
    rec = await socket_clients.connect(server.url, auth={"token": server.token(ttl_s=1)})
    goodbye = await rec.wait_event("disconnected", timeout=5)
    assert goodbye[0]["data"]["reason"] == "token_expired"
    await rec.wait_for(lambda: not rec.client.connected)


async def test_expiry_sweep_tolerates_the_same_leeway_as_connect(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    """A token that connect accepted within the clock-skew leeway is not ended at once as expired."""
    server = await server_factory(jwt_leeway_s=30)
    rec = await socket_clients.connect(server.url, auth={"token": server.token(ttl_s=-5)})
    [conn] = server.app[GATEWAY].registry.by_sid.values()
    assert conn.identity.expires_at is not None
    reaper = server.app[GATEWAY].reaper
    assert reaper.sweep() == []
    assert reaper.sweep(wall=conn.identity.expires_at + 29.9) == []
    assert reaper.sweep(wall=conn.identity.expires_at + 30) == [(conn.sid, "token_expired")]
    goodbye = await rec.wait_event("disconnected", timeout=5)
    assert goodbye[0]["data"]["reason"] == "token_expired"


async def test_client_event_rate_limit_then_disconnect(server_factory: ServerFactory, socket_clients: Clients) -> None:
    server = await server_factory(client_events_per_min=6, client_events_burst=3, rate_limit_strikes=4)
    rec = await socket_clients.connect(server.url, auth={"token": server.token()})
    acks = [await rec.call("ping") for _ in range(4)]
    assert [a["success"] for a in acks] == [True, True, True, False]
    assert acks[3]["error"]["code"] == "rate_limited" and acks[3]["error"]["details"]["retry_after_s"] > 0
    for _ in range(3):
        await rec.client.emit("ping", {})
    goodbye = await rec.wait_event("disconnected", timeout=5)
    assert goodbye[0]["data"]["reason"] == "rate_limited"
    _, stats, _ = await rest(server, "GET", "/ws/stats")
    assert stats["rate_limited"] >= 4


async def test_rest_rate_limit_per_identity(server_factory: ServerFactory) -> None:
    server = await server_factory(rest_per_min=1, rest_burst=3)
    statuses = [(await rest(server, "GET", "/agents", role="viewer"))[0] for _ in range(3)]
    status, problem, response = await rest(server, "GET", "/agents", role="viewer")
    assert statuses == [200, 200, 200] and status == 429
    assert problem["code"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1
    # Another identity has its own bucket.
    other = {"Authorization": f"Bearer {server.token('viewer', sub='someone-else')}"}
    assert (await rest(server, "GET", "/agents", role=None, headers=other))[0] == 200


async def test_rest_requests_without_a_valid_token_are_limited_per_address(server_factory: ServerFactory) -> None:
    """Bad tokens have no identity to charge: their address pays, and is refused before verifying."""
    server = await server_factory(rest_per_min=1, rest_burst=3)
    # A valid token is charged to its identity; the address's budget is only looked at.
    known = {"Authorization": f"Bearer {server.token('viewer', 'known')}"}
    assert (await rest(server, "GET", "/agents", role=None, headers=known))[0] == 200
    bad = [{"Authorization": "Bearer not-a-jwt"}, {}, {"Authorization": f"Bearer {server.token()}x"}]
    statuses = [(await rest(server, "GET", "/agents", role=None, headers=h))[0] for h in bad]
    assert statuses == [401, 401, 401]
    status, problem, response = await rest(server, "GET", "/agents", role=None, headers=bad[0])
    assert status == 429 and problem["code"] == "rate_limited" and int(response.headers["Retry-After"]) >= 1
    # While the address's budget is spent, even a valid token from it waits (nothing is verified).
    assert (await rest(server, "GET", "/agents", role="viewer"))[0] == 429
    # So does a token verified before, whose identity and address are settled in one call.
    assert (await rest(server, "GET", "/agents", role=None, headers=known))[0] == 429
    # Open routes stay open.
    assert (await rest(server, "GET", "/health", role=None))[0] == 200


async def test_connect_attempts_per_ip_and_connections_per_user(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(connects_burst_per_ip=3, connects_per_min_per_ip=1, max_connections_per_user=2)
    await socket_clients.connect(server.url, auth={"token": server.token(sub="u")})
    await socket_clients.connect(server.url, auth={"token": server.token(sub="u")})
    error = await connect_error(server.url, auth={"token": server.token(sub="u")})
    assert error["code"] == "too_many_connections"
    error = await connect_error(server.url, auth={"token": server.token(sub="v")})
    assert error["code"] == "rate_limited" and error["details"]["retry_after_s"] > 0


async def test_rest_cors_for_allowed_origins_and_refusal_for_others(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(cors_origins=["https://dash.example.com"])
    status, _, response = await rest(server, "GET", "/agents", headers={"Origin": "https://dash.example.com"})
    assert status == 200 and response.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
    status, _, response = await rest(
        server,
        "OPTIONS",
        "/agents",
        role=None,
        headers={"Origin": "https://dash.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert status == 204 and "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    status, problem, response = await rest(server, "GET", "/agents", headers={"Origin": "https://evil.example"})
    assert status == 403 and problem["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response.headers
    error = await connect_error(server.url, auth={"token": server.token()}, headers={"Origin": "https://evil.example"})
    assert error["code"] == "origin_not_allowed"
    await socket_clients.connect(
        server.url, auth={"token": server.token()}, headers={"Origin": "https://dash.example.com"}
    )


async def test_idle_timeout_spares_active_connections(server_factory: ServerFactory, socket_clients: Clients) -> None:
    server = await server_factory(idle_timeout_s=0.6)
    idle = await socket_clients.connect(server.url, auth={"token": server.token()})
    busy = await socket_clients.connect(server.url, auth={"token": server.token()})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while "disconnected" not in idle.names():
        assert loop.time() < deadline, "idle connection was not closed"
        await busy.call("ping")
        await asyncio.sleep(0.1)
    assert idle.of_type("disconnected")[0]["data"]["reason"] == "idle_timeout"
    assert "disconnected" not in busy.names() and busy.client.connected


async def test_size_limits_answer_clearly_and_lose_nothing(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(max_rooms_per_connection=2, max_filter_size=2, max_json_depth=5)
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents", "tasks"]})
    ack = await rec.call("join", {"room": "system"})
    assert ack["error"]["code"] == "invalid_request" and ack["error"]["details"]["limit"] == 2
    ack = await rec.call("subscribe", {"event_types": ["custom.a", "custom.b", "custom.c"]})
    assert ack["error"]["code"] == "invalid_request"
    deep: Any = {}
    for _ in range(10):
        deep = {"x": deep}
    ack = await rec.call("subscribe", deep)
    assert ack["error"]["code"] == "invalid_request" and "deep" in ack["message"]
    ack = await rec.call("join", {"room": "agent:" + "a" * 65})
    assert ack["success"] is False
    status, problem, _ = await rest(server, "POST", "/agents", json={"agent_type": "b_cell", "metadata": deep})
    assert status == 422 and "nested" in problem["detail"]
    status, _, _ = await rest(server, "POST", "/agents", json={"agent_type": "b_cell", "name": "n" * 500})
    assert status == 422
    # Nothing was lost: the connection still has its rooms and receives events.
    info = await rec.call("info")
    assert info["data"]["rooms"] == ["agents", "tasks"]
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.still", "room": "agents"})
    await rec.wait_event("custom.still")


async def test_a_message_over_the_payload_limit_gets_an_error_ack_and_keeps_the_connection(
    server_factory: ServerFactory,
    socket_clients: Clients,
) -> None:
    server = await server_factory(max_payload_bytes=2048, max_frame_bytes=8192)
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    ack = await rec.call("join", {"room": "agent:" + "x" * 3000})
    assert ack["success"] is False and ack["error"]["code"] == "invalid_request", ack
    assert ack["error"]["details"]["limit"] == 2048 and ack["error"]["details"]["size"] > 2048
    # Without an ack callback the same request gets an `error` event, and the connection stays.
    await rec.client.emit("ping", {"pad": "é" * 1500})  # 3 000 bytes in UTF-8, 1 500 characters
    (error,) = await rec.wait_event("error")
    assert error["data"]["code"] == "invalid_request" and error["data"]["details"]["limit"] == 2048
    assert (await rec.call("info"))["data"]["rooms"] == ["agents"]
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.after", "room": "agents"})
    await rec.wait_event("custom.after")


async def test_a_frame_over_the_transport_limit_closes_only_that_websocket_with_1009(
    server_factory: ServerFactory,
    socket_clients: Clients,
) -> None:
    server = await server_factory(max_payload_bytes=2048, max_frame_bytes=8192)
    other = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    async with aiohttp.ClientSession() as http:
        ws = await open_websocket(http, server.url)
        await socketio_connect(ws, {"token": server.token()})
        await ws.send_str('42["ping",{"pad":"' + "x" * 20_000 + '"}]')
        closing = await closed_within(ws, timeout=10)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.after", "room": "agents"})
    await other.wait_event("custom.after")
    assert (await rest(server, "GET", "/health", role=None))[0] == 200


def test_generated_secret_is_private_and_never_printed(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMUNE_")}
    minted = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "token",
            "--role",
            "viewer",
            "--sub",
            "alice",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    secret_file = tmp_path / "jwt_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = secret_file.read_text().strip()
    claims = jwt.decode(minted.stdout.strip(), secret, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["roles"] == ["viewer"] and claims["exp"] > time.time()
    shown = subprocess.run(
        [sys.executable, "-m", "server.cli", "config", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env={
            **env,
            "IMMUNE_JWT_SECRET": "super-secret-value-1234567890abcdef",
            "IMMUNE_DATABASE_URL": "postgresql+asyncpg://u:pw123@db/x",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(shown.stdout)
    assert config["jwt_secret"] == "********"
    assert "super-secret-value" not in shown.stdout and "pw123" not in shown.stdout
    assert config["database_url"] == "postgresql+asyncpg://u:********@db/x"


CLIENT_EVENTS = {
    "ping": {},
    "join": {"room": "agents"},
    "subscribe": {"event_types": ["custom.x"]},
    "unsubscribe": {"event_types": ["custom.x"]},
    "leave": {"room": "agents"},
    "info": {},
}


async def test_every_client_event_is_open_to_viewers(server: RunningServer, socket_clients: Clients) -> None:
    """SPEC §7 gives client events no role floor above viewer; rooms are narrowed by the rooms claim."""
    rec = await socket_clients.connect(server.url, auth={"token": server.token("viewer")})
    for event, payload in CLIENT_EVENTS.items():
        ack = await rec.call(event, payload)
        assert ack["success"] is True, (event, ack)
