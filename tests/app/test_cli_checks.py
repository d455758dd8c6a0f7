"""The CLI's early checks and error reporting (xpcnn/app/cli.py): usage errors exit 2, every output path
is checked before training, only xpcnn's own errors read as the user's, Ctrl-C tells the truth."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpcnn.app import cli
from xpcnn.app import run as run_module
from xpcnn.io.checkpoint import load_checkpoint, read_metadata
from xpcnn.datasets import write_idx

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--dataset", "sample", "--limit", "10", "--batch-size", "10", "--quiet"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPCNN_DATA", raising=False)
    monkeypatch.delenv("XPCNN_DEBUG", raising=False)


def run(capsys, *args):
    """``(exit status, stdout, stderr lines)`` of ``train.py args`` run in this process."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def leftovers(folder: Path) -> "list[str]":
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".check")))


# -- usage errors: exit 2, one line, naming the flag ------------------------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--classes", "0", "0"], "at least two distinct digits 0..9, got 0 0"),
    (["--classes", "11"], "at least two distinct digits 0..9, got 11"),
    (["--classes", "1"], "at least two distinct digits"),
    (["--classes", "all", "3"], "'all' alone"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["--epochs", "x"], "argument --epochs: expected an integer >= 0"),
    (["--dataset", "idx"], "--dataset idx needs --data-dir"),
    (["--save", "a.npz", "--metrics-json", "./a.npz"], "--save and --metrics-json name the same file"),
])
def test_usage_errors_exit_2_with_one_line_naming_the_flag(capsys, args, fragment):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


def test_help_states_each_default_once():
    text = " ".join(cli.build_parser().format_help().split())
    assert "(default: None)" not in text and "(default: 0 1) (default" not in text
    for option in text.split("--")[1:]:
        assert option.count("default") <= 1, option


# -- output paths, checked before training -----------------------------------------------------------

def _read_only(path: Path) -> Path:
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    return path


@pytest.mark.parametrize("flag, make, fragment", [
    ("--save", lambda d: d / "missing" / "m.npz", "the folder {d}/missing does not exist"),
    ("--save", lambda d: d, "is a folder"),
    ("--metrics-json", lambda d: d / "missing" / "m.json", "the folder {d}/missing does not exist"),
    ("--metrics-json", lambda d: d / "file.txt" / "m.json", "is not a folder"),
    ("--plot", lambda d: d / "missing" / "c.png", "the folder {d}/missing does not exist"),
    ("--plot", lambda d: d / "c.xyz", "matplotlib cannot write .xyz files"),
    ("--metrics-json", lambda d: _read_only(d / "old.json"), "the file is read-only"),
])
def test_a_bad_output_path_fails_before_any_epoch_naming_the_users_path(capsys, tmp_path, flag, make, fragment):
    if flag == "--plot":
        pytest.importorskip("matplotlib")
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "old.json").write_text("{}")
    path = make(tmp_path)
    code, out, err = run(capsys, *QUICK, "--epochs", "3", flag, path)
    assert code == 1 and out == "", out  # no banner, no epoch
    assert len(err) == 1 and f"{flag} {path}" in err[0] and fragment.format(d=tmp_path) in err[0], err
    assert leftovers(tmp_path) == []


def test_metrics_json_into_a_missing_folder_fails_at_once_in_a_subprocess(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XPCNN_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path)}
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--metrics-json", "/nonexistent/m.json"]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: --metrics-json /nonexistent/m.json: the folder /nonexistent does not exist\n"


def test_resume_without_save_never_writes_the_resumed_file_and_says_so(capsys, tmp_path):
    """Keras and PyTorch never write into the file you loaded: a high learning rate on resume must not
    replace a good checkpoint with a worse one."""
    path = tmp_path / "m.npz"
    assert run(capsys, *QUICK, "--epochs", "1", "--save", path)[0] == 0
    before = path.read_bytes()
    code, _, err = run(capsys, "--resume", path, "--epochs", "2", "--lr", "5", "--quiet")
    assert code == 0 and path.read_bytes() == before
    assert err == [f"note: {path} is only read: this run's checkpoints are not written (--save PATH.npz keeps "
                   f"them; naming the resumed file there writes over it)"]
    _read_only(path)  # only read: a read-only checkpoint resumes too
    code, _, _ = run(capsys, "--resume", path, "--epochs", "1", "--quiet", "--save", tmp_path / "more.npz")
    assert code == 0 and load_checkpoint(tmp_path / "more.npz").epoch == 2 and load_checkpoint(path).epoch == 1


def test_resume_writes_over_the_resumed_file_only_when_save_names_it(capsys, tmp_path):
    path = tmp_path / "m.npz"
    run(capsys, *QUICK, "--epochs", "1", "--save", path)
    assert run(capsys, "--resume", path, "--epochs", "2", "--quiet", "--save", path)[0] == 0
    assert load_checkpoint(path).epoch == 3


def test_a_save_path_ending_in_a_separator_is_one_line_not_a_file_named_after_the_folder(capsys, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *QUICK, "--epochs", "1", "--save", "newdir/")
    assert code == 1 and out == "" and len(err) == 1, err
    assert "--save newdir/: ends with a folder separator; give a file name, e.g. newdir/model.npz" in err[0]
    assert not (tmp_path / "newdir").exists()


