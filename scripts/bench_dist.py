#!/usr/bin/env python
"""Data-parallel throughput: 1 process against P MPI ranks, one BLAS thread each, same global batch.

For every model and rank count, a job trains ``--steps`` steps of the global batch (after two
steps of warm-up) with ``Sequential.fit``; ranks > 1 go through ``xpcnn.distributed`` (one
fused allreduce per step), 1 is plain ``fit``, the single-process baseline. Every job is a fresh
process (``launch``: ``python bench_dist.py --worker ...``, or ``mpiexec`` of it) and times xpcnn
alone, so no other library's or job's threads share its process; this driver times nothing. Jobs take turns
within each repeat (the order rotated every repeat) so a noisy neighbour slows all alike; the
table gives medians over the repeats (xpcnn.tools.scaling), and the verdict on issue 8's target
(benchmarks/targets.json).

Columns
    samples/s       global samples per second of training (fit's epoch: data, forward, backward,
                    allreduce, update)
    speed-up        against 1 process in the same run
    step ms         one step of the global batch
    in-step ms      time inside the step's allreduce, waiting for the slowest rank included
    alone ms        one allreduce of the gradient buffer right after a barrier: the pure cost
    model ms        compute/P + alone, with compute the 1-process step: the README's scaling model
    median ms       the median step: a step in which no neighbour took a core (on a shared
                    machine, one stalled rank stalls every rank; the mean above counts that)
    steady          speed-up of the median steps

    python scripts/bench_dist.py                         # seed and convnet, 1 and 2 ranks, batch 256
    python scripts/bench_dist.py --ranks 1,2,4 --models seed --json dist.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from xpcnn.errors import XpcnnError
from xpcnn.io.files import atomic_write, check_output_path
from xpcnn.tools.benchmark import NETWORKS
from xpcnn.tools.scaling import summarise, table_lines
from xpcnn.tools.verdicts import load_targets

#: Issue 8's target (``bench_dist``): 2 ranks at least 1.7 times one rank's throughput, at global batch 256.
TARGETS = Path(__file__).resolve().parents[1] / "benchmarks" / "targets.json"
THREADS = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


# -- one job (every rank runs this) -----------------------------------------------------------

def worker(model_name: str, batch: int, steps: int, dtype: str, distributed: bool) -> "dict | None":
    import xpcnn as xc
    from xpcnn import zoo
    comm = None
    if distributed:
        from xpcnn.distributed import init

        comm = init()
    k = NETWORKS[model_name]
    model, loss = zoo.build_model(model_name, (1, 28, 28), k, seed=0, dtype=dtype)
    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, 1, 28, 28), dtype=np.float32).astype(dtype)
    y = np.eye(k, dtype=dtype)[rng.integers(0, k, batch * steps)]
    fit = dict(loss=loss, batch_size=batch, shuffle=False, optimizer=xc.SGD(0.01), communicator=comm)
    model.fit(x[: 2 * batch], y[: 2 * batch], epochs=1, **fit)  # warm-up: buffers, caches, engines
    before = dict(comm.stats) if comm else None
    ends: "list[float]" = []  # when each step ended (the allreduce keeps the ranks in step)
    history = model.fit(x, y, epochs=1, on_batch=lambda logs: ends.append(time.perf_counter()), **fit)
    seconds = history["seconds"][-1]
    median_step = statistics.median(b - a for a, b in zip(ends, ends[1:])) if steps > 1 else seconds
    result = {"model": model_name, "ranks": comm.size if comm else 1, "batch": batch, "steps": steps,
              "dtype": dtype, "samples_per_s": batch * steps / seconds, "step_ms": 1e3 * seconds / steps,
              "median_step_ms": 1e3 * median_step, "steady_samples_per_s": batch / median_step,
              "gradient_bytes": model.parameter_count() * np.dtype(dtype).itemsize,
              "in_step_allreduce_ms": 0.0, "alone_allreduce_ms": 0.0}
    if comm:
        result["in_step_allreduce_ms"] = 1e3 * (comm.stats["allreduce_seconds"] - before["allreduce_seconds"]) / steps
        result["alone_allreduce_ms"] = 1e3 * allreduce_alone(comm, model.parameter_count() + 2, dtype)
        result["backend"] = comm.backend
    return result if comm is None or comm.rank == 0 else None


def allreduce_alone(comm, size: int, dtype: str, repeats: int = 15) -> float:
    """Median seconds of one allreduce of ``size`` elements, every rank starting together."""
    buffer = np.ones(size, dtype=dtype)
    times = []
    for _ in range(repeats):
        comm.barrier()
        start = time.perf_counter()
        comm.allreduce(buffer)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- the driver --------------------------------------------------------------------------------

def mpiexec() -> str:
    beside = Path(sys.executable).parent / "mpiexec"
    found = str(beside) if beside.exists() else shutil.which("mpiexec")
    if found is None:
        sys.exit("error: no mpiexec next to this Python or on PATH: pip install 'xpcnn[mpi]'")
    return found


def launch(args, ranks: int, model: str, timeout: float) -> dict:
    me = [sys.executable, os.path.abspath(__file__), "--worker", model, "--batch", str(args.batch),
          "--steps", str(args.steps), "--dtype", args.dtype]
    command = me if ranks == 1 else [mpiexec(), "-n", str(ranks), *me, "--distributed"]
    env = {**os.environ, **THREADS}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    if run.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed:\n{run.stderr}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", default="1,2", help="rank counts, comma-separated (1: plain fit)")
    p.add_argument("--models", default="seed,convnet", help="zoo models, comma-separated")
    p.add_argument("--batch", type=int, default=256, help="the global batch")
    p.add_argument("--steps", type=int, default=8, help="timed steps per job")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=600, help="seconds one job may take")
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--distributed", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def check_arguments(args) -> "tuple[list[int], list[str], dict]":
    """``(rank counts with 1 first, model names, the target)``, or a one-line error before any job starts."""
    try:
        ranks = sorted({int(r) for r in args.ranks.split(",")})
    except ValueError:
        sys.exit(f"error: --ranks takes positive integers separated by commas, got {args.ranks!r}")
    if min(ranks) < 1:
        sys.exit(f"error: --ranks takes positive integers separated by commas, got {args.ranks!r}")
    ranks = ranks if 1 in ranks else [1, *ranks]
    models = args.models.split(",")
    unknown = [m for m in models if m not in NETWORKS]
    if unknown:
        sys.exit(f"error: unknown model(s) {unknown}: expected some of {sorted(NETWORKS)}")
    if any(args.batch % p for p in ranks):
        sys.exit(f"error: --batch {args.batch} must divide by every rank count {ranks}")
    try:
        if args.json_path:
            check_output_path(args.json_path, "--json")
        target = load_targets(str(TARGETS), "bench_dist")
    except XpcnnError as exc:
        sys.exit(f"error: {exc}")
    return ranks, models, target


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.batch, args.steps, args.dtype, args.distributed)
        if result is not None:
            print(json.dumps(result), flush=True)
        return 0
    ranks, models, target = check_arguments(args)
    loads = [load()]
    runs = []
    jobs = [(m, p) for m in models for p in ranks]
    for repeat in range(args.repeats):
        shift = repeat % len(jobs)
        for model, p in jobs[shift:] + jobs[:shift]:
            runs.append(launch(args, p, model, args.timeout))
            print(f"  repeat {repeat + 1}: {model} on {p} rank(s): {runs[-1]['samples_per_s']:.0f} samples/s",
                  file=sys.stderr, flush=True)
        loads.append(load())
    rows = summarise(runs, ranks)
    print(f"global batch {args.batch}, {args.dtype}, one BLAS thread per rank, {args.steps} steps per job, "
          f"median of {args.repeats}; {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); "
          f"load average (1, 5, 15 min) before and after each repeat: {' | '.join(loads)}")
    print("\n".join(table_lines(rows, target)))
    if args.json_path:
        payload = {"rows": rows, "runs": runs, "load": loads, "argv": sys.argv[1:]}
        atomic_write(args.json_path, lambda f: json.dump(payload, f, indent=2), "--json", binary=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
