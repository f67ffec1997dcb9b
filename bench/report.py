"""The report: docs/benchmarks.md (targets, tables, the publish section kept) and docs/benchmarks.png."""

from __future__ import annotations

from typing import Any

from bench.peers import PEERS, ROOT

DOCS = ROOT / "docs"


def _targets(results: dict[str, Any]) -> list[str]:
    """The issue's targets, each marked met or not met from this run's figures."""
    bursts = {(r["server"], r["clients"]): r for r in results["burst"] if r.get("scenario", "one room") == "one room"}
    paced = {r["server"]: r for r in results["paced"]}
    lines = []
    for clients in sorted({r["clients"] for r in results["burst"] if r["clients"] <= 5000}):
        ours, node = bursts.get(("immune-core", clients)), bursts.get(("node socket.io", clients))
        if ours and node:
            ratio = ours["cpu_us_per_delivery"] / node["cpu_us_per_delivery"]
            verdict = "met" if ratio <= 0.6 else "NOT met"
            lines.append(f"- Server CPU per delivery ≤ 0.6 x Node at {clients} clients: {ratio:.2f} x — **{verdict}**")
            ceiling = bursts.get(("raw aiohttp frames", clients))
            fanout = ours.get("fanout_cpu_us_per_delivery")
            scale = (
                [f"the broadcast path alone (fan-out only) is {fanout / node['cpu_us_per_delivery']:.2f} x"]
                if fanout
                else []
            )
            if ceiling:
                scale.append(
                    f"the raw ceiling (one pre-built frame written per socket, nothing else) is"
                    f" {ceiling['cpu_us_per_delivery'] / node['cpu_us_per_delivery']:.2f} x"
                )
            if scale:
                lines.append(f"  - for scale, in this run: {'; '.join(scale)}")
    if "immune-core" in paced and "node socket.io" in paced:
        ours_p99, node_p99 = paced["immune-core"]["p99"], paced["node socket.io"]["p99"]
        verdict = "met" if ours_p99 <= node_p99 else "NOT met"
        clients = paced["immune-core"]["clients"]
        asked = "" if clients == 5000 else "; the issue asks for 5 000 clients"
        lines.append(
            f"- p99 latency ≤ Node's ({clients} clients x {paced['immune-core']['rate']} events/s{asked}):"
            f" {ours_p99:.0f} ms vs {node_p99:.0f} ms — **{verdict}**"
        )
        if "raw aiohttp frames" in paced:
            lines.append(
                f"  - for scale, in this run: the raw ceiling's p99 is {paced['raw aiohttp frames']['p99']:.0f} ms"
                " (the load generator, not the servers, sets this figure; see below)"
            )
    memory = [r["memory_kb_per_connection"] for r in results["burst"] if r["server"] == "immune-core"]
    ramp = [r for r in results["burst"] if r["server"] == "immune-core" and r["clients"] >= 10000]
    if memory:
        verdict = "met" if max(memory) <= 15 else "NOT met"
        lines.append(f"- Memory per idle connection ≤ 15 KB: {max(memory)} KB — **{verdict}**")
    if ramp:
        done = ramp[0]["complete"]
        lines.append(
            f"- {ramp[0]['clients']:,} concurrent connections on one process: connected in {ramp[0]['connect_s']:.1f} s"
            f" and every one received every event — **{'met' if done else 'NOT met'}**"
        )
    else:
        lines.append("- 10 000 concurrent connections on one process: **not measured in this run**")
    return lines


