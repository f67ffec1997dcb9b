"""docs/rest.md runs as written: every ```sh block, in order, in one bash, against a real server."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

from tests.support import ROOT, Clients, RunningServer, rest

DOC = ROOT / "docs" / "rest.md"
WRITE_ROUTES = {"POST", "PATCH", "PUT", "DELETE"}


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", DOC.read_text(), flags=re.S)


async def test_every_write_route_has_a_curl_example(server: RunningServer) -> None:
    _status, spec, _ = await rest(server, "GET", "/openapi.json", role=None)
    script = "\n".join(shell_blocks())
    for path, operations in spec["paths"].items():
        for method in operations:
            if method.upper() in WRITE_ROUTES:
                pattern = re.sub(r"\\{\w+\\}", r"\\$\\w+", re.escape(path))
                assert re.search(rf"-X {method.upper()} \"\$BASE{pattern}\"", script), (method, path)


async def test_the_examples_run_as_written(server: RunningServer, tmp_path: Path, socket_clients: Clients) -> None:
    bash = shutil.which("bash")
    assert bash and shutil.which("curl"), "bash and curl are needed to run the documented examples"
    rooms = ["agents", "tasks", "coordination", "system"]
    watcher = await socket_clients.connect(server.url, auth={"token": server.token(), "rooms": rooms})
    script = "set -euo pipefail\n" + "\n".join(shell_blocks()) + "\necho DONE\n"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    proc = await asyncio.create_subprocess_exec(
        bash,
        "-c",
        script,
        cwd=ROOT,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "BASE": server.url, "TOKEN": server.token()},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and out.decode().rstrip().endswith("DONE"), (out.decode(), err.decode())
    names = set(watcher.names())
    assert {"agent_created", "agent_action", "task_completed", "leader_elected", "consensus_decided"} <= names
    assert {"agent_deleted", "custom.hello", "custom.batch", "alert_triggered"} <= names
    kicked = [json.dumps(e) for e in watcher.of_type("disconnected")]
    assert kicked and "kicked" in kicked[0]
