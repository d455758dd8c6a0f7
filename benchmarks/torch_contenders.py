#!/usr/bin/env python
"""xpcnn on PyTorch CPU tensors, xpcnn on NumPy, and PyTorch's own ``nn``: training steps per second for
``seed`` and ``convnet`` at batch 128, float32, each contender in a process of its own (docs/backends.md).

    PYTHONPATH=. python benchmarks/torch_contenders.py [--threads N] [--rounds 3] [--json PATH]

The parent starts one child per (model, contender, round), the contenders taking turns and the first one
rotating, so a busy spell of a shared machine falls on all of them; each child builds its model from seed 0,
takes its first step apart (engine="auto"'s measurement), warms up, then times steps for ``--seconds``.
Every library is limited to ``--threads`` threads (default: one per CPU). The median over the rounds is
reported, with xpcnn-on-torch / torch-nn and xpcnn-on-torch / xpcnn-on-numpy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONTENDERS = ("xpcnn-numpy", "xpcnn-torch", "torch-nn")
MODELS = ("seed", "convnet")
BATCH = 128
LEARNING_RATE = 0.01


def child(model_name: str, contender: str, threads: int, seconds: float) -> dict:
    """One contender's training-step rate, in this process."""
    import torch

    torch.set_num_threads(threads)
    from xpcnn import backend
    from xpcnn.testing.torch_twins import torch_loss, torch_model
    from xpcnn.tools.benchmark import NETWORKS, model_contenders, synthetic_batch, torch_contenders
    from xpcnn.tools.timing import calibrate, first_step, timed_run
    from xpcnn.zoo import build_model

    classes = NETWORKS[model_name]
    device = backend.get_device("torch:cpu" if contender == "xpcnn-torch" else "cpu")
    model, loss = build_model(model_name, (1, 28, 28), classes, seed=0, device=device, dtype="float32")
    x, y = synthetic_batch((1, 28, 28), (classes,), classes, BATCH, "float32")
    if contender == "torch-nn":
        net = torch_model(model.to("cpu"), torch, "cpu", "float32")
        step = torch_contenders(torch, net, torch_loss(torch, loss), x, y, LEARNING_RATE, "cpu")[0]
    else:
        step = model_contenders(contender, model, x, y, loss, LEARNING_RATE, device)[0]
    first_step(step)
    calibrate(step, seconds, 600.0, steps=2)
    timed_run(step)
    engines = sorted({getattr(layer, "chosen_engine", None) for layer in model.layers} - {None})
    return {"model": model_name, "contender": contender, "samples_per_s": step.runs[-1],
            "first_step_s": step.first_step_s, "steps": step.reps, "threads": torch.get_num_threads(),
            "engines": engines if contender != "torch-nn" else []}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0, help="seconds of timed steps per child")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--json", default=None)
    p.add_argument("--child", nargs=2, metavar=("MODEL", "CONTENDER"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    threads = str(args.threads)
    if args.child:
        print(json.dumps(child(*args.child, args.threads, args.seconds)))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    rows = []
    for model_name in args.models:
        for r in range(args.rounds):
            order = CONTENDERS[r % 3:] + CONTENDERS[:r % 3]
            for contender in order:
                run = subprocess.run([sys.executable, __file__, "--child", model_name, contender, "--threads", threads,
                                      "--seconds", str(args.seconds)], capture_output=True, text=True, env=env)
                if run.returncode != 0:
                    print(run.stderr, file=sys.stderr)
                    return 1
                rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
                time.sleep(0.2)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"batch {BATCH}, float32, training steps, {args.threads} thread(s), {args.rounds} rounds; "
          f"load average at the end {load}")
    result = {}
    for model_name in args.models:
        medians = {c: statistics.median(r["samples_per_s"] for r in rows
                                        if r["model"] == model_name and r["contender"] == c) for c in CONTENDERS}
        result[model_name] = medians
        line = "  ".join(f"{c} {v:9,.0f}/s" for c, v in medians.items())
        print(f"  {model_name:8} {line}  torch-tensors/torch-nn {medians['xpcnn-torch'] / medians['torch-nn']:.2f}x  "
              f"torch-tensors/numpy {medians['xpcnn-torch'] / medians['xpcnn-numpy']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "batch": BATCH, "rows": rows, "medians": result,
                       "load_average_end": load, "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
