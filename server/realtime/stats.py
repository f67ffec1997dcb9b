"""Counters behind `GET /ws/stats` and the Prometheus metrics of the real-time layer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass(slots=True)
class RealtimeStats:
    """Process-local totals (SPEC §8 field names)."""

    started_monotonic: float = field(default_factory=time.monotonic)
    total_connections: int = 0
    total_disconnections: int = 0
    messages_received: int = 0
    events_published: int = 0
    events_replayed: int = 0
    rate_limited: int = 0
    slow_consumer_disconnects: int = 0

    @property
    def uptime_s(self) -> float:
        """Seconds since this process started serving."""
        return round(time.monotonic() - self.started_monotonic, 3)


class RealtimeMetrics:
    """Prometheus collectors, on a registry owned by one app (tests run several apps)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.connections = Gauge("immune_ws_connections", "Open Socket.IO connections", registry=registry)
        self.connects = Counter("immune_ws_connects", "Accepted Socket.IO connections", registry=registry)
        self.refused = Counter(
            "immune_ws_connects_refused", "Refused Socket.IO connections", ["code"], registry=registry
        )
        self.disconnects = Counter("immune_ws_disconnects", "Closed Socket.IO connections", registry=registry)
        self.client_events = Counter(
            "immune_ws_client_events", "Client events received", ["event", "outcome"], registry=registry
        )
        self.events_published = Counter(
            "immune_events_published", "Events published to rooms", ["event_type"], registry=registry
        )
        self.deliveries = Counter("immune_ws_deliveries", "Event deliveries to connections", registry=registry)
        self.slow_consumers = Counter(
            "immune_ws_slow_consumer_disconnects", "Connections cut off as slow consumers", registry=registry
        )
        self.rooms = Gauge("immune_ws_rooms", "Public rooms with at least one member", registry=registry)
        self.replay_bytes = Gauge(
            "immune_replay_bytes", "Encoded replay bytes some resume still has to send (shared)", registry=registry
        )
        self.replay_cache_bytes = Gauge(
            "immune_replay_cache_bytes", "Encoded replay frames kept for the next resume", registry=registry
        )
        self.replays_refused = Counter(
            "immune_replays_refused",
            "Resumes answered recovered=false, by reason",
            ["reason"],
            registry=registry,
        )
