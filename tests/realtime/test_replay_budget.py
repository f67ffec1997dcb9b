"""Replay amplification (issue 10 B): the bytes a resume may queue are bounded, shared and given back.

A real server process with a populated log; many raw WebSocket clients resume from an old id and
then never read. The server's memory is read from /proc/PID/status.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from sqlalchemy import insert, update

from server.api.keys import EVENT_LOG, GATEWAY, PUBLISHER
from server.config import Settings
from server.store.db import Database
from server.store.tables import event_rooms, events, log_meta
from tests.conftest import ServerFactory
from tests.eio import raw_socketio_websocket
from tests.support import Clients, ServerProcess, wait_until

SECRET = "test-secret-" + "x" * 32
PAD = "x" * 2_500  # ~2.6 KB per event, as in the report (26 MB for 10 000 events)
MIB = 1 << 20


def token(role: str = "viewer", sub: str = "replayer") -> str:
    return jwt.encode({"sub": sub, "roles": [role], "exp": int(time.time()) + 600}, SECRET)


async def populate(data_dir: Path, count: int, rooms: tuple[str, ...] = ("agents",)) -> None:
    """Write `count` ~2.6 KB events per room (`agents`, then `tasks`…) to the log before the server starts.

    Bulk inserts through the log's own tables: appending one by one would take ~20 s.
    """
    db = Database(Settings(data_dir=data_dir, jwt_secret=SECRET).resolved_database_url())
    await db.migrate()
    now = datetime.now(UTC)
    ids = [(room, n * count + i) for n, room in enumerate(rooms) for i in range(1, count + 1)]
    async with db.transaction() as conn:
        rows = [
            {
                "id": event_id,
                "event_type": "custom.load",
                "room": room,
                "rooms": [room],
                "data": {"i": event_id, "pad": PAD},
                "source": "test",
                "created_at": now,
            }
            for room, event_id in ids
        ]
        await conn.execute(insert(events), rows)
        await conn.execute(insert(event_rooms), [{"room": room, "event_id": event_id} for room, event_id in ids])
        await conn.execute(update(log_meta).where(log_meta.c.id == 1).values(last_event_id=len(ids)))
    await db.close()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _connected_data(received: bytes) -> dict[str, Any] | None:
    """The `connected` data if the frames read so far hold it (it is a small first frame)."""
    marker = b'42["connected",'
    start = received.find(marker)
    if start < 0:
        return None
    end = received.find(b"}]", start)
    if end < 0:
        return None
    try:
        return dict(json.loads(received[start + 2 : end + 2])[1]["data"])
    except ValueError:
        return None


async def stalled_resume(
    port: int, auth: dict[str, Any], opened: list[socket.socket]
) -> tuple[socket.socket, dict[str, Any]]:
    """Resume over a raw WebSocket, read only up to `connected`, then never read again."""
    loop = asyncio.get_running_loop()
    sock, received = await raw_socketio_websocket(port, auth, opened)
    while (data := _connected_data(received)) is None:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), 20)
        assert chunk, "server closed before connected"
        received += chunk
    return sock, data


def start(data_dir: Path, **settings: int) -> ServerProcess:
    env = {f"IMMUNE_{name.upper()}": str(value) for name, value in settings.items()}
    # A stalled reader is not cut as a slow consumer within the test: the replay stays queued.
    process = ServerProcess(data_dir, env={"IMMUNE_LOG_LEVEL": "warning", "IMMUNE_SEND_TIMEOUT_S": "120", **env})
    process.start()
    return process


@pytest.fixture
def raw_sockets() -> Iterator[list[socket.socket]]:
    """The raw sockets a test opens, all closed after it (closing one the test closed is harmless)."""
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


async def get(url: str, path: str) -> Any:
    """GET with an admin token; bounded so a stuck server fails the test instead of hanging it."""
    headers = {"Authorization": f"Bearer {token('admin', 'ops')}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
        session.get(url + path, headers=headers) as response,
    ):
        assert response.status == 200, (path, response.status)
        return await response.json() if response.content_type == "application/json" else await response.text()


async def replay_gauges(url: str) -> tuple[float, float]:
    """(bytes pinned by replays still to send, bytes of idle frames kept) from /metrics."""
    values = {}
    for line in (await get(url, "/metrics")).splitlines():
        name, _, value = line.partition(" ")
        if name in {"immune_replay_bytes", "immune_replay_cache_bytes"}:
            values[name] = float(value)
    return values["immune_replay_bytes"], values["immune_replay_cache_bytes"]


async def stall_many(
    port: int, count: int, auth: dict[str, Any], opened: list[socket.socket]
) -> tuple[list[socket.socket], list[dict[str, Any]]]:
    socks: list[socket.socket] = []
    found: list[dict[str, Any]] = []
    for start in range(0, count, 20):  # in waves, within the per-IP connect burst
        batch = await asyncio.gather(*(stalled_resume(port, auth, opened) for _ in range(min(20, count - start))))
        socks += [sock for sock, _ in batch]
        found += [data for _, data in batch]
    return socks, found


async def test_many_stalled_resumes_share_frames_and_stay_within_the_budget(
    tmp_path: Path, processes: list[ServerProcess], raw_sockets: list[socket.socket]
) -> None:
    """The report: resumes from 0 that never read. 20 of them used to take ~1.1 GB (55 MB each)."""
    await populate(tmp_path, 3_000)  # 7.8 MB of `agents` events: within one resume's byte budget
    budget = 16 * MIB
    server = start(tmp_path, replay_budget_bytes=budget, replay_cache_bytes=4 * MIB)
    processes.append(server)
    assert server.proc is not None
    await get(server.url, "/health")
    before = rss_bytes(server.proc.pid)
    clients = 40
    socks, connected = await stall_many(
        server.port, clients, {"token": token(), "rooms": ["agents"], "last_event_id": 0}, raw_sockets
    )
    # Every one of them is owed the whole backlog, queued and not read.
    assert {(data["recovered"], data["replayed"]) for data in connected} == {(True, 3_000)}
    grown = rss_bytes(server.proc.pid) - before
    # Bound: the process budget, a little per connection (queue slots, socket buffers), slack.
    assert grown < budget + clients * MIB + 64 * MIB, f"RSS grew by {grown // MIB} MiB"
    pinned, _ = await replay_gauges(server.url)
    assert 7 * MIB < pinned <= budget  # one shared copy of the frames, not forty
    await get(server.url, "/health")  # still answers
    for sock in socks:
        sock.close()
    for _ in range(200):  # the server notices the closed sockets and releases their replays
        stats = await get(server.url, "/ws/stats")
        pinned, cached = await replay_gauges(server.url)
        if stats["active_connections"] == 0 and pinned == 0:
            break
        await asyncio.sleep(0.1)
    assert stats["active_connections"] == 0 and pinned == 0
    assert cached <= 4 * MIB  # what stays is the bounded cache of idle frames


async def test_past_a_budget_the_resume_is_not_recovered(
    tmp_path: Path, processes: list[ServerProcess], raw_sockets: list[socket.socket]
) -> None:
    # 11.7 MB per room: well over what the kernel's socket buffers take from a stalled reader
    # (4 MiB by default on Linux), so the server's writer still holds part of each replay.
    await populate(tmp_path, 4_500, rooms=("agents", "tasks"))
    server = start(tmp_path, replay_budget_bytes=20 * MIB, replay_max_bytes=16 * MIB)
    processes.append(server)
    # A backlog over one resume's byte budget (it is under the event cap): refetch instead.
    both, too_big = await stalled_resume(
        server.port, {"token": token(), "rooms": ["agents", "tasks"], "last_event_id": 0}, raw_sockets
    )
    assert too_big["recovered"] is False and too_big["replayed"] == 0
    both.close()
    # One stalled replay of `agents` holds 11.7 MB of the 20 MiB process budget…
    agents, first = await stalled_resume(
        server.port, {"token": token(), "rooms": ["agents"], "last_event_id": 0}, raw_sockets
    )
    assert first["recovered"] is True and first["replayed"] == 4_500
    # …so a different 11.7 MB backlog cannot be queued as well, while the same one is shared.
    tasks, refused = await stalled_resume(
        server.port, {"token": token(), "rooms": ["tasks"], "last_event_id": 0}, raw_sockets
    )
    assert refused["recovered"] is False and refused["replayed"] == 0
    shared, again = await stalled_resume(
        server.port, {"token": token(), "rooms": ["agents"], "last_event_id": 0}, raw_sockets
    )
    assert again["recovered"] is True and again["replayed"] == 4_500
    metrics = await get(server.url, "/metrics")
    assert 'immune_replays_refused_total{reason="the server\'s replay budget is in use"} 1.0' in metrics
    # Once the stalled readers are gone their frames are given back, and the other room resumes.
    for sock in (agents, shared, tasks):
        sock.close()
    for _ in range(200):
        if (await replay_gauges(server.url))[0] == 0:
            break
        await asyncio.sleep(0.1)
    assert (await replay_gauges(server.url))[0] == 0
    tasks, retried = await stalled_resume(
        server.port, {"token": token(), "rooms": ["tasks"], "last_event_id": 0}, raw_sockets
    )
    assert retried["recovered"] is True and retried["replayed"] == 4_500
    tasks.close()


async def test_a_long_polling_replay_is_answered_in_bounded_responses(server_factory: ServerFactory) -> None:
    """One long-polling response carries at most ~1 MiB of the queue; the replay continues next poll.

    A poll that is never read then holds one such response, not a copy of the whole replay.
    """
    server = await server_factory()
    for i in range(1_000):  # 2.6 MB of frames
        await server.app[PUBLISHER].publish("custom.load", {"i": i, "pad": PAD}, ["agents"])
    auth = {"token": server.token("viewer"), "rooms": ["agents"], "last_event_id": 0}
    base = f"{server.url}/socket.io/?EIO=4&transport=polling"
    received: list[int] = []
    sizes: list[int] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(base) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        async with session.post(f"{base}&sid={sid}", data="40" + json.dumps(auth)) as response:
            assert response.status == 200
        while len(received) < 1_000:
            async with session.get(f"{base}&sid={sid}") as response:
                body = await response.read()
            sizes.append(len(body))
            for packet in body.decode().split("\x1e"):
                if packet.startswith('42["custom.load"'):
                    received.append(json.loads(packet[2:])[1]["data"]["i"])
        async with session.post(f"{base}&sid={sid}", data="1") as response:  # Engine.IO close
            assert response.status == 200
    assert received == list(range(1_000))
    assert len(sizes) >= 3 and max(sizes) < 1.1 * MIB  # ~1 MiB per response, never all 2.6 MB
    await wait_until(lambda: server.app[GATEWAY].replay_frames.pinned_bytes == 0)


async def test_a_big_replay_does_not_count_against_the_live_queue_bound(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    """A reader taking a replay of many times `max_queue` messages while live events arrive is not slow."""
    server = await server_factory(max_queue=50)
    publisher = server.app[PUBLISHER]
    for i in range(3_000):  # 60 times the live bound, 7.8 MB: several writer rounds
        await publisher.publish("custom.load", {"i": i, "pad": PAD}, ["agents"])
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token("viewer"), "rooms": ["agents"], "last_event_id": 0}
    )
    for i in range(3_000, 3_020):  # live events queue behind the replay
        await publisher.publish("custom.load", {"i": i, "pad": "live"}, ["agents"])
    await rec.wait_for(lambda: len(rec.of_type("custom.load")) == 3_020, timeout=30)
    assert [event["data"]["i"] for event in rec.of_type("custom.load")] == list(range(3_020))
    assert not rec.of_type("disconnected")


async def test_a_failed_backlog_read_leaves_no_connection_behind(
    server_factory: ServerFactory, raw_sockets: list[socket.socket]
) -> None:
    """The connection is registered while its backlog is read; a read that fails must unregister it."""
    server = await server_factory()
    for i in range(10):
        await server.app[PUBLISHER].publish("custom.load", {"i": i}, ["agents"])
    event_log = server.app[EVENT_LOG]
    read_ids = event_log.read_ids
    failed = asyncio.Event()

    async def broken_read_ids(*args: Any, **kwargs: Any) -> Any:
        failed.set()
        raise OSError("disk gone")

    event_log.read_ids = broken_read_ids  # type: ignore[method-assign]
    port = int(server.url.rsplit(":", 1)[1])
    try:
        await raw_socketio_websocket(
            port, {"token": server.token("viewer"), "rooms": ["agents"], "last_event_id": 0}, raw_sockets
        )
        await asyncio.wait_for(failed.wait(), 10)
    finally:
        event_log.read_ids = read_ids  # type: ignore[method-assign]
    gateway = server.app[GATEWAY]
    await wait_until(lambda: not gateway.registry.by_sid)
    assert not gateway.registry.per_user() and gateway.replay_frames.pinned_bytes == 0
