"""Per-connection state in one small object (Home Assistant's ActiveConnection)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from client_sdk.protocol import utc_now
from server.auth import Identity
from server.rate_limits import TokenBucket
from server.realtime.replay_frames import ReplayLease
from server.realtime.resume import ResumePlan


@dataclass(slots=True)
class Connection:
    """What the server knows about one Socket.IO connection.

    The frames sent to it are counted by the fan-out, per recipient, in `FanoutManager.sent_by_sid`
    (the hot path's one dict increment); `ConnectionRegistry.describe` reads them from there.
    """

    sid: str
    eio_sid: str
    client_id: str
    identity: Identity
    remote_addr: str | None = None
    rooms: list[str] = field(default_factory=list)
    event_types: list[str] = field(default_factory=list)
    connected_at: datetime = field(default_factory=utc_now)
    last_activity: datetime = field(default_factory=utc_now)
    last_activity_monotonic: float = field(default_factory=time.monotonic)
    messages_received: int = 0
    active: bool = False
    closing: bool = False
    resume: ResumePlan | None = None  # read at connect, replayed at activation
    replay: ReplayLease | None = None  # the replay being sent; released once its last frame is taken
    bucket: TokenBucket | None = None
    strikes: int = 0

    @property
    def connection_id(self) -> str:
        """The public id of this connection (the Socket.IO sid)."""
        return self.sid

    def touch(self) -> None:
        """Record a client event for the idle timeout and `info`."""
        self.messages_received += 1
        self.last_activity = utc_now()
        self.last_activity_monotonic = time.monotonic()

    def release_replay(self) -> None:
        """Give back what its resume holds (the plan read at connect, the replay being sent): it has ended."""
        for plan_or_lease in (self.resume, self.replay):
            if plan_or_lease is not None:
                plan_or_lease.release()
