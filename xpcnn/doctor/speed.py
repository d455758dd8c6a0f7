"""Throughput on the device: the seed network and the convnet, training and inference, two batch
sizes, float32, against PyTorch on the same device when it is installed (on a ``torch:...`` device:
xpcnn's layers on torch tensors against PyTorch's own ``nn`` on that device).

Each contender is built by :mod:`xpcnn.tools.benchmark` and timed with :mod:`xpcnn.tools.timing`, as
in ``scripts/bench.py``: its first step apart (on a fresh model: ``engine="auto"``'s measurement,
FFT plans, CuPy's kernel compilation), then interleaved timed runs, xpcnn and PyTorch taking
turns. Each library runs in a process of its own (:func:`serve_library`, :class:`~xpcnn.tools.timing.Remote`),
so that neither one's idle threads take the cores the other needs. On CUDA it also measures the
host-to-device copy rate.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..backend import get_device, info as backend_info
from ..tools.benchmark import NETWORKS, model_contenders, synthetic_batch, torch_contenders
from ..tools.timing import Contender, Remote, calibrate, claim_stdout, first_step, interleave, serve, summary
from ..zoo import build_model
from ..testing.torch_twins import torch_loss, torch_model

BATCHES = (32, 256)
LEARNING_RATE = 0.01


@dataclass(frozen=True)
class SpeedPlan:
    """What to time: models, batch sizes, interleaved repeats, seconds per timed run."""

    models: tuple = ("seed", "convnet")
    batches: tuple = BATCHES
    repeats: int = 3
    min_time: float = 0.25
    max_step: float = 60.0  # every contender is measured; this only stops a pathological one
    pause: float = 0.1


#: ``--quick``: batches 32 and 128, two rounds of one step each.
QUICK = SpeedPlan(batches=(32, 128), repeats=2, min_time=0.0)


def load_torch(device) -> "tuple[Any, str | None, str]":
    """``(torch or None, its device string, why it is left out)``."""
    if importlib.util.find_spec("torch") is None:
        return None, None, "PyTorch is not installed (pip install 'xpcnn[bench]')"
    torch = importlib.import_module("torch")
    if device.name.startswith("torch:"):  # xpcnn on torch tensors, against torch's own nn on the same device
        return torch, str(device.native), ""
    if device.name.startswith("cuda"):
        if not torch.cuda.is_available():
            return None, None, f"this PyTorch {torch.__version__} build has no CUDA"
        return torch, device.name, ""
    return torch, "cpu", ""


def contenders(name: str, batch: int, device, torch, tdev, libraries=("xpcnn", "torch")) -> "list[Contender]":
    """xpcnn's (and PyTorch's) training and inference steps for model ``name`` at ``batch``."""
    classes = NETWORKS[name]
    model, loss_name = build_model(name, (1, 28, 28), classes, seed=0, device=device, dtype="float32")
    x, y = synthetic_batch((1, 28, 28), (classes,), classes, batch, "float32")
    out = model_contenders("xpcnn", model, x, y, loss_name, LEARNING_RATE, device) if "xpcnn" in libraries else []
    if torch is not None and "torch" in libraries:
        net = torch_model(model, torch, tdev, "float32")
        out += torch_contenders(torch, net, torch_loss(torch, loss_name), x, y, LEARNING_RATE, tdev)
    return out


def serve_library(spec: "dict | None" = None) -> None:
    """One library's contenders for every model and batch of ``spec`` (default: JSON in ``sys.argv[1]``),
    in this process, answering :class:`~xpcnn.tools.timing.Remote` (started by :func:`measure`)."""
    spec = spec or json.loads(sys.argv[1])
    channel = claim_stdout()
    device, tdev, torch = get_device(spec["device"]), spec["tdev"], None
    if spec["library"] == "torch" or device.name.startswith("torch:"):
        torch = importlib.import_module("torch")
        if not (tdev or "").startswith("cuda"):
            torch.set_num_threads(spec["threads"])
    found, models = [], []
    for name in spec["models"]:
        for batch in spec["batches"]:
            group = contenders(name, batch, device, torch, tdev, libraries=(spec["library"],))
            found += group
            models += [name] * len(group)
    serve(found, {"models": models, "process": os.getpid()}, stdout=channel)


def start_library(library: str, device, plan: SpeedPlan, tdev, threads: int) -> "tuple[Remote, list]":
    """``(the process, [(model, stand-in), ...])`` of ``library``'s contenders (:func:`serve_library`)."""
    spec = {"library": library, "device": device.name, "tdev": tdev, "threads": threads,
            "models": list(plan.models), "batches": list(plan.batches)}
    remote = Remote([sys.executable, "-c", "from xpcnn.doctor.speed import serve_library; serve_library()",
                     json.dumps(spec)])
    return remote, list(zip(remote.hello["models"], remote.contenders()))


