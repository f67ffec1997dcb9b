"""The start-up self-check of the library internals the real-time layer relies on."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import socketio
from engineio import base_server

from server.app import build_app
from server.config import ConfigError
from server.realtime.engine import missing_library_internals
from server.realtime.engine.selfcheck import REQUIRED
from tests import support

ENGINE = support.ROOT / "server" / "realtime" / "engine"
SITE = Path(socketio.__file__).resolve().parent.parent
LIBRARIES = ("socketio", "engineio", "aiohttp", "bidict")


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


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_names_touched(source: str) -> set[str]:
    """Private names a module reads on other objects, or on self in (or defines in) a subclass."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                names.add(node.attr)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr":
            if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and _private(str(node.args[1].value)):
                names.add(str(node.args[1].value))
        elif isinstance(node, ast.ClassDef) and node.bases:  # our subclasses of the libraries' classes
            for inner in ast.walk(node):
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and _private(inner.name):
                    names.add(inner.name)
                elif isinstance(inner, ast.Attribute) and _private(inner.attr):
                    names.add(inner.attr)
    return names


def test_the_self_check_lists_exactly_the_private_names_the_engine_layer_uses() -> None:
    """Every private name of a library used in server/realtime/engine/ is checked at start-up, and nothing else."""
    library_source = "\n".join(
        path.read_text(errors="replace") for name in LIBRARIES for path in (SITE / name).rglob("*.py")
    )
    used = set()
    for path in ENGINE.glob("*.py"):
        if path.name != "selfcheck.py":
            used |= _private_names_touched(path.read_text())
    # Our own private helpers are not the libraries': keep the names the libraries' source defines.
    used = {name for name in used if re.search(rf"\b{re.escape(name)}\b", library_source)}
    listed = {name for internal in REQUIRED for name in internal.names}
    assert used == listed
    assert all("engine/" in internal.used_by for internal in REQUIRED)  # each names the module that needs it
