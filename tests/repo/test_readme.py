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
