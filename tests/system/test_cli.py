"""The `immune-core` CLI as a user runs it: every start-up or usage mistake is one line and exit status 2."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.security.test_security_keys import clean_env
from tests.support import ROOT, Clients, ServerProcess, free_port
from tests.system.test_process import token_for

SECRET = {"IMMUNE_JWT_SECRET": "s" * 40}


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`immune-core ARGS` as a child process with exactly these IMMUNE_* settings."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Assert exit status 2 and a single stderr line, no traceback, containing each of `expected`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.match(r"immune-core( \w+)?: error: ", lines[0]), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Dashboard" not in result.stdout
    return lines[0]


def test_a_port_in_use_is_one_line_and_no_dashboard_link(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("serve", "--data-dir", str(tmp_path), "--port", str(port), env=SECRET)
    one_line(result, f"127.0.0.1:{port}", "already in use")


def test_a_list_setting_that_is_not_json_names_the_variable_and_the_form(tmp_path: Path) -> None:
    env = {**SECRET, "IMMUNE_CORS_ORIGINS": "https://x.example"}
    result = run_cli("serve", "--data-dir", str(tmp_path), "--port", "1", env=env)
    one_line(result, "IMMUNE_CORS_ORIGINS: must be a JSON list", """'["first", "second"]'""")


@pytest.mark.parametrize("command", ["serve", "config"])
def test_an_unknown_log_level_is_refused(tmp_path: Path, command: str) -> None:
    env = {**SECRET, "IMMUNE_LOG_LEVEL": "loud"}
    one_line(run_cli(command, "--data-dir", str(tmp_path), env=env), "IMMUNE_LOG_LEVEL", "'debug'", "'critical'")


def test_a_log_level_in_capitals_is_accepted(tmp_path: Path) -> None:
    result = run_cli("config", "--data-dir", str(tmp_path), env={**SECRET, "IMMUNE_LOG_LEVEL": "WARNING"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["log_level"] == "warning"


@pytest.mark.parametrize(("ttl", "expected"), [("banana", "invalid duration 'banana'"), ("0", "must be more than 0")])
def test_a_bad_token_ttl_is_a_usage_error(tmp_path: Path, ttl: str, expected: str) -> None:
    result = run_cli("token", "--sub", "x", "--ttl", ttl, "--data-dir", str(tmp_path), env=SECRET)
    one_line(result, "immune-core token: error: argument --ttl", expected, "--help")


def test_token_ttl_units(tmp_path: Path) -> None:
    import jwt

    result = run_cli("token", "--sub", "x", "--ttl", "2h", "--data-dir", str(tmp_path), env=SECRET)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 7200


def test_an_unknown_command_or_option_is_one_line(tmp_path: Path) -> None:
    one_line(run_cli("serv"), "invalid choice: 'serv'")
    one_line(run_cli("serve", "--prot", "80"), "unrecognized arguments: --prot")


def test_listen_to_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    one_line(run_cli("listen", "--url", url), f"cannot connect to {url}", "Connect call failed")


async def test_listen_with_a_refused_token_is_one_line_then_a_good_one_works(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path)
    await asyncio.to_thread(proc.start)
    try:
        refused = await asyncio.to_thread(run_cli, "listen", "--url", proc.url, "--token", "not-a-jwt")
        one_line(refused, f"{proc.url} refused the connection: unauthorized")
        token = token_for(tmp_path)
        listening = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "server.cli", "listen", "--url", proc.url, "--token", token, "--count", "1"],
            cwd=ROOT,
            env=clean_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            # Broadcast until the listener (whose connect time we cannot see) has printed one and exited.
            while listening.returncode is None and time.monotonic() < deadline:
                await asyncio.to_thread(_broadcast, proc.url, token)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listening.wait(), 0.3)
            out_bytes, err_bytes = await asyncio.wait_for(listening.communicate(), 10)
            out, err = out_bytes.decode(), err_bytes.decode()
        finally:
            if listening.returncode is None:
                listening.kill()
                await listening.wait()
        assert listening.returncode == 0, err
        assert json.loads(out.splitlines()[0])["event_type"] == "custom.cli_probe"
        assert err == ""
    finally:
        await asyncio.to_thread(proc.stop)


def _broadcast(url: str, token: str) -> None:
    request = urllib.request.Request(
        url + "/ws/broadcast",
        data=json.dumps({"event_type": "custom.cli_probe", "data": {}}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202


def test_the_dashboard_link_is_printed_once_the_port_is_bound_and_works(tmp_path: Path) -> None:
    with subprocess.Popen(  # closes the pipe at the end
        [sys.executable, "-m", "server.cli", "serve", "--data-dir", str(tmp_path), "--port", "0"],
        cwd=ROOT,
        env=clean_env(**SECRET),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # bounded: the child is killed in `finally` if this test times out
            found = re.match(r"Dashboard: http://127\.0\.0\.1:(\d+)/#token=\S+$", line.strip())
            assert found, line
            port = int(found.group(1))
            assert port != 0
            # Nothing waits between the line and this request: the socket was listening before it was printed.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
                assert response.status == 200
        finally:
            child.terminate()
            child.wait(15)


async def test_shutdown_logs_one_line_saying_what_it_closed(tmp_path: Path, socket_clients: Clients) -> None:
    proc = ServerProcess(tmp_path, env={"IMMUNE_LOG_LEVEL": "info"})
    await asyncio.to_thread(proc.start)
    try:
        rec = await socket_clients.connect(proc.url, auth={"token": token_for(tmp_path), "rooms": ["agents"]})
        assert proc.proc is not None
        proc.proc.terminate()
        await rec.wait_event("disconnected", timeout=10)
        assert await asyncio.to_thread(proc.proc.wait, 15) == 0
    finally:
        await asyncio.to_thread(proc.stop)
    lines = [json.loads(line) for line in (tmp_path / "server.log").read_text().splitlines() if line.startswith("{")]
    assert lines[-1]["event"] == "stopped", lines[-3:]
    assert lines[-1]["connections_closed"] == 1 and lines[-1]["database"] == "closed"
    assert isinstance(lines[-1]["last_event_id"], int)
