"""The engine layer: every hook into python-engineio, python-socketio, bidict and aiohttp internals.

The rest of server/realtime uses only the names exported here (tests/test_architecture.py checks
that no module outside this package touches a private attribute of a library object):

- `socketio_server.py`: `ImmuneSocketServer`, every Socket.IO packet checked before
  python-socketio acts on it; oversized messages reach client_events.py as `OversizedMessage`.
- `engineio_server.py`: `ImmuneEngineServer`, the real peer address, per-IP handshake bounds,
  bounded polling, the WebSocket driver wrappers swapped in, lean queues.
- `sessions.py`: `SessionGuard`, each Engine.IO session's state until it closes, its protocol
  strikes and the connect timeout.
- `websockets.py`: the WebSocket driver wrappers (frames checked; each socket's transport recorded).
- `rooms.py`: `IndexedRoomsManager`, python-socketio's rooms with a per-sid index.
- `access.py`: the reads of private attributes (a room's dict, a WebSocket's TCP transport).
- `selfcheck.py`: `require_library_internals`, run at start-up: the server refuses to start,
  with one line, when an installed release lacks a part listed there.
"""

from server.realtime.engine.access import room_members, transport_of, unsent_bytes
from server.realtime.engine.engineio_server import POLL_POST_TIMEOUT_S, ImmuneEngineServer
from server.realtime.engine.rooms import IndexedRoomsManager
from server.realtime.engine.selfcheck import missing_library_internals, require_library_internals
from server.realtime.engine.sessions import (
    ABORT_AFTER_CLOSE_S,
    CLIENT_ADDRESS,
    PROTOCOL_ERROR_LIMIT,
    SESSION_CLOSE_ERRORS,
    Session,
    SessionGuard,
    TransportMetrics,
)
from server.realtime.engine.socketio_server import (
    MAX_ATTACHMENTS,
    ClientEventHandler,
    ImmuneSocketServer,
    OversizedMessage,
)
from server.realtime.engine.websockets import engine_packet_error, record_websockets

__all__ = [
    "ABORT_AFTER_CLOSE_S",
    "CLIENT_ADDRESS",
    "MAX_ATTACHMENTS",
    "POLL_POST_TIMEOUT_S",
    "PROTOCOL_ERROR_LIMIT",
    "SESSION_CLOSE_ERRORS",
    "ClientEventHandler",
    "ImmuneEngineServer",
    "ImmuneSocketServer",
    "IndexedRoomsManager",
    "OversizedMessage",
    "Session",
    "SessionGuard",
    "TransportMetrics",
    "engine_packet_error",
    "missing_library_internals",
    "record_websockets",
    "require_library_internals",
    "room_members",
    "transport_of",
    "unsent_bytes",
]
