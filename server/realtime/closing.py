"""Closing connections: delivery cut at once, `disconnected`, the Socket.IO and Engine.IO closes, a bounded flush.

Every way a connection ends on the server's initiative comes through here: a kick, the reaper,
the rate limit, a slow consumer, and shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from client_sdk.protocol import DisconnectedData, DisconnectReason, EventType
from server.realtime.connection import Connection
from server.realtime.delivery import Delivery
from server.realtime.engine import SESSION_CLOSE_ERRORS, ImmuneSocketServer, transport_of, unsent_bytes
from server.realtime.manager import FanoutManager
from server.realtime.registry import ConnectionRegistry
from server.realtime.rooms import NAMESPACE
from server.realtime.stats import RealtimeMetrics, RealtimeStats

log = structlog.get_logger(__name__)
SHUTDOWN_GRACE_S = 1.0
"""At shutdown, how long peers get to take their last frames before their transports are aborted."""


class ConnectionCloser:
    """Closes connections so that no hole is possible: a closed connection's resume starts where it stopped."""

    def __init__(
        self,
        sio: ImmuneSocketServer,
        manager: FanoutManager,
        registry: ConnectionRegistry,
        delivery: Delivery,
        stats: RealtimeStats,
        metrics: RealtimeMetrics,
        send_timeout_s: float,
    ) -> None:
        self.sio = sio
        self.manager = manager
        self.registry = registry
        self.delivery = delivery
        self.stats = stats
        self.metrics = metrics
        self.send_timeout_s = send_timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._shutdown_deadline = float("inf")  # loop time by which every close must be done

    def _begin(self, conn: Connection) -> bool:
        """Synchronously stop all event delivery to a connection and mark it closing.

        Returns False when it was already closing. From here on nothing published reaches it, so
        the last event it received is exactly where its resume starts: no hole is possible.
        """
        if conn.closing:
            return False
        conn.closing = True
        self.manager.stop_delivery(conn.sid, NAMESPACE)
        return True

    async def close_connection(
        self,
        sid: str,
        reason: DisconnectReason,
        message: str = "",
        grace_s: float | None = None,
        wait_for_flush: bool = True,
    ) -> bool:
        """Send `disconnected` with the reason, then close the connection.

        With `wait_for_flush=False` it returns once the Socket.IO connection is gone; waiting for
        a stalled peer to take the last frames (or aborting its transport) goes on in the background.
        """
        conn = self.registry.get(sid)
        if conn is None or not self._begin(conn):
            return False
        await self._finish(conn, reason, message, grace_s, wait_for_flush)
        return True

    def close_soon(self, sid: str, reason: DisconnectReason, message: str) -> None:
        """Cut delivery now and close in the background (from synchronous code: the reaper, the rate limit)."""
        conn = self.registry.get(sid)
        if conn is not None and self._begin(conn):
            self._spawn(self._finish(conn, reason, message))

    def on_overflow(self, sid: str) -> None:
        """A connection over its queue, buffer or time bound: cut it now, tell it, close it."""
        conn = self.registry.get(sid)
        if conn is None or not self._begin(conn):
            return
        self.stats.slow_consumer_disconnects += 1
        self.metrics.slow_consumers.inc()
        log.info("slow_consumer", connection_id=sid, client_id=conn.client_id)
        self._spawn(self._finish(conn, DisconnectReason.SLOW_CONSUMER, "outgoing queue full"))

    async def close_all(self) -> None:
        """Tell every connection the server is going away, then close them all (at most ~1 s each, together)."""
        self._shutdown_deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE_S
        await asyncio.gather(
            *(
                self.close_connection(sid, DisconnectReason.SERVER_SHUTDOWN, "server shutting down")
                for sid in list(self.registry.by_sid)
            ),
            return_exceptions=True,
        )
        if self._tasks:  # closes already under way (slow consumers, kicks): bound by the same deadline
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S + 0.5)

    async def _finish(
        self,
        conn: Connection,
        reason: DisconnectReason,
        message: str,
        grace_s: float | None = None,
        wait_for_flush: bool = True,
    ) -> None:
        """`disconnected` (forced past the bound), Socket.IO DISCONNECT, Engine.IO CLOSE, then flush or abort.

        A peer that does not take those last frames within `grace_s` (default: the send timeout)
        has its TCP transport aborted, so a stalled peer never holds a socket, a queue or shutdown.
        """
        data = DisconnectedData(reason=reason, message=message)
        self.delivery.send_direct(conn, EventType.DISCONNECTED, data.model_dump(mode="json"), force=True)
        socket = self.sio.eio.sockets.get(conn.eio_sid)
        try:
            await self.sio.disconnect(conn.sid)
            if socket is not None and not socket.closed:
                await socket.close(wait=False, reason=self.sio.eio.reason.SERVER_DISCONNECT)
        except SESSION_CLOSE_ERRORS:  # a socket closing under us is fine: what matters is that it ends
            log.debug("close_failed", connection_id=conn.sid, exc_info=True)
        if socket is not None:
            flush = self._flush_or_abort(socket, self.send_timeout_s if grace_s is None else grace_s)
            if wait_for_flush:
                await flush
            else:
                self._spawn(flush)

    async def _flush_or_abort(self, socket: Any, grace_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while True:
            deadline = min(deadline, self._shutdown_deadline)
            transport = transport_of(socket)
            if transport is None:
                if socket.upgraded or not socket.queue.qsize():
                    return  # the WebSocket is gone, or a polling client has everything it is owed
            elif transport.is_closing():
                return
            elif not socket.queue.qsize() and not unsent_bytes(transport):
                return  # everything reached the peer; it closes its side on the CLOSE packet
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.02)
        transport = transport_of(socket)
        if transport is not None and not transport.is_closing():
            log.info("transport_aborted", eio_sid=socket.sid, reason="peer did not take its last frames")
            transport.abort()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
