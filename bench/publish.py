"""Publish-path benchmark: how fast the server takes writes, and the two ceilings beside it.

    python -m bench.publish [--seconds 5] [--database sqlite|postgres|both] [--out bench/results/publish.json]

The server runs pinned to CPU 0; the HTTP load (bench/node/httpload.mjs, keep-alive, one
request after another per concurrent client) runs in `--procs` Node processes pinned to CPU 1.
Figures: events (or requests) per second, server CPU per event from /proc (independent of the
load generator's speed), and request latency p50/p99 as the client saw it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.peers import (
    NODE_DIR,
    PAD,
    ROOT,
    SECRET,
    LoadGen,
    Peer,
    cpu_seconds,
    free_port,
    pinned,
    probe_latency,
    wait_http,
)
from server.auth import TokenAuthority
from server.config import Settings

BENCH_ENV = {
    "IMMUNE_JWT_SECRET": SECRET,
    "IMMUNE_LOG_LEVEL": "warning",
    "IMMUNE_REST_PER_MIN": "100000000",
    "IMMUNE_REST_BURST": "100000000",
    "IMMUNE_MAX_CONNECTIONS_PER_USER": "1000000",
    "IMMUNE_CONNECTS_PER_MIN_PER_IP": "1000000",
    "IMMUNE_CONNECTS_BURST_PER_IP": "1000000",
    "IMMUNE_METRICS_INTERVAL_S": "3600",
    "IMMUNE_WRITE_QUEUE_MAX": "4096",
}


class Server:
    """`immune-core serve` on CPU 0 with a fresh data dir (or a PostgreSQL URL)."""

    def __init__(self, database_url: str | None = None, env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="immune-publish-"))
        self.port = free_port()
        full_env = {**os.environ, **BENCH_ENV, **(env or {})}
        if database_url:
            full_env["IMMUNE_DATABASE_URL"] = database_url
        cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(self.tmp)]
        self.proc = subprocess.Popen([*pinned(0), *cmd], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL)
        wait_http(self.url + "/health")
        self.token = TokenAuthority(Settings(data_dir=self.tmp, jwt_secret=SECRET)).mint("bench", ["admin"], 3600)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


def event_body(n: int) -> dict[str, Any]:
    return {"event_type": "custom.bench", "room": "agents", "data": {"n": n, "pad": "x" * PAD}}


def load(
    url: str,
    token: str,
    method: str,
    paths: list[str],
    bodies: list[Any],
    concurrency: int,
    seconds: float,
    procs: int,
) -> dict[str, Any]:
    """Run `procs` Node load processes on CPU 1 and merge their figures."""
    procs = max(1, min(procs, concurrency))
    runners = []
    for index in range(procs):
        share = concurrency // procs + (1 if index < concurrency % procs else 0)
        config = {
            "url": url,
            "method": method,
            "paths": paths,
            "bodies": [json.dumps(body) for body in bodies[index::procs] or bodies],
            "token": token,
            "concurrency": share,
            "seconds": seconds,
        }
        runners.append(
            subprocess.Popen(
                [*pinned(1), "node", str(NODE_DIR / "httpload.mjs"), json.dumps(config)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [json.loads(runner.communicate(timeout=seconds + 60)[0]) for runner in runners]
    statuses: dict[str, int] = {}
    for output in outputs:
        for status, count in output["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {
        "requests": sum(output["requests"] for output in outputs),
        "statuses": statuses,
        "p50_ms": max(output["latencies_ms"]["p50"] or 0 for output in outputs),
        "p99_ms": max(output["latencies_ms"]["p99"] or 0 for output in outputs),
        "seconds": max(output["seconds"] for output in outputs),
    }


def measured(server: Server, name: str, events_per_request: int, **load_args: Any) -> dict[str, Any]:
    before = server.cpu()
    result = load(server.url, server.token, **load_args)
    cpu = server.cpu() - before
    ok = sum(count for status, count in result["statuses"].items() if status.startswith("2"))
    events = ok * events_per_request
    row = {
        "scenario": name,
        "concurrency": load_args["concurrency"],
        "events": events,
        "events_per_s": round(events / result["seconds"]),
        "cpu_us_per_event": round(cpu / max(events, 1) * 1e6, 1),
        "server_cpu_share": round(cpu / result["seconds"], 2),
        "p50_ms": round(result["p50_ms"], 2),
        "p99_ms": round(result["p99_ms"], 2),
        "statuses": result["statuses"],
    }
    print(json.dumps(row), flush=True)
    return row


def publish_scenarios(
    database_url: str | None, seconds: float, procs: int, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Single events at 1 and 64 clients, batches of 100, POST /agents, PATCH /agents/{id}."""
    rows: list[dict[str, Any]] = []
    server = Server(database_url, env)
    try:
        singles = [event_body(n) for n in range(512)]
        common = {"method": "POST", "paths": ["/ws/broadcast"], "seconds": seconds, "procs": procs}
        rows.append(measured(server, "POST /ws/broadcast", 1, bodies=singles, concurrency=1, **{**common, "procs": 1}))
        rows.append(measured(server, "POST /ws/broadcast", 1, bodies=singles, concurrency=64, **common))
        batches = [{"events": [event_body(n * 100 + k) for k in range(100)]} for n in range(8)]
        rows.append(
            measured(server, "POST /ws/broadcast, batches of 100", 100, bodies=batches, concurrency=8, **common)
        )
        agents = [{"agent_type": "b_cell", "name": f"a{n}"} for n in range(64)]
        rows.append(
            measured(
                server,
                "POST /agents",
                1,
                method="POST",
                paths=["/agents"],
                bodies=agents,
                concurrency=64,
                seconds=seconds,
                procs=procs,
            )
        )
        ids = [server.request("POST", "/agents", {"agent_type": "b_cell"})["agent_id"] for _ in range(64)]
        patches = [{"energy": float(n % 100)} for n in range(64)]
        rows.append(
            measured(
                server,
                "PATCH /agents/{id}",
                1,
                method="PATCH",
                paths=[f"/agents/{i}" for i in ids],
                bodies=patches,
                concurrency=64,
                seconds=seconds,
                procs=procs,
            )
        )
    finally:
        server.stop()
    return rows


