"""The one direction of imports (docs/architecture.md), checked on the source so a stray import fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package → prefixes its modules must never import (every import counts: top level, inside a
# function, or under TYPE_CHECKING).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "client_sdk": ("server",),
    "server/domain": ("aiohttp", "socketio", "engineio", "sqlalchemy", "server.api", "server.realtime", "server.store"),
    "server/events": (
        "aiohttp",
        "socketio",
        "engineio",
        "server.api",
        "server.realtime",
        "server.domain",
        "server.store",
    ),
    "server/store": ("aiohttp", "socketio", "engineio", "server.api", "server.realtime", "server.domain"),
    "server/realtime": ("server.api", "server.domain", "server.store"),
    "server/api": ("server.store",),
}

# The one allowed exception, with its reason: the typed application key of the database, which
# the liveness/readiness probes ping (operations, not domain).
ALLOWED = {("server/api/keys.py", "server.store.db")}


def imports_of(path: Path) -> set[str]:
    """Every module name a file imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    offending = []
    for path in sorted((ROOT / package).rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if "/migrations/" in relative:
            continue
        for name in sorted(imports_of(path)):
            if (relative, name) in ALLOWED:
                continue
            if any(name == prefix or name.startswith(prefix + ".") for prefix in FORBIDDEN[package]):
                offending.append(f"{relative} imports {name}")
    assert not offending, offending


# Who may import the real-time layer from the REST layer: only the typed application keys (the
# gateway behind `/ws/*`, the rate limiter). A constant or helper both layers need lives in a
# neutral top-level module (`server/paths.py`, `server/json_limits.py`), not in server/realtime.
API_MAY_IMPORT_REALTIME = {"server/api/keys.py"}
NEUTRAL_HELPERS = ("server/paths.py", "server/json_limits.py")


def test_rest_reaches_the_realtime_layer_only_through_its_key() -> None:
    offending = [
        f"{path.relative_to(ROOT).as_posix()} imports {name}"
        for path in sorted((ROOT / "server/api").rglob("*.py"))
        if path.relative_to(ROOT).as_posix() not in API_MAY_IMPORT_REALTIME
        for name in sorted(imports_of(path))
        if name == "server.realtime" or name.startswith("server.realtime.")
    ]
    assert not offending, offending


@pytest.mark.parametrize("helper", NEUTRAL_HELPERS)
def test_neutral_helpers_import_no_layer(helper: str) -> None:
    names = imports_of(ROOT / helper)
    assert not [name for name in names if name == "server" or name.startswith("server.")], names


def module_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of the same tree it imports (an import of a name counts as its module)."""
    paths = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): path
        for path in (ROOT / package).rglob("*.py")
        if "/migrations/" not in path.as_posix()
    }
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[module] = {name for name in found if name in paths and name != module}
    return graph


def test_no_import_cycles() -> None:
    """No module of server/ imports, even only under TYPE_CHECKING, one that leads back to it."""
    graph = module_graph("server")
    cycles = []
    for start in sorted(graph):
        seen: set[str] = set()
        stack = [(start, [start])]
        while stack:
            module, path = stack.pop()
            for target in sorted(graph[module]):
                if target == start:
                    cycles.append(" -> ".join([*path, start]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert not cycles, cycles


def test_the_parts_of_the_realtime_layer_do_not_import_its_composition() -> None:
    """gateway.py builds and wires the parts; a part that needs another gets it passed in."""
    offending = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "server/realtime").rglob("*.py"))
        if path.name != "gateway.py" and "server.realtime.gateway" in imports_of(path)
    ]
    assert not offending, offending
