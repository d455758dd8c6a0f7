"""The import paths from before the package was laid out by job still work, and say where to go."""

import importlib
import subprocess
import sys

import pytest

import xpcnn as xc
from xpcnn import _moved


@pytest.mark.parametrize("old,new", sorted(_moved.MOVED.items()))
def test_an_old_module_path_is_the_new_module_with_a_warning_naming_it(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_the_readmes_old_imports_give_the_same_functions():
    for old in ("xpcnn.checkpoint", "xpcnn.export"):
        sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning):
        from xpcnn.checkpoint import load_checkpoint, save_checkpoint
        from xpcnn.export import to_onnx
    from xpcnn.io import export
    from xpcnn.io.checkpoint import load_checkpoint as new_load, save_checkpoint as new_save
    assert (save_checkpoint, load_checkpoint, to_onnx) == (new_save, new_load, export.to_onnx)


def test_an_old_module_is_an_attribute_of_the_package_too(monkeypatch):
    monkeypatch.delitem(sys.modules, "xpcnn.optimizers", raising=False)
    monkeypatch.delattr(xc, "optimizers", raising=False)  # set by an earlier import of the old path
    with pytest.warns(DeprecationWarning):
        assert xc.optimizers.SGD is xc.SGD
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        xc.nothing_here  # noqa: B018


def test_importing_xpcnn_imports_none_of_the_old_paths():
    code = ("import sys, xpcnn; from xpcnn._moved import MOVED; "
            "print(sorted(m for m in MOVED if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"
