"""ImmuneClient: a Socket.IO client that never silently loses an event.

It owns its reconnect loop instead of python-socketio's, because every attempt must send fresh
`auth`: a token from `token_provider`, the rooms and filter as they are now, and the id of the
last event received, so the server replays exactly what was missed. Events are delivered once,
in id order (duplicates from a resume are dropped); when the server cannot recover a gap,
`on_gap` tells the application to refetch state.

Received events go through one bounded, ordered pipeline: an inbox that a delivery task drains
into the `on()` handlers and, when the application iterates `events()`, into a bounded buffer.
`last_event_id` only advances once the application has the event. When the application falls
behind and the inbox is full, the client closes the connection, waits for the application to
catch up and resumes after the last event it kept; nothing is dropped to make room.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp
import socketio
from pydantic import BaseModel

from client_sdk.errors import (
    ConnectRefused,
    EventDecodeError,
    ImmuneError,
    NotConnected,
    ServerUnreachable,
    request_error,
)
from client_sdk.protocol import (
    Ack,
    AnyEnvelope,
    ConnectedData,
    DisconnectedData,
    DisconnectReason,
    Envelope,
    FilterData,
    InfoData,
    PongData,
    RoomsData,
    parse_event_data,
)
from client_sdk.rest import RestClient

log = logging.getLogger("immune.client")

Event = Envelope[Any]
"""A received event: the envelope with `data` parsed into its protocol model (dict for custom types)."""

Handler = Callable[[Event], Awaitable[None] | None]
GapHandler = Callable[[ConnectedData], Awaitable[None] | None]
ErrorHandler = Callable[[EventDecodeError], Awaitable[None] | None]
TokenProvider = Callable[[], Awaitable[str] | str]
M = TypeVar("M", bound=BaseModel)

# Refusals that retrying with the same credentials cannot fix.
FATAL_REFUSALS = {"unauthorized", "forbidden", "invalid_request", "origin_not_allowed"}


class _Resumed:
    """Pipeline marker: after the events before it, the application is at the server's `head`."""

    def __init__(self, head: int) -> None:
        self.head = head


_Item = Event | EventDecodeError | _Resumed


