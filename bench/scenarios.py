"""The fan-out scenarios: bursts over one room, filtered or spread over 100 rooms, and paced latency."""

from __future__ import annotations

import time
from typing import Any

from bench.peers import LoadGen, Peer, cpu_seconds, probe_latency, rss_bytes, settled_cpu

SCENARIOS: dict[str, dict[str, Any]] = {
    # name: auth variants cycled over the clients, rooms the events cycle over, and the share of
    # clients each event reaches (to know how many deliveries to wait for).
    "one room": {"variants": [{}], "rooms": ["agents"], "share": 1.0},
    "filtered (half subscribed to another type)": {
        "variants": [{"event_types": ["custom.bench"]}, {"event_types": ["custom.other"]}],
        "rooms": ["agents"],
        "share": 0.5,
    },
    "100 rooms": {
        "variants": [{"rooms": [f"agent:a{i}"]} for i in range(100)],
        "rooms": [f"agent:a{i}" for i in range(100)],
        "share": 0.01,
    },
}


def per_event_cost(peer: Peer, events: int, rooms: list[str]) -> float:
    """CPU seconds one broadcast costs with nobody connected: the HTTP request, JWT check and commit.

    Measured on the same process just before the clients connect, so the fan-out share of a
    burst can be told apart from the per-event API cost that Node's in-process emit does not pay.
    """
    assert peer.proc is not None
    count = max(events, 100)
    before = cpu_seconds(peer.proc.pid)
    peer.broadcast(count, rooms)
    return (cpu_seconds(peer.proc.pid) - before) / count


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median CPU per delivery, carrying every run's figure for the record."""
    ordered = sorted(runs, key=lambda r: r["cpu_us_per_delivery"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["cpu_us_per_delivery_runs"] = [r["cpu_us_per_delivery"] for r in runs]
    return chosen


def burst(peer_name: str, clients: int, events: int, scenario: str = "one room") -> dict[str, Any]:
    """Fan-out burst: `events` broadcasts over the scenario's rooms to `clients` connections."""
    spec = SCENARIOS[scenario]
    peer = Peer(peer_name)
    peer.start()
    assert peer.proc is not None
    try:
        api_cpu_per_event = per_event_cost(peer, events, spec["rooms"]) if peer_name == "immune-core" else 0.0
        rss_before = rss_bytes(peer.proc.pid)
        gen = LoadGen(peer, clients, spec["variants"])
        time.sleep(1.0)
        rss_after = rss_bytes(peer.proc.pid)
        cpu0 = cpu_seconds(peer.proc.pid)
        started = time.monotonic()
        gen.ask(f"count {round(events * clients * spec['share'])}")
        peer.broadcast(events, spec["rooms"])
        counted = gen.read()
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(peer.proc.pid) - cpu0
        closed_at = cpu_seconds(peer.proc.pid)
        gen.close()  # every client goes at once, as after a network blip
        disconnect_cpu = settled_cpu(peer.proc.pid) - closed_at
    finally:
        peer.stop()
    deliveries = counted["deliveries"]
    return {
        "server": peer_name,
        "scenario": scenario,
        "clients": clients,
        "events": events,
        "deliveries": deliveries,
        "complete": deliveries == counted["expected"],
        "server_cpu_s": round(cpu, 4),
        "cpu_us_per_delivery": round(cpu / max(deliveries, 1) * 1e6, 2),
        "api_cpu_ms_per_event": round(api_cpu_per_event * 1e3, 3),
        # Only meaningful where the fan-out is most of the CPU; with ~10 recipients per event the
        # subtraction is within the noise of the API cost itself.
        "fanout_cpu_us_per_delivery": (
            round((cpu - api_cpu_per_event * events) / max(deliveries, 1) * 1e6, 2)
            if cpu > 2 * api_cpu_per_event * events
            else None
        ),
        "deliveries_per_s": round(deliveries / max(elapsed, 1e-6)),
        "connect_s": gen.connected["seconds"],
        "memory_kb_per_connection": round((rss_after - rss_before) / clients / 1024, 1),
        "disconnect_cpu_us_per_connection": round(disconnect_cpu / clients * 1e6),
    }


def paced(peer_name: str, clients: int, rate: int, seconds: float) -> dict[str, Any]:
    """Paced latency: `rate` events/s to `clients` connections for `seconds`."""
    peer = Peer(peer_name)
    peer.start()
    try:
        gen = LoadGen(peer, clients)
        time.sleep(0.5)
        probes = probe_latency(gen, lambda: peer.broadcast(1), seconds, rate)
        gen.close()
    finally:
        peer.stop()
    return {
        "server": peer_name,
        "clients": clients,
        "rate": rate,
        **probes,
    }
