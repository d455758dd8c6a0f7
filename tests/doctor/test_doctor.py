"""xpcnn-doctor (xpcnn/doctor/): its checks pass here, can fail, and its command line keeps its promises.

No timing is asserted: the throughputs depend on the machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
import sys

import numpy as np
import pytest

import xpcnn as xc
from conftest import strict_device
from fake_cupy import cupy_package
from xpcnn.doctor import cli, speed
from xpcnn.testing import parity as cases
from xpcnn.testing.parity import parity_checks
from xpcnn.doctor.report import check_line
from xpcnn.engines import gemm

CPU_CHECKS = dict(parity_checks(xc.CPU))


@pytest.mark.parametrize("name", CPU_CHECKS)
def test_every_parity_check_passes_on_the_cpu(name):
    check = CPU_CHECKS[name]()
    assert check.ok, check_line(check)
    assert check.worst <= check.tolerance


@pytest.mark.parametrize("name", [n for n in CPU_CHECKS if not n.startswith("gradient")])
def test_every_parity_check_passes_on_device1_the_gpu_stand_in(name):
    """array_api_strict's device1 refuses implicit NumPy conversion, like CuPy: the device path runs here."""
    check = dict(parity_checks(strict_device("device1")))[name]()
    assert check.ok, check_line(check)


def _flip_the_kernel(monkeypatch):
    forward = gemm.GemmEngine.forward

    def flipped(self, x, kernels, stride=1, keep=False):
        return forward(self, x, kernels[..., ::-1, ::-1], stride, keep)

    monkeypatch.setattr(gemm.GemmEngine, "forward", flipped)


def test_an_engine_that_flips_the_kernel_fails_its_check(monkeypatch):
    _flip_the_kernel(monkeypatch)
    check = cases.check_engine("gemm", xc.CPU, "float64", 1)
    assert not check.ok and check.worst > 1e-3
    assert check_line(check).lstrip().startswith("FAILED")
    assert cases.check_engine("signal", xc.CPU, "float64", 1).ok  # the other engines are untouched


def test_a_backward_that_does_not_match_its_forward_fails_the_gradient_check(monkeypatch):
    backward = xc.Sigmoid.backward
    monkeypatch.setattr(xc.Sigmoid, "backward", lambda self, dy, lr=None: 1.01 * backward(self, dy, lr))
    assert not cases.check_layer_gradients("sigmoid").ok
    assert cases.check_layer_gradients("tanh").ok


def test_an_optimizer_off_the_textbook_rule_fails(monkeypatch):
    update = xc.SGD.update  # (Adam would not notice: its step does not change when g is scaled)
    monkeypatch.setattr(xc.SGD, "update", lambda self, key, p, g: update(self, key, p, g * 1.001))
    assert not cases.check_optimizer("momentum", xc.CPU, "float64").ok
    assert not cases.check_optimizer("sgd", xc.CPU, "float32").ok


