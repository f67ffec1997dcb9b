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


class NodeResumer:
    """tests/js/resume.mjs as a child process, read line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.lines: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            require_node(),
            str(JS_DIR / "resume.mjs"),
            cwd=JS_DIR,
            env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )

    def of(self, step: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["step"] == step]

    async def until(self, step: str, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        assert self.proc is not None and self.proc.stdout is not None and self.proc.stderr is not None
        while len(self.of(step)) < count:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            assert raw, (
                f"resume.mjs ended before {count} x {step}: {self.lines}\n{(await self.proc.stderr.read()).decode()}"
            )
            self.lines.append(json.loads(raw))
        return self.of(step)

    async def wait(self) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), 20)

    async def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def event_ids(self) -> list[int]:
        return [line["event_id"] for line in self.of("event")]
