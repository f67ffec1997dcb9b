"""Benchmarks: our server, the Node.js socket.io 4 server and a raw aiohttp ceiling, in one run.

    python -m bench.run [--clients 1000,5000] [--burst 100] [--repeat 3] [--paced-clients 1000] [--seconds 5]

Each server runs pinned to CPU 0 and the load generator (bench/node/loadgen.mjs, raw Engine.IO
over `ws`) to CPU 1. Headline: server CPU time per delivery, from /proc, which does not depend on
the generator's speed. Results go to bench/results/latest.json and docs/benchmarks.md (+ PNG).

The pieces: bench/peers.py (the processes under test and the load generator), bench/scenarios.py
(what each run does), bench/report.py (the docs written from the results).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

from bench.peers import PEERS, ROOT
from bench.report import write_docs
from bench.scenarios import burst, median_run, paced

RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", default="1000,5000")
    parser.add_argument("--burst", type=int, default=100, help="events per fan-out burst")
    parser.add_argument("--repeat", type=int, default=3, help="runs per burst scenario; the median is reported")
    parser.add_argument("--paced-clients", type=int, default=5000)
    parser.add_argument("--ramp", type=int, default=10000, help="connections for the connect-ramp run (0 = skip)")
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "burst": [],
        "paced": [],
    }
    runs: list[tuple[str, int, int, str]] = [
        (name, int(n), args.burst, "one room") for n in args.clients.split(",") for name in PEERS
    ]
    # The raw ceiling has no rooms or filters, so it sits these out.
    runs += [(name, 1000, args.burst, "filtered (half subscribed to another type)") for name in PEERS[:2]]
    runs += [(name, 1000, 200, "100 rooms") for name in PEERS[:2]]
    runs += [(name, args.ramp, 20, "one room") for name in PEERS if args.ramp]
    for name, clients, events, scenario in runs:
        # The 10 000-connection ramp runs once; the others take the median of --repeat runs,
        # since a shared 2-core machine moves single runs by ±30 %.
        repeat = 1 if clients >= 10000 else max(args.repeat, 1)
        result = median_run([burst(name, clients, events, scenario) for _ in range(repeat)])
        print(json.dumps(result), flush=True)
        results["burst"].append(result)
    for name in PEERS:
        result = paced(name, args.paced_clients, args.rate, args.seconds)
        print(json.dumps(result), flush=True)
        results["paced"].append(result)
    RESULTS.mkdir(exist_ok=True)
    results["command"] = "make bench" if len(sys.argv) == 1 else "python -m bench.run " + " ".join(sys.argv[1:])
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2))
    write_docs(results, results["command"])


if __name__ == "__main__":
    main()