def test_a_corrupted_engine_makes_the_doctor_report_failed_and_exit_1(monkeypatch, tmp_path, capsys):
    _flip_the_kernel(monkeypatch)
    out = tmp_path / "r.json"
    assert cli.main(["--device", "cpu", "--no-speed", "--json", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "FAILED  engine gemm stride 1 float64" in printed
    assert printed.splitlines()[-1].startswith("xpcnn-doctor: FAILED:")
    report = json.loads(out.read_text())
    assert report["verdict"]["passed"] is False
    assert "engine gemm stride 1 float64" in report["verdict"]["failed"]


HAS_TORCH = importlib.util.find_spec("torch") is not None
TINY = speed.SpeedPlan(models=("seed", "convnet"), batches=(2,), repeats=1, min_time=0.0)


def test_quick_run_passes_and_the_json_holds_environment_checks_and_throughputs(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(speed, "QUICK", TINY)  # the same code path, a tiny batch
    out = tmp_path / "r.json"
    assert cli.main(["--device", "cpu", "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[-1].startswith("xpcnn-doctor: PASSED: all")
    report = json.loads(out.read_text())
    env = report["environment"]
    assert {"xpcnn", "python", "numpy", "scipy", "array_api_compat", "cupy", "blas", "load_average"} <= set(env)
    assert env["blas"]["num_threads"] and report["device"] == "cpu" and report["quick"] is True
    names = [c["name"] for c in report["checks"]]
    assert len(names) == len(CPU_CHECKS) + 1 and all(c["ok"] for c in report["checks"])
    assert any(n.startswith("engine auto") for n in names) and names[-1].startswith("training")
    assert report["training"]["accuracy"] >= 0.98
    rows = report["speed"]["rows"]
    assert {(r["model"], r["mode"]) for r in rows if r["contender"] == "xpcnn"} == \
        {(m, mode) for m in ("seed", "convnet") for mode in ("train", "infer")}
    assert all(r["samples_per_s"]["median"] > 0 and r["first_step_s"] > 0 for r in rows)
    assert report["verdict"] == {"passed": True, "checks": len(names), "failed": []}
    processes = {r["contender"]: r["process"] for r in rows}  # each library timed in a process of its own
    assert len(set(processes.values())) == len(processes) and os.getpid() not in processes.values()
    assert ("torch" in processes) == HAS_TORCH


@pytest.mark.parametrize("fake, missing", [
    ({"devices": None}, "CuPy"),
    ({"devices": 0}, "no CUDA GPU is visible"),
    ({"missing": {"cufft": "libcufft.so.11: cannot open shared object file: No such file or directory"}},
     "CuPy cannot load CUDA's cuFFT (libcufft.so.11: cannot open"),
])
def test_device_cuda_without_cupy_a_gpu_or_cuda_libraries_exits_1_with_one_line_saying_which(tmp_path, fake, missing):
    env = {"PYTHONPATH": cupy_package(tmp_path / "fake", **fake), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "xpcnn.doctor", "--device", "cuda", "--json", str(tmp_path / "r.json")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("xpcnn-doctor: ") and missing in lines[0], result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.json").exists()


def test_an_unwritable_json_path_is_one_line_before_any_check(tmp_path, capsys):
    assert cli.main(["--device", "cpu", "--json", str(tmp_path / "missing" / "r.json")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "--json" in captured.err and len(captured.err.strip().splitlines()) == 1


def test_a_bad_device_is_one_line(capsys):
    assert cli.main(["--device", "tpu"]) == 1
    assert "unknown device 'tpu'" in capsys.readouterr().err


def test_relative_error_is_assert_allclose_condition():
    rng = np.random.default_rng(0)
    expected = rng.standard_normal(50)
    for shift in (0.0, 1e-6, 1e-3):
        got = expected * (1 + shift)
        check = cases.compare(got, expected, "x", tolerance=(1e-4, 1e-5))
        allclose = np.allclose(got, expected, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(expected).max()))
        assert check.ok == allclose
    assert not cases.compare(np.array([np.nan]), np.array([1.0]), "x", tolerance=(1e-4, 1e-5)).ok


def test_the_timing_helper_is_the_one_bench_uses():
    """The doctor and scripts/bench.py build their contenders with xpcnn.tools.benchmark and time them
    with xpcnn.tools.timing: one definition of a timed step, a calibration and the statistics."""
    from xpcnn.tools import benchmark, timing
    assert speed.Contender is benchmark.Contender is timing.Contender
    assert speed.calibrate is benchmark.calibrate is timing.calibrate
    assert speed.interleave is benchmark.interleave is timing.interleave and speed.summary is timing.summary
    assert speed.torch_contenders is benchmark.torch_contenders and speed.model_contenders is benchmark.model_contenders
    bench = (Path(__file__).resolve().parents[2] / "scripts" / "bench.py").read_text()
    assert "from xpcnn.tools import benchmark as bm" in bench and "bm.run_config(" in bench


def test_sigterm_still_writes_the_report_marked_interrupted_and_exits_1(tmp_path):
    """``timeout 120 xpcnn-doctor --json ...`` (the GPU machine's check script) keeps what was checked."""
    import signal

    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "xpcnn.doctor", "--device", "cpu", "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("xpcnn-doctor: checking")
    for line in proc.stdout:  # the first check is done: SIGTERM mid-way
        if "ok      layer" in line:
            break
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert "FAILED: interrupted (SIGTERM)" in stdout.splitlines()[-1] and "Traceback" not in stderr
    report = json.loads(out.read_text())
    assert report["interrupted"] == "SIGTERM" and report["verdict"]["passed"] is False and report["checks"]


def _fake_cuda_runtime(monkeypatch):
    """Enough of CuPy's runtime API for :func:`xpcnn.backend.info.cuda`, on a machine without a GPU."""
    import contextlib
    import types

    runtime = types.SimpleNamespace(
        getDeviceProperties=lambda i: {"name": b"NVIDIA H200", "major": 9, "minor": 0, "multiProcessorCount": 132},
        memGetInfo=lambda: (100 * 2 ** 30, 140 * 2 ** 30), runtimeGetVersion=lambda: 12090,
        driverGetVersion=lambda: 13000, getDeviceCount=lambda: 1)
    pool = types.SimpleNamespace(used_bytes=lambda: 0, total_bytes=lambda: 2 ** 20, get_limit=lambda: 0)
    fake = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), get_default_memory_pool=lambda: pool,
                                 get_default_pinned_memory_pool=lambda: types.SimpleNamespace(n_free_blocks=lambda: 0))
    monkeypatch.setitem(sys.modules, "cupy", fake)

    class Native(contextlib.nullcontext):
        id = 0

    return xc.Device(None, Native(), "cuda:0")


def test_the_cuda_environment_is_read_printed_and_makes_a_verified_row(monkeypatch):
    from xpcnn.backend import info
    from xpcnn.doctor import environment, report

    device = _fake_cuda_runtime(monkeypatch)
    cuda = info.cuda(device)
    assert cuda["gpu"] == "NVIDIA H200" and cuda["compute_capability"] == "9.0"
    assert (cuda["runtime_version"], cuda["driver_version"]) == ("12.9", "13.0")
    assert info.cuda(xc.CPU) == {}
    env = {**environment.collect(xc.CPU), "device": "cuda:0", "cuda": cuda, "cupy": "14.0.0"}
    assert any(line.startswith("GPU NVIDIA H200 (cuda:0, compute capability 9.0, 140.0 GiB")
               for line in environment.describe(env))
    rows = [{"model": "seed", "batch": 256, "mode": "train", "contender": c, "samples_per_s": {"median": v}}
            for c, v in (("xpcnn", 300000.0), ("torch", 250000.0))]
    made_up = {"environment": env, "device": "cuda:0", "quick": False, "speed": {"rows": rows},
               "verdict": {"passed": True, "checks": 89, "failed": []}}
    row = report.verified_row(made_up, "benchmarks/doctor-cuda-h200.json")
    assert row.startswith("| NVIDIA H200 | cuda:0 (CUDA 12.9, CC 9.0) |") and "CuPy 14.0.0" in row
    assert "| 300,000/s (1.20×) | – |" in row and "passed 89/89" in row


def test_a_crash_in_the_speed_measurements_is_one_failed_check_not_a_lost_report(monkeypatch, tmp_path, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(speed, "measure", broken)
    monkeypatch.setattr(cli.checks, "correctness", lambda device: iter(()))  # the point is the speed part
    monkeypatch.setattr(cli.checks, "check_training", lambda device: (cases.Check("training: stand-in"), {}))
    out = tmp_path / "r.json"
    assert cli.main(["--device", "cpu", "--json", str(out)]) == 1
    assert "FAILED  speed: the throughput measurements; RuntimeError: CUDA error" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["speed"] == {"error": "RuntimeError: CUDA error: out of memory"}
    assert report["verdict"]["failed"] == ["speed: the throughput measurements"]
