"""The README's Python example runs as printed and learns."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_runs_and_reaches_high_accuracy(capsys):
    text = README.read_text()
    code = re.search(r"## Example with NumPy arrays\n.*?```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["model"].evaluate(namespace["x"][1::2], namespace["y"][1::2])["accuracy"] >= 0.98
    assert "accuracy" in capsys.readouterr().out


def test_every_module_path_the_readme_imports_or_calls_is_the_new_one():
    """Imports and calls in the README name today's modules; the old paths (``xpcnn._moved``) are named
    once, as old paths, where the README says they still work with a DeprecationWarning."""
    import importlib
    import warnings

    from xpcnn import _moved

    text = README.read_text()
    modules = re.findall(r"from (xpcnn[\w.]*) import", text) + re.findall(r"import (xpcnn[\w.]*)", text)
    calls = re.findall(r"(xpcnn(?:\.\w+)+)\(", text)  # xpcnn.io.checkpoint.load_checkpoint(...)
    assert "xpcnn.io.checkpoint" in modules and calls
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in modules:
            assert name not in _moved.MOVED, name
            importlib.import_module(name)
        for dotted in calls:
            module, attribute = dotted.rsplit(".", 1)
            assert module not in _moved.MOVED, dotted
            assert hasattr(importlib.import_module(module), attribute), dotted
    assert text.count("DeprecationWarning") == 1
