"""HAProxy in front of test nodes, configured by scripts/haproxy_cfg.py (the same file `make cluster` uses)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT, free_port


class HAProxy:
    """`haproxy -db` as a child process on a free port."""

    def __init__(self, workdir: Path, node_ports: list[int]) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(binary).exists(), "haproxy is required (the README's test command installs it)"
        self.binary = binary
        self.port = free_port()
        self.config = workdir / "haproxy.cfg"
        self.log = workdir / "haproxy.log"
        nodes = [f"127.0.0.1:{port}" for port in node_ports]
        rendered = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "haproxy_cfg.py"), "--port", str(self.port), *nodes],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.config.write_text(rendered.stdout)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until it accepts connections."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"haproxy exited: {self.log.read_text()[-2000:]}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                assert time.monotonic() < deadline, "haproxy did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
