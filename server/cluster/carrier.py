"""The carrier between nodes: moves committed batches of events from the node that committed them to the others.

The log in the database is the one source of truth; a carrier is only the fast path. It may drop a
batch (while its medium is down, or at its bound), never invent or alter one: a node that misses a
batch reads it back from the log (server/cluster/follower.py), so the carrier never needs to be
reliable, only to say honestly whether it is working (`CarrierState`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import orjson

from server.events.model import PublishedEvent

BatchHandler = Callable[[list[PublishedEvent]], None]
"""Called on the event loop with each batch another node published, in the order the medium delivered them."""

CarrierStatus = Literal["starting", "up", "down", "stopped"]


@dataclass
class CarrierState:
    """What /ready and /ws/stats show about the carrier."""

    kind: str
    status: CarrierStatus = "starting"
    reason: str | None = None
    """Why the carrier is down (None while up)."""
    since: float = field(default_factory=time.time)
    """Unix time of the last status change."""
    batches_published: int = 0
    batches_received: int = 0
    batches_dropped: int = 0
    """Batches not carried (medium down or publish queue full); other nodes read them from the log."""
    outages: int = 0
    """Times the carrier went down after having been up."""

    def change(self, status: CarrierStatus, reason: str | None = None) -> bool:
        """Move to `status`; True when that is a change (the caller logs it)."""
        if status == self.status and reason == self.reason:
            return False
        if self.status == "up" and status == "down":
            self.outages += 1
        self.status, self.reason, self.since = status, reason, time.time()
        return True

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "kind": self.kind,
            "status": self.status,
            "reason": self.reason,
            "since": round(self.since, 3),
            "batches_published": self.batches_published,
            "batches_received": self.batches_received,
            "batches_dropped": self.batches_dropped,
            "outages": self.outages,
        }


class Carrier(Protocol):
    """Publishes this node's committed batches and hands every other node's batches to `on_batch`."""

    state: CarrierState

    async def start(self, on_batch: BatchHandler) -> None:
        """Subscribe and begin carrying; returns at once even if the medium is down (it keeps retrying)."""
        ...

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Queue a committed batch for the other nodes; never blocks or raises (a dropped batch is counted)."""
        ...

    async def stop(self) -> None:
        """Stop carrying and release the medium."""
        ...


def encode_batch(origin: str, events: Sequence[PublishedEvent]) -> bytes:
    """One message for a batch: the origin node's id, a newline, then the events as JSON."""
    body = orjson.dumps(
        [
            [event.event_id, event.event_type, event.timestamp.isoformat(), event.data, event.source, event.rooms]
            for event in events
        ]
    )
    return origin.encode() + b"\n" + body


def decode_batch(message: bytes) -> tuple[str, list[PublishedEvent]]:
    """The origin and events of a message made by `encode_batch` (ValueError if it is not one)."""
    origin, sep, body = message.partition(b"\n")
    if not sep:
        raise ValueError("not a batch message")
    events = [
        PublishedEvent(
            event_id=int(event_id),
            event_type=str(event_type),
            timestamp=datetime.fromisoformat(timestamp),
            data=data,
            source=str(source),
            rooms=tuple(rooms),
        )
        for event_id, event_type, timestamp, data, source, rooms in orjson.loads(body)
    ]
    return origin.decode(), events


def origin_of(message: bytes) -> bytes:
    """The origin node's id in a message, without decoding the events."""
    return message.partition(b"\n")[0]
