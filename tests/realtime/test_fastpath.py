"""The fan-out fast path writes exactly what the normal path would, and steps aside when it must."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

from server.api.keys import GATEWAY, PUBLISHER
from tests.conftest import ServerFactory
from tests.support import Clients, Recorder, RunningServer, connect_error, wait_until


async def raw_messages(server: RunningServer, count: int, batch: bool = False) -> list[str]:
    """A bare WebSocket client: returns the first `count` Socket.IO event texts after `connected`.

    `batch` publishes them as one unit (one commit, handed to the fan-out together).
    """
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
                if batch:
                    specs = [("custom.fp", {"n": n, "ü": "✓"}, ["agents"], "api") for n in range(count)]
                    await server.app[PUBLISHER].publish_many(specs)
                for n in range(0 if batch else count):
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


@pytest.mark.parametrize("fast_path", [True, False])
async def test_a_batch_reaches_each_recipient_as_the_same_bytes_in_id_order_in_one_write(
    server_factory: ServerFactory, fast_path: bool
) -> None:
    server = await server_factory(fast_path=fast_path)
    manager = server.app[GATEWAY].manager
    texts = await raw_messages(server, 50, batch=True)
    log = await server.app[PUBLISHER].log.read(0, limit=100)
    assert [event.event_id for event in log] == list(range(1, 51))
    assert texts == [expected_text(event.envelope()) for event in log]
    if fast_path:  # the 50 events took one write (`connected` may have taken one of its own)
        assert manager.direct_deliveries >= 50
        assert manager.direct_writes == manager.direct_deliveries - 49
    else:
        assert manager.direct_deliveries == manager.direct_writes == 0


async def test_a_batch_keeps_order_and_filters_for_every_kind_of_recipient(
    server: RunningServer, socket_clients: Clients
) -> None:
    """WebSocket, polling and filtered recipients of one batch each see exactly their events, in order."""
    auth = {"token": server.token(), "rooms": ["agents", "tasks"]}
    websocket = await socket_clients.connect(server.url, auth=auth)
    polling = await socket_clients.connect(server.url, auth=auth, transports=["polling"])
    filtered = await socket_clients.connect(server.url, auth={**auth, "event_types": ["custom.b"]})
    only_tasks = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["tasks"]})
    specs = [(f"custom.{'ab'[n % 2]}", {"n": n}, [["agents", "tasks"][n % 3 == 0]], "api") for n in range(30)]
    events = await server.app[PUBLISHER].publish_many(specs)
    assert [event.event_id for event in events] == list(range(1, 31))

    def received(rec: Recorder) -> list[int]:
        return [payload["data"]["n"] for name, payload in rec.events if name.startswith("custom.")]

    expected = {
        id(websocket): list(range(30)),
        id(polling): list(range(30)),
        id(filtered): [n for n in range(30) if n % 2],
        id(only_tasks): [n for n in range(30) if n % 3 == 0],
    }
    for rec in (websocket, polling, filtered, only_tasks):
        await rec.wait_for(lambda rec=rec: len(received(rec)) >= len(expected[id(rec)]), timeout=10)
        assert received(rec) == expected[id(rec)]


async def test_polling_clients_and_filters_stay_on_the_normal_path(
    server: RunningServer, socket_clients: Clients
) -> None:
    manager = server.app[GATEWAY].manager
    polling = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"]}, transports=["polling"]
    )
    filtered = await socket_clients.connect(
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


async def test_per_connection_bookkeeping_ends_with_the_connection(
    server: RunningServer, socket_clients: Clients
) -> None:
    """Delivery counters and the WebSocket registry hold exactly the live connections: no leak."""
    manager = server.app[GATEWAY].manager
    auth = {"token": server.token(), "rooms": ["agents"]}
    clients = [await socket_clients.connect(server.url, auth=auth) for _ in range(3)]
    refused = await connect_error(server.url, auth={"token": "not-a-jwt"})
    assert refused["code"] == "unauthorized"
    await server.app[PUBLISHER].publish("custom.fp", {"n": 0}, ["agents"])
    for client in clients:
        await client.wait_event("custom.fp")
    assert len(manager.sent_by_sid) == 3 and len(manager.websockets) == 3
    watchdog = server.app[GATEWAY].watchdog

    def drained_noted() -> bool:
        watchdog.sweep()  # notes each transport once the peer has acknowledged everything
        return len(watchdog.drained()) == 3

    await wait_until(drained_noted)
    assert len(manager.rooms_of["/"]) == 3
    for client in clients[:2]:
        await client.client.disconnect()
    await wait_until(lambda: len(manager.sent_by_sid) == 1 and len(manager.websockets) == 1)
    [remaining] = manager.sent_by_sid
    assert manager.sent_by_sid[remaining] == 2  # `connected` and the event
    await clients[2].client.disconnect()
    await wait_until(lambda: not manager.sent_by_sid and not manager.websockets)
    assert not watchdog.tracked()
    assert not manager.rooms_of
