"""A real PostgreSQL server for the test session: initdb in a temp dir, on a free port, stopped after."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL server binaries are required (the README's test command installs postgresql)"
    return Path(found[-1]).parent


class PostgresServer:
    """initdb + pg_ctl as the `postgres` user when running as root (PostgreSQL refuses root)."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="immune-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            assert shutil.which("runuser"), "runuser is needed to start PostgreSQL as root"
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self.data = self.dir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://immune@127.0.0.1:{self.port}/immune"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "immune", "--auth=trust", "-E", "UTF8")
        self.resume()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "immune", "immune")

    def reset(self) -> None:
        """A fresh database for the next test."""
        psql = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "immune", "-d", "postgres"]
        deadline = time.monotonic() + 10
        while True:
            try:
                self._run(*psql, "-c", "DROP DATABASE IF EXISTS immune WITH (FORCE)")
                break
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._run(*psql, "-c", "CREATE DATABASE immune")

    def pause(self) -> None:
        """Stop the server but keep its data (an outage)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def resume(self) -> None:
        """Start it again on the same port and data."""
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "log"),
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
            "-w",
            "start",
        )

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
