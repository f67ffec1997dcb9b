"""Concurrent writers: every consumer sees strictly increasing ids with no gap (SPEC §4)."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support import Clients, Recorder, RunningServer, rest

WRITERS = 8
PER_WRITER = 25


async def writer(server: RunningServer, n: int) -> list[int]:
    accepted = []
    rooms = ["agents", "tasks", None]
    # One identity per writer, as separate services would be (each within its REST rate limit).
    async with aiohttp.ClientSession(headers=server.headers(sub=f"writer-{n}")) as session:
        for i in range(PER_WRITER):
            room = rooms[(n + i) % 3]
            body = {"event_type": "custom.w" if i % 2 else "custom.v", "data": {"writer": n, "i": i}}
            if room:
                body["room"] = room
            async with session.post(f"{server.url}/ws/broadcast", json=body) as response:
                assert response.status == 202
                accepted.append((await response.json())["event_id"])
    return accepted


def ids(rec: Recorder) -> list[int]:
    return [payload["event_id"] for _, payload in rec.events if payload.get("event_id") is not None]


async def test_concurrent_writers_never_reorder_or_skip(server: RunningServer, socket_clients: Clients) -> None:
    everything = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents", "tasks"]})
    agents = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    filtered = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["tasks"], "event_types": ["custom.w"]}
    )
    results = await asyncio.gather(*(writer(server, n) for n in range(WRITERS)))
    total = WRITERS * PER_WRITER
    assert sorted(event_id for accepted in results for event_id in accepted) == list(range(1, total + 1))

    await everything.wait_for(lambda: len(ids(everything)) == total, timeout=20)
    assert ids(everything) == list(range(1, total + 1))
    for rec, query in [(agents, "rooms=agents"), (filtered, "rooms=tasks&event_types=custom.w")]:
        _, page, _ = await rest(server, "GET", f"/events?{query}&limit=1000")
        expected = [item["event_id"] for item in page["items"]]
        await rec.wait_for(lambda rec=rec, expected=expected: len(ids(rec)) >= len(expected), timeout=20)
        assert ids(rec) == expected
        assert all(a < b for a, b in zip(ids(rec), ids(rec)[1:], strict=False))
