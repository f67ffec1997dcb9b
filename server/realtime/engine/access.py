"""Reads of private parts of python-engineio, python-socketio, bidict and aiohttp: each one here, once.

The fan-out's fast path writes frames straight to a WebSocket's TCP transport, and the send
watchdog measures what that transport holds; neither library exposes the transport, so it is
reached through the objects' private attributes here and nowhere else. `selfcheck.py` checks at
start-up that every attribute read here exists in the installed versions.
"""

from __future__ import annotations

import contextlib
import fcntl
import struct
import termios
from typing import Any

_TIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None)


def room_members(members: Any) -> dict[str, str]:
    """sid → Engine.IO sid of one python-socketio room: the dict behind its bidict, not a copy.

    Read once per room per event. bidict's public `items()` is a view of this same dict, but
    merging several rooms (and iterating them in C) needs the dict itself. Never mutate it.
    """
    forward: dict[str, str] = members._fwdm
    return forward


def aiohttp_response_of(websocket: Any) -> Any:
    """The aiohttp `WebSocketResponse` behind engineio's aiohttp WebSocket driver (None before it opens)."""
    return websocket._sock


def transport_of(socket: Any) -> Any:
    """The TCP transport under an Engine.IO socket's WebSocket, when it is on one (else None).

    The socket's `fast_path_ws` (its aiohttp response) is set by `websockets.record_websockets`.
    """
    response = getattr(socket, "fast_path_ws", None)
    writer = getattr(response, "_writer", None)
    return getattr(writer, "transport", None)


def unsent_bytes(transport: Any) -> int:
    """Bytes not yet taken by the peer: the transport's buffer plus the kernel's send queue (Linux)."""
    pending = int(transport.get_write_buffer_size())
    sock = transport.get_extra_info("socket")
    if sock is not None and _TIOCOUTQ is not None:
        with contextlib.suppress(OSError, ValueError):  # ValueError: the socket is already closed (fd -1)
            pending += struct.unpack("i", fcntl.ioctl(sock.fileno(), _TIOCOUTQ, b"\0\0\0\0"))[0]
    return pending
