"""The branches that keep delivery gapless when the ordinary path does not (SPEC §4).

The dispatcher's gap fill (an id beyond the next one is handed over first: the missing ids are
read back from the log, or skipped when retention removed them) and the resume path's lost
tail (more events dispatched while a connect was validated than the in-memory tail holds).
Both run on a real server with its real SQLite log; the log is written behind the dispatcher's
back the way a committer whose hand-over is late would leave it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from server.api.keys import DATABASE, EVENT_LOG, GATEWAY, PUBLISHER
from server.events.model import PublishedEvent
from server.realtime.resume import RecentEvents, ResumePlan
from tests.support import Clients, Recorder, RunningServer, rest


def event_ids(rec: Recorder) -> list[int]:
    return [payload["event_id"] for _, payload in rec.events if payload.get("event_id") is not None]


async def commit_behind_the_dispatcher(server: RunningServer, count: int) -> list[PublishedEvent]:
    """Commit `count` events to the log that the dispatcher is never handed (a late committer)."""
    db, event_log = server.app[DATABASE], server.app[EVENT_LOG]
    async with db.transaction() as conn:
        head = await event_log.lock_head(conn)
        staged = [
            PublishedEvent(head + n, "custom.late", datetime.now(UTC), {"n": n}, "test", ("agents",))
            for n in range(1, count + 1)
        ]
        await event_log.write(conn, staged)
    return staged


async def commit_without_dispatch(server: RunningServer, count: int) -> list[int]:
    """The ids of `count` events committed behind the dispatcher's back."""
    return [event.event_id for event in await commit_behind_the_dispatcher(server, count)]


async def test_an_id_beyond_the_next_is_held_until_the_gap_is_read_back_from_the_log(
    server: RunningServer, socket_clients: Clients
) -> None:
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    late = await commit_without_dispatch(server, 3)
    after = (await server.app[PUBLISHER].publish("custom.after", {}, ["agents"])).event_id
    assert after == late[-1] + 1
    await rec.wait_event("custom.after")
    assert event_ids(rec) == [*late, after]  # nothing skipped, nothing out of order
    assert [payload["data"] for payload in rec.of_type("custom.late")] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert server.app[PUBLISHER].dispatcher.last_delivered == after


async def test_a_pruned_range_is_skipped_and_delivery_goes_on(server: RunningServer, socket_clients: Clients) -> None:
    rec = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    late = await commit_without_dispatch(server, 3)
    assert await server.app[EVENT_LOG].prune(keep_count=0, max_age_s=3600) >= 3  # gone before anyone read them
    after = (await server.app[PUBLISHER].publish("custom.after", {}, ["agents"])).event_id
    assert after == late[-1] + 1
    await rec.wait_event("custom.after")
    assert event_ids(rec) == [after]
    assert server.app[PUBLISHER].dispatcher.last_delivered == after
    # The stream goes on from there.
    following = (await server.app[PUBLISHER].publish("custom.following", {}, ["agents"])).event_id
    await rec.wait_event("custom.following")
    assert event_ids(rec) == [after, following]


async def test_a_tail_lost_while_connecting_answers_recovered_false(
    server: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
    socket_clients: Clients,
) -> None:
    first = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": ["agents"]})
    start = first.of_type("connected")[0]["data"]["last_event_id"]
    await first.client.disconnect()
    await server.app[PUBLISHER].publish("custom.missed", {}, ["agents"])

    gateway = server.app[GATEWAY]
    small = RecentEvents(capacity=2)  # the in-memory tail: 2 events instead of thousands
    server.app[PUBLISHER].dispatcher.add_sink(small)
    monkeypatch.setattr(gateway.resumer, "recent", small)
    plan = gateway.resumer.plan

    async def plan_then_publish(*args: Any) -> ResumePlan:
        """More events are dispatched after the backlog was read than the tail keeps."""
        result = await plan(*args)
        for n in range(5):
            await server.app[PUBLISHER].publish("custom.meanwhile", {"n": n}, ["agents"])
        return result

    monkeypatch.setattr(gateway.resumer, "plan", plan_then_publish)
    rec = await socket_clients.connect(
        server.url, auth={"token": server.token(), "rooms": ["agents"], "last_event_id": start}
    )
    connected = rec.of_type("connected")[0]["data"]
    assert connected["recovered"] is False and connected["replayed"] == 0
    assert connected["last_event_id"] == server.app[PUBLISHER].dispatcher.last_delivered
    live = (await server.app[PUBLISHER].publish("custom.live", {}, ["agents"])).event_id
    await rec.wait_event("custom.live")
    assert event_ids(rec) == [live]  # no partial replay: the client is told to reload instead
    _status, metrics, _ = await rest(server, "GET", "/metrics")
    assert 'immune_replays_refused_total{reason="too many events while connecting"} 1.0' in metrics
