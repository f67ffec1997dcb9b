"""Resume at connect with a plain python-socketio client (SPEC §3, §4): only the auth payload."""

from __future__ import annotations

import asyncio
from typing import Any

from server.api.keys import EVENT_LOG, PUBLISHER
from tests.conftest import ServerFactory
from tests.support import Clients, Recorder, RunningServer, rest


async def publish(server: RunningServer, event_type: str, rooms: list[str], **data: Any) -> int:
    event = await server.app[PUBLISHER].publish(event_type, data, rooms)
    return event.event_id


def event_ids(rec: Recorder) -> list[int]:
    return [payload["event_id"] for _, payload in rec.events if payload.get("event_id") is not None]


async def seed(server: RunningServer) -> dict[str, int]:
    """One event of each kind a connection in `agents` must or must not see."""
    return {
        "agents": await publish(server, "custom.a", ["agents"], n=1),
        "tasks": await publish(server, "custom.t", ["tasks"], n=2),
        "entity": await publish(server, "custom.e", ["agents", "agent:a1"], n=3),
        "everyone": await publish(server, "custom.all", [], n=4),
        "agent_only": await publish(server, "custom.x", ["agent:a9"], n=5),
        "filtered": await publish(server, "custom.b", ["agents"], n=6),
    }


async def test_resume_replays_exactly_the_missed_events_in_order_then_live(
    server: RunningServer, socket_clients: Clients
) -> None:
    first = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    start = first.of_type("connected")[0]["data"]["last_event_id"]
    await first.client.disconnect()
    ids = await seed(server)

    rec = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": start}
    )
    expected = [ids["agents"], ids["entity"], ids["everyone"], ids["filtered"]]
    await rec.wait_for(lambda: len(event_ids(rec)) >= len(expected))
    connected = rec.of_type("connected")[0]["data"]
    assert connected["recovered"] is True and connected["replayed"] == 4
    assert connected["last_event_id"] == ids["filtered"]
    assert rec.names()[0] == "connected"
    assert event_ids(rec) == expected
    replayed = rec.of_type("custom.e")[0]
    assert replayed["room"] == "agents" and replayed["data"] == {"n": 3}

    live = await publish(server, "custom.live", ["agents"])
    await rec.wait_event("custom.live")
    assert event_ids(rec) == [*expected, live]
    _status, stats, _ = await rest(server, "GET", "/ws/stats")
    assert stats["events_replayed"] == 4


async def test_resume_respects_the_filter_and_the_entity_rooms(server: RunningServer, socket_clients: Clients) -> None:
    ids = await seed(server)
    rec = await socket_clients.connect(
        server.url,
        auth={
            "token": server.token(),
            "rooms": ["agent:a9"],
            "event_types": ["custom.x", "custom.all"],
            "last_event_id": 0,
        },
    )
    await rec.wait_for(lambda: len(event_ids(rec)) >= 2)
    assert event_ids(rec) == [ids["everyone"], ids["agent_only"]]
    assert rec.of_type("connected")[0]["data"]["replayed"] == 2


async def test_no_resume_asked_means_recovered_null_and_nothing_replayed(
    server: RunningServer, socket_clients: Clients
) -> None:
    await seed(server)
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    connected = rec.of_type("connected")[0]["data"]
    assert connected["recovered"] is None and connected["replayed"] == 0
    await rec.client.call("ping")
    assert event_ids(rec) == []


async def test_up_to_date_resume_is_recovered_with_nothing_to_replay(
    server: RunningServer, socket_clients: Clients
) -> None:
    ids = await seed(server)
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": ids["filtered"]}
    )
    connected = rec.of_type("connected")[0]["data"]
    assert connected["recovered"] is True and connected["replayed"] == 0


async def test_unrecoverable_resumes_say_recovered_false_and_replay_nothing(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(replay_cap=3)
    ids = await seed(server)
    epoch = (await rest(server, "GET", "/events"))[1]["epoch"]
    cases = {
        "replay cap": {"last_event_id": 0},
        "other epoch": {"last_event_id": 1, "epoch": "some-other-log"},
        "ahead of the log": {"last_event_id": ids["filtered"] + 100, "epoch": epoch},
    }
    for case, resume in cases.items():
        rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"], **resume})
        connected = rec.of_type("connected")[0]["data"]
        assert connected["recovered"] is False and connected["replayed"] == 0, case
        live = await publish(server, "custom.after", ["agents"])
        await rec.wait_event("custom.after")
        assert event_ids(rec) == [live], case  # live delivery goes on; nothing was replayed
        await rec.client.disconnect()
    # Within the cap, with the right epoch, the same log resumes fine.
    rec = await socket_clients.connect(
        server.url,
        auth={"token": server.token(), "rooms": ["agents"], "last_event_id": live - 3, "epoch": epoch},
    )
    await rec.wait_for(lambda: len(event_ids(rec)) >= 3)
    assert rec.of_type("connected")[0]["data"]["recovered"] is True
    assert event_ids(rec) == [live - 2, live - 1, live]


async def test_resume_from_before_retention_is_not_recovered(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    server = await server_factory(event_retention_count=2)
    ids = await seed(server)
    removed = await server.app[EVENT_LOG].prune(keep_count=2, max_age_s=86_400)
    assert removed == len(ids) - 2
    _status, page, _ = await rest(server, "GET", "/events")
    assert [item["event_id"] for item in page["items"]] == [ids["agent_only"], ids["filtered"]]
    assert page["pruned_through"] == ids["everyone"]

    stale = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": 1}
    )
    assert stale.of_type("connected")[0]["data"]["recovered"] is False
    fresh = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": ids["everyone"]}
    )
    await fresh.wait_for(lambda: len(event_ids(fresh)) >= 1)
    assert fresh.of_type("connected")[0]["data"]["recovered"] is True
    assert event_ids(fresh) == [ids["filtered"]]


