"""The package's import graph: no cycles, and no module importing one from a higher layer.

Every ``import`` and ``from ... import`` in ``xpcnn/`` is read with ``ast`` (inside functions
too: a lazy import is still an import), resolved to the module it names, and checked against
:data:`LAYERS`, the order ``docs/architecture.md`` draws. A module may import its own layer
and the layers below; ``xpcnn/__init__.py`` (the public facade) and ``xpcnn/_moved.py`` (the
old import paths) may import anything.
"""

from __future__ import annotations

import ast
import pathlib

import xpcnn

PACKAGE = pathlib.Path(xpcnn.__file__).parent

#: Lowest first. A name is a top-level module or a subpackage of ``xpcnn``.
LAYERS = [
    {"errors", "_checks", "_startup"},
    {"backend"},
    {"losses", "optim"},
    {"engines"},
    {"layers"},
    {"tools", "datasets"},
    {"distributed"},
    {"train"},
    {"model"},
    {"zoo"},
    {"io"},
    {"testing"},
    {"plot"},
    {"app"},
    {"doctor"},
]
FACADES = {"xpcnn", "xpcnn._moved"}


def rank(module: str) -> int:
    part = module.split(".")[1]
    return next(i for i, names in enumerate(LAYERS) if part in names)


def module_name(path: pathlib.Path) -> str:
    parts = ("xpcnn", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> "dict[str, pathlib.Path]":
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: pathlib.Path, known: "set[str]") -> "set[str]":
    """The xpcnn modules ``name`` imports (``from package import module`` names the module, not the package)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "xpcnn"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "xpcnn":
                continue
            submodules = {f"{target}.{a.name}" for a in node.names} & known
            found |= submodules
            if len(submodules) < len(node.names):  # a name defined in the package itself
                found.add(target)
    return {m for m in found if m in known and m != name}


def graph() -> "dict[str, set[str]]":
    mods = modules()
    return {name: imports(name, path, set(mods)) for name, path in mods.items()}


def upward(edges: "dict[str, set[str]]") -> "list[str]":
    return sorted(f"{a} (layer {rank(a)}) imports {b} (layer {rank(b)})"
                  for a, targets in edges.items() if a not in FACADES
                  for b in targets if b not in FACADES and rank(b) > rank(a))


def cycles(edges: "dict[str, set[str]]") -> "list[list[str]]":
    """Every cycle found by a depth-first search (each reported once, from its smallest module)."""
    found, state = [], {}

    def visit(node: str, stack: "list[str]") -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycle = stack[stack.index(nxt):]
                first = cycle.index(min(cycle))
                cycle = cycle[first:] + cycle[:first]
                if cycle not in found:
                    found.append(cycle)
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def test_every_module_has_a_layer():
    assert [m for m in modules() if m not in FACADES and m.split(".")[1] not in set().union(*LAYERS)] == []


def test_no_module_imports_a_higher_layer():
    assert upward(graph()) == []


def test_the_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_the_checks_find_an_upward_import_and_a_cycle():
    edges = {"xpcnn.layers.dense": {"xpcnn.model"}, "xpcnn.model": {"xpcnn.layers.dense"}}
    assert upward(edges) == ["xpcnn.layers.dense (layer 4) imports xpcnn.model (layer 8)"]
    assert cycles(edges) == [["xpcnn.layers.dense", "xpcnn.model"]]


def test_at_most_eight_modules_sit_at_the_top_level():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
