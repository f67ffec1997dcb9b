"""The private parts of python-engineio, python-socketio, aiohttp and asyncio that server/realtime uses.

The fan-out fast path, the send watchdog and the transport hardening reach below these libraries'
public APIs (see engine.py, manager.py, gateway.py, backpressure.py). pyproject.toml pins them to
the minor versions the suite passes on, and `require_library_internals()` runs at start-up: if an
installed release renamed or removed one of them, the server refuses to start with one line that
names it, rather than switching the fast path or the watchdog off in silence.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from importlib.metadata import version

import engineio
import socketio
from aiohttp import web
from aiohttp._websocket import writer as aiohttp_ws_writer
from engineio import async_socket as eio_async_socket
from engineio.async_drivers import aiohttp as eio_aiohttp
from socketio import base_manager

from server.config import ConfigError


def _has_methods(cls: type, *names: str) -> Callable[[], bool]:
    return lambda: all(callable(getattr(cls, name, None)) for name in names)


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


def _asyncio_queue_internals() -> bool:
    queue: asyncio.Queue[object] = asyncio.Queue()
    return hasattr(queue, "_queue") and hasattr(queue, "_getters")


# What each hook needs, and who needs it. Keep in step with the modules named.
REQUIRED: tuple[tuple[str, Callable[[], bool]], ...] = (
    (
        "socketio.AsyncServer: _engineio_server_class, _handle_eio_connect, _handle_eio_disconnect, "
        "_handle_eio_message, _handle_event_internal, _send_packet (engine.py subclass)",
        _has_methods(
            socketio.AsyncServer,
            "_engineio_server_class",
            "_handle_eio_connect",
            "_handle_eio_disconnect",
            "_handle_eio_message",
            "_handle_event_internal",
            "_send_packet",
        ),
    ),
    (
        "engineio.AsyncServer: _handle_connect, create_queue, handle_request, disconnect and its "
        "`_async['websocket']` driver table (engine.py, gateway.py)",
        _has_methods(engineio.AsyncServer, "_handle_connect", "create_queue", "handle_request", "disconnect"),
    ),
    (
        "engineio.AsyncServer sets self._async (the driver table the WebSocket class is swapped in)",
        _source_mentions(engineio.AsyncServer.__init__, "self._async"),
    ),
    (
        "engineio.AsyncServer.reason and AsyncSocket.close(reason=) (close path in gateway.py, engine.py)",
        lambda: (
            hasattr(engineio.AsyncServer, "reason") and _has_parameter(eio_async_socket.AsyncSocket.close, "reason")()
        ),
    ),
    (
        "engineio's aiohttp WebSocket keeps its aiohttp response as `_sock` (manager.record_websockets)",
        _source_mentions(eio_aiohttp.WebSocket, "self._sock"),
    ),
    (
        "aiohttp WebSocketResponse._writer with a `transport` (fast path, send watchdog)",
        lambda: (
            hasattr(web.WebSocketResponse(), "_writer")
            and _source_mentions(aiohttp_ws_writer.WebSocketWriter, "self.transport")()
        ),
    ),
    (
        "python-socketio's room members are a bidict with a `_fwdm` dict (manager._participants)",
        lambda: isinstance(getattr(base_manager.bidict(), "_fwdm", None), dict),
    ),
    (
        "asyncio.Queue keeps `_queue` and `_getters` (backpressure.SendWatchdog, manager fast path)",
        _asyncio_queue_internals,
    ),
)


def missing_library_internals() -> list[str]:
    """Descriptions of every required private part that the installed libraries lack."""
    missing = []
    for description, check in REQUIRED:
        try:
            present = check()
        except (AttributeError, TypeError, ValueError, OSError):
            present = False
        if not present:
            missing.append(description)
    return missing


def require_library_internals() -> None:
    """Refuse to start (ConfigError, one line) when an installed library lacks what server/realtime uses."""
    missing = missing_library_internals()
    if missing:
        versions = ", ".join(f"{name} {version(name)}" for name in ("python-socketio", "python-engineio", "aiohttp"))
        raise ConfigError(
            f"installed libraries ({versions}) lack what the real-time layer needs: {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            + "; install the versions pinned in requirements/run.lock"
        )
