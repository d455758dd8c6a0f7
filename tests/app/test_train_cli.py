"""scripts/train.py and xpcnn/app/cli.py, end to end in subprocesses, offline, on the embedded sample."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xpcnn.app import cli
from xpcnn.io.checkpoint import load_checkpoint, read_metadata

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train.py"


@pytest.fixture
def offline_env(tmp_path):
    """No network, an empty user cache, no $XPCNN_DATA: only the embedded sample is reachable."""
    env = {k: v for k, v in os.environ.items() if k not in ("XPCNN_DATA", "XPCNN_DEBUG")}
    env.update(XPCNN_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    return env


def train(env, *args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def assert_one_line_error(result, *fragments, code=1):
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_sample_run_exits_0_and_writes_the_metrics_json(tmp_path, offline_env):
    metrics = tmp_path / "metrics.json"
    result = train(offline_env, "--dataset", "sample", "--epochs", "3", "--batch-size", "4", "--classes", "3", "8",
                   "--metrics-json", metrics)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "test accuracy" in result.stdout and "confusion matrix" in result.stdout and "samples/s" in result.stdout
    assert result.stdout.count("epoch ") >= 3
    m = json.loads(metrics.read_text())
    assert m["config"]["dataset"] == "sample" and m["config"]["classes"] == [3, 8] and m["config"]["model"] == "seed"
    assert m["dataset"]["fallback_to_sample"] is False and m["dataset"]["train_samples"] == 200
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(m["history"][0])
    matrix = np.array(m["confusion_matrix"])
    assert matrix.shape == (2, 2) and matrix.sum() == m["dataset"]["test_samples"] == 200
    assert m["final"]["test_accuracy"] == pytest.approx(np.trace(matrix) / 200)
    assert m["throughput"]["train_samples_per_s"] > 0 and m["device"] == "cpu"
    # each convolution names the engine it asked for and those it used (the suite pins XPCNN_ENGINE=gemm)
    assert m["model"]["engines"] == [{"layer": 0, "requested": "auto", "train": "gemm", "infer": "gemm"}]
    assert "engine='auto' -> 'gemm'" in m["model"]["layers"]


def test_default_run_falls_back_to_the_sample_in_one_line_and_reproduces_the_derivation(tmp_path, offline_env):
    metrics = tmp_path / "m.json"
    result = train(offline_env, "--metrics-json", metrics, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    notes = result.stderr.strip().splitlines()
    assert len(notes) == 1 and "embedded real-MNIST sample" in notes[0]
    m = json.loads(metrics.read_text())
    assert m["dataset"]["fallback_to_sample"] is True and m["dataset"]["name"] == "sample"
    assert m["config"]["lr"] == 0.1 and m["config"]["batch_size"] == 1 and m["config"]["optimizer"] == "sgd"
    assert m["config"]["epochs"] == 20 and m["config"]["classes"] == [0, 1] and m["config"]["model"] == "seed"
    assert m["final"]["test_accuracy"] >= 0.95


def test_resume_continues_as_if_never_stopped(tmp_path, offline_env):
    common = ["--dataset", "sample", "--limit", "30", "--batch-size", "8", "--optimizer", "momentum",
              "--lr", "0.05", "--quiet"]
    straight = train(offline_env, *common, "--epochs", "3", "--save", tmp_path / "straight.npz")
    first = train(offline_env, *common, "--epochs", "2", "--save", tmp_path / "resumed.npz")
    second = train(offline_env, "--resume", tmp_path / "resumed.npz", "--epochs", "1", "--quiet",
                   "--metrics-json", tmp_path / "m.json", "--save", tmp_path / "continued.npz")
    for result in (straight, first, second):
        assert result.returncode == 0, result.stderr
    a, b = load_checkpoint(tmp_path / "straight.npz"), load_checkpoint(tmp_path / "continued.npz")
    assert a.epoch == b.epoch == 3 and load_checkpoint(tmp_path / "resumed.npz").epoch == 2
    for la, lb in zip(a.layers, b.layers):
        for key in la.params:
            np.testing.assert_allclose(lb.params[key], la.params[key], rtol=1e-6, atol=1e-7)
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["resumed_from"].endswith("resumed.npz") and m["first_epoch"] == 3 and len(m["history"]) == 3
    assert read_metadata(tmp_path / "resumed.npz")["extra"]["config"]["optimizer"] == "momentum"


def test_convnet_bn_resumes_exactly_through_the_cli_with_a_new_learning_rate(tmp_path, offline_env):
    """BatchNorm's running statistics and Dropout's masks (the model's generator) survive ``--resume``;
    ``--lr`` on resume is the step decay the README's Fashion-MNIST recipe uses."""
    common = ["--dataset", "sample", "--classes", "all", "--limit", "8", "--model", "convnet-bn",
              "--batch-size", "16", "--quiet"]
    straight = train(offline_env, *common, "--epochs", "2", "--save", tmp_path / "straight.npz")
    first = train(offline_env, *common, "--epochs", "1", "--save", tmp_path / "resumed.npz")
    second = train(offline_env, "--resume", tmp_path / "resumed.npz", "--epochs", "1", "--quiet",
                   "--save", tmp_path / "resumed.npz")  # written over: --save names it
    decayed = train(offline_env, "--resume", tmp_path / "straight.npz", "--epochs", "1", "--lr", "1e-4", "--quiet",
                    "--save", tmp_path / "decayed.npz")
    for result in (straight, first, second, decayed):
        assert result.returncode == 0, result.stderr
    a, b = load_checkpoint(tmp_path / "straight.npz"), load_checkpoint(tmp_path / "resumed.npz")
    assert a.epoch == b.epoch == 2
    for la, lb in zip(a.layers, b.layers):
        for held in ("params", "buffers"):
            for key, value in getattr(la, held).items():
                np.testing.assert_array_equal(getattr(lb, held)[key], value, err_msg=f"{la!r} {key}")
    assert load_checkpoint(tmp_path / "decayed.npz").optimizer.learning_rate == 1e-4


@pytest.mark.parametrize("args, fragments", [
    (["--dataset", "mnist"], ["mnist: no verified copy of train-images-idx3-ubyte.gz", "$XPCNN_OFFLINE", "--data-dir"]),
    (["--data-dir", "."], ["mnist: no verified copy", "data_dir ."]),  # an explicit folder: no fallback
    (["--device", "tpu"], ["unknown device 'tpu'"]),
    (["--resume", "missing.npz"], ["missing.npz: cannot read the checkpoint"]),
])
def test_errors_are_one_line_without_traceback(tmp_path, offline_env, args, fragments):
    assert_one_line_error(train(offline_env, *args, cwd=tmp_path), *fragments)


def test_cuda_without_cupy_or_gpu_is_one_line(offline_env, tmp_path):
    try:
        cli.backend.get_device("cuda")
        pytest.skip("a CUDA device is available here")
    except cli.backend.DeviceError:
        pass
    assert_one_line_error(train(offline_env, "--device", "cuda", cwd=tmp_path), "cuda")


def test_corrupt_data_files_are_never_used_and_the_error_says_why(tmp_path, offline_env):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not really gzip")
    (tmp_path / "train-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 9]))  # valid IDX, wrong data
    result = train(offline_env, "--dataset", "mnist", "--data-dir", tmp_path, cwd=tmp_path)
    published = "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    assert_one_line_error(result, f"{tmp_path / 'train-images-idx3-ubyte.gz'}: checksum mismatch: SHA-256 ",
                          f"{tmp_path / 'train-images-idx3-ubyte'}: checksum mismatch", published)


def test_corrupt_or_mismatched_checkpoint_is_one_line(tmp_path, offline_env):
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip at all")
    assert_one_line_error(train(offline_env, "--resume", tmp_path / "junk.npz", cwd=tmp_path), "junk.npz: corrupt")
    assert train(offline_env, "--dataset", "sample", "--epochs", "1", "--batch-size", "20", "--quiet",
                 "--save", tmp_path / "two.npz").returncode == 0
    assert_one_line_error(train(offline_env, "--resume", tmp_path / "two.npz", "--classes", "0", "1", "2"),
                          "does not match the checkpoint's classes")
    assert_one_line_error(train(offline_env, "--resume", tmp_path / "two.npz", "--model", "convnet"),
                          "--model convnet does not match")


@pytest.mark.parametrize("args, fragment", [
    (["--epochs", "-1"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--lr", "nan"], "--lr"),
    (["--batch-size", "0"], "--batch-size"),
    (["--limit", "0"], "--limit"),
    (["--classes", "3"], "at least two distinct digits"),
    (["--classes", "1", "x"], "digits 0..9 or 'all'"),
    (["--classes", "1", "12"], "at least two distinct digits"),
    (["--dataset", "cifar"], "--dataset"),
    (["--optimizer", "rmsprop"], "--optimizer"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_bad_flag_values_are_one_line_usage_errors(capsys, args, fragment):
    with pytest.raises(SystemExit) as info:
        code = cli.main(args)
        raise SystemExit(code)
    assert info.value.code not in (0, None)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


def test_zero_epochs_only_evaluates_and_ten_classes_pick_the_convnet(capsys, tmp_path):
    code = cli.main(["--dataset", "sample", "--classes", "all", "--limit", "20", "--epochs", "0", "--quiet",
                     "--metrics-json", str(tmp_path / "m.json")])
    assert code == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["config"]["model"] == "convnet" and m["config"]["optimizer"] == "adam" and m["history"] == []
    assert np.array(m["confusion_matrix"]).shape == (10, 10) and m["dataset"]["test_samples"] == 200
    assert "test accuracy" in capsys.readouterr().out


def test_plot_writes_a_png_or_says_matplotlib_is_missing(tmp_path, offline_env):
    result = train(offline_env, "--dataset", "sample", "--epochs", "2", "--batch-size", "20", "--quiet",
                   "--plot", tmp_path / "curves.png")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert_one_line_error(result, "pip install 'xpcnn[plot]'")
        return
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_help_lists_every_flag_of_the_issue():
    text = cli.build_parser().format_help()
    for flag in ("--device", "--dataset", "--classes", "--limit", "--model", "--epochs", "--batch-size", "--lr",
                 "--optimizer", "--dtype", "--seed", "--data-dir", "--save", "--resume", "--metrics-json",
                 "--plot", "--quiet"):
        assert flag in text


def test_float64_run_saves_a_float64_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    path = tmp_path / "f64.npz"
    assert cli.main(["--dataset", "sample", "--dtype", "float64", "--epochs", "1", "--batch-size", "50",
                     "--quiet", "--save", str(path)]) == 0
    model = load_checkpoint(path)
    assert model.dtype == "float64" and model.layers[0].params["kernels"].dtype == np.float64
    assert read_metadata(path)["extra"]["config"]["dtype"] == "float64"


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    m = cli.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    xs = pytest.importorskip("array_api_strict")  # written in the array API: any namespace, labels of any int dtype
    strict = cli.confusion_matrix(xs.asarray([3, 0, 3], dtype=xs.uint8), xs.asarray([3, 3, 1], dtype=xs.int64), 4)
    assert np.asarray(strict).tolist() == [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 0, 1]]


def test_help_names_the_command_it_was_run_as(offline_env):
    """``xpcnn-train --help`` says ``usage: xpcnn-train``, and ``python scripts/train.py --help`` says train.py."""
    script = ROOT / "scripts" / "train.py"
    entry = Path(sys.executable).parent / "xpcnn-train"
    assert entry.exists(), "pip install -e . installs the xpcnn-train command beside the interpreter"
    for command, name in (([sys.executable, str(script)], "train.py"), ([str(entry)], "xpcnn-train")):
        result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120, env=offline_env)
        assert result.returncode == 0 and result.stdout.startswith(f"usage: {name} "), result.stdout[:80]
