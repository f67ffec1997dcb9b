"""The shared replay frame store: encoded once, pinned within a budget, idle ones in a bounded LRU."""

from __future__ import annotations

from datetime import UTC, datetime

from server.events.model import PublishedEvent
from server.realtime.replay_frames import BUDGET_IN_USE, OVER_BYTES, ReplayFrames, ReplayLease


def event(event_id: int) -> PublishedEvent:
    return PublishedEvent(event_id, "custom.x", datetime.now(UTC), {"i": event_id}, "test", ("agents",))


def encode(published: PublishedEvent) -> str:
    return "x" * 100  # every frame is 100 bytes


def test_frames_are_encoded_once_and_shared_between_leases() -> None:
    store = ReplayFrames(encode, budget_bytes=1_000, cache_bytes=300)
    first, second = ReplayLease(store), ReplayLease(store)
    for i in range(1, 6):
        assert first.add(store.pin(event(i)), max_bytes=10_000) is None
    assert second.add(store.pin_cached([3])[3], max_bytes=10_000) is None
    assert store.encoded == 5 and store.pinned_bytes == 500
    assert second.frames[0] is first.frames[2]  # the same packet object in both queues
    first.release()
    assert store.pinned_bytes == 100  # frame 3 is still needed by the second replay
    assert store.idle_bytes == 300  # four idle frames, the cache keeps the three newest
    second.release()
    second.release()  # idempotent
    assert store.pinned_bytes == 0 and store.idle_bytes == 300
    assert set(store.pin_cached([1, 2, 3, 4, 5])) == {3, 4, 5}  # 1 and 2 were evicted


def test_the_process_budget_counts_distinct_frames_and_refusal_releases_the_lease() -> None:
    store = ReplayFrames(encode, budget_bytes=250, cache_bytes=0)
    holder = ReplayLease(store)
    assert holder.add(store.pin(event(1)), 10_000) is None
    assert holder.add(store.pin(event(2)), 10_000) is None
    sharer = ReplayLease(store)
    assert sharer.add(store.pin(event(1)), 10_000) is None  # shared: no new bytes
    other = ReplayLease(store)
    assert other.add(store.pin(event(3)), 10_000) is BUDGET_IN_USE
    assert other.frames == [] and store.pinned_bytes == 200
    holder.release()
    sharer.release()
    assert store.pinned_bytes == 0 and store.idle_bytes == 0


def test_one_replay_is_bounded_in_bytes() -> None:
    store = ReplayFrames(encode, budget_bytes=10_000, cache_bytes=0)
    lease = ReplayLease(store)
    assert lease.add(store.pin(event(1)), max_bytes=150) is None
    assert lease.add(store.pin(event(2)), max_bytes=150) is OVER_BYTES
    assert lease.frames == [] and store.pinned_bytes == 0


def test_taking_the_last_packet_releases_the_replay() -> None:
    store = ReplayFrames(encode, budget_bytes=10_000, cache_bytes=0)
    lease = ReplayLease(store)
    for i in (1, 2):
        lease.add(store.pin(event(i)), 10_000)
    first, last = lease.packets()
    assert first.encode() == "4" + "x" * 100
    assert store.pinned_bytes == 200
    assert last.encode() == "4" + "x" * 100  # what the writer sends is unchanged
    assert store.pinned_bytes == 0
