"""The Redis carrier: committed batches over Redis pub/sub, with a heartbeat that proves the subscription lives.

python-socketio's AsyncRedisManager trusts its subscription: a listener that dies silently leaves
a node deaf while it looks healthy. Here every node publishes a heartbeat on the channel every
`heartbeat_s` and expects to hear the channel (its own heartbeat at least) within `dead_after_s`;
a subscription that stays silent longer is declared dead, logged, shown in `state`, dropped and
made again. Nothing is lost meanwhile: the log follower reads what the carrier missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.cluster.carrier import BatchHandler, CarrierState, CarrierStatus, decode_batch, encode_batch, origin_of
from server.events.model import PublishedEvent
from server.periodic import cancel_and_wait

log = structlog.get_logger(__name__)

_NOT_YET = "not subscribed yet"
HEARTBEAT_PREFIX = b"\x00hb "
"""A heartbeat message: this prefix and the sender's node id (never a valid batch: no newline)."""


class SubscriptionSilent(Exception):
    """The channel said nothing (not even our own heartbeat) for longer than allowed."""


class RedisCarrier:
    """One node's publisher and subscriber on a Redis pub/sub channel."""

    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        channel: str = "immune:batches",
        heartbeat_s: float = 1.0,
        dead_after_s: float = 3.0,
        queue_max: int = 1024,
    ) -> None:
        self._url = url
        self._node_id = node_id
        self._node = node_id.encode()
        self.channel = channel
        self._heartbeat_s = heartbeat_s
        self._dead_after_s = dead_after_s
        self._queue: deque[bytes] = deque()
        self._queue_max = queue_max
        self._wake = asyncio.Event()
        self._on_batch: BatchHandler | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = False
        self._publish_error: str | None = None
        self._subscribe_error: str | None = _NOT_YET
        self.state = CarrierState("redis")
        self.resubscriptions = 0

    def _client(self) -> aioredis.Redis:
        # No retries inside redis-py: a failure must reach us at once so that the state is honest.
        return aioredis.Redis.from_url(
            self._url,
            socket_connect_timeout=self._dead_after_s,
            socket_timeout=self._dead_after_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )

    async def start(self, on_batch: BatchHandler) -> None:
        """Begin subscribing and publishing in the background (Redis may be down: both keep retrying)."""
        self._on_batch = on_batch
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._subscribe_forever(), name="carrier-subscriber"),
            loop.create_task(self._publish_forever(), name="carrier-publisher"),
        ]

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Queue a committed batch; dropped (and counted) while publishing fails or the queue is full."""
        if not events:
            return
        if self._publish_error is not None or len(self._queue) >= self._queue_max:
            self.state.batches_dropped += 1
            return
        self._queue.append(encode_batch(self._node_id, events))
        self._wake.set()

    async def stop(self) -> None:
        """Cancel both tasks and close their connections."""
        # A task cancelled inside redis-py's reconnect may end with its own error: we are leaving anyway.
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        self.state.change("stopped")

    # --- publishing ---------------------------------------------------------------------------

    async def _publish_forever(self) -> None:
        client = self._client()
        heartbeat = HEARTBEAT_PREFIX + self._node
        next_heartbeat = 0.0
        try:
            while True:
                now = time.monotonic()
                if now >= next_heartbeat:
                    next_heartbeat = now + self._heartbeat_s
                    await self._send(client, heartbeat)
                    continue
                if not self._queue:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), next_heartbeat - now)
                    continue
                message = self._queue.popleft()
                if await self._send(client, message):
                    self.state.batches_published += 1
                else:
                    # Stale once Redis is back: every node reads these from the log.
                    self.state.batches_dropped += 1 + len(self._queue)
                    self._queue.clear()
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _send(self, client: aioredis.Redis, message: bytes) -> bool:
        try:
            await asyncio.wait_for(client.publish(self.channel, message), self._dead_after_s)
        except Exception as exc:  # RedisError, OSError, TimeoutError, or redis-py's RuntimeError on a dead transport
            reason = f"publish failed: {_describe(exc)}"
            if self._publish_error != reason:
                log.warning("carrier_publish_failing", channel=self.channel, reason=reason)
            self._publish_error = reason
            self._refresh_state()
            return False
        if self._publish_error is not None:
            log.info("carrier_publish_recovered", channel=self.channel, after=self._publish_error)
            self._publish_error = None
            self._refresh_state()
        return True

    # --- subscribing --------------------------------------------------------------------------

    async def _subscribe_forever(self) -> None:
        retry_s = 0.2
        while True:
            client = self._client()
            pubsub = client.pubsub()
            try:
                await asyncio.wait_for(pubsub.subscribe(self.channel), self._dead_after_s)
                retry_s = 0.2
                await self._listen(pubsub)
            except Exception as exc:  # any failure (redis-py can raise RuntimeError on a dead transport)
                reason = f"subscription lost: {_describe(exc)}"
                if self._subscribe_error != reason:
                    log.warning("carrier_subscription_lost", channel=self.channel, reason=reason)
                self._subscribe_error = reason
                self._refresh_state()
            finally:
                # Closing a socket needs nothing from the server, but bound it anyway.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 1.0)  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), 1.0)
            await asyncio.sleep(retry_s)
            retry_s = min(retry_s * 2, 2.0)
            self.resubscriptions += 1

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
        last_heard = time.monotonic()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(0.5, self._heartbeat_s))
            now = time.monotonic()
            if message is None:
                if now - last_heard > self._dead_after_s:
                    raise SubscriptionSilent(f"nothing heard for {now - last_heard:.1f} s")
                continue
            last_heard = now
            if self._subscribe_error is not None:
                # Heard the channel after (re)subscribing: the round trip works.
                log.info("carrier_subscribed", channel=self.channel, after=self._subscribe_error)
                self._subscribe_error = None
                self._refresh_state()
            self._handle(message.get("data"))

    def _handle(self, data: object) -> None:
        if not isinstance(data, bytes) or data.startswith(HEARTBEAT_PREFIX) or origin_of(data) == self._node:
            return
        try:
            _, events = decode_batch(data)
        except (ValueError, TypeError, KeyError):
            log.warning("carrier_message_unreadable", channel=self.channel, size=len(data))
            return
        self.state.batches_received += 1
        if self._on_batch is not None:
            self._on_batch(events)

    def _refresh_state(self) -> None:
        reason = self._subscribe_error or self._publish_error
        if self.state.status == "starting" and reason == _NOT_YET:
            return
        status: CarrierStatus = "up" if reason is None else "down"
        if self.state.change(status, reason) and status == "up":
            log.info("carrier_up", channel=self.channel)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
