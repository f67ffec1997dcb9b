"""Encoded replay frames, shared by every resuming connection and bounded in bytes (issue 10 B).

A resume used to decode its whole backlog and encode every event again for each connection:
100 connections resuming the same 26 MB from 0 held 100 encoded copies (5.4 GB). Here an event
is encoded once into an Engine.IO packet that every queue replaying it shares, and the bytes are
accounted twice:

- per connection, the encoded size of its replay (`IMMUNE_REPLAY_MAX_BYTES`), like the replay
  cap counts its events;
- per process, the bytes of the distinct frames that some replay still has to send
  (`IMMUNE_REPLAY_BUDGET_BYTES`): a frame is *pinned* from the moment a resume reads it until
  the connection's writer has taken its last replayed frame, or the connection is gone.

When either is exceeded, the resume is answered `recovered: false` (the client refetches).
Frames no replay needs any more stay in a small LRU (`IMMUNE_REPLAY_CACHE_BYTES`) for the next
resume of the same range (a reconnect storm after a restart), and are dropped beyond it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engineio import packet as eio_packet

from server.events.model import PublishedEvent

BUDGET_IN_USE = "the server's replay budget is in use"
OVER_BYTES = "backlog exceeds the replay byte budget"


class ReplayPacket(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO MESSAGE of a replay: queued in bulk, outside the live queue bound."""

    bulk = True


@dataclass(slots=True, eq=False)
class Frame:
    """One event encoded as an Engine.IO MESSAGE packet; the same object sits in every queue."""

    event_id: int
    packet: eio_packet.Packet
    size: int
    pins: int = 0


class ReplayFrames:
    """The process's encoded replay frames: pinned ones within a budget, idle ones in an LRU."""

    def __init__(self, encode: Callable[[PublishedEvent], str], budget_bytes: int, cache_bytes: int) -> None:
        self._encode = encode
        self.budget_bytes = budget_bytes
        self.cache_bytes = cache_bytes
        self._frames: dict[int, Frame] = {}
        self._idle: OrderedDict[int, Frame] = OrderedDict()
        self.pinned_bytes = 0
        self.idle_bytes = 0
        self.encoded = 0  # frames built (a cache miss); the rest were shared

    def pin(self, event: PublishedEvent) -> Frame | None:
        """The event's frame, pinned for one more replay; None when the process budget is spent."""
        frame = self._frames.get(event.event_id)
        if frame is None:
            text = self._encode(event)
            frame = Frame(event.event_id, ReplayPacket(eio_packet.MESSAGE, text), len(text))
            self.encoded += 1
        if frame.pins == 0:
            if self.pinned_bytes + frame.size > self.budget_bytes:
                return None
            if self._idle.pop(frame.event_id, None) is not None:
                self.idle_bytes -= frame.size
            self._frames[frame.event_id] = frame
            self.pinned_bytes += frame.size
        frame.pins += 1
        return frame

    def pin_cached(self, event_ids: list[int]) -> dict[int, Frame]:
        """Pin the frames already encoded for these ids (within the budget), so none is evicted."""
        found: dict[int, Frame] = {}
        for event_id in event_ids:
            frame = self._frames.get(event_id)
            if frame is None:
                continue
            if frame.pins == 0:
                if self.pinned_bytes + frame.size > self.budget_bytes:
                    continue
                del self._idle[event_id]
                self.idle_bytes -= frame.size
                self.pinned_bytes += frame.size
            frame.pins += 1
            found[event_id] = frame
        return found

    def unpin(self, frames: list[Frame]) -> None:
        """One replay no longer needs these frames; unneeded ones go to the LRU (or away)."""
        for frame in frames:
            frame.pins -= 1
            if frame.pins == 0:
                self.pinned_bytes -= frame.size
                self._idle[frame.event_id] = frame
                self.idle_bytes += frame.size
        while self.idle_bytes > self.cache_bytes:
            _, frame = self._idle.popitem(last=False)
            del self._frames[frame.event_id]
            self.idle_bytes -= frame.size


class ReplayLease:
    """The frames one connection's replay holds pinned, released exactly once."""

    __slots__ = ("bytes", "frames", "store")

    def __init__(self, store: ReplayFrames) -> None:
        self.store = store
        self.frames: list[Frame] = []
        self.bytes = 0

    def add(self, frame: Frame | None, max_bytes: int) -> str | None:
        """Hold a frame pinned for this replay; on refusal, return why (the lease is then released).

        None stands for a frame the process budget could not pin.
        """
        if frame is None:
            self.release()
            return BUDGET_IN_USE
        self.frames.append(frame)
        self.bytes += frame.size
        if self.bytes > max_bytes:
            self.release()
            return OVER_BYTES
        return None

    def release(self) -> None:
        """Unpin every frame (idempotent): the replay was sent, refused or its connection is gone."""
        frames, self.frames = self.frames, []
        if frames:
            self.store.unpin(frames)

    def packets(self) -> list[ReplayPacket]:
        """The shared packets to queue, the last one wrapped so that taking it releases the lease."""
        if not self.frames:
            return []
        *shared, last = (frame.packet for frame in self.frames)
        return [*shared, _ReleasingPacket(last, self.release)]


class _ReleasingPacket(ReplayPacket):
    """The last frame of a replay: when the writer encodes it to send, the replay is done.

    Engine.IO's writer takes every queued packet at once and then encodes and sends them in
    order, so by the time this one is encoded every earlier frame has gone to the transport.
    """

    def __init__(self, packet: eio_packet.Packet, on_sent: Callable[[], None]) -> None:
        super().__init__(packet.packet_type, packet.data)
        self._on_sent = on_sent

    def encode(self, b64: bool = False) -> str | bytes:
        """Encode as usual, after releasing the replay's frames."""
        self._on_sent()
        return super().encode(b64)  # type: ignore[no-any-return]
