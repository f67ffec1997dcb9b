"""The start-up self-check of the library internals the real-time layer relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import socketio
from engineio import base_server

from server.app import build_app
from server.config import ConfigError
from server.realtime.engine import missing_library_internals
from tests import support


def test_the_pinned_libraries_have_every_internal_the_server_uses() -> None:
    assert missing_library_internals() == []


def test_a_library_without_the_close_reason_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """python-engineio before 4.11 had no `reason`: the close path used to skip the close in silence."""
    monkeypatch.delattr(base_server.BaseServer, "reason")
    missing = missing_library_internals()
    assert len(missing) == 1 and "reason" in missing[0]
    with pytest.raises(ConfigError, match=r"python-engineio .*AsyncSocket.close\(reason=\)"):
        build_app(support.test_settings(tmp_path))


def test_serve_refuses_to_start_with_one_line_when_an_internal_is_gone(tmp_path: Path) -> None:
    """The real CLI: exit status 2 and one stderr line naming what is missing, nothing listening."""
    script = (
        "import sys, socketio\n"
        "del socketio.AsyncServer._send_packet\n"
        "from server.cli import main\n"
        "sys.exit(main(['serve', '--data-dir', sys.argv[1], '--port', '0']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=support.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "IMMUNE_JWT_SECRET": "test-secret-" + "x" * 32},
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "_send_packet" in lines[0] and "requirements/run.lock" in lines[0]
    assert "Traceback" not in proc.stderr
    assert socketio.AsyncServer._send_packet  # this process's library is untouched
