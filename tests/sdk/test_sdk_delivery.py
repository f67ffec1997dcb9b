"""The SDK never loses an event silently: bounded buffers with backpressure and resume, bad events reported.

Also what a Python user expects first: the package's exports, client-side validation errors, and a
client that says why it cannot connect while it retries.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

import client_sdk
from client_sdk import Event, EventDecodeError, ImmuneClient, ServerUnreachable, ValidationFailed
from tests.peer import ScriptedPeer, envelope
from tests.support import RunningServer, free_port, wait_until


def test_the_package_exports_the_client_the_event_and_every_error() -> None:
    for name in client_sdk.__all__:
        assert getattr(client_sdk, name) is not None, name
    assert issubclass(ValidationFailed, client_sdk.ApiError) and issubclass(EventDecodeError, client_sdk.ImmuneError)
    assert {"ImmuneClient", "Event", "ConnectRefused", "UnknownRoom", "ValidationFailed"} <= set(client_sdk.__all__)


async def test_client_side_validation_raises_the_documented_error(server: RunningServer) -> None:
    async with ImmuneClient(server.url, token=server.token()) as client:
        with pytest.raises(ValidationFailed) as raised:
            await client.rest.alert("loud", "disk almost full")
        assert raised.value.status == 422 and raised.value.problem["code"] == "invalid_request"
        assert [error["loc"] for error in raised.value.errors] == [["level"]]
        with pytest.raises(ValidationFailed) as raised:
            await client.rest.consensus.propose("scale_up", threshold=2.0)
        assert raised.value.errors[0]["loc"] == ["threshold"]


async def test_an_unreachable_server_is_logged_with_the_reason_while_retrying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = ImmuneClient(url, backoff_initial_s=0.05, backoff_max_s=0.1)
    caplog.set_level(logging.WARNING, logger="immune.client")
    try:
        with pytest.raises(ServerUnreachable, match="Connect call failed") as raised:
            await client.connect(timeout_s=2)
        assert isinstance(raised.value, TimeoutError)  # code that caught the old bare TimeoutError still works
    finally:
        await client.close()
    retries = [r.getMessage() for r in caplog.records if r.name == "immune.client"]
    assert len(retries) >= 2, retries
    assert all(f"cannot connect to {url}" in m and "Connect call failed" in m and "retrying" in m for m in retries)


async def broadcast_many(client: ImmuneClient, count: int, kind: str = "custom.n") -> list[int]:
    ids = []
    for i in range(count):
        accepted = await client.rest.ws.broadcast(kind, {"i": i}, room="agents")
        ids.append(accepted.event_id)
    return ids


async def test_a_full_buffer_disconnects_then_resumes_after_the_last_event_kept(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="immune.client")
    admin = ImmuneClient(server.url, token=server.token())
    client = ImmuneClient(
        server.url, token=server.token(), rooms=["agents"], max_buffered_events=5, backoff_initial_s=0.05
    )
    try:
        await client.connect()
        ids = await broadcast_many(admin, 40)
        # Nobody reads: the buffers fill, the client steps off the connection instead of dropping events.
        await wait_until(lambda: not client.connected)
        assert client.connects == 1 and client.last_event_id is not None and client.last_event_id < ids[0]
        assert any("behind" in r.getMessage() for r in caplog.records)
        assert client.received_event_id is not None and client.received_event_id < ids[-1]
        iterator = client.events()
        received = [(await asyncio.wait_for(anext(iterator), 10)).event_id for _ in ids]
        assert received == ids  # every event, in order, none twice
        assert client.connects >= 2 and client.connection is not None and client.connection.recovered is True
        assert client.last_event_id == ids[-1]
    finally:
        await client.close()
        await admin.close()


async def test_handlers_only_get_every_event_without_a_buffer_or_a_disconnect(server: RunningServer) -> None:
    admin = ImmuneClient(server.url, token=server.token())
    client = ImmuneClient(server.url, token=server.token(), rooms=["agents"], max_buffered_events=5)
    handled: list[int] = []

    @client.on("custom.n")
    async def record(event: Event) -> None:
        assert event.event_id is not None
        handled.append(event.event_id)

    try:
        await client.connect()
        ids = await broadcast_many(admin, 30)
        await wait_until(lambda: handled == ids)
        assert client.connects == 1 and client.connected
        assert client.last_event_id == ids[-1]  # the handlers had them all
        # The bound is what this test is about and the SDK has no public view of its buffer's size.
        assert client._buffer.qsize() <= 5 and client.buffer_events is False
    finally:
        await client.close()
        await admin.close()


async def test_a_bad_event_is_raised_in_its_place_and_last_event_id_waits_for_it(peer: ScriptedPeer) -> None:
    async with ImmuneClient(peer.url, rooms=["agents"]) as client:
        # A frame that does not match the protocol (agent_created without an agent), as a buggy or
        # newer server could send (ours checks a standard type's data); it arrives between two good events.
        first, bad_id, after = 1, 2, 3
        await peer.send("custom.n", envelope(first, "custom.n", {"i": 0}))
        await peer.send("agent_created", envelope(bad_id, "agent_created", {"bogus": 1}))
        await peer.send("custom.n", envelope(after, "custom.n", {"i": 1}))
        await wait_until(lambda: client.received_event_id == after)
        iterator = client.events()
        assert (await asyncio.wait_for(anext(iterator), 5)).event_id == first
        assert client.last_event_id == first
        with pytest.raises(EventDecodeError) as raised:
            await asyncio.wait_for(anext(iterator), 5)
        assert raised.value.event_id == bad_id and raised.value.event_type == "agent_created"
        assert raised.value.payload["data"] == {"bogus": 1} and "agent_id" in str(raised.value)
        assert client.last_event_id == bad_id  # reported, so now it counts as consumed
        assert (await asyncio.wait_for(anext(client.events()), 5)).event_id == after


async def test_a_bad_event_goes_to_on_error_when_given(peer: ScriptedPeer) -> None:
    reported: list[EventDecodeError] = []
    handled: list[int] = []
    client = ImmuneClient(peer.url, rooms=["agents"], on_error=reported.append)

    @client.on("*")
    def record(event: Event) -> None:
        assert event.event_id is not None
        handled.append(event.event_id)

    async with client:
        # Our server's event data is always an object (custom events included); a buggy server's may not be.
        await peer.send("custom.x", envelope(10**9, "custom.x", ["not", "an", "object"]))
        await wait_until(lambda: len(reported) == 1)
    assert reported[0].event_id == 10**9 and handled == []
    assert client.last_event_id == 10**9


async def test_closing_while_a_connect_is_under_way_releases_its_http_session() -> None:
    # A server that completes TCP handshakes (the kernel's backlog) and never answers: the attempt
    # is still waiting for the WebSocket upgrade when close() runs.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        client = ImmuneClient(f"http://127.0.0.1:{silent.getsockname()[1]}", backoff_initial_s=0.05)
        with pytest.raises(ServerUnreachable):
            await client.connect(timeout_s=0.5)
        await client.close()
    # An HTTP session left open is a ResourceWarning (an error here) when the garbage collection after
    # each test (tests/conftest.py) finds it: the test then fails at teardown.
