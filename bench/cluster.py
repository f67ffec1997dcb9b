"""Two-node benchmark: a cluster on PostgreSQL and Redis against one node serving the same clients.

    python -m bench.cluster [--clients 1000] [--events 200] [--seconds 5]

1. CPU per delivery: `clients` connections (bench/node/loadgen.mjs) receive `events` broadcasts.
   One node: all clients on it, all events posted to it. Two nodes: half the clients on each and
   the events posted alternately to each; each node's CPU time (from /proc) per delivery it made.
2. Publish-to-delivery latency: probes (20/s, send time in the payload) posted to node A, clients
   on node B (the event crosses Redis), against one node with the clients on it; then the same
   with redis-server stopped (node B delivers from the log, IMMUNE_LOG_FOLLOW_INTERVAL_S = 0.5 s).
Results go to bench/results/cluster.json and docs/scaling.md's measured section (docs/benchmarks.cluster.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peers import SECRET, LoadGen, Peer, cpu_seconds, free_port, pinned, probe_latency, wait_http
from tests.postgres import PostgresServer
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cluster.json"
SECTION = ROOT / "docs" / "benchmarks.cluster.md"


class Node(Peer):
    """One `immune-core serve` on PostgreSQL, optionally a node of a cluster (Redis)."""

    def __init__(self, database_url: str, redis_url: str | None, node_id: str, cpu: int) -> None:
        super().__init__("immune-core")
        self.database_url, self.redis_url, self.node_id, self.cpu = database_url, redis_url, node_id, cpu

    def start(self) -> None:
        from server.auth import TokenAuthority
        from server.config import Settings

        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="immune-bench-"))
        env = {
            **os.environ,
            "IMMUNE_JWT_SECRET": SECRET,
            "IMMUNE_LOG_LEVEL": "warning",
            "IMMUNE_DATABASE_URL": self.database_url,
            "IMMUNE_NODE_ID": self.node_id,
            "IMMUNE_MAX_CONNECTIONS_PER_USER": "1000000",
            "IMMUNE_CONNECTS_PER_MIN_PER_IP": "1000000",
            "IMMUNE_CONNECTS_BURST_PER_IP": "1000000",
            "IMMUNE_MAX_PENDING_SESSIONS_PER_IP": "1000000",
            "IMMUNE_REST_PER_MIN": "1000000",
            "IMMUNE_REST_BURST": "1000000",
            "IMMUNE_METRICS_INTERVAL_S": "3600",
        }
        if self.redis_url:
            env["IMMUNE_REDIS_URL"] = self.redis_url
        cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(self.tmp)]
        self.token = TokenAuthority(Settings(data_dir=self.tmp, jwt_secret=SECRET)).mint("bench", ["admin"], ttl_s=3600)
        self.auth = {"token": self.token, "rooms": ["agents"]}
        self.proc = subprocess.Popen([*pinned(self.cpu), *cmd], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        wait_http(self.url + "/ready")


def fresh_database(postgres: PostgresServer) -> None:
    postgres.reset()


def cpu_per_delivery(nodes: list[Node], clients: int, events: int) -> dict[str, Any]:
    """Clients split evenly over `nodes`, events posted round-robin to them; CPU per delivery per node."""
    gens = [LoadGen(node, clients // len(nodes)) for node in nodes]
    time.sleep(1.0)
    before = [cpu_seconds(node.proc.pid) for node in nodes if node.proc is not None]
    for gen in gens:
        gen.ask(f"count {events * (clients // len(nodes))}")
    started = time.monotonic()
    for i in range(events):
        nodes[i % len(nodes)].broadcast(1)
    counted = [gen.read() for gen in gens]
    elapsed = time.monotonic() - started
    after = [cpu_seconds(node.proc.pid) for node in nodes if node.proc is not None]
    for gen in gens:
        gen.close()
    per_node = []
    for node, cpu0, cpu1, count in zip(nodes, before, after, counted, strict=True):
        per_node.append(
            {
                "node": node.node_id,
                "clients": clients // len(nodes),
                "deliveries": count["deliveries"],
                "complete": count["deliveries"] == count["expected"],
                "cpu_s": round(cpu1 - cpu0, 4),
                "cpu_us_per_delivery": round((cpu1 - cpu0) / max(count["deliveries"], 1) * 1e6, 2),
            }
        )
    return {"events": events, "seconds": round(elapsed, 3), "nodes": per_node}


def latency(publisher: Node, receiver: Node, clients: int, seconds: float, rate: int = 20) -> dict[str, Any]:
    """Probes posted to `publisher`, delivered by `receiver` to `clients` connections: p50/p99 in ms."""
    gen = LoadGen(receiver, clients)
    time.sleep(0.5)
    probes = probe_latency(gen, lambda: publisher.broadcast(1), seconds, rate)
    gen.close()
    return probes


def run(clients: int, events: int, seconds: float) -> dict[str, Any]:
    postgres, redis = PostgresServer(), RedisServer()
    postgres.start()
    redis.start()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "clients": clients}
    try:
        single = Node(postgres.url, None, "single", cpu=0)
        single.start()
        try:
            results["single_cpu"] = cpu_per_delivery([single], clients, events)
            results["single_latency"] = latency(single, single, clients, seconds)
        finally:
            single.stop()
        print(json.dumps(results), flush=True)
        fresh_database(postgres)
        a, b = Node(postgres.url, redis.url, "node-a", cpu=0), Node(postgres.url, redis.url, "node-b", cpu=0)
        a.start()
        b.start()
        try:
            results["cluster_cpu"] = cpu_per_delivery([a, b], clients, events)
            results["cross_node_latency"] = latency(a, b, clients, seconds)
            redis.kill()
            time.sleep(4.0)  # the carriers notice (heartbeat) and the nodes read the log
            results["redis_down_latency"] = latency(a, b, clients, seconds)
        finally:
            a.stop()
            b.stop()
    finally:
        redis.stop()
        postgres.stop()
    results["load_average"] = round(os.getloadavg()[0], 1)
    return results


def write_section(results: dict[str, Any], command: str) -> None:
    single = results["single_cpu"]["nodes"][0]
    nodes = results["cluster_cpu"]["nodes"]
    worst = max(node["cpu_us_per_delivery"] for node in nodes)
    ratio = worst / max(single["cpu_us_per_delivery"], 1e-9)
    single_p99 = results["single_latency"]["p99"]
    cross_p99 = results["cross_node_latency"]["p99"]
    down_p99 = results["redis_down_latency"]["p99"]
    lines = [
        "## Two nodes (measured)",
        "",
        f"`{command}`, {results['date']}, load average {results['load_average']} at the end (2 cores shared with "
        "other work: figures are noisy). Both nodes pinned to CPU 0, the load generator to CPU 1, PostgreSQL and "
        f"Redis unpinned. {results['clients']} clients, {results['cluster_cpu']['events']} events of ~250 bytes.",
        "",
        "| | clients | deliveries | server CPU µs / delivery |",
        "|---|---|---|---|",
        f"| one node | {single['clients']} | {single['deliveries']} | {single['cpu_us_per_delivery']} |",
        *(
            f"| two nodes: {node['node']} | {node['clients']} | {node['deliveries']} | {node['cpu_us_per_delivery']} |"
            for node in nodes
        ),
        "",
        "| publish → delivery, ms | p50 | p99 | p99.9 |",
        "|---|---|---|---|",
        *(
            f"| {label} | {results[key]['p50']:.1f} | {results[key]['p99']:.1f} | {results[key]['p999']:.1f} |"
            for label, key in (
                ("one node (clients on the node that commits)", "single_latency"),
                ("two nodes: committed on A, delivered by B (via Redis)", "cross_node_latency"),
                ("two nodes, redis-server stopped (B reads the log)", "redis_down_latency"),
            )
        ),
        "",
        "Targets:",
        f"- each node's CPU per delivery within 1.2x one node's: worst node {ratio:.2f}x "
        f"({'met' if ratio <= 1.2 else 'not met'}).",
        f"- cross-node p99 at most 10 ms above one node's: {cross_p99 - single_p99:+.1f} ms "
        f"({'met' if cross_p99 - single_p99 <= 10 else 'not met'}).",
        f"- Redis stopped, p99 under 1 s: {down_p99:.0f} ms ({'met' if down_p99 < 1000 else 'not met'}).",
        "",
    ]
    SECTION.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    assert shutil.which("node"), "Node.js runs the load generator"
    results = run(args.clients, args.events, args.seconds)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    command = "make bench" if len(sys.argv) == 1 else "python -m bench.cluster " + " ".join(sys.argv[1:])
    write_section(results, command)
    print(SECTION.read_text())


if __name__ == "__main__":
    main()