def test_plot_is_written_at_exactly_the_path_given(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    code, _, _ = run(capsys, *QUICK, "--epochs", "1", "--plot", tmp_path / "curves", "--metrics-json", tmp_path / "m")
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["curves", "m"]
    assert (tmp_path / "curves").read_bytes()[:4] == b"\x89PNG" and json.loads((tmp_path / "m").read_text())
    run(capsys, *QUICK, "--epochs", "1", "--plot", tmp_path / "c.svg")
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()[:500]


# -- which errors are the user's -------------------------------------------------------------------

def test_a_bug_is_an_internal_error_with_the_debug_hint(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(run_module, "prepare", broken)
    code, out, err = run(capsys, *QUICK)
    assert code == 1 and len(err) == 1
    assert err[0] == ("error: internal error ValueError: operands could not be broadcast together "
                      "(XPCNN_DEBUG=1 shows the traceback)")
    for off in ("0", "false", "no", "off", ""):  # XPCNN_DEBUG=0 means no traceback, as it reads
        monkeypatch.setenv("XPCNN_DEBUG", off)
        assert run(capsys, *QUICK)[0] == 1
    monkeypatch.setenv("XPCNN_DEBUG", "1")
    with pytest.raises(ValueError, match="broadcast"):
        cli.main(QUICK)


def test_xpcnn_errors_are_the_users_and_an_os_error_on_their_path_too(capsys, monkeypatch, tmp_path):
    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "data" / "x"))

    monkeypatch.setattr(run_module, "load_dataset", denied)
    code, _, err = run(capsys, *QUICK, "--data-dir", tmp_path / "data")
    assert code == 1 and err[0].startswith("error: [Errno 13] Permission denied") and "internal" not in err[0]
    code, _, err = run(capsys, *QUICK)  # the same error about a path the user did not name is a bug
    assert code == 1 and "internal error PermissionError" in err[0]


# -- Ctrl-C says what is true ---------------------------------------------------------------------

@pytest.mark.parametrize("stop_epoch, message", [
    (1, "interrupted before the first epoch finished; {path} was not written"),
    (3, "interrupted; {path} holds epoch 2, the last finished one"),
])
def test_ctrl_c_says_what_the_checkpoint_holds(capsys, monkeypatch, tmp_path, stop_epoch, message):
    def on_batch(self, logs):
        if logs["epoch"] == stop_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(run_module.EpochProgress, "on_batch", on_batch)
    path = tmp_path / "m.npz"
    code, _, err = run(capsys, *QUICK, "--epochs", "5", "--save", path)
    assert code == 130 and err == [f"error: {message.format(path=path)}"]
    assert path.exists() == (stop_epoch > 1) and leftovers(tmp_path) == []


def test_ctrl_c_while_resuming_in_place_says_the_file_still_holds_the_resumed_epoch(capsys, monkeypatch, tmp_path):
    path = tmp_path / "m.npz"
    run(capsys, *QUICK, "--epochs", "2", "--save", path)
    def on_batch(self, logs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module.EpochProgress, "on_batch", on_batch)
    code, _, err = run(capsys, "--resume", path, "--epochs", "1", "--save", path)
    assert code == 130 and err == [f"error: interrupted; {path} holds epoch 2, the last finished one"]


# -- data --------------------------------------------------------------------------------------------

def test_a_limit_above_what_the_data_has_is_said_in_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "--dataset", "sample", "--limit", "150", "--epochs", "0", "--quiet",
                       "--metrics-json", tmp_path / "m.json")
    assert code == 0 and len(err) == 1
    assert err[0] == ("note: --limit 150 asks for more samples per class than sample has, so all of them are used: "
                      "train 100 per class; test 100 per class")
    assert json.loads((tmp_path / "m.json").read_text())["dataset"]["train_samples"] == 200


def _idx_folder(folder: Path, train_labels=None) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir()
    labels = np.array([0, 1] * 15, dtype=np.uint8) if train_labels is None else train_labels
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (labels.size, 28, 28), dtype=np.uint8))
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([0, 1] * 5, dtype=np.uint8))
    return folder


def test_your_own_idx_files_train_with_dataset_idx(capsys, tmp_path):
    folder = _idx_folder(tmp_path / "mine")
    code, _, err = run(capsys, "--dataset", "idx", "--data-dir", folder, "--epochs", "1", "--quiet",
                       "--batch-size", "10", "--save", tmp_path / "m.npz")
    assert code == 0, err
    assert read_metadata(tmp_path / "m.npz")["extra"]["config"]["dataset"] == "idx"


def test_a_limit_above_some_classes_names_those_classes_and_their_counts(capsys, tmp_path):
    labels = np.array([0] * 20 + [1] * 10, dtype=np.uint8)  # train: 20 of class 0, 10 of class 1; test: 5 each
    folder = _idx_folder(tmp_path / "mine", labels)
    code, _, err = run(capsys, "--dataset", "idx", "--data-dir", folder, "--limit", "12", "--epochs", "0",
                       "--quiet")
    assert code == 0 and err == ["note: --limit 12 asks for more samples per class than idx has, so all of them "
                                 "are used: train class 1 10; test 5 per class"]


def test_an_idx_label_outside_the_classes_names_the_file_and_the_item(capsys, tmp_path):
    labels = np.array([0, 1] * 15, dtype=np.uint8)
    labels[7] = 42
    folder = _idx_folder(tmp_path / "mine", labels)
    code, _, err = run(capsys, "--dataset", "idx", "--data-dir", folder, "--quiet")
    assert code == 1 and err == [f"error: {folder / 'train-labels-idx1-ubyte.gz'}: label 42 at item 7 is outside "
                                 f"the 10 classes 0..9"]
