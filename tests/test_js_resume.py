"""Resume with Node's socket.io-client: `auth` as a function is all a client needs (SPEC §4)."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest

from server.api.keys import PUBLISHER
from tests.js_runner import JS_DIR, require_node
from tests.proxy import CuttableProxy
from tests.support import RunningServer

pytestmark = pytest.mark.node


async def test_socket_io_client_resumes_after_a_network_loss(server: RunningServer) -> None:
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    await proxy.start()
    proc = await asyncio.create_subprocess_exec(
        require_node(),
        str(JS_DIR / "resume.mjs"),
        cwd=JS_DIR,
        env={**os.environ, "URL": proxy.url, "TOKEN": server.token(), "TOTAL": "9"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[dict[str, Any]] = []

    async def until(step: str, count: int) -> None:
        while sum(1 for line in lines if line["step"] == step) < count:
            raw = await asyncio.wait_for(proc.stdout.readline(), 20)  # type: ignore[union-attr]
            assert raw, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
            lines.append(json.loads(raw))

    async def publish(n: int) -> list[int]:
        return [(await server.app[PUBLISHER].publish("custom.r", {"i": i}, ["agents"])).event_id for i in range(n)]

    try:
        await until("connected", 1)
        ids = await publish(3)
        await until("event", 3)
        proxy.cut(stay_down=True)
        ids += await publish(4)  # missed while the network is down
        proxy.restore()
        await until("connected", 2)
        ids += await publish(2)
        await until("event", 9)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proxy.close()
    connects = [line for line in lines if line["step"] == "connected"]
    assert connects[0]["recovered"] is None
    assert connects[1]["recovered"] is True and connects[1]["replayed"] == 4
    assert [line["event_id"] for line in lines if line["step"] == "event"] == ids
