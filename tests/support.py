"""Test helpers: a real server on an ephemeral port, tokens, and real Socket.IO clients."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from aiohttp import web

from client_sdk import ImmuneClient
from server.app import build_app
from server.auth import TokenAuthority
from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningServer:
    """A started server: its URL, settings and a way to mint tokens."""

    url: str
    settings: Settings
    app: web.Application
    runner: web.AppRunner
    authority: TokenAuthority

    def token(
        self, role: str = "admin", sub: str = "tester", ttl_s: float = 3600, rooms: list[str] | None = None
    ) -> str:
        """Mint a token the server accepts."""
        return self.authority.mint(sub, [role], ttl_s=ttl_s, rooms=rooms)

    def headers(self, role: str = "admin", sub: str = "tester") -> dict[str, str]:
        """Authorization header for REST calls."""
        return {"Authorization": f"Bearer {self.token(role, sub)}"}


async def start_server(settings: Settings) -> RunningServer:
    """Start build_app(settings) on a real socket bound to 127.0.0.1:0."""
    app = build_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningServer(f"http://127.0.0.1:{port}", settings, app, runner, TokenAuthority(settings))


def test_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a test server: its own data dir and a fixed secret."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "jwt_secret": "test-secret-" + "x" * 32,
        "port": 0,
        "log_level": "warning",
        "metrics_interval_s": 3600,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Recorder:
    """A python-socketio client that records every event it receives."""

    client: socketio.AsyncClient
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = field(default_factory=list)

    def record(self, name: str, payload: Any) -> None:
        self.events.append((name, payload))
        for check, future in list(self._waiters):
            if not future.done() and check():
                future.set_result(None)

    def of_type(self, name: str) -> list[dict[str, Any]]:
        """Envelopes received with this event name."""
        return [payload for event, payload in self.events if event == name]

    def names(self) -> list[str]:
        """Event names in arrival order."""
        return [event for event, _ in self.events]

    async def wait_for(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `check()` holds (bounded)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s; received {self.names()}")
            # Woken by the next recorded event, or re-checked shortly for state the client
            # changes without an event (for example `connected` after a close).
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((check, future))
            try:
                await asyncio.wait_for(future, min(remaining, 0.05))
            except TimeoutError:
                pass
            finally:
                self._waiters.remove((check, future))

    async def wait_event(self, name: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until `count` events named `name` have arrived."""
        await self.wait_for(lambda: len(self.of_type(name)) >= count, timeout)
        return self.of_type(name)

    async def call(self, event: str, data: Any = None, timeout: float = 5.0) -> Any:
        """Emit with an ack and return the ack."""
        return await self.client.call(event, {} if data is None else data, timeout=timeout)


async def connect_client(
    url: str,
    auth: dict[str, Any] | None = None,
    transports: list[str] | None = None,
    headers: dict[str, str] | None = None,
    wait_connected: bool = True,
    opened: list[socketio.AsyncClient] | None = None,
    http_session: aiohttp.ClientSession | None = None,
) -> Recorder:
    """Connect a real python-socketio client and record what it receives (noted in `opened` first).

    With `http_session` the client uses that session (closed by whoever made it, after the client).
    """
    client = socketio.AsyncClient(reconnection=False, http_session=http_session)
    if opened is not None:
        opened.append(client)
    recorder = Recorder(client)

    @client.on("*")
    async def on_any(event: str, payload: Any = None) -> None:
        recorder.record(event, payload)

    await client.connect(url, auth=auth, transports=transports or ["websocket"], headers=headers or {}, wait_timeout=5)
    if wait_connected:
        await recorder.wait_event("connected")
    return recorder


class Clients:
    """The python-socketio clients of one test: `close()` disconnects every one, even after a failure."""

    def __init__(self) -> None:
        self.opened: list[socketio.AsyncClient] = []

    async def connect(self, url: str, **kwargs: Any) -> Recorder:
        """`connect_client`, and the client is disconnected when the test ends."""
        return await connect_client(url, opened=self.opened, **kwargs)

    def adopt(self, client: socketio.AsyncClient) -> socketio.AsyncClient:
        """Note a client made elsewhere (a custom subclass or setup) so that `close()` disconnects it too."""
        self.opened.append(client)
        return client

    async def listen(self, server: RunningServer, *rooms: str) -> Recorder:
        """A viewer in these rooms, recording what it receives."""
        return await self.connect(server.url, auth={"token": server.token("viewer"), "rooms": list(rooms)})

    async def close(self) -> None:
        """Disconnect every client, ending any reconnect loop; one already gone still releases its HTTP session."""
        for client in reversed(self.opened):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown(), 10)  # disconnects, or stops reconnecting
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 10)
        self.opened.clear()

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SdkClients:
    """The SDK clients of one test: `close()` closes every one (connection and HTTP session), even after a failure."""

    def __init__(self) -> None:
        self.opened: list[ImmuneClient] = []

    def __call__(self, url: str, **kwargs: Any) -> ImmuneClient:
        """An `ImmuneClient(url, **kwargs)`, closed when the test ends (connect it, or use only its REST)."""
        client = ImmuneClient(url, **kwargs)
        self.opened.append(client)
        return client

    async def close(self) -> None:
        """Close every client (closing one already closed is a no-op)."""
        for client in reversed(self.opened):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 10)
        self.opened.clear()


async def connect_error(
    url: str, auth: dict[str, Any] | None = None, headers: dict[str, str] | None = None, query: str = ""
) -> Any:
    """Attempt a connect that the server should refuse; return the connect_error data."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []

    @client.on("connect_error")
    async def on_error(data: Any) -> None:
        errors.append(data)

    try:
        await client.connect(url + query, auth=auth, transports=["websocket"], headers=headers or {}, wait_timeout=5)
    except socketio.exceptions.ConnectionError:
        pass
    else:
        await client.disconnect()
        raise AssertionError("connection was accepted")
    assert errors, "no connect_error received"
    # The CONNECT_ERROR packet is {"message", "data"}; socket.io-client exposes `data` as err.data.
    packet = errors[0]
    assert isinstance(packet, dict) and "data" in packet, packet
    return packet["data"]


async def rest(
    server: RunningServer, method: str, path: str, role: str | None = "admin", **kwargs: Any
) -> tuple[int, Any, aiohttp.ClientResponse]:
    """One REST call; returns (status, parsed JSON body or text, response)."""
    headers = dict(kwargs.pop("headers", {}))
    if role is not None:
        headers.update(server.headers(role))
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, server.url + path, headers=headers, **kwargs) as response,
    ):
        text = await response.text()
        try:
            body: Any = await response.json(content_type=None) if text else None
        except ValueError:
            body = text
        return response.status, body, response


async def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll `check` until it holds (bounded), for state that no event announces."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`immune-core serve` as a child process, for restart and SIGKILL tests."""

    def __init__(self, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {}), "IMMUNE_JWT_SECRET": "test-secret-" + "x" * 32}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until /health answers."""
        with open(self.data_dir / "server.log", "ab") as log:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "server.cli",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            # The port listens from before start-up (so a busy port is refused early): wait for an answer.
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # answered (even a degraded 503 means it is serving)
            except OSError:
                time.sleep(0.05)
        self.kill()  # not left running (and reaped) when the test fails here
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
