"""The Socket.IO server: every packet checked before python-socketio acts on it.

Binary attachments are refused (this protocol has none), and a message over
`IMMUNE_MAX_PAYLOAD_BYTES` (but under the frame limit) reaches client_events.py as `OversizedMessage`,
so the client gets an error ack instead of a cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import socketio
import structlog
from socketio import packet as sio_packet

from server.realtime.engine.engineio_server import ImmuneEngineServer
from server.realtime.engine.sessions import SessionGuard

log = structlog.get_logger(__name__)

MAX_ATTACHMENTS = 10
"""Binary attachments one client message may announce (their bytes count toward IMMUNE_MAX_PAYLOAD_BYTES)."""


class ClientEventHandler(Protocol):
    """What the socket server hands each client event to (`ClientEvents`, realtime/client_events.py)."""

    async def handle_client_event(self, sid: str, event: Any, args: list[Any], wants_ack: bool) -> dict[str, Any]:
        """Run one client event and return the ack body."""
        ...


@dataclass(frozen=True, slots=True)
class OversizedMessage:
    """Stands in for the arguments of a client event bigger than `IMMUNE_MAX_PAYLOAD_BYTES`."""

    size: int
    limit: int


class ImmuneSocketServer(socketio.AsyncServer):
    """Socket.IO server that checks each packet before python-socketio acts on it."""

    gateway: ClientEventHandler
    eio: ImmuneEngineServer

    def __init__(self, *args: Any, max_message_bytes: int, guard: SessionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_message_bytes = max_message_bytes
        self.guard = guard
        self.eio.guard = guard
        guard.engine = self.eio

    def _engineio_server_class(self) -> type[ImmuneEngineServer]:
        return ImmuneEngineServer

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> None:
        self.guard.opened(eio_sid, environ)
        await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.guard.closed(eio_sid)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """Dispatch one Socket.IO packet, refusing what this protocol never sends (and never raising)."""
        guard = self.guard
        if guard.is_closing(eio_sid):
            return
        if not isinstance(data, str):
            await self._handle_attachment(eio_sid, data)
            return
        size = len(data)
        if size > self.max_message_bytes // 4:
            size = len(data.encode("utf-8", "surrogatepass"))
        try:
            pkt = self.packet_class(encoded_packet=data)
        except Exception as exc:  # undecodable input is the client's error, never a traceback
            guard.protocol_error(eio_sid, "socketio_packet", f"undecodable packet: {exc!r}", fatal=False)
            return
        kind = pkt.packet_type
        if kind in (sio_packet.BINARY_EVENT, sio_packet.BINARY_ACK) or pkt.attachment_count:
            # This protocol has no binary client events; a few small attachments are assembled so
            # that the request gets its `invalid_request` ack, anything more closes the session.
            if kind != sio_packet.BINARY_EVENT or not 0 < pkt.attachment_count <= MAX_ATTACHMENTS:
                guard.protocol_error(
                    eio_sid, "binary", f"{pkt.attachment_count} binary attachments (at most {MAX_ATTACHMENTS})", True
                )
            elif self.manager.sid_from_eio_sid(eio_sid, pkt.namespace or "/") is None:
                guard.protocol_error(eio_sid, "socketio_packet", "binary EVENT before CONNECT", fatal=False)
            else:
                self._binary_packet[eio_sid] = pkt
                guard.attachments_started(eio_sid, size)
            return
        namespace = pkt.namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        try:
            if kind == sio_packet.CONNECT:
                if sid is not None:
                    guard.protocol_error(eio_sid, "socketio_packet", "CONNECT on a connected session", fatal=False)
                    return
                await self._handle_connect(eio_sid, pkt.namespace, pkt.data)
                if self.manager.sid_from_eio_sid(eio_sid, namespace) is not None:
                    guard.connected(eio_sid)
            elif kind == sio_packet.DISCONNECT:
                await self._handle_disconnect(eio_sid, pkt.namespace, self.reason.CLIENT_DISCONNECT)
                # This server serves one namespace: the session has nothing left to do. The client
                # closes its own transport, so it is not cut.
                guard.close_session(eio_sid, "client_disconnect", cut=False)
            elif kind == sio_packet.EVENT:
                args = pkt.data
                if not isinstance(args, list) or not args or not isinstance(args[0], str):
                    guard.protocol_error(eio_sid, "socketio_packet", "EVENT data is not [name, ...]", fatal=False)
                elif sid is None:
                    guard.protocol_error(eio_sid, "socketio_packet", "EVENT before CONNECT", fatal=False)
                else:
                    if size > self.max_message_bytes:
                        args = [args[0], OversizedMessage(size=size, limit=self.max_message_bytes)]
                    await self._handle_event(eio_sid, pkt.namespace, pkt.id, args)
            else:  # ACK (the server never asks for one), CONNECT_ERROR, unknown types
                guard.protocol_error(eio_sid, "socketio_packet", f"unexpected Socket.IO packet type {kind}", False)
        except Exception:  # a bug of ours, not the client's: one structured line, the session goes on
            log.exception("socketio_packet_failed", eio_sid=eio_sid, packet_type=kind)

    async def _handle_attachment(self, eio_sid: str, data: bytes) -> None:
        """One binary attachment of a pending BINARY_EVENT, within the per-message bound."""
        guard = self.guard
        pkt = self._binary_packet.get(eio_sid)
        if pkt is None:
            guard.protocol_error(eio_sid, "binary", "binary message without a packet announcing it", fatal=True)
            return
        if guard.attachment_bytes(eio_sid, len(data)) > self.max_message_bytes:
            del self._binary_packet[eio_sid]
            guard.protocol_error(eio_sid, "binary", f"attachments over {self.max_message_bytes} bytes", fatal=True)
            return
        try:
            complete = pkt.add_attachment(data)
        except Exception as exc:  # placeholders that point nowhere: the client's error
            del self._binary_packet[eio_sid]
            guard.protocol_error(eio_sid, "binary", f"bad attachment placeholders: {exc!r}", fatal=True)
            return
        if complete:
            del self._binary_packet[eio_sid]
            args = pkt.data
            if not isinstance(args, list) or not args or not isinstance(args[0], str):
                guard.protocol_error(eio_sid, "socketio_packet", "EVENT data is not [name, ...]", fatal=False)
                return
            await self._handle_event(eio_sid, pkt.namespace, pkt.id, args)

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: list[Any], namespace: str, id: int | None
    ) -> None:
        # Overridden so a handler knows whether the client asked for an ack: a failed request
        # without one is answered with an `error` event instead (SPEC §5).
        event = data[0] if data else None
        reply = await self.gateway.handle_client_event(sid, event, data[1:], wants_ack=id is not None)
        if id is not None:
            await server._send_packet(
                eio_sid, self.packet_class(sio_packet.ACK, namespace=namespace, id=id, data=[reply])
            )