def measure(device, plan: SpeedPlan, say=print) -> dict:
    """``{"rows": [...], "torch": version or why not, "transfer": {...}}``; prints one line per row."""
    torch, tdev, why = load_torch(device)
    threads = backend_info.blas().get("num_threads") or os.cpu_count() or 1
    cores, load = os.cpu_count() or 1, os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > cores:
        say(f"  note: load average {load:.1f} on {cores} cores: other processes compete for the CPU, and "
            f"multi-threaded timings suffer (OPENBLAS_NUM_THREADS=1 measures one core's speed)")
    rows, remotes = [], []
    try:
        for library in ("xpcnn", "torch") if torch is not None else ("xpcnn",):
            remotes.append(start_library(library, device, plan, tdev, threads))
        for name in plan.models:
            for batch in plan.batches:
                group = [c for _, held in remotes for model, c in held if model == name and c.batch == batch]
                for c in group:
                    first_step(c)  # a fresh model: auto's measurement, FFT plans, CuPy's compilation
                    calibrate(c, plan.min_time, plan.max_step, steps=1)
                interleave(group, plan.repeats, plan.pause, family=lambda c: c.name)
                for c in group:
                    row = {"model": name, "batch": batch, "mode": c.mode, "contender": c.name, "dtype": "float32",
                           "first_step_s": c.first_step_s, "process": c.remote.hello["process"]}
                    if c.skipped:
                        row["skipped"] = c.skipped
                    else:
                        row["samples_per_s"] = summary(c.runs)
                    rows.append(row)
                for mode in ("train", "infer"):
                    say(format_row(rows, name, batch, mode))
    finally:
        for remote, _ in remotes:
            remote.close()
    result: dict = {"rows": rows, "torch": getattr(torch, "__version__", None), "torch_left_out": why or None,
                    "plan": plan.__dict__}
    if device.name.startswith("cuda"):
        result["host_to_device"] = backend_info.host_to_device_rate(device)
        t = result["host_to_device"]
        say(f"  host-to-device copy ({t['megabytes']} MB): {t['pageable_gb_per_s']:.1f} GB/s pageable, "
            f"{t['pinned_gb_per_s']:.1f} GB/s pinned")
    return result


def find(rows: list, model: str, batch: int, mode: str, contender: str) -> "dict | None":
    return next((r for r in rows if (r["model"], r["batch"], r["mode"], r["contender"]) == (model, batch, mode,
                                                                                          contender)), None)


def format_row(rows: list, model: str, batch: int, mode: str) -> str:
    """``  seed     batch  256 train  xpcnn 25,000/s (first step 0.31 s)  torch 20,000/s  1.25x``."""
    ours, theirs = find(rows, model, batch, mode, "xpcnn"), find(rows, model, batch, mode, "torch")
    text = f"  {model:8} batch {batch:>4} {mode:5}  xpcnn {_rate(ours)}"
    if theirs is not None:
        text += f"  torch {_rate(theirs)}"
        if "samples_per_s" in ours and "samples_per_s" in theirs:
            text += f"  xpcnn/torch {ours['samples_per_s']['median'] / theirs['samples_per_s']['median']:.2f}x"
    return text


def _rate(row: dict) -> str:
    first = f" (first step {row['first_step_s']:.2f} s)" if row.get("first_step_s") is not None else ""
    if "skipped" in row:
        return f"skipped: {row['skipped']}{first}"
    return f"{row['samples_per_s']['median']:>9,.0f} samples/s{first}"
