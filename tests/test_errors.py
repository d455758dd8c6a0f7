"""The error classes (xpcnn/errors.py): every error xpcnn raises on purpose is an XpcnnError, so that a
caller (the CLI among them) can tell a user's mistake from a bug."""

import ast
import builtins
import pathlib

import xpcnn

PACKAGE = pathlib.Path(xpcnn.__file__).parent
#: Built-in exceptions a deliberate ``raise`` must not use bare (NotImplementedError marks abstract methods).
BUILTIN = {name for name, value in vars(builtins).items()
           if isinstance(value, type) and issubclass(value, Exception) and name != "NotImplementedError"}


def raised_builtins(path: pathlib.Path, root: pathlib.Path = PACKAGE) -> "list[str]":
    """Bare built-in raises, except the AttributeError a module's ``__getattr__`` must raise (PEP 562)."""
    found = []
    tree = ast.parse(path.read_text())
    protocol = {id(node) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "__getattr__"
                for node in ast.walk(f) if isinstance(node, ast.Raise)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None and id(node) not in protocol:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id in BUILTIN:
                found.append(f"{path.relative_to(root)}:{node.lineno}: raise {exc.id}")
    return found


def test_no_module_raises_a_bare_builtin_exception():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py")) for hit in raised_builtins(path)]
    assert not offenders, "raise an xpcnn.errors class (it also subclasses the built-in):\n" + "\n".join(offenders)


def test_the_check_finds_a_bare_raise_and_allows_abstract_methods(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    raise ValueError('x')\n\ndef g():\n    raise NotImplementedError\n")
    assert raised_builtins(probe, tmp_path) == ["probe.py:2: raise ValueError"]
