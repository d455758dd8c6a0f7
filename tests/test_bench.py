"""scripts/bench.py: it runs end to end on a tiny setting, and its contenders compute the same network.

No timing is asserted anywhere: the numbers depend on the machine.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.losses import get_loss
from xpcnn.optimizers import SGD

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench.py"
TINY = ["--batch-sizes", "2", "--dtypes", "float32", "--repeats", "1", "--min-time", "0", "--pause", "0"]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def load_bench():
    if "xpcnn_bench_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("xpcnn_bench_script", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["xpcnn_bench_script"]


def run_bench(*args, timeout=300):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_bench_runs_without_torch_and_writes_json_with_ratio_to_per_sample(tmp_path):
    out = tmp_path / "bench.json"
    result = run_bench("--models", "seed", "--contenders", "xpcnn,per-sample", *TINY, "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # the contenders' outputs agree
    report = json.loads(out.read_text())
    contenders = {(r["contender"], r["mode"]) for r in report["results"]}
    assert {("xpcnn[gemm]", "train"), ("xpcnn[signal]", "infer"), ("per-sample", "train")} <= contenders
    assert all(r["samples_per_s"]["median"] > 0 for r in report["results"])
    assert report["peak_gflops"]["float32"] > 0
    assert {"xpcnn_over_per_sample"} <= set(report["ratios"][0])
    assert "samples/s" in result.stdout and "roofline" in result.stdout


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (pip install -e '.[bench]')")
def test_bench_with_torch_builds_the_same_networks_and_reports_the_ratio(tmp_path):
    out = tmp_path / "bench.json"
    models = "seed,convnet" if "convnet" in load_bench().available_models() else "seed"
    result = run_bench("--models", models, "--engines", "gemm", *TINY, "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # same weights give the same outputs in xpcnn and PyTorch
    report = json.loads(out.read_text())
    assert any(r["contender"] == "torch" for r in report["results"])
    assert all("xpcnn_over_torch" in e for e in report["ratios"])


def test_bench_device_cuda_without_a_gpu_fails_with_one_line():
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed: --device cuda may work here")
    result = run_bench("--device", "cuda", *TINY)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "CuPy" in result.stderr


def test_bench_rejects_an_unknown_model_in_one_line():
    result = run_bench("--models", "resnet", *TINY)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "resnet" in result.stderr


def test_flop_count_of_the_seed_network_matches_the_hand_count():
    bench = load_bench()
    model, _, _ = bench.seed_model("float32")
    conv = 2 * 5 * 9 * 26 * 26            # one correlation pass of the 5 kernels
    dense = 2 * 3380 * 100 + 2 * 100 * 2  # both dense layers, forward
    assert bench.matrix_flops(model, train=False) == conv + dense
    # training: conv forward + kernel gradient (no input gradient for the first layer),
    # dense forward + weight gradient + input gradient
    assert bench.matrix_flops(model, train=True) == 2 * conv + 3 * dense


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_per_sample_baseline_takes_the_same_step_as_xpcnn(dtype):
    bench = load_bench()
    model, loss, classes = bench.seed_model(dtype)
    baseline = bench.PerSample(model, 0.1)
    x, y = bench.synthetic_batch(model, classes, 1, dtype)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(baseline.predict_batch(x), model.forward(x), atol=tol)
    baseline.train_batch(x, y)
    model.train_step(x, y, *get_loss(loss), SGD(0.1))
    conv, dense1, dense2 = model.layers[0], model.layers[3], model.layers[5]
    pairs = [(baseline.kernels, conv.kernels), (baseline.biases, conv.biases), (baseline.w1, dense1.weights),
             (baseline.b1[:, 0], dense1.bias), (baseline.w2, dense2.weights), (baseline.b2[:, 0], dense2.bias)]
    for ours, theirs in pairs:
        assert ours.dtype == np.dtype(dtype)
        np.testing.assert_allclose(ours, xc.to_numpy(theirs), atol=tol)
