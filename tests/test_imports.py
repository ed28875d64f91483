"""No import circles in the package: each module's imports point one way, so a module can be read, tested and
imported on its own. Every import counts, module-level or inside a function (a function-level import that
avoids a circle at import time is still a circle in the design), relative or absolute, and so does a module
named by a string for importlib: in a module-level assignment (the task registry, the delegated subcommands)
or in the arguments of an importing call. (A string naming a module elsewhere, as ``python -m micmco.cli``
does for a subprocess, imports nothing.)"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "micmco"

# Circles tolerated: none (the book's went with micmco.book.orderings); a prefix here would allow its circles.
ALLOWED: tuple[str, ...] = ()


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package by its __init__)."""
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The package module that ``name`` (a module, or a name inside one) refers to: its longest known prefix."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


IMPORTING = {"import_module", "__import__", "import_deferring_signals"}  # calls that import the modules named


def _names(nodes: list[ast.AST], known: dict[str, Path]) -> set[str]:
    """The package modules named by string constants within ``nodes``."""
    return {
        node.value
        for root in nodes
        for node in ast.walk(root)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in known
    }


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # `from pkg import sub` imports the submodule when there is one, else a name from pkg
            targets.update(f"{source}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in IMPORTING:
            targets.update(_names(node.args, known))
    for statement in tree.body:
        if isinstance(statement, (ast.Assign, ast.AnnAssign)) and statement.value is not None:
            targets.update(_names([statement.value], known))  # a registry of modules imported by name
    owners = {_owner(target, known) for target in targets if target.split(".")[0] == PACKAGE}
    return {owner for owner in owners if owner and owner != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One import circle through the component's first module, as a path back to it (breadth-first: shortest)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & members):
                if successor == start:
                    return paths[node] + [start]
                if successor not in paths:
                    paths[successor] = paths[node] + [successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"{component} is not a cycle")


def test_the_graph_sees_relative_absolute_and_function_level_imports():
    graph = import_graph()
    assert "micmco.config" in graph["micmco.trainer"]  # module level, relative
    assert "micmco.models.common" in graph["micmco.memory"]  # inside a function
    assert "micmco.sweep.cli" in graph["micmco.sweep"]  # `from .cli import main` in a function of a package
    assert "micmco" in graph["micmco.cli"]  # `from . import __version__`: the package itself
    assert "micmco.tasks.ptb" in graph["micmco.tasks"]  # the registry's module names, imported by importlib
    assert "micmco.experiment" in graph["micmco.cli"]  # import_deferring_signals(("torch", "micmco.experiment"))
    assert "micmco.cli" not in graph["micmco.sweep.worker"]  # `python -m micmco.cli`: a subprocess, no import


def test_there_are_no_import_circles():
    graph = import_graph()
    circles = [
        a_cycle(graph, component)
        for component in strongly_connected(graph)
        if not all(member.startswith(ALLOWED) for member in component)
    ]
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(circle) for circle in circles)


PROBED = ("psycopg2",)  # imported only to see whether it is there (sweep.storage: else psycopg 3, declared)


def test_every_third_party_import_is_a_declared_dependency():
    """pandas came into the book only through seaborn; once seaborn went, a fresh clone's book failed. Every
    module the package (and the book's build script) imports from outside the standard library is a
    distribution pyproject.toml names, in its dependencies or an extra."""
    import re
    import sys
    from importlib.metadata import packages_distributions

    import pytest

    tomllib = pytest.importorskip("tomllib", reason="reads pyproject.toml with Python 3.11's tomllib")
    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    requirements = [*project["dependencies"], *(r for extra in extras for r in extra)]
    declared = {re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}
    distributions = packages_distributions()
    files = [*(SRC / PACKAGE).rglob("*.py"), SRC.parent / "book" / "build.py"]
    missing = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in (PACKAGE, "__future__", *PROBED):
                    continue
                owners = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
                if not owners & declared:
                    missing.add(f"{top} ({path.relative_to(SRC.parent)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
