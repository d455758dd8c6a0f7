"""scripts/bench.py run as a program: end to end on a tiny setting, its contenders computing the same
network, usage errors in one line, and the targets file it reads holding the issues' goals.

The library under it is tested beside: test_benchmark.py (contenders), test_roofline.py,
test_verdicts.py (ratios, verdicts, printout), test_timing.py, and tests/testing/test_per_sample.py.
No timing is asserted anywhere: the numbers depend on the machine.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cuda_or_skip_reason
from xpcnn.io.files import atomic_write
from xpcnn.tools import benchmark, verdicts

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench.py"
TARGETS = verdicts.load_targets(str(ROOT / "benchmarks" / "targets.json"))
TINY = ["--batch-sizes", "2", "--dtypes", "float32", "--repeats", "2", "--min-time", "0", "--pause", "0"]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def run_bench(*args, timeout=300, env=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_bench_runs_without_torch_and_writes_json_with_ratio_to_per_sample(tmp_path):
    out = tmp_path / "bench.json"
    result = run_bench("--models", "seed", "--contenders", "xpcnn,per-sample", *TINY, "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # the contenders' outputs agree
    report = json.loads(out.read_text())
    contenders = {(r["contender"], r["mode"]) for r in report["results"]}
    expected = {("xpcnn[auto]", "train"), ("xpcnn[gemm]", "train"), ("xpcnn[signal]", "infer"), ("per-sample", "train")}
    assert expected <= contenders
    assert all(r["samples_per_s"]["median"] > 0 for r in report["results"])
    assert report["peak_gflops"]["float32"] > 0
    for r in report["results"]:  # the matmul peak is timed in every interleaved round, next to each row
        assert len(r["peak_gflops"]["runs"]) == len(r["samples_per_s"]["runs"]) == 2
        assert r["roofline"]["rounds"] == 2 and r["outputs_agree"] is True
    assert {"xpcnn_over_per_sample"} <= set(report["ratios"][0])
    assert "samples/s" in result.stdout and "roofline" in result.stdout
    processes = {r["contender"]: r["process"] for r in report["results"]}  # each contender in its own process
    assert len(set(processes.values())) == len(processes) >= 4 and "xpcnn[auto,workers=2]" in processes


def test_bench_one_process_times_every_contender_in_one_process_as_before(tmp_path):
    """``--one-process``: the old way, kept to show how much the libraries' threads interfere."""
    out = tmp_path / "bench.json"
    result = run_bench("--models", "seed", "--engines", "gemm", "--contenders", "xpcnn,per-sample", *TINY,
                       "--one-process", "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    report = json.loads(out.read_text())
    assert {r["contender"] for r in report["results"]} == {"xpcnn[gemm]", "xpcnn[gemm,workers=2]", "per-sample"}
    assert len({r["process"] for r in report["results"]}) == 1 and report["settings"]["one_process"] is True


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (pip install -e '.[bench]')")
def test_bench_with_torch_builds_the_same_networks_and_reports_the_ratio(tmp_path):
    out = tmp_path / "bench.json"
    result = run_bench("--models", "seed,convnet", "--engines", "gemm", *TINY, "--json", str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # same weights give the same outputs in xpcnn and PyTorch
    report = json.loads(out.read_text())
    assert any(r["contender"] == "torch" for r in report["results"])
    assert all("xpcnn_over_torch" in e for e in report["ratios"])
    # issue 23: the same layers on torch CPU tensors, in a process of their own, computing the same outputs
    on_torch = [r for r in report["results"] if r["contender"] == "xpcnn-on-torch"]
    assert {(r["model"], r["mode"]) for r in on_torch} == {(m, k) for m in ("seed", "convnet")
                                                          for k in ("train", "infer")}
    assert all(r["outputs_agree"] for r in on_torch)
    for model in ("seed", "convnet"):  # one process per contender of each configuration
        rows = [r for r in report["results"] if r["model"] == model]
        assert len({r["process"] for r in rows}) == len({r["contender"] for r in rows})
    pairs = {(e["model"], e["mode"], e["ours"], e["theirs"]) for e in report["more_ratios"]}
    assert ("convnet", "train", "xpcnn-on-torch", "torch") in pairs
    assert ("seed", "train", "xpcnn-on-torch", "xpcnn[gemm]") in pairs
    assert ("convnet", "train", "xpcnn[gemm,workers=2]", "torch") in pairs
    assert "xpcnn-on-torch / torch" in result.stdout


def test_bench_device_cuda_without_a_gpu_fails_with_one_line():
    """Without CuPy, or with CuPy (CI installs it) but no GPU: one line saying which."""
    if cuda_or_skip_reason()[0] is not None:
        pytest.skip("a CUDA GPU is visible: --device cuda works here")
    result = run_bench("--device", "cuda", *TINY)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "CuPy" in result.stderr


def test_bench_rejects_an_unknown_model_in_one_line():
    result = run_bench("--models", "resnet", *TINY)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "resnet" in result.stderr


def test_bench_refuses_a_json_path_it_cannot_write_before_timing_anything(tmp_path):
    out = tmp_path / "missing" / "bench.json"
    result = run_bench("--models", "seed", *TINY, "--json", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bench.py: --json {out}: the folder {out.parent} does not exist"
    assert "roofline" not in result.stdout  # stopped before the first measurement


def test_the_json_report_is_written_whole_or_not_at_all(tmp_path):
    """bench.py writes its report with ``atomic_write``: a payload that fails half-way leaves the old file."""
    out = tmp_path / "bench.json"
    out.write_text("{}")
    with pytest.raises(TypeError):
        atomic_write(str(out), lambda f: json.dump({"not json": object()}, f), "--json", binary=False)
    assert out.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["bench.json"]
    atomic_write(str(out), lambda f: json.dump({"rows": [1]}, f), "--json", binary=False)
    assert json.loads(out.read_text()) == {"rows": [1]}


def test_targets_file_holds_the_issues_goals():
    """benchmarks/targets.json: the seed's four (the batched-training issue), issue 9's convnet at
    PyTorch speed and auto against gemm on the large-kernel case, and issue 8's two-rank speed-up."""
    assert [target[1:] for target in TARGETS] == [
        ("seed", 128, "train", "xpcnn_over_torch", 1.2), ("seed", 1, "train", "xpcnn_over_torch", 1.0),
        ("seed", 128, "train", "xpcnn_over_per_sample", 50.0), ("seed", 128, "train", "roofline", 0.30),
        ("convnet", 128, "train", "xpcnn_over_torch", 1.0), ("convnet", 128, "infer", "xpcnn_over_torch", 1.0),
        ("conv11", 32, "train", "xpcnn_over_gemm", 3.0)]
    assert benchmark.CASES["conv11"][-1] == 32  # the case runs at the target's batch
    assert verdicts.load_targets(str(ROOT / "benchmarks" / "targets.json"), "bench_dist") == {
        "ranks": 2, "batch": 256, "speedup": 1.7}


def test_bench_large_kernel_case_prints_engines_against_gemm_and_autos_choice(tmp_path):
    out = tmp_path / "bench.json"
    contenders = "xpcnn,torch" if HAS_TORCH else "xpcnn"
    measuring = {k: v for k, v in os.environ.items() if k != "XPCNN_ENGINE"}  # auto really measures
    result = run_bench("--models", "conv11", "--engines", "auto,gemm", "--dtypes", "float32", "--repeats", "1",
                       "--min-time", "0", "--pause", "0", "--contenders", contenders, "--json", str(out),
                       "--max-step", "30", env=measuring)  # under load gemm's step passed the default 2 s: skipped
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # every engine (and PyTorch) computes the same outputs
    assert "engines against gemm" in result.stdout and "auto's choices" in result.stdout
    report = json.loads(out.read_text())
    assert {r["batch"] for r in report["results"]} == {32}  # the case's own batch, whatever --batch-sizes says
    assert {(c["input"][0], c["mode"]) for c in report["auto_choices"]} == {(32, "train"), (32, "infer")}
