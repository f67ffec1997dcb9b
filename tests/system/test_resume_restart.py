"""Resume across a real server restart (SPEC §4): SIGKILL, same SQLite file, new events, reconnect.

Plain clients only: python-socketio's AsyncClient with `auth` as a callable, and Node's
socket.io-client with `auth` as a function (tests/js/resume.mjs). Each ends with exactly the log's
events for its rooms and filter, in order, without duplicates. A wiped database is a new log with a
new epoch: an old position is answered `recovered: false`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from tests.js_runner import NodeResumer
from tests.support import Clients, Recorder, ServerProcess, wait_until
from tests.system.test_chaos import log_events
from tests.system.test_process import token_for

ROOMS = ["agents"]
TYPES = ["custom.a", "custom.all"]


async def post_batch(url: str, token: str, n: int) -> None:
    """Per round: one event the client follows, one filtered out, one in another room, one for everybody."""
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        for i in range(n):
            for body in (
                {"event_type": "custom.a", "room": "agents", "data": {"i": i}},
                {"event_type": "custom.b", "room": "agents", "data": {"i": i}},
                {"event_type": "custom.a", "room": "tasks", "data": {"i": i}},
                {"event_type": "custom.all", "room": None, "data": {"i": i}},
            ):
                async with session.post(f"{url}/ws/broadcast", json=body) as response:
                    assert response.status == 202, await response.text()


async def assert_exactly(clients: list[ResumingClient], url: str, token: str, expected: list[int]) -> None:
    """Each client received exactly `expected`, then a marker published now, and nothing else.

    Events reach a connection in id order, so once the marker (selected by every client) has arrived,
    any duplicate or stray event sent before it has arrived too: no need to wait and see.
    """
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
        session.post(f"{url}/ws/broadcast", json={"event_type": "custom.all", "data": {"marker": True}}) as response,
    ):
        assert response.status == 202, await response.text()
        marker = (await response.json())["event_id"]
    for client in clients:
        await client.rec.wait_for(lambda client=client: marker in client.ids, timeout=20)
        assert client.ids == [*expected, marker]


class ResumingClient:
    """A raw python-socketio client that stores the last id and epoch and sends them on every (re)connect."""

    def __init__(
        self,
        token: str,
        last_event_id: int | None = None,
        epoch: str | None = None,
        reconnection: bool = True,
        *,
        opened: Clients,
    ) -> None:
        self.token = token
        self.last_event_id = last_event_id
        self.epoch = epoch
        # Noted in the test's `Clients` before it connects: disconnected at the end even if the test fails.
        self.client = opened.adopt(
            socketio.AsyncClient(reconnection=reconnection, reconnection_delay=0.1, reconnection_delay_max=0.5)
        )
        self.rec = Recorder(self.client)
        self.ids: list[int] = []  # every event id received, duplicates included

        @self.client.on("*")
        async def on_any(event: str, payload: Any = None) -> None:
            if event == "connected":
                data = payload["data"]
                self.epoch = data["epoch"]
                if data["recovered"] is not True:
                    self.last_event_id = data["last_event_id"]
            elif isinstance(payload, dict) and payload.get("event_id") is not None:
                self.ids.append(payload["event_id"])
                self.last_event_id = payload["event_id"]
            self.rec.record(event, payload)

    def auth(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "rooms": ROOMS,
            "event_types": TYPES,
            "last_event_id": self.last_event_id,
            "epoch": self.epoch,
        }

    async def connect(self, url: str) -> None:
        before = len(self.connects())
        await self.client.connect(url, auth=self.auth, transports=["websocket"], wait_timeout=5)
        await self.rec.wait_event("connected", count=before + 1)

    def connects(self) -> list[dict[str, Any]]:
        return [payload["data"] for payload in self.rec.of_type("connected")]


async def test_python_socketio_client_resumes_across_a_sigkill_restart(tmp_path: Path, socket_clients: Clients) -> None:
    server = ServerProcess(tmp_path)
    await asyncio.to_thread(server.start)
    token = token_for(tmp_path)
    client = ResumingClient(token, opened=socket_clients)
    try:
        await client.connect(server.url)
        await post_batch(server.url, token, 5)
        await client.rec.wait_for(lambda: len(client.ids) >= 10, timeout=20)

        await asyncio.to_thread(server.kill)
        await wait_until(lambda: not client.client.connected, timeout=20)
        await asyncio.to_thread(server.start)
        await post_batch(server.url, token, 5)  # most likely before the client is back: replayed
        await client.rec.wait_for(lambda: len(client.connects()) >= 2, timeout=30)
        await post_batch(server.url, token, 5)  # live
        expected = await log_events(server.url, token, ",".join(ROOMS), ",".join(TYPES))
        assert len(expected) == 30
        await client.rec.wait_for(lambda: len(client.ids) >= len(expected), timeout=30)
        assert client.ids == expected  # exactly the log's selection, in order, no duplicate
        first, second = client.connects()[:2]
        assert first["recovered"] is None
        assert second["recovered"] is True and second["epoch"] == first["epoch"]
    finally:
        await client.client.disconnect()
        await asyncio.to_thread(server.stop)


async def test_socket_io_client_resumes_across_a_sigkill_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    await asyncio.to_thread(server.start)
    token = token_for(tmp_path)
    node = NodeResumer(
        {
            "URL": server.url,
            "TOKEN": token,
            "TOTAL": "30",
            "ROOMS": ",".join(ROOMS),
            "EVENT_TYPES": ",".join(TYPES),
            "DEADLINE_MS": "90000",
        }
    )
    await node.start()
    try:
        await node.until("connected", 1)
        await post_batch(server.url, token, 5)
        await node.until("event", 10)
        await asyncio.to_thread(server.kill)
        await node.until("disconnect", 1)
        await asyncio.to_thread(server.start)
        await post_batch(server.url, token, 5)
        await node.until("connected", 2, timeout=30)
        await post_batch(server.url, token, 5)
        await node.until("event", 30, timeout=30)
        assert await node.wait() == 0
        expected = await log_events(server.url, token, ",".join(ROOMS), ",".join(TYPES))
    finally:
        await node.close()
        await asyncio.to_thread(server.stop)
    assert node.of("duplicate") == []
    assert node.event_ids() == expected
    first, second = node.of("connected")[:2]
    assert first["recovered"] is None
    assert second["recovered"] is True and second["epoch"] == first["epoch"]
    assert node.of("disconnect")[0]["reason"] == "transport close"


async def test_a_wiped_database_is_a_new_epoch_and_old_positions_are_not_recovered(
    tmp_path: Path, socket_clients: Clients
) -> None:
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    server = ServerProcess(old_dir)
    await asyncio.to_thread(server.start)
    token = token_for(old_dir)
    # What a client persisted (like the dashboard's sessionStorage) is reused by a new client object
    # later: no automatic reconnect may reach the new server before its log has grown.
    first = ResumingClient(token, reconnection=False, opened=socket_clients)
    try:
        await first.connect(server.url)
        await post_batch(server.url, token, 5)
        await first.rec.wait_for(lambda: len(first.ids) >= 10, timeout=20)
        old_epoch, old_last = first.epoch, first.last_event_id
        assert old_last == first.ids[-1]
        await asyncio.to_thread(server.kill)
        await wait_until(lambda: not first.client.connected, timeout=20)
    finally:
        await first.client.disconnect()
        await asyncio.to_thread(server.stop)  # already SIGKILLed unless the test failed before
    client = ResumingClient(token, last_event_id=old_last, epoch=old_epoch, opened=socket_clients)
    try:
        server = ServerProcess(new_dir, port=server.port)  # same address, a brand-new database file
        await asyncio.to_thread(server.start)
        await post_batch(server.url, token, 8)
        await client.connect(server.url)  # auth: the old last_event_id and the old epoch
        after = client.connects()[0]
        assert old_last < after["last_event_id"]  # the old position lies inside the new log...
        assert after["epoch"] != old_epoch
        assert after["recovered"] is False and after["replayed"] == 0  # ...but the epoch says it is another log

        # Without the epoch the server cannot tell (which is why clients should send it) ...
        blind = ResumingClient(token, last_event_id=old_last, opened=socket_clients)
        await blind.connect(server.url)
        assert blind.connects()[0]["recovered"] is True
        await blind.client.disconnect()
        # ... unless the old id is beyond the new log's head.
        stale = ResumingClient(token, last_event_id=10_000, opened=socket_clients)
        await stale.connect(server.url)
        assert stale.connects()[0]["recovered"] is False
        await stale.client.disconnect()

        # Nothing of the new log was replayed as if it continued the old one: the client gets
        # exactly the new log's events from the head at reconnect on (live), in order.
        await post_batch(server.url, token, 1)
        logged = await log_events(server.url, token, ",".join(ROOMS), ",".join(TYPES))
        live = [i for i in logged if i > after["last_event_id"]]
        assert live
        await client.rec.wait_for(lambda: len(client.ids) >= len(live), timeout=20)
        assert client.ids == live
    finally:
        await client.client.disconnect()
        await asyncio.to_thread(server.stop)
