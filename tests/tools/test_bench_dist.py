"""scripts/bench_dist.py: usage errors in one line before any job, and a whole JSON report."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "bench_dist.py"


def run(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["--models", "resnet"], "error: unknown model(s) ['resnet']: expected some of ['convnet', 'seed']"),
    (["--ranks", "1,two"], "error: --ranks takes positive integers separated by commas, got '1,two'"),
    (["--ranks", "0,2"], "error: --ranks takes positive integers separated by commas, got '0,2'"),
    (["--ranks", "1,3"], "error: --batch 256 must divide by every rank count [1, 3]"),
])
def test_bad_arguments_stop_in_one_line_before_any_job(args, message):
    result = run(*args)
    assert result.returncode == 1 and result.stderr.strip() == message and result.stdout == ""


def test_a_json_path_in_a_missing_folder_stops_before_any_job(tmp_path):
    out = tmp_path / "missing" / "dist.json"
    result = run("--json", str(out))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --json {out}: the folder {out.parent} does not exist"


def test_one_process_run_writes_its_rows_to_json(tmp_path):
    out = tmp_path / "dist.json"
    result = run("--ranks", "1", "--models", "seed", "--batch", "8", "--steps", "1", "--repeats", "1",
                 "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert row["model"] == "seed" and row["ranks"] == 1 and row["speedup"] == 1.0 and row["samples_per_s"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["dist.json"]  # no temporary file left


@pytest.mark.mpi
@pytest.mark.skipif(not (pathlib.Path(sys.executable).parent / "mpiexec").exists() or
                    importlib.util.find_spec("mpi4py") is None,
                    reason="needs mpi4py and the mpiexec beside this Python: pip install 'xpcnn[mpi]'")
def test_two_rank_run_reports_the_speed_up_and_the_allreduce(tmp_path):
    out = tmp_path / "dist.json"
    result = run("--ranks", "2", "--models", "seed", "--batch", "8", "--steps", "2", "--repeats", "1",
                 "--json", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    one, two = json.loads(out.read_text())["rows"]
    assert (one["ranks"], two["ranks"]) == (1, 2) and two["speedup"] > 0
    assert two["alone_allreduce_ms"] > 0 and two["in_step_allreduce_ms"] > 0
    assert two["median_step_ms"] > 0 and two["steady_speedup"] > 0
    assert one["steady_samples_per_s"] == pytest.approx(8 / (one["median_step_ms"] / 1e3))
    assert "target seed, 2 ranks >= 1.7x 1 rank:" in result.stdout
    assert one["gradient_bytes"] == two["gradient_bytes"] == 4 * 341_727  # the seed network's parameters
