"""Writes that cannot be taken answer 503 at once, with a code and Retry-After (SPEC §6), and recover."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp

from server.api.keys import PUBLISHER
from server.events.unit_of_work import UnitOfWork
from tests.conftest import ServerFactory
from tests.support import RunningServer, rest, wait_until


async def post_broadcast(session: aiohttp.ClientSession, server: RunningServer, n: int) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with session.post(f"{server.url}/ws/broadcast", json={"event_type": "custom.x", "data": {"n": n}}) as resp:
        body = await resp.json(content_type=None)
        if resp.status == 503:
            assert resp.headers["Retry-After"] == "1"
            assert resp.content_type == "application/problem+json"
        return resp.status, body


async def test_a_full_write_queue_answers_503_overloaded_and_internal_publishers_wait(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(write_queue_max=2, rest_burst=1000)
    publisher = server.app[PUBLISHER]
    started, release = asyncio.Event(), asyncio.Event()

    async def holds_the_writer(uow: UnitOfWork) -> None:
        started.set()
        await release.wait()

    holding = asyncio.create_task(publisher.transact(holds_the_writer, wait=True))
    await asyncio.wait_for(started.wait(), 10)
    async with aiohttp.ClientSession(headers=server.headers()) as session:
        requests = [asyncio.create_task(post_broadcast(session, server, n)) for n in range(10)]
        # Exactly two fit the queue; the other eight are refused without waiting for the writer.
        await wait_until(lambda: sum(task.done() for task in requests) == 8, timeout=10)
        refused = [task.result() for task in requests if task.done()]
        assert {status for status, _ in refused} == {503}
        assert {body["code"] for _, body in refused} == {"overloaded"}
        # The server's own publishers wait for room instead of being refused.
        internal = asyncio.create_task(publisher.publish("custom.internal", {}, ["system"]))
        await asyncio.sleep(0.1)
        assert not internal.done()
        release.set()
        await holding
        accepted = [result for result in await asyncio.gather(*requests) if result[0] == 202]
        assert sorted(body["event_id"] for _, body in accepted) == [1, 2]
        assert (await asyncio.wait_for(internal, 10)).event_id == 3
        # Recovered: the next write is taken at once.
        assert (await post_broadcast(session, server, 99)) == (202, {"event_id": 4})


async def test_a_locked_database_answers_503_unavailable_and_ready_says_why_until_writes_commit(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(db_busy_timeout_s=0.3, write_timeout_s=2.0)
    assert (await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.x"}))[0] == 202
    # Another process (here: another connection) holds SQLite's write lock.
    other = sqlite3.connect(server.settings.data_dir / "immune.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        status, body, response = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.x"})
        assert status == 503 and body["code"] == "unavailable" and response.headers["Retry-After"] == "1"
        assert "locked" in body["detail"]
        status, ready, _ = await rest(server, "GET", "/ready", role=None)
        assert status == 503 and ready["ready"] is False and "locked" in ready["checks"]["writes"]
        _, health, _ = await rest(server, "GET", "/health", role=None)
        assert health["status"] == "degraded" and "locked" in health["checks"]["writes"]
        # While it lasts, a write is refused at once (no queue of callers each waiting out the lock).
        for path, body_json in [("/ws/broadcast", {"event_type": "custom.x"}), ("/agents", {"agent_type": "b_cell"})]:
            status, body, _ = await rest(server, "POST", path, json=body_json)
            assert status == 503 and body["code"] == "unavailable"
    finally:
        other.execute("ROLLBACK")
        other.close()

    async def ready() -> int:
        return (await rest(server, "GET", "/ready", role=None))[0]

    for _ in range(200):
        if await ready() == 200:
            break
        await asyncio.sleep(0.05)
    assert await ready() == 200
    status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.x"})
    assert (status, body) == (202, {"event_id": 2}), "the refused writes used no id"


async def test_a_write_the_writer_does_not_take_in_time_answers_503_and_is_never_committed(
    server_factory: ServerFactory,
) -> None:
    server = await server_factory(write_timeout_s=0.5)
    publisher = server.app[PUBLISHER]
    started, release = asyncio.Event(), asyncio.Event()

    async def holds_the_writer(uow: UnitOfWork) -> None:
        started.set()
        await release.wait()

    holding = asyncio.create_task(publisher.transact(holds_the_writer, wait=True))
    await asyncio.wait_for(started.wait(), 10)
    status, body, response = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.late"})
    assert status == 503 and body["code"] == "unavailable" and response.headers["Retry-After"] == "1"
    assert "did not take the write" in body["detail"]
    release.set()
    await holding
    status, body, _ = await rest(server, "POST", "/ws/broadcast", json={"event_type": "custom.on_time"})
    assert (status, body) == (202, {"event_id": 1})
    _, page, _ = await rest(server, "GET", "/events?after=0")
    assert [item["event_type"] for item in page["items"]] == ["custom.on_time"]
