"""The dashboard in a real headless Chromium: it connects with the linked token and shows live events."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from server.api.keys import GATEWAY
from tests.js_runner import JS_DIR, require_node
from tests.support import RunningServer, rest, wait_until

AGENT = {
    "agent_id": "a-dash",
    "agent_type": "neutrophil",
    "name": "n1",
    "status": "active",
    "health": 1.0,
    "energy": 100.0,
    "metadata": {},
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z",
}


async def read_step(proc: asyncio.subprocess.Process, step: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not raw:
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"dashboard driver ended before {step!r}: {err.decode()}")
        line = raw.decode().strip()
        if line.startswith("{"):
            message: dict[str, Any] = json.loads(line)
            if message["step"] == step:
                return message


@asynccontextmanager
async def dashboard_driver(server: RunningServer, **env: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """tests/js/dashboard.mjs driving the served page in headless Debian Chromium; quits cleanly at the end."""
    node = require_node()
    chromium = shutil.which("chromium")
    assert chromium, "Debian chromium is required (the README's test command installs it)"
    assert (JS_DIR / "node_modules" / "playwright-core").is_dir(), "run `npm ci --prefix tests/js` first"
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "dashboard.mjs"),
        cwd=JS_DIR,
        env={**os.environ, "URL": server.url, "TOKEN": server.token(sub="ops"), "CHROMIUM": chromium, **env},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    try:
        yield proc
        proc.stdin.write(b"quit\n")
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_dashboard_connects_from_the_link_and_shows_events(server: RunningServer, tmp_path: Path) -> None:
    async with dashboard_driver(server) as proc:
        assert proc.stdin is not None
        ready = await read_step(proc, "ready")
        assert "connected as ops (admin)" in ready["status"]
        assert "token=" not in ready["url"], "the page must drop the token from the visible URL"

        status, _, _ = await rest(
            server, "POST", "/ws/broadcast", json={"event_type": "agent_created", "room": "agents", "data": AGENT}
        )
        assert status == 202
        proc.stdin.write(b"check agent_created\n")
        seen = await read_step(proc, "seen")
        assert "agent_created" in seen["text"] and "a-dash" in seen["text"]
        assert any("a-dash" in row and "neutrophil" in row for row in seen["agents"])
        assert seen["errors"] == []

        # A server-side disconnect (here: judged a slow consumer) is followed by a resume...
        gateway = server.app[GATEWAY]
        [sid] = [sid for sid, conn in gateway.connections.items() if conn.client_id == "dashboard"]
        gateway.manager.on_overflow(sid)
        proc.stdin.write(b"status resumed\n")
        resumed = await read_step(proc, "status")
        assert "connected as ops (admin), resumed" in resumed["status"]
        # ...but a kick is final.
        [sid] = [sid for sid, conn in gateway.connections.items() if conn.client_id == "dashboard"]
        status, _, _ = await rest(server, "DELETE", f"/ws/connections/{sid}")
        assert status == 204
        proc.stdin.write(b"status closed by an administrator\n")
        kicked = await read_step(proc, "status")
        assert kicked["errors"] == []
        await wait_until(lambda: not any(c.client_id == "dashboard" for c in gateway.connections.values()))


async def test_a_live_event_survives_a_slower_refetch(server: RunningServer) -> None:
    """The first-connect GET /agents is held until after a live agent_created: the row must stay."""
    async with dashboard_driver(server, HOLD_AGENTS="1") as proc:
        assert proc.stdin is not None
        await read_step(proc, "ready")
        # A broadcast, not POST /agents: the held snapshot will not contain this agent.
        status, _, _ = await rest(
            server, "POST", "/ws/broadcast", json={"event_type": "agent_created", "room": "agents", "data": AGENT}
        )
        assert status == 202
        proc.stdin.write(b"check agent_created\n")
        seen = await read_step(proc, "seen")
        assert any("a-dash" in row for row in seen["agents"])
        proc.stdin.write(b"release\n")
        released = await read_step(proc, "released")
        assert any("a-dash" in row for row in released["agents"]), released["agents"]
        assert released["errors"] == []
