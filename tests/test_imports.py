"""No import cycles: the module graph of ``src/tollway``, built from every ``import`` statement in
the source (inside functions and ``if TYPE_CHECKING:`` blocks too — an import moved into a function
to dodge a cycle still ties the two modules together), has no strongly connected component of more
than one module.

``CHECKED`` names the modules held to it. To hold the whole package, set it to ``("tollway",)``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import tollway

SRC = Path(tollway.__file__).parent

# Modules (and packages, with everything under them) that no import cycle may touch.
CHECKED: tuple[str, ...] = (
    "tollway.cli",
    "tollway.errors",
    "tollway.ingress.stats",
    "tollway.keys",
    "tollway.limits.period",
    "tollway.mock",
    "tollway.store",
    "tollway.usage",
)


def module_names() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its ``__init__.py``)."""
    names = {}
    for path in SRC.rglob("*.py"):
        parts = ("tollway", *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _imported(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> Iterator[str]:
    """The package's modules an import statement loads by name: ``import a.b`` loads a.b;
    ``from a import b`` loads the module a.b if there is one, else a (b is a name in it)."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        targets = [
            f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
            for alias in node.names
        ]
    for target in targets:
        while target and target not in modules:  # ``import a.b.c`` of a name c: its module a.b
            target = target.rpartition(".")[0]
        if target.startswith("tollway") and target != module:
            yield target


def import_graph() -> dict[str, set[str]]:
    """module → the package's modules it imports."""
    modules = module_names()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        graph[name] = {
            target
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for target in _imported(node, name, is_package, modules)
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _checked(module: str) -> bool:
    return any(module == c or module.startswith(c + ".") for c in CHECKED)


def test_the_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "tollway.server" in graph["tollway.cli"]  # imported inside ``start``
    assert "tollway.cli.common" in graph["tollway.cli.keys"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle_touches_the_checked_modules() -> None:
    tangled = [c for c in cycles(import_graph()) if any(_checked(m) for m in c)]
    assert tangled == []


def test_every_module_imports() -> None:
    """Each module imports on its own (an import cycle that Python cannot resolve fails here)."""
    for info in pkgutil.walk_packages([str(SRC)], prefix="tollway."):
        if info.name != "tollway.__main__":  # runs the command line
            importlib.import_module(info.name)
