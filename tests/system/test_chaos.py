"""Chaos: SIGKILLed servers and cut networks; the SDK ends with exactly the log's events (SPEC §4)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from client_sdk.client import Event
from tests.proxy import CuttableProxy
from tests.support import ROOT, SdkClients, ServerProcess, wait_until
from tests.system.test_process import token_for

AGENT = {
    "agent_type": "b_cell",
    "status": "active",
    "health": 1.0,
    "energy": 100.0,
    "metadata": {},
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z",
}


class Producer:
    """Posts a steady stream of events straight to the server, retrying while it is down."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.accepted = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=5)) as session:
            n = 0
            while not self._stop.is_set():
                n += 1
                # Three kinds: what the client follows, same room but filtered out, another room.
                bodies = [
                    {"event_type": "agent_created", "room": "agents", "data": {**AGENT, "agent_id": f"a{n}"}},
                    {"event_type": "custom.noise", "room": "agents", "data": {"n": n}},
                    {"event_type": "custom.other", "room": "tasks", "data": {"n": n}},
                ]
                for body in bodies:
                    try:
                        async with session.post(f"{self.url}/ws/broadcast", json=body) as response:
                            if response.status == 202:
                                self.accepted += 1
                    except (aiohttp.ClientError, TimeoutError):
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()


async def log_events(url: str, token: str, rooms: str, event_types: str) -> list[int]:
    """Every id the log holds for this selection, paging through GET /events."""
    ids: list[int] = []
    after = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            params = {"after": after, "rooms": rooms, "event_types": event_types, "limit": 1000}
            async with session.get(f"{url}/events", params=params) as response:
                page = await response.json()
            ids.extend(item["event_id"] for item in page["items"])
            if page["next_after"] >= page["head"]:
                return ids
            after = page["next_after"]


async def test_sdk_survives_sigkills_and_network_cuts_with_exactly_the_logged_events(
    tmp_path: Path, sdk_clients: SdkClients
) -> None:
    server = ServerProcess(tmp_path)
    await asyncio.to_thread(server.start)
    token = token_for(tmp_path)
    proxy = CuttableProxy(server.port)
    try:
        await proxy.start()
        received: list[int] = []
        client = sdk_clients(
            proxy.url,
            token=token,
            rooms=["agents"],
            event_types=["agent_created"],
            backoff_initial_s=0.05,
            backoff_max_s=0.5,
        )

        @client.on("*")
        def record(event: Event) -> None:
            assert event.event_id is not None
            received.append(event.event_id)

        # The client connects first: a fresh connection (no last_event_id) sees only what follows it.
        await client.connect()
        producer = Producer(server.url, token)
        producing = asyncio.create_task(producer.run())
        try:
            for step in ["cut", "cut", "kill", "cut", "kill", "cut"]:
                # Wait for the connection the last step forced, then for live events on it (events
                # already buffered from the dead connection must not count as "reconnected").
                connects = client.connects
                await wait_until(lambda connects=connects: client.connected and client.connects >= connects, timeout=20)
                seen = len(received)
                await wait_until(lambda seen=seen: len(received) >= seen + 5, timeout=20)
                before = client.connects
                if step == "cut":
                    proxy.cut()
                else:
                    await asyncio.to_thread(server.kill)
                    await asyncio.sleep(0.2)
                    await asyncio.to_thread(server.start)
                await wait_until(lambda before=before: client.connects > before, timeout=20)
            seen = len(received)
            await wait_until(lambda: len(received) >= seen + 5, timeout=20)
        finally:
            producer.stop()
            await producing
        expected = await log_events(server.url, token, "agents", "agent_created")
        await wait_until(lambda: client.last_event_id == expected[-1], timeout=20)
        await client.close()
    finally:
        await proxy.close()
        await asyncio.to_thread(server.stop)

    assert client.connects >= 7, "every cut and kill forces a reconnect"
    assert proxy.cuts >= 4
    assert received == expected
    assert len(expected) > 30


async def test_listen_cli_prints_json_lines_across_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    await asyncio.to_thread(server.start)
    token = token_for(tmp_path)
    listener = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "listen",
        "--url",
        server.url,
        "--room",
        "agents",
        "--count",
        "4",
        cwd=ROOT,
        env={**os.environ, "IMMUNE_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert listener.stdout is not None
    headers = {"Authorization": f"Bearer {token}"}

    async def post(n: int) -> int:
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.post(
                f"{server.url}/ws/broadcast", json={"event_type": "custom.cli", "room": "agents", "data": {"n": n}}
            ) as response,
        ):
            assert response.status == 202
            return int((await response.json())["event_id"])

    async def line() -> dict[str, Any]:
        raw = await asyncio.wait_for(listener.stdout.readline(), 20)  # type: ignore[union-attr]
        assert raw, (await listener.stderr.read()).decode()  # type: ignore[union-attr]
        parsed: dict[str, Any] = orjson.loads(raw)
        return parsed

    try:
        # The listener connects in the background; wait until the server counts it.
        async with aiohttp.ClientSession(headers=headers) as session:

            async def listening() -> bool:
                async with session.get(f"{server.url}/ws/stats") as response:
                    return int((await response.json())["active_connections"]) == 1

            for _ in range(200):
                if await listening():
                    break
                await asyncio.sleep(0.05)
        ids = [await post(1), await post(2)]
        first = [await line(), await line()]
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.start)
        ids += [await post(3), await post(4)]
        second = [await line(), await line()]
        assert [event["event_id"] for event in first + second] == ids
        assert [event["data"]["n"] for event in first + second] == [1, 2, 3, 4]
        assert all(event["event_type"] == "custom.cli" and event["room"] == "agents" for event in first + second)
        assert await asyncio.wait_for(listener.wait(), 20) == 0
    finally:
        if listener.returncode is None:
            listener.kill()
            await listener.wait()
        await asyncio.to_thread(server.stop)
