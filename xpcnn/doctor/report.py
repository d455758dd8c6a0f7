"""What the doctor prints and writes: one line per check, the summary line, the ``--json`` report,
and the README's "Verified on" row made from a report (``scripts/verified_row.py``)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..testing.parity import Check

SCHEMA = 1


def check_line(check: Check) -> str:
    """``  ok      layer dense float32   worst relative error 3.1e-08 (tolerance 1e-04)``."""
    status = "ok" if check.ok else "FAILED"
    worst = "inf" if not math.isfinite(check.worst) else f"{check.worst:.1e}"
    if check.name.startswith("speed"):
        text = f"  {status:7} {check.name}"
    elif check.name.startswith("training"):
        text = f"  {status:7} {check.name}: error rate {worst}"
    else:
        text = f"  {status:7} {check.name:52} worst relative error {worst} (tolerance {check.tolerance:.0e})"
        if check.worst_array and not check.ok:
            text += f" in {check.worst_array}"
    if check.problems:
        text += "; " + "; ".join(check.problems[:3])
    return text


def verdict(checks: "list[Check]") -> dict:
    failed = [c.name for c in checks if not c.ok]
    return {"passed": not failed and bool(checks), "checks": len(checks), "failed": failed}


def summary_line(result: dict, device: str, seconds: float, interrupted: "str | None" = None) -> str:
    """The last line: PASSED or FAILED, how many checks, where, how long."""
    n, failed = result["checks"], result["failed"]
    if interrupted:
        return f"xpcnn-doctor: FAILED: interrupted ({interrupted}) after {n} checks on {device} ({seconds:.0f} s)"
    if failed:
        names = ", ".join(failed[:4]) + (f" and {len(failed) - 4} more" if len(failed) > 4 else "")
        return f"xpcnn-doctor: FAILED: {len(failed)} of {n} checks failed on {device} ({names}); {seconds:.0f} s"
    return f"xpcnn-doctor: PASSED: all {n} checks ok on {device}; {seconds:.0f} s"


def write_json(path: Path, report: dict) -> None:
    """The report, whole or not at all (:func:`xpcnn.io.files.atomic_write`)."""
    from ..io.files import atomic_write

    atomic_write(path, lambda f: json.dump(report, f, indent=1, allow_nan=False), "--json", binary=False)


# -- the README's "Verified on" table --------------------------------------------------------------

ROW_HEADER = ("| machine | device | versions | correctness | seed train b256 (× PyTorch) | "
              "convnet train b256 (× PyTorch) | load | report |\n|---|---|---|---|---:|---:|---:|---|")


def _throughput(speed: dict, model: str) -> str:
    rows = speed.get("rows", []) if speed else []
    ours = next((r for r in rows if (r["model"], r["mode"], r["contender"]) == (model, "train", "xpcnn")
                 and r["batch"] == max(x["batch"] for x in rows)), None)
    if ours is None or "samples_per_s" not in ours:
        return "–"
    theirs = next((r for r in rows if (r["model"], r["mode"], r["contender"], r["batch"]) ==
                   (model, "train", "torch", ours["batch"])), None)
    text = f"{ours['samples_per_s']['median']:,.0f}/s"
    if theirs is not None and "samples_per_s" in theirs:
        text += f" ({ours['samples_per_s']['median'] / theirs['samples_per_s']['median']:.2f}×)"
    return text


def verified_row(report: "dict[str, Any]", link: str) -> str:
    """One Markdown row of the README's "Verified on" table, from a ``--json`` report at ``link``."""
    env = report["environment"]
    cuda = env.get("cuda") or {}
    cuda = {} if "error" in cuda else cuda
    machine = cuda.get("gpu") or env["cpu"]
    device = report["device"] + (f" (CUDA {cuda['runtime_version']}, CC {cuda['compute_capability']})" if cuda else
                                 f" ({env['cores']} cores, {env['blas'].get('internal_api') or 'BLAS'} "
                                 f"{env['blas'].get('num_threads') or '?'} threads)")
    versions = (f"xpcnn {env['xpcnn']}, Python {env['python']}, NumPy {env['numpy']}, SciPy {env['scipy']}"
                + (f", CuPy {env['cupy']}" if cuda else "") + (f", PyTorch {env['torch']}" if env.get("torch") else ""))
    v = report["verdict"]
    correctness = (f"passed {v['checks']}/{v['checks']}" if v["passed"]
                   else f"FAILED {len(v['failed'])}/{v['checks']}") + (" (quick)" if report.get("quick") else "")
    load = env.get("load_average")
    load_text = f"{load[0]:.1f}" if load else "–"
    return (f"| {machine} | {device} | {versions} | {correctness} | {_throughput(report.get('speed'), 'seed')} | "
            f"{_throughput(report.get('speed'), 'convnet')} | {load_text} | [{Path(link).name}]({link}) |")
