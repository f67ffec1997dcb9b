"""The logged event: what the publisher appends and the fan-out delivers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from client_sdk.protocol import format_timestamp

BROADCAST_ROOM = "*"
"""Stored room of a deployment-wide event (`room: null` on the wire)."""


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """One event of the log; `rooms` is empty for a deployment-wide broadcast."""

    event_id: int
    event_type: str
    timestamp: datetime
    data: dict[str, Any]
    source: str
    rooms: tuple[str, ...]
    _envelope: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def room(self) -> str | None:
        """The primary room, or None for a deployment-wide event."""
        return self.rooms[0] if self.rooms else None

    def envelope(self) -> dict[str, Any]:
        """The JSON-ready envelope of SPEC §2 (built once per event, then reused)."""
        if not self._envelope:
            self._envelope.update(
                event_id=self.event_id,
                event_type=self.event_type,
                timestamp=format_timestamp(self.timestamp),
                data=self.data,
                source=self.source,
                room=self.room,
            )
        return self._envelope
