"""The package's shape: no import cycle inside ``vexrun/``, no module of the shared core importing a
connector, small modules.

The import graph is read from the source (``ast``), not from ``sys.modules``: every ``import`` counts, at
module level or inside a function (a lazy import is still a dependency), except those under
``if TYPE_CHECKING:``. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg``; importing ``a.b.c`` runs ``a`` and ``a.b`` first, but those implicit parent imports are not edges.
"""

from __future__ import annotations

import ast
from collections import deque
from functools import cache
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "vexrun"
#: The connector protocol: the one part of ``vexrun.connectors`` the core may import.
PROTOCOL = {"vexrun.connectors", "vexrun.connectors.base", "vexrun.connectors.encoding"}
#: Outside the core: the connectors themselves, the CLI, the test fakes and the modules that register plugins.
NOT_CORE = ("vexrun.connectors", "vexrun.cli", "vexrun.testing")
MAX_LINES = 600
MAX_RUNNER_LINES = 450


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    return {_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(node: ast.AST) -> list[ast.AST]:
    """All nodes below ``node`` except the bodies of ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        out.append(cur)
        if isinstance(cur, ast.If) and _is_type_checking(cur.test):
            stack.extend(cur.orelse)
            continue
        stack.extend(ast.iter_child_nodes(cur))
    return out


def _imports(name: str, path: Path) -> set[str]:
    known = modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in _nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    edges.add(f"{base}.{alias.name}")
                elif base in known:
                    edges.add(base)
    edges.discard(name)
    return edges


@cache
def graph() -> dict[str, frozenset[str]]:
    return {name: frozenset(_imports(name, path)) for name, path in modules().items()}


def _shortest_cycle_through(start: str, g: dict[str, frozenset[str]]) -> list[str] | None:
    """The shortest path start -> ... -> start (breadth first), as the list of modules on it."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        for nxt in sorted(g[cur]):
            if nxt == start:
                path = [cur]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            if nxt not in parent:
                parent[nxt] = cur
                queue.append(nxt)
    return None


def cycles(g: dict[str, frozenset[str]]) -> list[list[str]]:
    """One shortest cycle through each module that is on a cycle, de-duplicated, shortest first."""
    found: dict[frozenset[str], list[str]] = {}
    for start in sorted(g):
        cycle = _shortest_cycle_through(start, g)
        if cycle is not None:
            found.setdefault(frozenset(cycle), cycle)
    return sorted(found.values(), key=lambda c: (len(c), c))


def _core(name: str) -> bool:
    outside = any(name == p or name.startswith(p + ".") for p in NOT_CORE)
    return not (outside or name == "vexrun.builtins" or name.endswith(".plugin"))


def test_the_graph_sees_every_kind_of_import() -> None:
    g = graph()
    assert "vexrun.errors" in g["vexrun.registry"]  # from .errors import UsageError (module level)
    assert "vexrun.builtins" in g["vexrun.registry"]  # a function-level import
    assert "vexrun.connectors.base" in g["vexrun.connectors.sqlite.sink"]  # from ..base import ... (level 2)
    assert "vexrun.vmig" not in g["vexrun.vmig.reader"]  # no edge to a module's own package


def test_no_import_cycles() -> None:
    found = cycles(graph())
    assert not found, "import cycles, shortest first:\n" + "\n".join(" -> ".join([*c, c[0]]) for c in found)


def test_the_core_imports_no_connector() -> None:
    bad = sorted(
        f"{name} imports {dep}"
        for name, deps in graph().items()
        if _core(name)
        for dep in deps
        if dep.startswith("vexrun.connectors") and dep not in PROTOCOL
    )
    assert not bad, "the core imports connector code (move it, or declare a capability):\n" + "\n".join(bad)


def test_modules_are_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    big = sorted(f"{name}: {n} lines" for name, n in sizes.items() if n > MAX_LINES)
    assert not big, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(big)
    assert sizes["vexrun.runner"] < MAX_RUNNER_LINES, f"vexrun/runner.py has {sizes['vexrun.runner']} lines"
