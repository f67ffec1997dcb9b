"""Bind the listening sockets before anything starts, so a busy port is one clear error, not a traceback."""

from __future__ import annotations

import contextlib
import errno
import os
import socket

from server.config import ConfigError

BACKLOG = 1024


def bind_listeners(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to (as asyncio's create_server would bind).

    Raises ConfigError naming the address when one cannot be bound (in use, not local, no permission).
    With port 0 the first socket picks a free port and the others reuse it.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"IMMUNE_HOST: cannot resolve {host!r}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, str(address[0])) in seen:
                continue
            seen.add((family, str(address[0])))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)  # 0.0.0.0 is bound separately
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                raise ConfigError(_bind_problem(str(address[0]), int(address[1]), exc)) from None
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()
        raise
    return sockets


def bound_port(sockets: list[socket.socket]) -> int:
    """The port the listeners are bound to (the real one when 0 was asked for)."""
    return int(sockets[0].getsockname()[1])


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {shown}: the port is already in use (stop the other process or set IMMUNE_PORT)"
    if exc.errno == errno.EACCES:
        return f"cannot listen on {shown}: permission denied (ports below 1024 need privileges; set IMMUNE_PORT)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {shown}: the address is not on this machine (set IMMUNE_HOST)"
    return f"cannot listen on {shown}: {exc.strerror or exc}"
