"""The one direction of imports (docs/architecture.md), checked on the source so a stray import fails CI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

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
# gateway behind `/ws/*`). A constant or helper both layers need lives in a neutral top-level
# module (`server/paths.py`, `server/json_limits.py`, `server/rate_limits.py`), not in server/realtime.
API_MAY_IMPORT_REALTIME = {"server/api/keys.py"}
NEUTRAL_HELPERS = ("server/paths.py", "server/json_limits.py", "server/rate_limits.py")


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


# ---------------------------------------------------------------------------- library internals

# The engine layer is the one place that may reach below a library's public API; its self-check
# (server/realtime/engine/selfcheck.py) lists every such part and refuses to start without one.
ENGINE_LAYER = "server/realtime/engine/"

# Private reads outside the engine layer that must stay, each with its reason: none today.
PRIVATE_ALLOWED: set[tuple[str, str]] = set()

_ATTRIBUTE_FUNCTIONS = {"getattr", "setattr", "hasattr", "delattr"}
LIBRARIES = ("socketio", "engineio", "aiohttp", "bidict")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _library_aliases(tree: ast.Module) -> set[str]:
    """The local names a module binds to the libraries or their modules and classes."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in LIBRARIES)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIBRARIES:
            aliases.update(a.asname or a.name for a in node.names)
    return aliases


def private_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) of every use of another object's private parts in a module.

    - `obj._name` and `getattr(obj, "_name")` (also setattr/hasattr/delattr) on anything but self/cls;
    - `self._name` where the module never defines `_name` (an inherited private of a library class);
    - a private method defined in a subclass of a library class (an override of its internals);
    - an import of a private module or name (`from aiohttp._websocket import writer`).
    """
    tree = ast.parse(source)
    defined = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute | ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr if isinstance(node, ast.Attribute) else node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            defined.add(node.value)  # __slots__ entries
    libraries = _library_aliases(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not _is_self(node.value) or node.attr not in defined:
                found.append((node.lineno, ast.unparse(node)))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _ATTRIBUTE_FUNCTIONS
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
            and not _is_self(node.args[0])
        ):
            found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            names = [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            if any(_private(part) for module in modules for part in module.split(".")) or any(map(_private, names)):
                found.append((node.lineno, ast.unparse(node)))
        elif isinstance(node, ast.ClassDef) and any(_root(base) in libraries for base in node.bases):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name):
                    found.append((item.lineno, f"{node.name}.{item.name} overrides a library internal"))
    return sorted(found)


def test_the_private_use_check_sees_every_spelling() -> None:
    source = (
        "import socketio\n"
        "from engineio import packet as eio_packet\n"
        "from aiohttp._websocket import writer\n"
        "from socketio.base_manager import _private_helper\n"
        "members._fwdm\n"
        "getattr(response, '_writer', None)\n"
        "super()._handle_connect\n"
        "class Ours:\n"
        "    _slots = ('_kept',)\n"
        "    def _helper(self): return self._kept, self._helper, cls.__name__\n"
        "class Server(socketio.AsyncServer):\n"
        "    def _handle_event_internal(self): return self._binary_packet\n"
        "class Packet(eio_packet.Packet):\n"
        "    def encode(self): return 1\n"
    )
    assert [what for _, what in private_uses(source)] == [
        "from aiohttp._websocket import writer",
        "from socketio.base_manager import _private_helper",
        "members._fwdm",
        "getattr(response, '_writer', None)",
        "super()._handle_connect",
        "Server._handle_event_internal overrides a library internal",
        "self._binary_packet",
    ]


def test_only_the_engine_layer_touches_private_parts_of_other_objects() -> None:
    offending = []
    for path in sorted((ROOT / "server").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(ENGINE_LAYER) or "/migrations/" in relative:
            continue
        for line, what in private_uses(path.read_text()):
            if (relative, what) not in PRIVATE_ALLOWED:
                offending.append(f"{relative}:{line}: {what}")
    assert not offending, offending
