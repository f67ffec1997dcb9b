"""`immune-core serve` as a real process: JSON logs with bound ids, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from server.auth import TokenAuthority
from server.config import Settings
from tests.security.test_security_keys import assert_one_line_refusal, run_serve
from tests.support import Clients, ServerProcess

SECRET = "test-secret-" + "x" * 32


def token_for(data_dir: Path) -> str:
    """A token signed with the secret ServerProcess gives the child."""
    return TokenAuthority(Settings(data_dir=data_dir, jwt_secret=SECRET)).mint("ops", ["admin"], ttl_s=600)


async def test_logs_are_json_lines_bound_to_the_connection(tmp_path: Path, socket_clients: Clients) -> None:
    proc = ServerProcess(tmp_path, env={"IMMUNE_LOG_FORMAT": "json", "IMMUNE_LOG_LEVEL": "info"})
    await asyncio.to_thread(proc.start)
    try:
        rec = await socket_clients.connect(proc.url, auth={"token": token_for(tmp_path), "client_id": "log-probe"})
        connection_id = rec.of_type("connected")[0]["data"]["connection_id"]
        await rec.client.disconnect()
    finally:
        await asyncio.to_thread(proc.stop)
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    connected = [line for line in lines if line.get("event") == "connected"]
    assert connected, lines
    assert connected[0]["connection_id"] == connection_id and connected[0]["client_id"] == "log-probe"
    assert {"timestamp", "level"} <= connected[0].keys()
    assert SECRET not in (tmp_path / "server.log").read_text()


async def test_sigterm_says_server_shutdown_and_exits_cleanly(tmp_path: Path, socket_clients: Clients) -> None:
    proc = ServerProcess(tmp_path)
    await asyncio.to_thread(proc.start)
    try:
        rec = await socket_clients.connect(proc.url, auth={"token": token_for(tmp_path), "rooms": ["agents"]})
        assert proc.proc is not None
        proc.proc.terminate()
        goodbye = await rec.wait_event("disconnected", timeout=10)
        assert goodbye[0]["data"]["reason"] == "server_shutdown"
        await rec.wait_for(lambda: not rec.client.connected, timeout=10)
        assert await asyncio.to_thread(proc.proc.wait, 15) == 0
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"IMMUNE_MAX_QUEUE": "0"}, "IMMUNE_MAX_QUEUE: Input should be greater than or equal to 1"),
        ({"IMMUNE_IDLE_TIMEOUT_S": "soon"}, "IMMUNE_IDLE_TIMEOUT_S: Input should be a valid number"),
        (
            {"IMMUNE_TRUSTED_PROXIES": '["10.0.0.0/8", "10.0.0.1/8"]'},
            "IMMUNE_TRUSTED_PROXIES[1]: value is not a valid IPv4 or IPv6 network",
        ),
        (
            {"IMMUNE_REDIS_URL": "redis://127.0.0.1:6379/0"},
            "IMMUNE_REDIS_URL needs IMMUNE_DATABASE_URL=postgresql+asyncpg://... shared by every node; a SQLite file",
        ),
    ],
)
def test_a_bad_setting_refuses_to_start_with_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    assert_one_line_refusal(run_serve(tmp_path, {"IMMUNE_JWT_SECRET": "s" * 40, **env}), expected)