class ImmuneClient:
    """Connect, follow rooms, resume after any disconnect, and call the REST API."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_provider: TokenProvider | None = None,
        rooms: Iterable[str] = (),
        event_types: Iterable[str] = (),
        client_id: str | None = None,
        last_event_id: int | None = None,
        epoch: str | None = None,
        on_gap: GapHandler | None = None,
        on_error: ErrorHandler | None = None,
        transports: Iterable[str] = ("websocket",),
        reconnect: bool = True,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 30.0,
        request_timeout_s: float = 10.0,
        max_buffered_events: int = 10_000,
        buffer_events: bool | None = None,
        keepalive_s: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._static_token = token
        self._token_provider = token_provider
        self.rooms: list[str] = list(dict.fromkeys(rooms))
        self.event_types: list[str] = list(dict.fromkeys(event_types))
        self.client_id = client_id
        self.last_event_id = last_event_id
        self.epoch = epoch
        self.on_gap = on_gap
        self.on_error = on_error
        self.transports = list(transports)
        self.reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.keepalive_s = keepalive_s
        self.connection: ConnectedData | None = None
        self.last_disconnect: DisconnectedData | None = None
        self.connects = 0
        self.duplicates_dropped = 0
        self.rest = RestClient(self.url, self._current_token, timeout_s=request_timeout_s)
        self._handlers: dict[str, list[Handler]] = {}
        self.max_buffered_events = max_buffered_events
        # None: decided by use (see _should_buffer); False: on() handlers only; True: events() too.
        self.buffer_events = buffer_events
        # Highest id taken into the pipeline: duplicates are dropped against it, resumes start after it.
        self._received_id = last_event_id
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_buffered_events)
        self._buffer: asyncio.Queue[_Item] = asyncio.Queue(maxsize=max_buffered_events)
        self._iterating = False
        self._overflowed = False
        self._caught_up = asyncio.Event()
        self._delivery: asyncio.Task[None] | None = None
        self.last_failure: str | None = None
        self._sio: socketio.AsyncClient | None = None
        self._ready = asyncio.Event()
        self._lost = asyncio.Event()
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._first_result: asyncio.Future[None] | None = None
        self._fail_fast = False
        self._token: str | None = token

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ImmuneClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self, timeout_s: float = 15.0, *, retry: bool = True) -> None:
        """Connect (and keep reconnecting in the background); returns once `connected` arrived.

        Raises ConnectRefused when the server refuses the credentials, and ServerUnreachable (naming
        the last failure) when no connection is up within `timeout_s`. With `retry=False` the first
        failed attempt raises at once instead of being retried.
        """
        if self._runner is None:
            self._first_result = asyncio.get_running_loop().create_future()
            self._fail_fast = not retry
            self._delivery = asyncio.create_task(self._deliver(), name="immune-client-delivery")
            self._runner = asyncio.create_task(self._run(), name="immune-client")
        assert self._first_result is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._first_result), timeout_s)
        except ImmuneError:
            raise
        except TimeoutError:
            why = self.last_failure or "no answer"
            raise ServerUnreachable(f"no connection to {self.url} within {timeout_s:g} s: {why}") from None

    async def close(self) -> None:
        """Disconnect for good and release the HTTP session."""
        self._closing = True
        self._lost.set()
        if self._sio is not None and self._sio.connected:
            with contextlib.suppress(Exception):
                await self._sio.disconnect()
        for task in (self._runner, self._delivery):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = self._delivery = None
        await self._teardown()  # an attempt cancelled while connecting leaves its HTTP session open
        await self.rest.close()

    @property
    def connected(self) -> bool:
        """True while a connection is up and `connected` has been received."""
        return self._ready.is_set()

    async def wait_connected(self, timeout_s: float = 15.0) -> ConnectedData:
        """Wait until (re)connected; returns the `connected` data."""
        await asyncio.wait_for(self._ready.wait(), timeout_s)
        assert self.connection is not None
        return self.connection

    async def _run(self) -> None:
        delay = self.backoff_initial_s
        while not self._closing:
            try:
                await self._connect_once()
            except ConnectRefused as exc:
                self.last_failure = str(exc)
                if (exc.code in FATAL_REFUSALS and self._token_provider is None) or self._fail_fast:
                    self._settle_first(exc)
                    return
                log.warning("connect to %s refused (%s); retrying in up to %.1f s", self.url, exc, delay)
            except (socketio.exceptions.ConnectionError, OSError, TimeoutError) as exc:
                self.last_failure = failure_reason(exc)
                if not self.reconnect or self._fail_fast:
                    self._settle_first(ServerUnreachable(f"cannot connect to {self.url}: {self.last_failure}"))
                    return
                log.warning("cannot connect to %s (%s); retrying in up to %.1f s", self.url, self.last_failure, delay)
            else:
                delay = self.backoff_initial_s
                self._fail_fast = False
                await self._keep_alive()
                await self._teardown()
                if self._closing or not self.reconnect:
                    return
                if self.last_disconnect and self.last_disconnect.reason == DisconnectReason.KICKED:
                    log.warning("kicked by the server; not reconnecting")
                    return
                if self._overflowed:
                    await self._wait_caught_up()
                    continue  # resume at once: the server kept everything after the last event received
            # Full jitter: spread a fleet's reconnects after a server restart.
            await asyncio.sleep(random.uniform(0, delay))
            delay = min(delay * 2, self.backoff_max_s)

    async def _keep_alive(self) -> None:
        # The server ends connections that send nothing for IMMUNE_IDLE_TIMEOUT_S (default 300 s).
        while not self._lost.is_set():
            try:
                await asyncio.wait_for(self._lost.wait(), self.keepalive_s)
            except TimeoutError:
                with contextlib.suppress(Exception):
                    await self.ping()

    async def _connect_once(self) -> None:
        self._ready.clear()
        self._lost.clear()
        sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        refused: list[Any] = []
        sio.on("*", self._on_raw_event)
        sio.on("connect_error", lambda data=None: refused.append(data))
        sio.on("disconnect", self._on_transport_lost)
        self._sio = sio
        self._token = await self._fresh_token()
        try:
            await sio.connect(
                self.url, auth=self._auth(), transports=self.transports, wait_timeout=self.request_timeout_s
            )
        except socketio.exceptions.ConnectionError:
            await self._teardown()
            error = refused[0] if refused else None
            if isinstance(error, dict) and isinstance(error.get("data"), dict) and "code" in error["data"]:
                raise ConnectRefused(str(error["data"]["code"]), str(error["data"].get("message", ""))) from None
            raise
        try:
            await asyncio.wait_for(self._ready.wait(), self.request_timeout_s)
        except TimeoutError:
            await self._teardown()
            raise

    async def _teardown(self) -> None:
        self._ready.clear()
        sio, self._sio = self._sio, None
        if sio is not None:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            http = sio.eio.http  # a failed connect leaves Engine.IO's session open
            if http is not None and not http.closed:
                await http.close()

    def _auth(self) -> dict[str, Any]:
        auth: dict[str, Any] = {"rooms": self.rooms, "event_types": self.event_types}
        if self._token:
            auth["token"] = self._token
        if self.client_id:
            auth["client_id"] = self.client_id
        if self._received_id is not None:
            auth["last_event_id"] = self._received_id
            if self.epoch:
                auth["epoch"] = self.epoch
        return auth

    async def _fresh_token(self) -> str | None:
        if self._token_provider is None:
            return self._static_token
        value = self._token_provider()
        return await value if inspect.isawaitable(value) else value

    async def _current_token(self) -> str | None:
        if self._token is None:
            self._token = await self._fresh_token()
        return self._token

    def _settle_first(self, error: BaseException | None) -> None:
        if self._first_result is not None and not self._first_result.done():
            if error is None:
                self._first_result.set_result(None)
            else:
                self._first_result.set_exception(error)

    async def _on_transport_lost(self, reason: Any = None) -> None:
        self._ready.clear()
        self._lost.set()

    # ------------------------------------------------------------------ events

    async def _on_raw_event(self, name: str, payload: Any = None) -> None:
        # Runs in one task per message; everything up to the inbox is synchronous, so order holds.
        if not isinstance(payload, dict):
            return
        if name == "connected":
            await self._on_connected(ConnectedData.model_validate(payload.get("data")))
            return
        if name == "disconnected":
            self.last_disconnect = DisconnectedData.model_validate(payload.get("data"))
            return
        event_id = payload.get("event_id")
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            event_id = None
        if event_id is not None and self._received_id is not None and event_id <= self._received_id:
            self.duplicates_dropped += 1
            return
        if self._overflowed:
            return  # the connection is closing; the resume asks for this event again
        item: _Item
        try:
            envelope = AnyEnvelope.model_validate(payload)
            item = Envelope[Any](**{**envelope.__dict__, "data": parse_event_data(name, envelope.data)})
        except (ValueError, TypeError) as exc:
            item = EventDecodeError(name, event_id, payload, str(exc))
        if not self._offer(item):
            return
        if event_id is not None:
            self._received_id = event_id

    def _offer(self, item: _Item) -> bool:
        """Put `item` in the inbox, or (full) close the connection to resume once the application caught up."""
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            self._overflowed = True
            self._caught_up.clear()
            log.warning(
                "the application is %d events behind: disconnecting until it catches up, then resuming after event %s",
                self._inbox.qsize() + self._buffer.qsize(),
                self._received_id,
            )
            self._lost.set()
            return False
        return True

    async def _wait_caught_up(self) -> None:
        while self._inbox.qsize() > self.max_buffered_events // 2:
            self._caught_up.clear()
            await self._caught_up.wait()
        self._overflowed = False

    async def _on_connected(self, data: ConnectedData) -> None:
        self.connection = data
        self.connects += 1
        self.rooms = list(data.rooms)
        self.event_types = list(data.event_types)
        gap = data.recovered is False
        if data.recovered is not True:
            # Nothing was replayed: continue from the server's head (after refetching, on a gap).
            self._received_id = data.last_event_id
            if self._inbox.empty() and self._buffer.empty():
                self._consumed(_Resumed(data.last_event_id))
            elif not self._inbox.full():  # after the events still to deliver (when full, the next one moves it on)
                self._inbox.put_nowait(_Resumed(data.last_event_id))
        self.epoch = data.epoch
        self._ready.set()
        self._settle_first(None)
        if gap and self.on_gap is not None:
            result = self.on_gap(data)
            if inspect.isawaitable(result):
                await result

    async def _deliver(self) -> None:
        """The one consumer of the inbox: handlers first, then the `events()` buffer, in order."""
        while True:
            item = await self._inbox.get()
            if self._inbox.qsize() <= self.max_buffered_events // 2:
                self._caught_up.set()
            buffered = self._should_buffer()
            if isinstance(item, EventDecodeError):
                await self._report(item, raised_later=buffered and (self._iterating or not self._handlers))
            elif not isinstance(item, _Resumed):
                await self._run_handlers(item)
            if not buffered or (self._handlers and not self._iterating):
                self._consumed(item)  # the handlers had it (or nothing else will)
            if buffered:
                await self._buffer.put(item)  # blocks while the application is not reading: backpressure

    def _should_buffer(self) -> bool:
        """Whether events() will want this item: yes once it iterates, no for an application of handlers only."""
        if self.buffer_events is not None:
            return self.buffer_events
        if self._iterating or not self._handlers or not self._buffer.full():
            return True
        # A full buffer nobody reads, and handlers that received every event in it: handlers only.
        self.buffer_events = False
        log.warning(
            "events() was never read, so the client stops buffering for it (the on() handlers got every event);"
            " pass buffer_events=True to keep them or buffer_events=False to never buffer"
        )
        while not self._buffer.empty():
            self._consumed(self._buffer.get_nowait())
        return False

    async def _report(self, error: EventDecodeError, *, raised_later: bool) -> None:
        if self.on_error is not None:
            try:
                result = self.on_error(error)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("on_error hook failed")
        elif not raised_later:
            log.error("%s", error)

    async def _run_handlers(self, event: Event) -> None:
        for handler in [*self._handlers.get(event.event_type, []), *self._handlers.get("*", [])]:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("handler for %s failed", event.event_type)

    def _consumed(self, item: _Item) -> None:
        position = item.head if isinstance(item, _Resumed) else item.event_id
        if position is not None and (self.last_event_id is None or position > self.last_event_id):
            self.last_event_id = position

    @property
    def received_event_id(self) -> int | None:
        """The highest event id received (taken into the buffers); `last_event_id` is what the application has."""
        return self._received_id

    def on(self, event_type: str = "*") -> Callable[[Handler], Handler]:
        """Register a handler for one event type (or every type with "*")."""

        def register(handler: Handler) -> Handler:
            self._handlers.setdefault(event_type, []).append(handler)
            return handler

        return register

    async def events(self) -> AsyncIterator[Event]:
        """Every received event, in order, across reconnects.

        An event that cannot be decoded raises EventDecodeError here, in its place in the order (unless
        an `on_error` hook took it); call `events()` again to continue after it.
        """
        if self.buffer_events is False:
            raise RuntimeError("this client delivers to on() handlers only (buffer_events=False)")
        self._iterating = True
        while True:
            item = await self._buffer.get()
            self._consumed(item)
            if isinstance(item, _Resumed):
                continue
            if isinstance(item, EventDecodeError):
                if self.on_error is None:
                    raise item
                continue
            yield item

    # ------------------------------------------------------------------ requests

    async def _request(self, name: str, payload: dict[str, Any], model: type[M]) -> M:
        sio = self._sio
        if sio is None or not self._ready.is_set():
            raise NotConnected(f"cannot send {name}: not connected")
        raw = await sio.call(name, payload, timeout=self.request_timeout_s)
        ack = Ack.model_validate(raw)
        if not ack.success:
            code = ack.error.code.value if ack.error else "internal_error"
            raise request_error(code, ack.message, ack.error.details if ack.error else None)
        return model.model_validate(ack.data or {})

    async def ping(self) -> PongData:
        """Round trip to the server."""
        return await self._request("ping", {}, PongData)

    async def join(self, room: str) -> RoomsData:
        """Join a room; kept across reconnects."""
        result = await self._request("join", {"room": room}, RoomsData)
        self.rooms = list(result.rooms)
        return result

    async def leave(self, room: str) -> RoomsData:
        """Leave a room."""
        result = await self._request("leave", {"room": room}, RoomsData)
        self.rooms = list(result.rooms)
        return result

    async def subscribe(self, *event_types: str) -> FilterData:
        """Add types to the filter; kept across reconnects."""
        result = await self._request("subscribe", {"event_types": list(event_types)}, FilterData)
        self.event_types = list(result.event_types)
        return result

    async def unsubscribe(self, *event_types: str) -> FilterData:
        """Remove types from the filter (an empty filter means every type)."""
        result = await self._request("unsubscribe", {"event_types": list(event_types)}, FilterData)
        self.event_types = list(result.event_types)
        return result

    async def info(self) -> InfoData:
        """What the server knows about this connection."""
        return await self._request("info", {}, InfoData)


def failure_reason(exc: BaseException) -> str:
    """Why a connect failed, from the innermost cause (python-socketio only says "Connection error")."""
    reason = str(exc) or type(exc).__name__
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError | aiohttp.ClientError) and str(cause):
            reason = str(cause)
            if isinstance(cause, aiohttp.ClientError):
                break  # aiohttp names the host and the OS error in one sentence
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, TimeoutError) and reason == "TimeoutError":
        return "timed out"
    return reason
