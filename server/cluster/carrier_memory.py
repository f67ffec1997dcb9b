"""The in-process carrier: nodes sharing one `MemoryHub` (tests, and the shape the Redis carrier must match)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from server.cluster.carrier import BatchHandler, CarrierState, decode_batch, encode_batch, origin_of
from server.events.model import PublishedEvent

log = structlog.get_logger(__name__)


class MemoryHub:
    """The medium of in-process carriers: every message reaches every other subscribed carrier, in order."""

    def __init__(self) -> None:
        self._carriers: list[MemoryCarrier] = []
        self.down_reason: str | None = None

    def fail(self, reason: str = "hub stopped") -> None:
        """Simulate an outage: messages published meanwhile are lost, as with a Redis outage."""
        self.down_reason = reason
        for carrier in self._carriers:
            carrier.state.change("down", reason)

    def restore(self) -> None:
        """End the outage."""
        self.down_reason = None
        for carrier in self._carriers:
            carrier.state.change("up")

    def join(self, carrier: MemoryCarrier) -> None:
        """Subscribe a carrier: it receives every message sent from now on."""
        self._carriers.append(carrier)

    def leave(self, carrier: MemoryCarrier) -> None:
        """Unsubscribe a carrier."""
        if carrier in self._carriers:
            self._carriers.remove(carrier)

    def send(self, message: bytes) -> bool:
        """Hand a message to every subscribed carrier; False during an outage (the message is lost)."""
        if self.down_reason is not None:
            return False
        for carrier in self._carriers:
            carrier.receive(message)
        return True


class MemoryCarrier:
    """A node's end of a `MemoryHub`: the same encoding and rules as the Redis carrier, no network."""

    def __init__(self, hub: MemoryHub, node_id: str) -> None:
        self._hub = hub
        self._node = node_id.encode()
        self._node_id = node_id
        self._on_batch: BatchHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.state = CarrierState("memory")

    async def start(self, on_batch: BatchHandler) -> None:
        """Join the hub."""
        self._on_batch = on_batch
        self._loop = asyncio.get_running_loop()
        self._hub.join(self)
        self.state.change("up" if self._hub.down_reason is None else "down", self._hub.down_reason)

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Send a committed batch to every other node of the hub (dropped, and counted, during an outage)."""
        if not events:
            return
        if self._hub.send(encode_batch(self._node_id, events)):
            self.state.batches_published += 1
        else:
            self.state.batches_dropped += 1

    async def stop(self) -> None:
        """Leave the hub."""
        self._hub.leave(self)
        self.state.change("stopped")

    def receive(self, message: bytes) -> None:
        """A message from the hub: handled on a later turn of the loop, unless this node sent it."""
        if origin_of(message) == self._node or self._loop is None:
            return
        # Delivered on a later turn of the loop, as a network message would be.
        self._loop.call_soon(self._handle, message)

    def _handle(self, message: bytes) -> None:
        if self._on_batch is None or self.state.status == "stopped":
            return
        _, events = decode_batch(message)
        self.state.batches_received += 1
        self._on_batch(events)
