"""SIGKILL in the middle of group commits loses no acknowledged event and leaves none half-written."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp

from tests.support import Clients, Recorder, ServerProcess
from tests.system.test_process import token_for

PRODUCERS = 6


class Stream:
    """Producers posting single events and small batches as fast as the server takes them."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.acked: dict[int, tuple[int, int]] = {}
        """event_id → (producer, sequence) of every event that got a 202."""
        self.stopped = asyncio.Event()

    async def produce(self, producer: int) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        timeout = aiohttp.ClientTimeout(total=10)
        seq = 0
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            while not self.stopped.is_set():
                items = [{"p": producer, "s": seq + k} for k in range(1 if producer % 2 else 5)]
                body: dict[str, object] = (
                    {"event_type": "custom.d", "room": "agents", "data": items[0]}
                    if len(items) == 1
                    else {"events": [{"event_type": "custom.d", "room": "agents", "data": item} for item in items]}
                )
                seq += len(items)
                try:
                    async with session.post(f"{self.url}/ws/broadcast", json=body) as response:
                        if response.status != 202:
                            continue
                        answer = await response.json()
                except (aiohttp.ClientError, TimeoutError):
                    return  # the server died under us: whatever was not answered was not promised
                ids = answer["event_ids"] if "event_ids" in answer else [answer["event_id"]]
                for event_id, item in zip(ids, items, strict=True):
                    self.acked[event_id] = (item["p"], item["s"])


async def all_logged(url: str, token: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    after = 0
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        while True:
            async with session.get(f"{url}/events", params={"after": after, "limit": 1000}) as response:
                page = await response.json()
            items.extend(page["items"])
            if page["next_after"] >= page["head"]:
                return items
            after = page["next_after"]


async def test_sigkill_during_a_steady_stream_loses_no_acknowledged_event(
    tmp_path: Path, socket_clients: Clients
) -> None:
    server = ServerProcess(tmp_path, env={"IMMUNE_REST_BURST": "100000", "IMMUNE_REST_PER_MIN": "1000000"})
    await asyncio.to_thread(server.start)
    token = token_for(tmp_path)
    stream = Stream(server.url, token)
    producers = [asyncio.create_task(stream.produce(n)) for n in range(PRODUCERS)]
    try:
        for _ in range(400):
            if len(stream.acked) >= 300:
                break
            await asyncio.sleep(0.05)
        assert len(stream.acked) >= 300, "the stream did not get going"
        await asyncio.to_thread(server.kill)  # mid-stream: batches are being written right now
        stream.stopped.set()
        await asyncio.gather(*producers)
        await asyncio.to_thread(server.start)

        logged = await all_logged(server.url, token)
        ids = [int(item["event_id"]) for item in logged]  # type: ignore[call-overload]
        assert ids == list(range(1, len(ids) + 1)), "dense: no id lost or half-written"
        by_id = {int(item["event_id"]): item for item in logged}  # type: ignore[call-overload]
        for event_id, (producer, seq) in stream.acked.items():
            assert by_id[event_id]["data"] == {"p": producer, "s": seq}, f"acknowledged event {event_id} lost"
        for item in logged:
            assert item["event_type"] == "custom.d" and item["room"] == "agents"

        # A client resuming from 0 gets exactly the log's selection, in order.
        rec: Recorder = await socket_clients.connect(
            server.url, auth={"token": token, "rooms": ["agents"], "last_event_id": 0}
        )
        await rec.wait_for(lambda: sum(1 for name, _ in rec.events if name == "custom.d") >= len(ids), timeout=30)
        assert [payload["event_id"] for name, payload in rec.events if name == "custom.d"] == ids
        await rec.client.disconnect()
    finally:
        stream.stopped.set()
        await asyncio.to_thread(server.stop)


async def test_a_fatal_signal_leaves_a_last_line_in_the_log(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    await asyncio.to_thread(server.start)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGBUS)
    await asyncio.to_thread(server.proc.wait, 10)
    log = (tmp_path / "server.log").read_text()
    assert "Fatal Python error: Bus error" in log
