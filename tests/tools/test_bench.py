"""scripts/bench.py: it runs end to end on a tiny setting, and its contenders compute the same network.

No timing is asserted anywhere: the numbers depend on the machine.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.losses import get_loss
from xpcnn.optim.optimizers import SGD

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench.py"
TINY = ["--batch-sizes", "2", "--dtypes", "float32", "--repeats", "2", "--min-time", "0", "--pause", "0"]
HAS_TORCH = importlib.util.find_spec("torch") is not None


def load_bench():
    if "xpcnn_bench_script" not in sys.modules:
        spec = importlib.util.spec_from_file_location("xpcnn_bench_script", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules["xpcnn_bench_script"]


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


def test_bench_refuses_a_json_path_it_cannot_write_before_timing_anything(tmp_path):
    out = tmp_path / "missing" / "bench.json"
    result = run_bench("--models", "seed", *TINY, "--json", str(out))
    assert result.returncode == 2
    assert result.stderr.strip() == f"bench.py: --json {out}: the folder {out.parent} does not exist"
    assert "roofline" not in result.stdout  # stopped before the first measurement


def test_bench_writes_its_json_whole_or_not_at_all(tmp_path):
    bench = load_bench()
    out = tmp_path / "bench.json"
    out.write_text("{}")
    with pytest.raises(TypeError):
        bench.write_json(str(out), {"not json": object()})
    assert out.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["bench.json"]
    bench.write_json(str(out), {"rows": [1]})
    assert json.loads(out.read_text()) == {"rows": [1]}


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


# -- ratios and verdicts on made-up rows ---------------------------------------------------------

def made_up_row(contender, runs, batch=128, mode="train", agree=True, roofline=None, model="seed"):
    """A result row as run_config writes it, with per-round samples/s ``runs``."""
    bench = load_bench()
    row = {"model": model, "dtype": "float32", "batch": batch, "mode": mode, "contender": contender,
           "samples_per_s": bench.summary(list(runs)), "outputs_agree": agree}
    if roofline is not None:
        row["roofline"] = bench.spread(list(roofline))
    return row


def test_ratios_are_ours_over_theirs_paired_round_by_round():
    bench = load_bench()
    rows = [made_up_row("xpcnn[gemm]", [200, 300, 400]), made_up_row("torch", [100, 100, 200]),
            made_up_row("per-sample", [4, 5, 8]), made_up_row("xpcnn[signal]", [1, 1, 1])]
    [entry] = bench.ratios(rows, "gemm")
    assert entry["xpcnn"] == "xpcnn[gemm]"
    over_torch, over_per_sample = entry["xpcnn_over_torch"], entry["xpcnn_over_per_sample"]
    # rounds: 200/100, 300/100, 400/200 and 200/4, 300/5, 400/8
    assert (over_torch["median"], over_torch["min"], over_torch["max"], over_torch["rounds"]) == (2.0, 2.0, 3.0, 3)
    assert (over_per_sample["median"], over_per_sample["min"], over_per_sample["max"]) == (50.0, 50.0, 60.0)
    assert over_torch["outputs_agree"] is True and over_per_sample["outputs_agree"] is True


def test_ratios_skip_configurations_without_the_default_engine_and_flag_disagreeing_outputs():
    bench = load_bench()
    rows = [made_up_row("xpcnn[signal]", [10]), made_up_row("torch", [5]),
            made_up_row("xpcnn[gemm]", [30], batch=1), made_up_row("torch", [10], batch=1, agree=False)]
    [entry] = bench.ratios(rows, "gemm")
    assert entry["batch"] == 1 and entry["xpcnn_over_torch"]["median"] == 3.0
    assert entry["xpcnn_over_torch"]["outputs_agree"] is False
    assert "xpcnn_over_per_sample" not in entry


def test_ratios_of_runs_that_cannot_be_paired_take_the_widest_bounds():
    bench = load_bench()
    rows = [made_up_row("xpcnn[gemm]", [200, 400]), made_up_row("torch", [100, 200, 400])]
    ratio = bench.ratios(rows, "gemm")[0]["xpcnn_over_torch"]
    assert (ratio["min"], ratio["max"]) == (0.5, 4.0)


@pytest.mark.parametrize("goal", [1.2, 1.0, 50.0, 0.30])
@pytest.mark.parametrize("low, high, expected", [
    (1.0, 1.0, "met"),            # the whole spread at the goal
    (1.0, 1.5, "met"),            # at and above
    (1.1, 1.5, "met"),            # all above
    (0.999, 1.5, "within noise"),  # straddles the goal
    (0.5, 1.0, "within noise"),   # reaches the goal only at its top
    (0.5, 0.999, "missed"),       # all below
    (0.5, 0.5, "missed"),         # half the goal
])
def test_verdict_is_met_only_when_the_whole_spread_reaches_the_goal(goal, low, high, expected):
    bench = load_bench()
    ratio = {"median": goal * (low + high) / 2, "min": goal * low, "max": goal * high, "outputs_agree": True}
    assert bench.verdict(ratio, goal) == expected


def test_no_verdict_when_the_outputs_differ_or_were_not_compared():
    bench = load_bench()
    assert bench.verdict({"median": 9, "min": 9, "max": 9, "outputs_agree": False}, 1.0).startswith("no verdict")
    assert bench.verdict({"median": 9, "min": 9, "max": 9}, 1.0).startswith("no verdict")
    assert bench.verdict(None, 1.0) == "not measured"


def target_rows(factor_128, factor_1, per_sample_factor, roofline, agree=True):
    """Rows for the four targets; each ratio is ``goal × factor`` in every round."""
    return [
        made_up_row("xpcnn[gemm]", [1200 * f for f in factor_128], roofline=[0.30 * f for f in roofline]),
        made_up_row("torch", [1000] * len(factor_128), agree=agree),
        made_up_row("per-sample", [24 * f / g for f, g in zip(factor_128, per_sample_factor)]),
        made_up_row("xpcnn[gemm]", [1000 * f for f in factor_1], batch=1),
        made_up_row("torch", [1000] * len(factor_1), batch=1, agree=agree),
    ]


def test_targets_are_the_issues_goals():
    bench = load_bench()
    assert [target[1:] for target in bench.TARGETS] == [
        ("seed", 128, "train", "xpcnn_over_torch", 1.2), ("seed", 1, "train", "xpcnn_over_torch", 1.0),
        ("seed", 128, "train", "xpcnn_over_per_sample", 50.0), ("seed", 128, "train", "roofline", 0.30),
        ("convnet", 128, "train", "xpcnn_over_torch", 1.0), ("convnet", 128, "infer", "xpcnn_over_torch", 1.0),
        ("conv11", 32, "train", "xpcnn_over_gemm", 3.0)]
    assert bench.CASES["conv11"][1] == 32  # the case runs at the target's batch


@pytest.mark.parametrize("factors, expected", [
    ((1.0, 1.0, 1.0), "met"),
    ((1.0, 1.2, 1.5), "met"),
    ((0.9, 1.0, 1.2), "within noise"),
    ((0.5, 0.8, 0.99), "missed"),
])
def test_each_target_is_judged_on_its_own_goal(factors, expected):
    bench = load_bench()
    rows = target_rows(factors, factors, factors, factors)
    verdicts = bench.target_verdicts(rows, bench.ratios(rows, "gemm"), "gemm", threads=3)
    seed = [t for t in bench.TARGETS if t[1] == "seed"]  # the rows are the seed's: only its targets are measured
    assert [v["target"] for v in verdicts] == [t[0] for t in seed]
    for v, (*_, goal) in zip(verdicts, seed):
        assert v["goal"] == goal and v["threads"] == 3 and v["rounds"] == 3
        assert v["min"] == pytest.approx(goal * min(factors)) and v["max"] == pytest.approx(goal * max(factors))
        assert v["verdict"] == expected, v


def test_targets_give_no_verdict_on_ratios_to_torch_when_its_outputs_differ():
    bench = load_bench()
    rows = target_rows((2, 2), (2, 2), (2, 2), (2, 2), agree=False)
    verdicts = {v["target"]: v["verdict"] for v in bench.target_verdicts(rows, bench.ratios(rows, "gemm"), "gemm", 2)}
    assert verdicts["seed train batch 128 >= 1.2x torch"].startswith("no verdict")
    assert verdicts["seed train batch 1 >= 1.0x torch"].startswith("no verdict")
    assert verdicts["seed train batch 128 >= 50x per-sample"] == "met"


def test_targets_print_two_decimals_the_spread_and_the_thread_count(capsys):
    bench = load_bench()
    rows = target_rows((0.9, 1.0, 1.1), (1.0, 1.0, 1.0), (2.0, 2.5, 3.0), (0.5, 0.6, 0.7))
    entries = bench.ratios(rows, "gemm")
    bench.print_ratios(entries)
    bench.print_targets(bench.target_verdicts(rows, entries, "gemm", threads=4))
    out = capsys.readouterr().out
    assert "/torch 1.20x (1.08–1.32)" in out and "/per-sample 125.00x (100.00–150.00)" in out
    lines = {line.split("  ")[1]: line for line in out.splitlines() if line.startswith("  seed train")}
    assert lines["seed train batch 128 >= 1.2x torch"].endswith("1.20x (1.08–1.32)  within noise at 4 threads")
    assert lines["seed train batch 1 >= 1.0x torch"].endswith("1.00x (1.00–1.00)  met at 4 threads")
    assert lines["seed train batch 128 >= 50x per-sample"].endswith("125.00x (100.00–150.00)  met at 4 threads")
    assert lines["seed train batch 128 >= 0.30 of the GEMM roofline"].endswith(
        "0.18 (0.15–0.21)  missed at 4 threads")


def test_the_convnet_and_large_kernel_targets_judge_their_own_rows_and_auto_against_gemm():
    bench = load_bench()
    rows = [made_up_row("xpcnn[auto]", [900, 1000, 1100], model="convnet"),
            made_up_row("torch", [1000, 1000, 1000], model="convnet"),
            made_up_row("xpcnn[auto]", [3000, 3000, 3000], mode="infer", model="convnet"),
            made_up_row("torch", [2000, 2000, 2000], mode="infer", model="convnet"),
            made_up_row("xpcnn[auto]", [700, 800, 900], batch=32, model="conv11"),
            made_up_row("xpcnn[gemm]", [100, 100, 100], batch=32, model="conv11"),
            made_up_row("torch", [400, 400, 400], batch=32, model="conv11")]
    entries = bench.ratios(rows, "auto")
    assert all("xpcnn_over_gemm" not in e for e in entries if e["model"] == "convnet")  # no gemm row there
    verdicts = {v["target"]: v for v in bench.target_verdicts(rows, entries, "auto", 2)}
    assert list(verdicts) == ["convnet train batch 128 >= 1.0x torch", "convnet infer batch 128 >= 1.0x torch",
                              "conv11 train batch 32 >= 3x gemm"]
    assert verdicts["convnet train batch 128 >= 1.0x torch"]["verdict"] == "within noise"  # 0.9-1.1
    assert verdicts["convnet infer batch 128 >= 1.0x torch"]["verdict"] == "met"  # 1.5, the inference row's
    gemm = verdicts["conv11 train batch 32 >= 3x gemm"]
    assert (gemm["min"], gemm["median"], gemm["max"], gemm["verdict"]) == (7.0, 8.0, 9.0, "met")
    assert bench.ratios(rows, "gemm")[-1].get("xpcnn_over_gemm") is None  # gemm against itself: no ratio


def test_targets_are_left_out_when_the_run_did_not_measure_them(capsys):
    bench = load_bench()
    rows = [made_up_row("xpcnn[gemm]", [10], batch=2), made_up_row("torch", [5], batch=2)]
    assert bench.target_verdicts(rows, bench.ratios(rows, "gemm"), "gemm", 2) == []
    bench.print_targets([])
    assert capsys.readouterr().out == ""


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
