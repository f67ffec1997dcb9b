"""The fan-out: python-socketio's manager with an encode-once, no-task local emit."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.realtime.engine import IndexedRoomsManager

# Importable from here as before the engine package existed (tests and older importers).
from server.realtime.engine import record_websockets as record_websockets
from server.realtime.engine import transport_of as transport_of
from server.realtime.engine import unsent_bytes as unsent_bytes


class FanoutManager(IndexedRoomsManager):
    """Local emit that encodes a message once and enqueues it for each recipient synchronously.

    Stock `AsyncManager.emit` creates one task per recipient; here delivery is a bounded
    `put_nowait` into each Engine.IO socket's queue, in event-loop order, so acks, `connected`,
    replayed and live events keep their order. A queue at `max_queue` is a slow consumer.
    Pub/sub managers (Redis) call this same `emit` on every node for the local recipients.
    """

    def __init__(self, max_queue: int = 1000, fast_path: bool = True, max_write_buffer: int = 4 << 20) -> None:
        super().__init__()
        self.max_queue = max_queue
        self.fast_path = fast_path
        self.max_write_buffer = max_write_buffer
        self.deliveries = 0
        self.direct_deliveries = 0
        self.direct_writes = 0
        # A plain dict with an entry per connected sid (set at connect, dropped at disconnect):
        # `+= 1` on an exact dict is the cheapest per-recipient counter CPython has.
        self.sent_by_sid: dict[str, int] = {}
        # Engine.IO sid → (socket, TCP transport, queue) while the socket runs on a WebSocket; the
        # fan-out reads both from here instead of walking engineio/aiohttp attributes per recipient.
        self.websockets: dict[str, tuple[Any, Any, Any]] = {}
        self.on_overflow: Callable[[str], None] = lambda sid: None
        self.on_connected: Callable[[str], None] = lambda sid: None

    async def pre_connect(self, eio_sid: str, namespace: str) -> Any:
        """Register the sid (it is in its own room from here on) with a zero delivery count."""
        sid = await super().pre_connect(eio_sid, namespace)
        if sid is not None:
            self.sent_by_sid[sid] = 0
        return sid

    async def connect(self, sid: str, namespace: str) -> Any:
        """Mark connected, then let activation (activation.py) send `connected` and join rooms at once."""
        result = await super().connect(sid, namespace)
        self.on_connected(sid)
        return result

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Emit to local participants; callbacks fall back to the stock per-recipient path."""
        if callback is not None:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to, **kwargs)
            return
        self.emit_now(event, data, namespace or "/", to or room, skip_sid)

    def emit_now(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any,
        skip_sid: Any = None,
        max_queue: int | None = None,
        force: bool = False,
        json_only: bool = False,
    ) -> int:
        """Deliver one event to the room's local participants; returns the number enqueued.

        `force` ignores every bound: only for the one small `disconnected` frame that must reach a
        connection already judged slow (it is out of every event room by then). `json_only`
        vouches that `data` holds no bytes, which spares python-socketio's recursive binary scan.
        """
        bound = max_queue or self.max_queue
        if namespace not in self.rooms:
            return 0
        args = list(data) if isinstance(data, tuple) else ([] if data is None else [data])
        binary = False if json_only else None
        encoded = self.server.packet_class(
            sio_packet.EVENT, namespace=namespace, data=[event, *args], binary=binary
        ).encode()
        if isinstance(encoded, list):  # binary attachments: rare, take the stock path's shape
            packets = [eio_packet.Packet(eio_packet.MESSAGE, part) for part in encoded]
        else:
            packets = [eio_packet.Packet(eio_packet.MESSAGE, encoded)]
        # One WebSocket frame for every recipient that can take it directly (see the checks below).
        frame = text_frame(packets[0].encode().encode()) if self.fast_path and len(packets) == 1 else None
        skipped = set(_as_list(skip_sid))
        sockets = self.server.eio.sockets
        websockets = self.websockets if frame is not None else {}
        sent_by_sid = self.sent_by_sid
        write_limit = self.max_write_buffer
        sent = direct = 0
        # Reported after the loop: a cut takes the connection out of its rooms, and a single
        # room's member dict is iterated here without a copy.
        overflowed: list[str] = []
        for sid, eio_sid in self.participants(namespace, room).items():
            if skipped and sid in skipped:
                continue
            on_websocket = websockets.get(eio_sid)
            if on_websocket is not None:
                socket, transport, queue = on_websocket
                # Written directly only when nothing can be ahead of the new frame: the writer
                # task is parked on an empty Engine.IO queue (no earlier packet queued or in
                # flight), the socket is on WebSocket (not polling, not mid-upgrade) and nothing
                # is closing. Otherwise the normal queue keeps the order.
                if (
                    queue.readers
                    and not queue.pending
                    and socket.upgraded
                    and not socket.upgrading
                    and not socket.closed
                    and not transport.is_closing()
                ):
                    if not force and transport.get_write_buffer_size() > write_limit:
                        overflowed.append(sid)
                        continue
                    transport.write(frame)
                    sent_by_sid[sid] += 1
                    direct += 1
                    self.direct_writes += 1
                    continue
            else:
                socket = sockets.get(eio_sid)
            if socket is None or socket.closed:
                continue
            queue = socket.queue
            if not force and queue.live_size() >= bound:  # a queued replay is bounded by its own budgets
                overflowed.append(sid)
                continue
            for pkt in packets:
                queue.put_nowait(pkt)
            sent_by_sid[sid] += 1
            sent += 1
        sent += direct
        self.direct_deliveries += direct
        self.deliveries += sent
        for sid in overflowed:
            self.on_overflow(sid)
        return sent

    def send_packets(self, sid: str, namespace: str, packets: list[Any]) -> bool:
        """Queue pre-built Engine.IO packets for one connection, behind anything queued before.

        For a replay: its packets (marked `bulk`) are shared with other queues and bounded by
        the replay budgets, not counted against `max_queue`. False when the socket is gone.
        """
        eio_sid = self.eio_sid_from_sid(sid, namespace)
        socket = self.server.eio.sockets.get(eio_sid) if eio_sid else None
        if socket is None or socket.closed or sid not in self.sent_by_sid:
            return False
        socket.queue.put_bulk(packets)
        self.sent_by_sid[sid] += len(packets)
        self.deliveries += len(packets)
        return True

    def emit_many(self, namespace: str, items: list[tuple[str, Any, Any]]) -> list[int]:
        """Deliver several events (name, JSON-only data, rooms) in order; returns the count sent for each.

        The batch form of `emit_now`: a recipient that can take frames directly gets all of its
        frames of the batch in one transport write, in order; every other recipient gets them
        through its Engine.IO queue, in order. A recipient found slow stops receiving at that
        event (as it would have been cut before the next one) and is reported once.
        """
        counts: list[int] = []
        if namespace not in self.rooms:
            return [0] * len(items)
        sockets = self.server.eio.sockets
        websockets = self.websockets if self.fast_path else {}
        sent_by_sid = self.sent_by_sid
        write_limit = self.max_write_buffer
        bound = self.max_queue
        batched: dict[str, tuple[Any, list[bytes], list[int]]] = {}  # eio_sid → (transport, frames, size)
        overflowed: dict[str, None] = {}
        direct_total = 0
        for event, data, room in items:
            encoded = self.server.packet_class(
                sio_packet.EVENT, namespace=namespace, data=[event, data], binary=False
            ).encode()
            pkt = eio_packet.Packet(eio_packet.MESSAGE, encoded)
            frame = text_frame(pkt.encode().encode()) if websockets else None
            sent = 0
            for sid, eio_sid in self.participants(namespace, room).items():
                if sid in overflowed:
                    continue
                pending = batched.get(eio_sid)
                if pending is None and frame is not None:
                    on_websocket = websockets.get(eio_sid)
                    if on_websocket is not None:
                        socket, transport, queue = on_websocket
                        # The same conditions as `emit_now`: nothing can be ahead of these frames.
                        if (
                            queue.readers
                            and not queue.pending
                            and socket.upgraded
                            and not socket.upgrading
                            and not socket.closed
                            and not transport.is_closing()
                        ):
                            pending = batched[eio_sid] = (transport, [], [transport.get_write_buffer_size()])
                if pending is not None and frame is not None:
                    transport, frames, size = pending
                    if size[0] > write_limit:
                        overflowed[sid] = None
                        continue
                    frames.append(frame)
                    size[0] += len(frame)
                    sent_by_sid[sid] += 1
                    sent += 1
                    direct_total += 1
                    continue
                socket = sockets.get(eio_sid)
                if socket is None or socket.closed:
                    continue
                if socket.queue.live_size() >= bound:  # a queued replay is bounded by its own budgets
                    overflowed[sid] = None
                    continue
                socket.queue.put_nowait(pkt)
                sent_by_sid[sid] += 1
                sent += 1
            counts.append(sent)
        for transport, frames, _ in batched.values():
            if frames:
                transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
                self.direct_writes += 1
        self.direct_deliveries += direct_total
        self.deliveries += sum(counts)
        for sid in overflowed:
            self.on_overflow(sid)
        return counts

    def stop_delivery(self, sid: str, namespace: str) -> None:
        """Take a connection out of every room but its own, synchronously: no further event reaches it.

        Its own sid room stays, so a connection-only message (`disconnected`) can still be sent.
        """
        for room in list(self.get_rooms(sid, namespace)):
            if room is not None and room != sid:
                self.basic_leave_room(sid, namespace, room)

    async def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        """Forget the connection's counters with it (once it has left every room)."""
        result = await super().disconnect(sid, namespace, **kwargs)
        self.sent_by_sid.pop(sid, None)
        return result


def _as_list(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    if isinstance(value, list | tuple | set):
        return value
    return (value,)


def text_frame(payload: bytes) -> bytes:
    """One unmasked, uncompressed server → client WebSocket text frame (RFC 6455).

    Valid on every connection, also one that negotiated permessage-deflate: a frame without
    RSV1 is simply an uncompressed message.
    """
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload
