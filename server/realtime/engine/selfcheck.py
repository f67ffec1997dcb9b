"""The start-up self-check of every private part of the libraries that the engine layer uses.

The engine layer (this package) is the only code in server/ that reaches below these libraries'
public APIs (tests/test_architecture.py holds the rest of server/ to that). pyproject.toml pins
them to the minor versions the suite passes on, and `require_library_internals()` runs at
start-up: if an installed release renamed or removed one of the parts listed in `REQUIRED`, the
server refuses to start with one line that names it, rather than switching the fast path or the
watchdog off in silence. tests/test_internals.py checks that `REQUIRED` names exactly the
private names the engine layer touches.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import engineio
import socketio
from aiohttp import web
from aiohttp._websocket import writer as aiohttp_ws_writer
from engineio import async_socket as eio_async_socket
from engineio import base_server as eio_base_server
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import base_manager
from socketio import base_server as sio_base_server

from server.config import ConfigError


@dataclass(frozen=True)
class Internal:
    """One private part (or undocumented behaviour) of a library, and the engine modules that rely on it."""

    owner: str
    what: str
    used_by: str  # the modules of server/realtime/engine/ (or beyond, for public parts) that need it
    present: Callable[[], bool] = lambda: True
    names: tuple[str, ...] = ()  # the private attribute names, as the code spells them
    methods_of: type | None = None  # a part made of methods (`what`) of this class: the missing ones are named

    def lacking(self) -> str | None:
        """One line naming what the installed library lacks of this part, and who needs it; None when present."""
        if self.methods_of is not None:
            gone = [name for name in self.what.split(", ") if not callable(getattr(self.methods_of, name, None))]
            return f"{self.owner}: no method {', '.join(gone)} (used by {self.used_by})" if gone else None
        try:
            if self.present():
                return None
        except (AttributeError, TypeError, ValueError, OSError, SyntaxError):
            pass
        return f"{self.owner}: {self.what} (used by {self.used_by})"


def _source_mentions(obj: object, *fragments: str) -> Callable[[], bool]:
    """For instance attributes set inside a method: the library's own source assigns them."""

    def check() -> bool:
        try:
            source = inspect.getsource(obj)  # type: ignore[arg-type]
        except (OSError, TypeError):
            return False
        return all(fragment in source for fragment in fragments)

    return check


def _has_parameter(function: Callable[..., object], name: str) -> Callable[[], bool]:
    return lambda: name in inspect.signature(function).parameters


BASIC_DISCONNECT_FIELDS = frozenset({"rooms", "basic_leave_room", "callbacks", "pending_connect", "pending_disconnect"})
"""What python-socketio's `basic_disconnect` tends; `IndexedRoomsManager.basic_disconnect` redoes exactly this."""


def _basic_disconnect_tends_only_known_fields() -> bool:
    """A release that makes `basic_disconnect` clean up another per-sid map needs our copy changed too."""
    source = textwrap.dedent(inspect.getsource(base_manager.BaseManager.basic_disconnect))
    used = {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }
    return used <= BASIC_DISCONNECT_FIELDS


SIO_METHODS = (
    "_engineio_server_class",
    "_handle_eio_connect",
    "_handle_eio_disconnect",
    "_handle_eio_message",
    "_handle_connect",
    "_handle_disconnect",
    "_handle_event",
    "_handle_event_internal",
    "_send_packet",
)
EIO_METHODS = ("_handle_connect", "_make_response", "_ok")

# What each hook needs, and who needs it. Keep in step with the modules named.
REQUIRED: tuple[Internal, ...] = (
    Internal(
        "socketio.AsyncServer",
        ", ".join(SIO_METHODS),
        "engine/socketio_server.py",
        names=SIO_METHODS,
        methods_of=socketio.AsyncServer,
    ),
    Internal(
        "socketio.AsyncServer",
        "the pending binary packets by Engine.IO sid, `self._binary_packet`",
        "engine/socketio_server.py",
        _source_mentions(sio_base_server.BaseServer.__init__, "self._binary_packet"),
        ("_binary_packet",),
    ),
    Internal(
        "engineio.AsyncServer",
        ", ".join((*EIO_METHODS, "create_queue", "handle_request", "disconnect")),
        "engine/engineio_server.py",
        names=EIO_METHODS,
        methods_of=engineio.AsyncServer,
    ),
    Internal(
        "engineio.AsyncServer",
        "the driver table `self._async` with 'translate_request' and 'websocket'",
        "engine/engineio_server.py",
        lambda: (
            _source_mentions(eio_base_server.BaseServer.__init__, "self._async")()
            and {"translate_request", "websocket"} <= set(eio_aiohttp._async)
        ),
        ("_async",),
    ),
    Internal(
        "python-engineio",
        "AsyncServer.reason and AsyncSocket.close(reason=)",
        "engine/sessions.py, engine/engineio_server.py, closing.py",
        lambda: (
            hasattr(engineio.AsyncServer, "reason") and _has_parameter(eio_async_socket.AsyncSocket.close, "reason")()
        ),
    ),
    Internal(
        "engineio's aiohttp WebSocket",
        "its aiohttp response as `self._sock` and its `handler`",
        "engine/access.py, engine/websockets.py",
        _source_mentions(eio_aiohttp.WebSocket, "self._sock", "self.handler"),
        ("_sock",),
    ),
    Internal(
        "aiohttp.web.WebSocketResponse",
        "`_writer`, a WebSocketWriter with a `transport`",
        "engine/access.py",
        lambda: (
            hasattr(web.WebSocketResponse(), "_writer")
            and _source_mentions(aiohttp_ws_writer.WebSocketWriter, "self.transport")()
        ),
        ("_writer",),
    ),
    Internal(
        "bidict (python-socketio's room members)",
        "the forward dict `_fwdm`",
        "engine/access.py",
        lambda: isinstance(getattr(base_manager.bidict(), "_fwdm", None), dict),
        ("_fwdm",),
    ),
    Internal(
        "socketio.AsyncManager",
        "basic_disconnect tends only " + ", ".join(sorted(BASIC_DISCONNECT_FIELDS)),
        "engine/rooms.py",
        _basic_disconnect_tends_only_known_fields,
    ),
)


def missing_library_internals() -> list[str]:
    """One line for every required part that the installed libraries lack."""
    return [line for line in (internal.lacking() for internal in REQUIRED) if line is not None]


def require_library_internals() -> None:
    """Refuse to start (ConfigError, one line) when an installed library lacks what the engine layer uses."""
    missing = missing_library_internals()
    if missing:
        versions = ", ".join(
            f"{name} {version(name)}" for name in ("python-socketio", "python-engineio", "aiohttp", "bidict")
        )
        raise ConfigError(
            f"installed libraries ({versions}) lack what the real-time layer needs: {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; install the versions pinned in requirements/run.lock"
        )