def write_docs(results: dict[str, Any], command: str) -> None:
    """docs/benchmarks.md and docs/benchmarks.png from one run."""
    bursts = results["burst"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{command}` on {results['machine']} ({results['date']}); raw figures in",
        "`bench/results/latest.json`. Each server runs pinned to CPU 0, the load generator",
        "(`bench/node/loadgen.mjs`: raw Engine.IO v4 / Socket.IO v5 over `ws`, many connections per",
        "process) to CPU 1. One room, events of about 250 bytes. **Server CPU per delivery** = server",
        "process CPU time (utime + stime from `/proc`) ÷ deliveries; it does not depend on the",
        "generator's speed. `/proc` counts in 10 ms ticks, so small runs are coarse; each burst row",
        "is the median of several runs (every run's figure is in the JSON: the same row moves by",
        "±30 % between runs on this shared machine, the peers' rows too).",
        "",
        "Peers, started by the same run: `immune-core serve` (this project: JWT auth, rooms and",
        "filters as native rooms, every event committed to the SQLite log before it is sent, and each",
        "broadcast triggered by its own `POST /ws/broadcast` — that HTTP request and commit are part of",
        "its CPU figure); the Node.js `socket.io` 4.8 server (`bench/node/peer_socketio.mjs`, one",
        "`io.to(room).emit` per event); and the practical ceiling, aiohttp writing one pre-built",
        "frame per socket (`bench/peer_raw.py`, no rooms, no log, no auth).",
        "",
        "**Fan-out only** (our server) subtracts the per-event API cost — the HTTP request, JWT check",
        "and commit, measured on the same process with nobody connected just before each run — so it",
        "compares the broadcast path itself with Node's in-process `emit`. The targets use the full",
        "figure.",
        "",
        "## Targets",
        "",
        *_targets(results),
        "",
        "## Fan-out burst",
        "",
        "| scenario | server | clients | deliveries | complete | server CPU / delivery | vs Node"
        " | fan-out only / delivery | vs Node | deliveries/s | connects/s | memory / connection"
        " | CPU per disconnect (all at once) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    node = {(r.get("scenario"), r["clients"]): r for r in bursts if r["server"] == "node socket.io"}
    for r in bursts:
        peer_node = node.get((r.get("scenario"), r["clients"]))
        ratio = r["cpu_us_per_delivery"] / peer_node["cpu_us_per_delivery"] if peer_node else None
        fanout = r.get("fanout_cpu_us_per_delivery") if r["server"] == "immune-core" else None
        fanout_ratio = fanout / peer_node["cpu_us_per_delivery"] if fanout is not None and peer_node else None
        lines.append(
            f"| {r.get('scenario', 'one room')} | {r['server']} | {r['clients']} | {r['deliveries']} |"
            f" {'yes' if r['complete'] else 'NO'} | "
            f"{r['cpu_us_per_delivery']} µs | {f'{ratio:.2f}x' if ratio else '-'} | "
            f"{f'{fanout} µs' if fanout is not None else '-'} | {f'{fanout_ratio:.2f}x' if fanout_ratio else '-'} | "
            f"{r['deliveries_per_s']:,} | "
            f"{round(r['clients'] / max(r['connect_s'], 1e-3)):,} | {r['memory_kb_per_connection']} KB |"
            f" {r.get('disconnect_cpu_us_per_connection', '-')} µs |"
        )
    lines += [
        "",
        "## Paced latency",
        "",
        "| server | clients | events/s | samples | p50 ms | p99 ms | p99.9 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["paced"]:
        lines.append(
            f"| {r['server']} | {r['clients']} | {r['rate']} | {r['samples']} | {r['p50']:.0f} | {r['p99']:.0f}"
            f" | {r['p999']:.0f} |"
        )
    lines += ["", "![server CPU per delivery](benchmarks.png)", ""]
    # The publish-path section is written by bench/publish.py (the same `make bench`); kept here.
    lines += (
        (DOCS / "benchmarks.publish.md").read_text().splitlines() if (DOCS / "benchmarks.publish.md").exists() else []
    )
    lines += (DOCS / "benchmarks.notes.md").read_text().splitlines() if (DOCS / "benchmarks.notes.md").exists() else []
    (DOCS / "benchmarks.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bursts = [r for r in bursts if r.get("scenario", "one room") == "one room" and r["clients"] <= 5000]
    sizes = sorted({r["clients"] for r in bursts})
    width = 0.8 / len(PEERS)
    for i, name in enumerate(PEERS):
        values = [
            next((r["cpu_us_per_delivery"] for r in bursts if r["server"] == name and r["clients"] == n), 0)
            for n in sizes
        ]
        ax.bar([x + i * width for x in range(len(sizes))], values, width, label=name)
    ax.set_xticks([x + width for x in range(len(sizes))], [f"{n} clients" for n in sizes])
    ax.set_ylabel("server CPU µs per delivery (lower is better)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(DOCS / "benchmarks.png", dpi=110)
