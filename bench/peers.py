"""The servers under test and the load generator, as processes pinned to their CPUs.

`Peer` starts one server (ours, the Node.js socket.io server or the raw aiohttp ceiling) on CPU 0
and makes it broadcast; `LoadGen` drives bench/node/loadgen.mjs on CPU 1. The /proc readers
measure a process from outside, so the figures do not depend on the generator's speed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.auth import TokenAuthority
from server.config import Settings

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "bench" / "node"
SECRET = "bench-secret-" + "z" * 32
PAD = 150  # payload padding: envelopes of about 200-300 bytes
CLK_TCK = os.sysconf("SC_CLK_TCK")
PEERS = ["immune-core", "node socket.io", "raw aiohttp frames"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pinned(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def settled_cpu(pid: int, quiet_s: float = 0.5, limit_s: float = 60.0) -> float:
    """The process's CPU seconds once it has gone quiet (under 5 % of a core for `quiet_s`)."""
    deadline = time.monotonic() + limit_s
    last = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - last < 0.05 * quiet_s:
            return now
        last = now
    return last


@dataclass
class Peer:
    """A server under test: how to start it and how to make it broadcast."""

    name: str
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    auth: dict[str, Any] = field(default_factory=dict)
    token: str = ""
    tmp: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, "PORT": str(self.port)}
        if self.name == "immune-core":
            self.tmp = Path(tempfile.mkdtemp(prefix="immune-bench-"))
            env.update(
                IMMUNE_JWT_SECRET=SECRET,
                IMMUNE_LOG_LEVEL="warning",
                IMMUNE_MAX_CONNECTIONS_PER_USER="1000000",
                IMMUNE_CONNECTS_PER_MIN_PER_IP="1000000",
                IMMUNE_CONNECTS_BURST_PER_IP="1000000",
                IMMUNE_MAX_PENDING_SESSIONS_PER_IP="1000000",
                IMMUNE_REST_PER_MIN="1000000",
                IMMUNE_REST_BURST="1000000",
                IMMUNE_METRICS_INTERVAL_S="3600",
            )
            cmd = [sys.executable, "-m", "server.cli", "serve", "--port", str(self.port), "--data-dir", str(self.tmp)]
            authority = TokenAuthority(Settings(data_dir=self.tmp, jwt_secret=SECRET))
            self.token = authority.mint("bench", ["admin"], ttl_s=3600)
            self.auth = {"token": self.token, "rooms": ["agents"]}
            health = "/health"
        elif self.name == "node socket.io":
            cmd = ["node", str(NODE_DIR / "peer_socketio.mjs")]
            health = "/health"
        else:
            cmd = [sys.executable, "-m", "bench.peer_raw"]
            health = "/health"
        self.proc = subprocess.Popen([*pinned(0), *cmd], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        wait_http(self.url + health)

    def broadcast(self, count: int, rooms: list[str] | None = None) -> None:
        """Ask the server to emit `count` events of ~250 bytes, cycling over `rooms` (default `agents`)."""
        rooms = rooms or ["agents"]
        if self.name == "immune-core":
            for i in range(count):
                body = json.dumps(
                    {
                        "event_type": "custom.bench",
                        "room": rooms[i % len(rooms)],
                        "data": {"t": time.time() * 1000, "pad": "x" * PAD},
                    }
                ).encode()
                request = urllib.request.Request(
                    self.url + "/ws/broadcast",
                    data=body,
                    headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30):
                    pass
        else:
            query = f"count={count}&pad={PAD}&rooms={','.join(rooms)}"
            with urllib.request.urlopen(f"{self.url}/broadcast?{query}", timeout=30):
                pass

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


class LoadGen:
    """bench/node/loadgen.mjs on CPU 1."""

    def __init__(self, peer: Peer, clients: int, variants: list[dict[str, Any]] | None = None) -> None:
        config = {"url": peer.url, "clients": clients, "auth": peer.auth, "auth_variants": variants or [{}]}
        self.proc = subprocess.Popen(
            [*pinned(1), "node", str(NODE_DIR / "loadgen.mjs"), json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.connected = self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load generator exited")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.ask("quit")
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def probe_latency(gen: LoadGen, publish: Callable[[], None], seconds: float, rate: int) -> dict[str, Any]:
    """`rate` probe events a second for `seconds`, each sent by `publish`: the generator's p50/p99/p999 in ms."""
    gen.ask(f"latency {seconds}")
    period = 1.0 / rate
    next_at = time.monotonic()
    end = next_at + seconds - 0.2
    while time.monotonic() < end:
        publish()
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))
    result = gen.read()
    return {k: result[k] for k in ("samples", "p50", "p99", "p999")}
