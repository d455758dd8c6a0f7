"""docs/backends.md, the array libraries page: its Python blocks run (in order, in one namespace, as the
guide pages' do in test_docs_site.py), and every file it names as the place of a test, a stand-in, a
benchmark or a report exists, so its support table cannot point at a file that was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_docs_site import NOT_RUN, python_blocks

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "backends.md"


def test_every_python_block_of_the_backends_page_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    pytest.importorskip("safetensors")
    text = PAGE.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 5 and len(blocks) + len(NOT_RUN.findall(text)) == text.count("```python\n")
    monkeypatch.chdir(tmp_path)  # the checkpoint and the exported files land here
    namespace: dict = {"__name__": "__docs__"}
    for code in blocks:
        exec(compile(code, "docs/backends.md", "exec"), namespace)


def named_files(text: str) -> "list[str]":
    """The repository files the page names in backticks: tests/..., benchmarks/..., xpcnn/..., scripts/..."""
    return sorted(set(re.findall(r"`((?:tests|benchmarks|xpcnn|scripts)/[\w./-]+?\.(?:py|json))`", text)))


def test_every_file_the_backends_page_names_exists():
    names = named_files(PAGE.read_text())
    assert "tests/torch/test_torch.py" in names and "tests/support/fake_cupy.py" in names
    missing = [name for name in names if not (ROOT / name).is_file()]
    assert not missing, missing


def test_a_named_file_that_does_not_exist_is_found():
    assert named_files("see `tests/torch/test_gone.py` and `xpcnn/backend/`") == ["tests/torch/test_gone.py"]
