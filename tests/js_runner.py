"""Run a Node.js script from tests/js against a running server (the real socket.io-client)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent / "js"


def require_node() -> str:
    """Path of `node`; the JS tests fail (never skip) when Node or the npm packages are missing."""
    node = shutil.which("node")
    assert node, "Node.js is required for the socket.io-client tests (the README's test command installs it)"
    assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), "run `npm ci --prefix tests/js` first"
    return node


async def run_js(script: str, env: dict[str, str], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run tests/js/<script>; it prints JSON lines and exits 0 on success. Returns the lines."""
    node = require_node()
    proc = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / script),
        env={**os.environ, **env},
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{script} timed out") from None
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert proc.returncode == 0, f"{script} failed ({proc.returncode}):\n{out.decode()}\n{err.decode()}"
    return lines
