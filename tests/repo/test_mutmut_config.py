"""pyproject.toml's ``[tool.mutmut]``: what it mutates exists, and it covers the core math and the modules that run
in-process (issue 25); its tests exist and run in this process (a subprocess would import the unmutated package)."""

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]

# issue 25: checkpoints, schedules, early stopping, the fit loop, the model, export, dataset preprocessing and the
# doctor's comparisons, beside the core math
IN_PROCESS = ["xpcnn/io/checkpoint.py", "xpcnn/optim/schedules.py", "xpcnn/train/early_stopping.py",
              "xpcnn/train/loop.py", "xpcnn/train/trainer.py", "xpcnn/train/batches.py", "xpcnn/model.py",
              "xpcnn/io/export/onnx_export.py", "xpcnn/io/export/weights.py", "xpcnn/datasets/preprocess.py",
              "xpcnn/testing/parity.py"]
CORE = ["xpcnn/losses.py", "xpcnn/optim/optimizers.py", "xpcnn/engines/gemm.py", "xpcnn/layers/conv.py"]


def mutated() -> "set[str]":
    return {str(p.relative_to(ROOT)) for pattern in CONFIG["only_mutate"] for p in ROOT.glob(pattern)
            if p.suffix == ".py"}


def test_every_pattern_names_files_and_the_in_process_modules_are_mutated_beside_the_core():
    for pattern in CONFIG["only_mutate"]:
        assert list(ROOT.glob(pattern)), f"only_mutate: {pattern} matches no file"
    assert set(IN_PROCESS + CORE) <= mutated(), sorted(set(IN_PROCESS + CORE) - mutated())


def test_every_selected_test_exists_and_every_deselected_one_too():
    for path in CONFIG["pytest_add_cli_args_test_selection"]:
        assert (ROOT / path).exists(), path
    args = CONFIG["pytest_add_cli_args"]
    for flag, node in zip(args, args[1:]):
        if flag == "--deselect":
            path, name = node.split("::")
            assert f"def {name}" in (ROOT / path).read_text(), node


def _starts_a_process(function: ast.FunctionDef) -> bool:
    names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)}
    attributes = {n.attr for n in ast.walk(function) if isinstance(n, ast.Attribute)}
    return "subprocess" in names or "executable" in attributes


def test_the_in_process_modules_tests_that_start_a_process_are_deselected():
    args = CONFIG["pytest_add_cli_args"]
    deselected = [node for flag, node in zip(args, args[1:]) if flag == "--deselect"]
    added = CONFIG["pytest_add_cli_args_test_selection"][CONFIG["pytest_add_cli_args_test_selection"].index(
        "tests/io/test_checkpoint_properties.py"):]
    for path in added:
        for file in sorted((ROOT / path).rglob("test_*.py")) if (ROOT / path).is_dir() else [ROOT / path]:
            tree = ast.parse(file.read_text())
            for function in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")):
                node = f"{file.relative_to(ROOT)}::{function.name}"
                if _starts_a_process(function):
                    assert any(node.startswith(d) for d in deselected), f"{node} starts a process: deselect it"
