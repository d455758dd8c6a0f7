"""Issue 25 item 11's leftovers: SIGTERM is Ctrl-C, Ctrl-C while starting is one line, a bad ``$XPCNN_DATA`` is
one line naming it; and two behaviours the CLI's users rely on (pixels scaled by exactly 1/255, the confusion
matrix's rows are the true class)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--dataset", "sample", "--limit", "10", "--batch-size", "10", "--quiet"]


@pytest.fixture
def env(tmp_path):
    """No network, an empty user cache, no $XPCNN_DATA or $XPCNN_DEBUG; this worktree's xpcnn."""
    env = {k: v for k, v in os.environ.items() if k not in ("XPCNN_DATA", "XPCNN_DEBUG")}
    env.update(XPCNN_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def python(code: str, *args, env, cwd=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


# -- SIGTERM is treated as Ctrl-C ------------------------------------------------------------------------------

SIGTERM_AT = """
    import os, signal, sys
    from xpcnn.app import cli, run

    def on_batch(self, logs):  # a real SIGTERM, sent by the process to itself during epoch 3
        if logs["epoch"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    run.EpochProgress.on_batch = on_batch
    sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_during_training_stops_like_ctrl_c_and_says_what_the_checkpoint_holds(tmp_path, env):
    path = tmp_path / "m.npz"
    result = python(SIGTERM_AT, *QUICK, "--epochs", "5", "--save", path, env=env)
    assert result.returncode == 143, (result.returncode, result.stderr[-400:])
    assert result.stderr.splitlines() == [f"error: stopped by SIGTERM; {path} holds epoch 2, the last finished one"]
    from xpcnn.io.checkpoint import read_metadata
    assert read_metadata(path)["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["m.npz"]  # no temporary file left


def test_the_sigterm_handler_is_the_callers_again_after_main(tmp_path, monkeypatch, capsys):
    import signal
    from xpcnn.app import cli
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main([*QUICK, "--epochs", "1"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before


# -- Ctrl-C while the program starts ---------------------------------------------------------------------------

CTRL_C_WHILE_IMPORTING = """
    import runpy, sys

    class CtrlC:  # Ctrl-C arrives while xpcnn's modules are being imported
        def find_spec(self, name, path=None, target=None):
            if name == "xpcnn.app.run":
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, CtrlC())
    sys.argv = [sys.argv[1], "--help"]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_ctrl_c_while_train_py_starts_is_one_line_and_exit_130(env):
    result = python(CTRL_C_WHILE_IMPORTING, ROOT / "scripts" / "train.py", env=env)
    assert result.returncode == 130, (result.returncode, result.stderr[-400:])
    assert result.stderr.splitlines() == ["error: interrupted while starting; nothing was trained or written"]


CONSOLE_SCRIPT = """
    import re
    import sys
    from {module} import main
    if __name__ == "__main__":
        sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
        sys.exit(main())
"""  # what pip writes for a [project.scripts] entry

CTRL_C_WHILE_THE_CONSOLE_SCRIPT_IMPORTS = """
    import os, runpy, signal, sys
    AT = sys.argv[2]

    class CtrlC:  # a real SIGINT, while xpcnn's modules are being imported
        def find_spec(self, name, path=None, target=None):
            if name == AT:
                os.kill(os.getpid(), signal.SIGINT)
            return None

    sys.meta_path.insert(0, CtrlC())
    sys.argv = [sys.argv[1], "--help"]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("program, module, importing", [  # the package's start, and the program's own modules
    ("xpcnn-train", "xpcnn.app.cli", "xpcnn.model"), ("xpcnn-train", "xpcnn.app.cli", "xpcnn.app.run"),
    ("xpcnn-doctor", "xpcnn.doctor.cli", "xpcnn.model"), ("xpcnn-doctor", "xpcnn.doctor.cli", "xpcnn.doctor.checks"),
])
def test_ctrl_c_while_a_console_script_imports_xpcnn_is_one_line_and_exit_130(tmp_path, env, program, module,
                                                                              importing):
    script = tmp_path / program
    script.write_text(textwrap.dedent(CONSOLE_SCRIPT.format(module=module)))
    result = python(CTRL_C_WHILE_THE_CONSOLE_SCRIPT_IMPORTS, script, importing, env=env)
    assert result.returncode == 130, (result.returncode, result.stderr[-400:])
    assert result.stderr.splitlines() == ["error: interrupted while starting; nothing was trained or written"]


def test_a_program_that_imports_xpcnn_keeps_its_own_ctrl_c(tmp_path, env):
    script = tmp_path / "my-program"
    script.write_text("import signal, xpcnn, xpcnn.app.cli\n"
                      "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
                      "signal.raise_signal(signal.SIGINT)\n")
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == -2 and result.stderr.splitlines()[-1] == "KeyboardInterrupt", result.stderr[-400:]


def test_the_console_scripts_main_puts_pythons_ctrl_c_back_before_the_run(monkeypatch):
    import signal
    from xpcnn import _startup
    from xpcnn.app import cli
    monkeypatch.setattr(sys, "argv", ["/usr/bin/xpcnn-train"])
    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _startup.guard()
        assert signal.getsignal(signal.SIGINT) is _startup._interrupted
        seen = []
        monkeypatch.setattr(cli, "Run", lambda *a: seen.append(signal.getsignal(signal.SIGINT)) or 1 / 0)
        monkeypatch.setenv("XPCNN_DEBUG", "0")
        assert cli.main(QUICK) == 1
        assert seen == [signal.default_int_handler]
    finally:
        signal.signal(signal.SIGINT, previous)


# -- $XPCNN_DATA that names no folder --------------------------------------------------------------------------

@pytest.mark.parametrize("kind, why", [("missing", "does not exist"), ("file", "is a file, not a folder")])
@pytest.mark.parametrize("flags", [[], ["--dataset", "fashion-mnist"]])
def test_an_xpcnn_data_that_is_missing_or_a_file_is_one_line_naming_the_variable(tmp_path, monkeypatch, capsys,
                                                                                 kind, why, flags):
    from xpcnn.app import cli
    target = tmp_path / "data"
    if kind == "file":
        target.write_text("not a folder")
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPCNN_DEBUG", raising=False)
    monkeypatch.setenv("XPCNN_DATA", str(target))
    code = cli.main([*flags, "--epochs", "0", "--quiet"])  # the bare run must not fall back to the sample silently
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and all(line.startswith(("note: ", "error: ")) for line in err), err  # no traceback
    assert err[-1].startswith(f"error: XPCNN_DATA={target} {why}; "), err[-1]
    assert "unset XPCNN_DATA" in err[-1]


def test_load_mnist_with_a_broken_xpcnn_data_is_a_data_error_not_data_not_found(tmp_path, monkeypatch):
    from xpcnn.datasets import DataNotFoundError, load_mnist
    from xpcnn.errors import DataError
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XPCNN_DATA", str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()  # a data_dir without the files: the search goes on to $XPCNN_DATA
    with pytest.raises(DataError, match=r"XPCNN_DATA=.*nowhere does not exist") as caught:
        load_mnist(data_dir=tmp_path / "empty")
    assert not isinstance(caught.value, DataNotFoundError)  # not something the bare run falls back from


# -- the CLI's confusion matrix: rows are the true class, columns the prediction -----------------------------

def test_the_clis_confusion_matrix_has_true_rows_and_predicted_columns(tmp_path, monkeypatch, capsys):
    """A model that always answers class 0: every test sample lands in column 0, in its own class's row."""
    from xpcnn.app import cli
    from xpcnn.model import Sequential
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPCNN_DATA", raising=False)
    answered = []

    def always_class_0(self, x, *args, **kwargs):
        answered.append(x.shape[0])
        out = np.zeros((x.shape[0], 3), dtype=np.float32)
        out[:, 0] = 1.0
        return out

    monkeypatch.setattr(Sequential, "predict", always_class_0)
    path = tmp_path / "metrics.json"
    code = cli.main(["--dataset", "sample", "--classes", "0", "1", "2", "--limit", "4", "--epochs", "0", "--quiet",
                     "--metrics-json", str(path)])
    assert code == 0, capsys.readouterr().err
    matrix = json.loads(path.read_text())["confusion_matrix"]
    assert answered and sum(map(sum, matrix)) == answered[-1] == 12
    assert matrix == [[4, 0, 0], [4, 0, 0], [4, 0, 0]]  # transposed it would be [[4, 4, 4], [0, 0, 0], [0, 0, 0]]
