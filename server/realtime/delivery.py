"""The dispatcher's event sink: committed events to exactly their recipients, and connection-only events."""

from __future__ import annotations

from typing import Any

from client_sdk.protocol import EventType, format_timestamp, utc_now
from server.events.model import PublishedEvent
from server.realtime.connection import Connection
from server.realtime.manager import FanoutManager
from server.realtime.rooms import NAMESPACE, target_rooms
from server.realtime.stats import RealtimeMetrics, RealtimeStats


class Delivery:
    """Emits through the fan-out manager and counts what it published and delivered."""

    def __init__(self, manager: FanoutManager, stats: RealtimeStats, metrics: RealtimeMetrics) -> None:
        self.manager = manager
        self.stats = stats
        self.metrics = metrics

    def deliver(self, event: PublishedEvent) -> None:
        """EventSink: emit a committed event to exactly the connections of the §5 predicate."""
        sent = self.manager.emit_now(
            event.event_type, event.envelope(), NAMESPACE, target_rooms(event.rooms, event.event_type), json_only=True
        )
        self.stats.events_published += 1
        self.metrics.events_published.labels(event_type=event.event_type).inc()
        self.metrics.deliveries.inc(sent)

    def deliver_many(self, events: list[PublishedEvent]) -> None:
        """EventSink: emit several committed events in id order, one transport write per WebSocket recipient."""
        items = [(event.event_type, event.envelope(), target_rooms(event.rooms, event.event_type)) for event in events]
        counts = self.manager.emit_many(NAMESPACE, items)
        self.stats.events_published += len(events)
        for event in events:
            self.metrics.events_published.labels(event_type=event.event_type).inc()
        self.metrics.deliveries.inc(sum(counts))

    def send_direct(self, conn: Connection, event_type: EventType, data: dict[str, Any], force: bool = False) -> None:
        """Send a connection-only event (`connected`, `disconnected`, `error`): event_id null.

        `force` sends past the queue bound (one small frame: `disconnected` to a slow consumer).
        """
        envelope = {
            "event_id": None,
            "event_type": event_type.value,
            "timestamp": format_timestamp(utc_now()),
            "data": data,
            "source": "server",
            "room": None,
        }
        self.manager.emit_now(event_type.value, envelope, NAMESPACE, conn.sid, force=force, json_only=True)
