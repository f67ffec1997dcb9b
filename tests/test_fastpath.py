"""The fan-out fast path writes exactly what the normal path would, and steps aside when it must."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from server.api.keys import GATEWAY, PUBLISHER
from tests.conftest import ServerFactory
from tests.support import RunningServer, connect_client, connect_error, wait_until


async def raw_messages(server: RunningServer, count: int) -> list[str]:
    """A bare WebSocket client: returns the first `count` Socket.IO event texts after `connected`."""
    url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    texts: list[str] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        opened = await ws.receive_str(timeout=5)
        assert opened.startswith("0")
        await ws.send_str("40" + orjson.dumps({"token": server.token(), "rooms": ["agents"]}).decode())
        published = False
        while len(texts) < count:
            text = await ws.receive_str(timeout=5)
            if text == "2":
                await ws.send_str("3")
            elif text.startswith('42["connected"') and not published:
                for n in range(count):
                    await server.app[PUBLISHER].publish("custom.fp", {"n": n, "ü": "✓"}, ["agents"])
                published = True
            elif text.startswith('42["custom.fp"'):
                texts.append(text)
    return texts


def expected_text(envelope: dict[str, object]) -> str:
    return "42" + orjson.dumps(["custom.fp", envelope]).decode()


@pytest.mark.parametrize("fast_path", [True, False])
async def test_recipients_get_the_exact_socket_io_text_either_way(
    server_factory: ServerFactory, fast_path: bool
) -> None:
    server = await server_factory(fast_path=fast_path)
    texts = await raw_messages(server, 3)
    log = await server.app[PUBLISHER].log.read(0, limit=10)
    assert texts == [expected_text(event.envelope()) for event in log]
    direct = server.app[GATEWAY].manager.direct_deliveries
    assert (direct >= 1) is fast_path


async def test_polling_clients_and_filters_stay_on_the_normal_path(server: RunningServer) -> None:
    manager = server.app[GATEWAY].manager
    polling = await connect_client(
        server.url, auth={"token": server.token(), "rooms": ["agents"]}, transports=["polling"]
    )
    filtered = await connect_client(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "event_types": ["custom.wanted"]}
    )
    before = manager.direct_deliveries
    await server.app[PUBLISHER].publish("custom.unwanted", {}, ["agents"])
    await server.app[PUBLISHER].publish("custom.wanted", {}, ["agents"])
    await polling.wait_event("custom.wanted")
    await filtered.wait_event("custom.wanted")
    assert polling.names()[1:] == ["custom.unwanted", "custom.wanted"]
    assert filtered.names()[1:] == ["custom.wanted"]
    # Only the WebSocket client's one delivery may take the direct write; the polling one queues.
    assert manager.direct_deliveries - before <= 1
    await filtered.client.disconnect()  # the polling client is closed with the server


async def test_per_connection_bookkeeping_ends_with_the_connection(server: RunningServer) -> None:
    """Delivery counters and the WebSocket registry hold exactly the live connections: no leak."""
    manager = server.app[GATEWAY].manager
    auth = {"token": server.token(), "rooms": ["agents"]}
    clients = [await connect_client(server.url, auth=auth) for _ in range(3)]
    refused = await connect_error(server.url, auth={"token": "not-a-jwt"})
    assert refused["code"] == "unauthorized"
    await server.app[PUBLISHER].publish("custom.fp", {"n": 0}, ["agents"])
    for client in clients:
        await client.wait_event("custom.fp")
    assert len(manager.sent_by_sid) == 3 and len(manager.websockets) == 3
    watchdog = server.app[GATEWAY].watchdog

    def drained_noted() -> bool:
        watchdog.sweep()  # notes each transport once the peer has acknowledged everything
        return len(watchdog._drained_at) == 3

    await wait_until(drained_noted)
    assert len(manager.rooms_of["/"]) == 3
    for client in clients[:2]:
        await client.client.disconnect()
    await wait_until(lambda: len(manager.sent_by_sid) == 1 and len(manager.websockets) == 1)
    [remaining] = manager.sent_by_sid
    assert manager.sent_by_sid[remaining] == 2  # `connected` and the event
    await clients[2].client.disconnect()
    await wait_until(lambda: not manager.sent_by_sid and not manager.websockets)
    assert not watchdog._drained_at and not watchdog._heads and not watchdog._buffers
    assert not manager.rooms_of
