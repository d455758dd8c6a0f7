"""The error classes (xpcnn/errors.py): every error xpcnn raises on purpose is an XpcnnError, so that a
caller (the CLI among them) can tell a user's mistake from a bug."""

import ast
import builtins
import pathlib

import numpy as np
import pytest

import xpcnn
import xpcnn as xc
from xpcnn import errors
from xpcnn.app import cli

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


# -- issue 25 item 6: running out of memory is one line saying what was too large and what to lower --

NUMPY_LINE = "Unable to allocate 38.1 GiB for an array with shape (10000, 32, 28, 28, 9) and data type float32"


def test_an_absurd_dense_layer_is_refused_at_construction_in_one_line():
    with pytest.raises(errors.OutOfMemoryError, match=r"^Dense: its parameters take 1e\+18 values, 3\.47 EiB in "
                       r"float32, more than this machine's .* of memory; lower its input_size or output_size$"):
        xc.Dense(10**12, 10**6)


def test_an_absurd_convolution_is_refused_at_construction_and_is_a_memory_error():
    with pytest.raises(MemoryError, match=r"^Convolutional: its parameters take .* more than this machine's"):
        xc.Convolutional((10**6, 10**4, 10**4), kernel_size=3, depth=10**6)


def test_the_bound_is_this_machines_memory(monkeypatch):
    monkeypatch.setattr(errors, "memory_bytes", lambda: 4 * 110)  # Dense(10, 10) takes 110 float32 values
    xc.Dense(10, 10)
    with pytest.raises(errors.OutOfMemoryError, match=r"110 values, 880 B in float64, more than .* 440 B of"):
        xc.Dense(10, 10, dtype="float64")
    monkeypatch.setattr(errors, "memory_bytes", lambda: None)  # the system does not say: nothing refused
    xc.Dense(10, 10, dtype="float64")


def _failing_model(exc):
    class Hungry(xc.ReLU):
        def forward(self, x, training=True):
            raise exc

    return xc.Sequential([xc.Dense(4, 2), Hungry(), xc.Softmax()], seed=0)


TORCH_LIKE = type("OutOfMemoryError", (RuntimeError,), {})  # torch.cuda.OutOfMemoryError is no MemoryError


@pytest.mark.parametrize("exc", [MemoryError(NUMPY_LINE),
                                 TORCH_LIKE("CUDA out of memory. Tried to allocate 20.00 GiB\nmore details")])
def test_a_training_step_out_of_memory_names_the_batch_and_what_to_lower(exc):
    x, y = np.zeros((12, 4), np.float32), np.eye(2, dtype=np.float32)[np.arange(12) % 2]
    with pytest.raises(errors.OutOfMemoryError) as info:
        _failing_model(exc).fit(x, y, epochs=1, batch_size=12)
    line = str(info.value)
    first = str(exc).splitlines()[0]
    assert line == (f"out of memory in a training step on a batch of 12 samples ({first}); lower the batch size "
                    f"(batch_size=, --batch-size) or the model's size")
    assert isinstance(info.value, MemoryError) and isinstance(info.value, xc.XpcnnError)


def test_other_errors_in_a_training_step_pass_unchanged():
    x, y = np.zeros((4, 4), np.float32), np.eye(2, dtype=np.float32)[np.arange(4) % 2]
    with pytest.raises(ZeroDivisionError):
        _failing_model(ZeroDivisionError("x")).fit(x, y, epochs=1)


def test_the_cli_reports_a_memory_error_anywhere_in_one_line_naming_the_flags(monkeypatch, capsys):
    def hungry(self):
        raise MemoryError(NUMPY_LINE)

    monkeypatch.delenv("XPCNN_DEBUG", raising=False)
    monkeypatch.setattr(cli.Run, "execute", hungry)
    assert cli.main(["--dataset", "sample", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: out of memory ({NUMPY_LINE}); lower --batch-size, --limit or the model's size\n"