def delivery_latency(seconds: float, clients: int, procs: int, rate: int = 20) -> dict[str, Any]:
    """Publish-to-delivery p50/p99 to `clients` connections in `agents` while 64 HTTP clients publish.

    The load goes to another room (delivering thousands of events a second to every one of 1 000
    connections is a fan-out benchmark of its own); the probes, `rate` a second with the send time
    in `data.t`, go to `agents`, so their latency is what a subscriber sees on a busy publish path.
    """
    peer = Peer("immune-core")
    peer.start()
    try:
        gen = LoadGen(peer, clients)
        time.sleep(0.5)
        background = [{**event_body(n), "room": "tasks"} for n in range(512)]
        loader = threading.Thread(
            target=load,
            args=(peer.url, peer.token, "POST", ["/ws/broadcast"], background, 64, seconds + 1, procs),
        )
        loader.start()
        time.sleep(0.5)
        probes = probe_latency(gen, lambda: peer.broadcast(1), seconds, rate)
        loader.join()
        gen.close()
    finally:
        peer.stop()
    return {"clients": clients, "probe_rate": rate, **probes}


def sqlite_ceiling(rows_per_tx: int, total: int = 20000, synchronous: str = "FULL") -> dict[str, Any]:
    """Python sqlite3 appends in WAL: one row per transaction, or `rows_per_tx` per transaction."""
    tmp = Path(tempfile.mkdtemp(prefix="immune-sqlite-"))
    try:
        db = sqlite3.connect(tmp / "c.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, event_type TEXT, data TEXT, created_at TEXT)")
        payload = json.dumps({"pad": "x" * PAD})
        started_cpu, started = time.process_time(), time.perf_counter()
        n = 0
        while n < total:
            db.execute("BEGIN")
            db.executemany(
                "INSERT INTO events (id, event_type, data, created_at) VALUES (?, 'custom.bench', ?, '2026-01-01')",
                [(n + k + 1, payload) for k in range(rows_per_tx)],
            )
            db.execute("COMMIT")
            n += rows_per_tx
        wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        db.close()
        return {
            "rows_per_tx": rows_per_tx,
            "synchronous": synchronous,
            "rows_per_s": round(n / wall),
            "cpu_us_per_row": round(cpu / n * 1e6, 1),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bare_handler_ceiling(seconds: float, procs: int) -> dict[str, Any]:
    """A bare aiohttp POST handler on uvloop (parse JSON, answer 202) at 64 clients."""
    port = free_port()
    proc = subprocess.Popen([*pinned(0), sys.executable, "-m", "bench.peer_post", str(port)], cwd=ROOT)
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        before = cpu_seconds(proc.pid)
        result = load(
            f"http://127.0.0.1:{port}",
            "none",
            "POST",
            ["/ws/broadcast"],
            [event_body(n) for n in range(512)],
            64,
            seconds,
            procs,
        )
        cpu = cpu_seconds(proc.pid) - before
        ok = result["statuses"].get("202", 0)
        return {
            "scenario": "ceiling: bare aiohttp POST handler",
            "concurrency": 64,
            "events_per_s": round(ok / result["seconds"]),
            "cpu_us_per_event": round(cpu / max(ok, 1) * 1e6, 1),
            "p99_ms": round(result["p99_ms"], 2),
        }
    finally:
        proc.terminate()
        proc.wait(10)


SECTION = ROOT / "docs" / "benchmarks.publish.md"
START, END = "<!-- publish:start -->", "<!-- publish:end -->"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def publish_targets(results: dict[str, Any]) -> list[str]:
    """The issue's publish-path targets against this run, each said plainly."""
    lines: list[str] = []
    rows = results["rows"]
    sqlite = {(r["scenario"], r["concurrency"]): r for r in rows.get("sqlite (synchronous=full)", [])}
    single = sqlite.get(("POST /ws/broadcast", 64))
    if single:
        lines.append(
            f"- `POST /ws/broadcast` on SQLite at 64 clients: ≤ 150 µs CPU per event and ≥ 5 000 events/s: "
            f"{single['cpu_us_per_event']} µs, {single['events_per_s']:,} events/s — "
            f"{_verdict(single['cpu_us_per_event'] <= 150 and single['events_per_s'] >= 5000)}"
        )
        lines.append(
            f"- p99 from request to 202 ≤ 20 ms (at 64 clients, {single['events_per_s']:,} events/s here): "
            f"{single['p99_ms']} ms — {_verdict(single['p99_ms'] <= 20 and single['events_per_s'] >= 5000)}"
        )
    batch = sqlite.get(("POST /ws/broadcast, batches of 100", 8))
    if batch:
        lines.append(
            f"- batches of 100 on SQLite: ≤ 15 µs per event and ≥ 50 000 events/s: {batch['cpu_us_per_event']} µs, "
            f"{batch['events_per_s']:,} events/s — "
            f"{_verdict(batch['cpu_us_per_event'] <= 15 and batch['events_per_s'] >= 50000)}"
        )
    agents = sqlite.get(("POST /agents", 64))
    if agents:
        lines.append(
            f"- `POST /agents` ≤ 400 µs per request: {agents['cpu_us_per_event']} µs — "
            f"{_verdict(agents['cpu_us_per_event'] <= 400)}"
        )
    postgres = {(r["scenario"], r["concurrency"]): r for r in rows.get("postgresql", [])}
    pg_single = postgres.get(("POST /ws/broadcast", 64))
    if pg_single:
        lines.append(
            f"- `POST /ws/broadcast` on PostgreSQL at 64 clients: ≤ 250 µs and ≥ 3 000 events/s: "
            f"{pg_single['cpu_us_per_event']} µs, {pg_single['events_per_s']:,} events/s — "
            f"{_verdict(pg_single['cpu_us_per_event'] <= 250 and pg_single['events_per_s'] >= 3000)}"
        )
    bare = next((c for c in results.get("ceilings", []) if "bare" in c.get("scenario", "")), None)
    if bare and single:
        lines.append(
            f"  - for scale, in this run: the bare aiohttp handler took {bare['cpu_us_per_event']} µs per request "
            f"({bare['events_per_s']:,}/s); `POST /ws/broadcast` is "
            f"{single['cpu_us_per_event'] / max(bare['cpu_us_per_event'], 0.1):.1f} x that"
        )
    return lines


def write_section(results: dict[str, Any], command: str) -> None:
    """docs/benchmarks.publish.md, and the same section in docs/benchmarks.md."""
    lines = [
        START,
        "## Publish path",
        "",
        f"Produced by `{command}` ({results['date']}; {results.get('conditions', '')}); raw figures in",
        "`bench/results/publish.json`. Server pinned to CPU 0, the HTTP load (`bench/node/httpload.mjs`,",
        f"keep-alive, {results.get('procs', 2)} Node processes) to CPU 1; events of about 200 bytes, nobody",
        "connected. **CPU per event** = server CPU time from `/proc` ÷ events committed.",
        "",
        "### Targets",
        "",
        *publish_targets(results),
        "",
        "| database | scenario | clients | events | events/s | CPU / event | server CPU share | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for database, rows in results["rows"].items():
        for r in rows:
            lines.append(
                f"| {database} | {r['scenario']} | {r['concurrency']} | {r['events']} | {r['events_per_s']:,} |"
                f" {r['cpu_us_per_event']} µs | {r['server_cpu_share']} | {r['p50_ms']} | {r['p99_ms']} |"
            )
    lines += ["", "Ceilings, same run:", "", "| ceiling | per second | CPU per item |", "|---|---|---|"]
    for c in results.get("ceilings", []):
        if "rows_per_tx" in c:
            lines.append(
                f"| Python sqlite3 append, WAL, synchronous={c['synchronous']}, {c['rows_per_tx']} per transaction |"
                f" {c['rows_per_s']:,} rows | {c['cpu_us_per_row']} µs |"
            )
        else:
            lines.append(
                f"| {c['scenario']} (64 clients) | {c['events_per_s']:,} requests | {c['cpu_us_per_event']} µs |"
            )
    latency = results.get("latency")
    if latency:
        lines += [
            "",
            f"Publish-to-delivery latency to {latency['clients']} connections while 64 HTTP clients publish to",
            f"another room ({latency['probe_rate']} probes/s, {latency['samples']} deliveries):",
            f"p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms, p99.9 {latency['p999']:.0f} ms.",
        ]
    notes = ROOT / "docs" / "benchmarks.publish.notes.md"
    if notes.exists():
        lines += ["", *notes.read_text().splitlines()]
    lines.append(END)
    section = "\n".join(lines) + "\n"
    SECTION.write_text(section)
    docs = ROOT / "docs" / "benchmarks.md"
    text = docs.read_text()
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section.rstrip("\n") + rest.split(END, 1)[1]
    elif "## Reading these figures" in text:
        before, after = text.split("## Reading these figures", 1)
        text = before + section + "\n## Reading these figures" + after
    else:
        text += "\n" + section
    docs.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--procs", type=int, default=2, help="Node load processes")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--latency-clients", type=int, default=1000)
    parser.add_argument("--conditions", default="", help="what else ran on the machine (said in the docs)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "publish.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": {}}
    if args.database in {"sqlite", "both"}:
        results["rows"]["sqlite (synchronous=full)"] = publish_scenarios(None, args.seconds, args.procs)
        results["rows"]["sqlite (synchronous=normal)"] = publish_scenarios(
            None, args.seconds, args.procs, {"IMMUNE_SQLITE_SYNCHRONOUS": "normal"}
        )
    if args.database in {"postgres", "both"}:
        from tests.postgres import PostgresServer  # only here: the test helpers are not needed for SQLite runs

        postgres = PostgresServer()
        postgres.start()
        try:
            results["rows"]["postgresql"] = publish_scenarios(postgres.url, args.seconds, args.procs)
        finally:
            postgres.stop()
    results["ceilings"] = [bare_handler_ceiling(args.seconds, args.procs)] + [sqlite_ceiling(n) for n in (1, 10, 100)]
    print(json.dumps(results["ceilings"]), flush=True)
    if args.latency_clients:
        results["latency"] = delivery_latency(args.seconds, args.latency_clients, args.procs)
        print(json.dumps(results["latency"]), flush=True)
    results["procs"] = args.procs
    results["conditions"] = args.conditions or f"load average {os.getloadavg()[0]:.1f} at the start"
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    command = "make bench" if len(sys.argv) == 1 else "python -m bench.publish " + " ".join(sys.argv[1:])
    write_section(results, command)


if __name__ == "__main__":
    main()