async def test_resume_while_events_stream_has_no_gap_and_no_duplicate(
    server: RunningServer, socket_clients: Clients
) -> None:
    """Clients keep dropping and resuming while a producer publishes; each sees every id once, in order."""
    stop = asyncio.Event()
    published: list[int] = []

    async def producer() -> None:
        while not stop.is_set():
            published.append(await publish(server, "custom.tick", []))
            await asyncio.sleep(0)

    async def follower() -> list[int]:
        seen: list[int] = []
        last = 0
        for _ in range(6):
            rec = await socket_clients.connect(server.url, auth={"token": server.token(), "last_event_id": last})
            target = len(published) + 3

            def caught_up(rec: Recorder = rec, target: int = target) -> bool:
                return len(published) >= target and len(event_ids(rec)) >= 3

            await rec.wait_for(caught_up, timeout=10)
            seen.extend(event_ids(rec))
            last = seen[-1]
            # Drop the transport without a clean disconnect, like a phone losing its network.
            await rec.client.eio.disconnect(abort=True)
        return seen

    task = asyncio.create_task(producer())
    try:
        results = await asyncio.gather(*(follower() for _ in range(3)))
    finally:
        stop.set()
        await task
    for seen in results:
        assert seen == list(range(seen[0], seen[-1] + 1)), "gap or duplicate across resumes"
        assert seen[0] == 1


async def test_events_route_pages_and_filters_the_log(server: RunningServer) -> None:
    ids = await seed(server)
    status, page, _ = await rest(server, "GET", "/events?rooms=agents&limit=2", role="viewer")
    assert status == 200
    assert [item["event_id"] for item in page["items"]] == [ids["agents"], ids["entity"]]
    assert page["next_after"] == ids["entity"] and page["head"] == ids["filtered"]
    status, page, _ = await rest(server, "GET", f"/events?rooms=agents&after={page['next_after']}&limit=2")
    assert [item["event_id"] for item in page["items"]] == [ids["everyone"], ids["filtered"]]
    status, page, _ = await rest(server, "GET", "/events?event_types=custom.t,custom.x")
    assert [item["event_type"] for item in page["items"]] == ["custom.t", "custom.x"]
    item = page["items"][0]
    assert item["room"] == "tasks" and item["data"] == {"n": 2} and item["source"] == "api"

    for bad in ["rooms=nowhere", "limit=0", "after=-1", "event_types=Bad!", "bogus=1"]:
        status, problem, _ = await rest(server, "GET", f"/events?{bad}")
        assert status == 422, bad
        assert problem["status"] == 422
    status, _, _ = await rest(server, "GET", "/events", role=None)
    assert status == 401


async def test_retention_sweep_during_the_backlog_read_is_not_recovered(
    server_factory: ServerFactory, socket_clients: Clients
) -> None:
    """Retention runs between the resume's retention check and its backlog read: the backlog has a
    hole, so the resume must say `recovered: false` rather than replay it as complete."""
    server = await server_factory()
    event_log = server.app[EVENT_LOG]
    ids = await seed(server)
    read_ids = event_log.read_ids  # the backlog read starts with the ids

    async def read_after_a_sweep(*args: Any, **kwargs: Any) -> Any:
        await event_log.prune(keep_count=2, max_age_s=86_400)  # the sweep wins the race
        return await read_ids(*args, **kwargs)

    event_log.read_ids = read_after_a_sweep  # type: ignore[method-assign]
    try:
        rec = await socket_clients.connect(
            server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": ids["agents"]}
        )
    finally:
        event_log.read_ids = read_ids  # type: ignore[method-assign]
    connected = rec.of_type("connected")[0]["data"]
    assert connected["recovered"] is False and connected["replayed"] == 0
    live = await publish(server, "custom.after", ["agents"])
    await rec.wait_event("custom.after")
    assert event_ids(rec) == [live]
