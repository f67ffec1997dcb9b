"""Resume with Node's socket.io-client: `auth` as a function is all a client needs (SPEC §4)."""

from __future__ import annotations

import time

import pytest

from server.api.keys import GATEWAY, PUBLISHER
from tests.js_runner import NodeResumer
from tests.proxy import CuttableProxy
from tests.support import RunningServer, rest

pytestmark = pytest.mark.node


async def test_socket_io_client_resumes_after_a_network_loss(server: RunningServer) -> None:
    proxy = CuttableProxy(int(server.url.rsplit(":", 1)[1]))
    await proxy.start()
    node = NodeResumer({"URL": proxy.url, "TOKEN": server.token(), "TOTAL": "9"})
    await node.start()

    async def publish(n: int) -> list[int]:
        return [(await server.app[PUBLISHER].publish("custom.r", {"i": i}, ["agents"])).event_id for i in range(n)]

    try:
        await node.until("connected", 1)
        ids = await publish(3)
        await node.until("event", 3)
        proxy.cut(stay_down=True)
        ids += await publish(4)  # missed while the network is down
        proxy.restore()
        await node.until("connected", 2)
        ids += await publish(2)
        await node.until("event", 9)
        assert await node.wait() == 0
    finally:
        await node.close()
        await proxy.close()
    connects = node.of("connected")
    assert connects[0]["recovered"] is None
    assert connects[1]["recovered"] is True and connects[1]["replayed"] == 4
    assert node.event_ids() == ids


async def test_socket_io_client_reconnects_after_server_disconnects_but_not_after_a_kick(
    server: RunningServer,
) -> None:
    """socket.io-client never reconnects after "io server disconnect": resume.mjs (like the dashboard)
    reconnects itself with resume for slow_consumer, idle_timeout and token_expired, not for kicked."""
    gateway = server.app[GATEWAY]
    node = NodeResumer({"URL": server.url, "TOKEN": server.token(), "TOTAL": "1000"})
    await node.start()
    ids: list[int] = []

    async def publish(n: int) -> None:
        for i in range(n):
            ids.append((await server.app[PUBLISHER].publish("custom.r", {"i": i}, ["agents"])).event_id)

    try:
        await node.until("connected", 1)
        await publish(2)
        await node.until("event", len(ids))
        cuts = [
            lambda sid: gateway.manager.on_overflow(sid),  # judged a slow consumer
            # The reaper's sweep at a later clock: silent too long, then past the token's expiry.
            lambda sid: gateway.reaper.sweep(mono=time.monotonic() + gateway.reaper.idle_timeout_s + 1),
            lambda sid: gateway.reaper.sweep(wall=time.time() + 2 * 3600),
        ]
        for n, cut in enumerate(cuts, start=1):
            cut(node.of("connected")[-1]["connection_id"])
            await publish(2)  # published around the cut: replayed or live, never lost
            await node.until("connected", n + 1)
            await publish(1)
            await node.until("event", len(ids))
        sid = node.of("connected")[-1]["connection_id"]
        status, _, _ = await rest(server, "DELETE", f"/ws/connections/{sid}")
        assert status == 204
        await node.until("stopped", 1)
        assert await node.wait() == 0
    finally:
        await node.close()
    reasons = [line["reason"] for line in node.of("disconnected")]
    assert reasons == ["slow_consumer", "idle_timeout", "token_expired", "kicked"]
    assert [line["reason"] for line in node.of("disconnect")] == ["io server disconnect"] * 4
    assert [line["recovered"] for line in node.of("connected")] == [None, True, True, True]
    assert len(node.of("connected")) == 4  # no reconnect after the kick
    assert node.event_ids() == ids
