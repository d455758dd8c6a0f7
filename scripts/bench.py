#!/usr/bin/env python
"""Training and inference throughput of xpcnn against the per-sample formulation and PyTorch.

Every contender trains the same network (same weights, dtype, batch, threads), each in a process
of its own, taking turns in each repeat (A B A B): one library's idle threads never sit in
another's process (``--one-process`` times them all in this one, as before, to show the
difference: docs/performance.md). The table gives the median and min–max over the repeats.
Contenders: xpcnn[ENGINE] per convolution engine, xpcnn[ENGINE,workers=T] (--workers: T threads,
each on a share of the batch, BLAS on one thread each; seed and convnet), per-sample
(xpcnn.testing.per_sample) and torch (pip install -e '.[bench]'), with a matrix product timed in
the same rounds as the roofline (xpcnn.tools.benchmark, .roofline). Models: seed and convnet
(xpcnn.zoo) at every --batch-sizes, and issue 9's cases conv11 and conv25 at their own batch.
Ratios are per round; a target (benchmarks/targets.json) is met only when the whole min–max
reaches its goal (xpcnn.tools.verdicts).

    python scripts/bench.py                      # the default run (< 5 minutes on 2 cores)
    python scripts/bench.py --quick              # a one-minute look
    python scripts/bench.py --batch-sizes 128 --dtypes float32 --json bench.json
    python scripts/bench.py --threads 1          # on a machine that other jobs share
    python scripts/bench.py --device cuda        # CuPy and PyTorch CUDA
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import xpcnn as xc
from xpcnn import zoo
from xpcnn.doctor.environment import cpu_name
from xpcnn.engines import NAMES, auto
from xpcnn.io.files import atomic_write, check_output_path
from xpcnn.testing.per_sample import PerSample
from xpcnn.testing.torch_twins import torch_loss, torch_model
from xpcnn.tools import benchmark as bm, roofline, timing, verdicts
from xpcnn.train import correct_count, threads as worker_threads
from xpcnn.train.workers import Workers

TARGETS = Path(__file__).resolve().parents[1] / "benchmarks" / "targets.json"
#: xpcnn's layers on PyTorch CPU tensors (device "torch:cpu", the first --engines), in a process of its own.
ON_TORCH = "xpcnn-on-torch"


def build(name: str, dtype: str) -> "tuple[xc.Sequential, str, int | None]":
    """``(model, loss, classes)``: a zoo network, or a case's one convolution under a mean squared error."""
    if name in bm.CASES:
        shape, kernel_size, depth, _ = bm.CASES[name]
        conv = xc.Convolutional(shape, kernel_size=kernel_size, depth=depth)
        model = xc.Sequential([conv, xc.Flatten()], seed=0, dtype=dtype)
        conv.compute_input_gradient = True  # a first layer skips ∂E/∂X; a case measures all three products
        return model, "mse", None
    model, loss = zoo.build_model(name, (1, 28, 28), bm.NETWORKS[name], seed=0, dtype=dtype)
    return model, loss, bm.NETWORKS[name]


def contender_names(args, config: bm.Config, torch) -> "list[str]":
    names = [f"xpcnn[{e}]" for e in args.engines]
    if config.device == "cpu" and config.model in bm.NETWORKS:  # workers: shares of the zoo networks' batches
        names += [f"xpcnn[{args.engines[0]},workers={t}]" for t in args.workers if 1 < t <= config.batch]
    if "per-sample" in args.contenders and config.model == "seed" and config.device == "cpu":
        names.append("per-sample")
    if ON_TORCH in args.contenders and torch is not None and config.device == "cpu" and config.model in bm.NETWORKS:
        names.append(ON_TORCH)  # the same layers on torch CPU tensors (issue 23)
    return names + (["torch"] if torch is not None and "torch" in args.contenders else []) + ["matmul"]


def run_config(args, config: bm.Config, torch, seconds_per_sample: dict, choices: list) -> "list[dict]":
    """Every contender of ``config`` in a process of its own (:func:`serve`), timed in turns; with
    ``--one-process``, all of them in this process (the old way, which lets their threads interfere)."""
    model = build(config.model, config.dtype)[0]
    contenders, outputs, remotes, flops, processes = [], {}, [], None, {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in contender_names(args, config, torch):
                spec = {"config": vars(config), "name": name, "threads": args.threads, "engine": args.engines[0],
                        "outputs": f"{tmp}/{len(contenders)}.npy", "per_sample_batch": args.per_sample_batch}
                if args.one_process:
                    found, output, hello = make_contenders(spec, torch)
                else:
                    remote = timing.Remote([sys.executable, __file__, "--serve", json.dumps(spec)])
                    remotes.append(remote)
                    found, hello = remote.contenders(), remote.hello
                    output = np.load(spec["outputs"]) if hello["outputs"] else None
                contenders += found
                processes[name] = hello.get("process", os.getpid())
                if output is not None:
                    outputs[name] = output
                flops = hello.get("flops", flops)
            plan = bm.Plan(args.repeats, args.min_time, args.max_step, args.pause)
            rows = bm.run_config(config, contenders, outputs, model.layers, flops, plan, seconds_per_sample)
            return [{**row, "process": processes[row["contender"]]} for row in rows]
        finally:
            for remote in remotes:  # each process's measurements, once each
                choices += [c for c in remote.close().get("auto_choices", []) if c not in choices]


def make_contenders(spec: dict, torch=None, hold: "contextlib.ExitStack | None" = None):
    """``(contenders, first outputs or None, hello)`` of the contender ``spec["name"]`` of one configuration.

    A workers contender holds BLAS to one thread per worker: for as long as ``hold`` lasts (its own
    process), or around each step (``None``: in one process with the others)."""
    config, name = bm.Config(**spec["config"]), spec["name"]
    model, loss, classes = build(config.model, config.dtype)
    x, y = bm.synthetic_batch(model.input_shape, model.output_shape, classes, config.batch, config.dtype)
    lr, output, hello = bm.learning_rate(config.model), None, {}
    if name == "matmul":
        size = 4096 if config.device != "cpu" else 1536
        peak, hello["flops"] = roofline.peak_contender(config.device, config.dtype, size)
        return [peak], None, hello
    if name.startswith("xpcnn["):
        engine, _, count = name[len("xpcnn["):-1].partition(",workers=")
        bm.set_engine(model.layers, engine)
        model.to(config.device)
        output = xc.to_numpy(model.forward(xc.to_device(x, config.device)))
        contenders = bm.model_contenders(name, model, x, y, loss, lr, config.device)
        if count:  # T replicas in threads on shares of the batch, BLAS held to one thread each
            team, model.optimizer = Workers(model, int(count), *xc.get_loss(loss), correct_count), xc.SGD(lr)
            xd, yd = xc.to_device(x, config.device), xc.to_device(y, config.device)
            steps = [lambda: team.step(xd, yd, config.batch), lambda: team.forward_shares(xd)]
            if hold is not None:
                hold.enter_context(worker_threads.blas_threads(1))
            else:
                steps = [held(step) for step in steps]
            contenders[0].step, contenders[1].step = steps
        return contenders, output, hello
    if name == ON_TORCH:
        bm.set_engine(model.layers, spec["engine"])
        model.to("torch:cpu")
        output = xc.to_numpy(model.forward(xc.to_device(x, "torch:cpu")))
        return bm.model_contenders(name, model, x, y, loss, lr, "torch:cpu"), output, hello
    if name == "per-sample":
        ref, chunk = PerSample(model, bm.LEARNING_RATE), min(config.batch, spec["per_sample_batch"])
        output = ref.predict_batch(x[: min(config.batch, 8)])
        # Its time per sample does not depend on the batch size: it is timed on `chunk` samples.
        return bm.host_contenders("per-sample", ref.train_batch, ref.predict_batch, x[:chunk], y[:chunk]), output, hello
    tdev = "cuda" if config.device.startswith("cuda") else "cpu"
    contenders = bm.torch_contenders(torch, torch_model(model, torch, tdev, config.dtype), torch_loss(torch, loss),
                                     x, y, lr, tdev, input_gradient=model.layers[0].compute_input_gradient)
    output = contenders[1].step().cpu().numpy()  # inference: the same network, the same outputs
    return contenders, output, hello


def held(step):
    def one_blas_thread():
        with worker_threads.blas_threads(1):
            return step()
    return one_blas_thread


def serve(spec: dict) -> None:
    """One contender of one configuration, in this process, answering :class:`xpcnn.tools.timing.Remote`."""
    channel = timing.claim_stdout()  # prints go to stderr; stdout carries the replies
    torch = importlib.import_module("torch") if spec["name"] in ("torch", ON_TORCH) else None
    bm.limit_threads(spec["threads"], torch)
    with contextlib.ExitStack() as hold:
        contenders, output, hello = make_contenders(spec, torch, hold)
        if output is not None:
            np.save(spec["outputs"], output)
        timing.serve(contenders, {**hello, "outputs": output is not None, "process": os.getpid()},
                     lambda: {"auto_choices": auto.choices()}, stdout=channel)


def more_ratios(rows: list, default: str) -> "list[dict]":
    """Issue 22's and 23's ratios, per round: each workers=T contender and xpcnn on torch tensors
    against xpcnn (the default engine, one thread of Python) and against PyTorch's own ``nn``."""
    by: dict = {}
    for r in rows:
        if "samples_per_s" in r:
            by.setdefault((r["model"], r["dtype"], r["batch"], r["mode"]), {})[r["contender"]] = r
    out = []
    for (model, dtype, batch, mode), found in by.items():
        for ours in [n for n in found if ",workers=" in n or n == ON_TORCH]:
            for theirs in (f"xpcnn[{default}]", "torch"):
                if theirs in found:
                    ratio = timing.spread(timing.paired_ratios(found[ours]["samples_per_s"]["runs"],
                                                               found[theirs]["samples_per_s"]["runs"]))
                    agree = found[ours].get("outputs_agree") is True and found[theirs].get("outputs_agree") is True
                    out.append({"model": model, "dtype": dtype, "batch": batch, "mode": mode, "ours": ours,
                                "theirs": theirs, **ratio, "outputs_agree": agree})
    return out


def more_ratio_lines(entries: list) -> "list[str]":
    if not entries:
        return []
    lines = ["", "workers and xpcnn on torch tensors (median and min–max of the per-round ratios):"]
    for e in entries:
        note = "" if e["outputs_agree"] else " [outputs differ]"
        lines.append(f"  {e['model']:8} {e['dtype']:7} batch {e['batch']:>4} {e['mode']:5} "
                     f"{e['ours']} / {e['theirs']} {verdicts.format_ratio(e)}{note}")
    return lines


def csv(kind):
    return lambda text: [kind(t) for t in text.split(",") if t.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=csv(str), default=None,
                   help="seed,convnet,conv11,conv25 (default: every model available)")
    p.add_argument("--batch-sizes", type=csv(int), default=[1, 32, 128, 512])
    p.add_argument("--dtypes", type=csv(str), default=["float32", "float64"])
    p.add_argument("--engines", type=csv(str), default=None,
                   help=f"xpcnn convolution engines (default: {','.join(bm.DEFAULT_ENGINES)}; also signal-direct)")
    p.add_argument("--contenders", type=csv(str), default=["xpcnn", "per-sample", "torch", ON_TORCH],
                   help=f"which of xpcnn, per-sample, torch, {ON_TORCH} (seed and convnet on the CPU) to run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per contender (interleaved)")
    p.add_argument("--min-time", type=float, default=0.07, help="seconds one timed run lasts at least")
    p.add_argument("--max-step", type=float, default=2.0,
                   help="skip a contender whose single step takes longer than this many seconds")
    p.add_argument("--pause", type=float, default=0.2,
                   help="seconds of rest between a NumPy and a PyTorch run, so the idle threads of one stop spinning")
    p.add_argument("--per-sample-batch", type=int, default=16,
                   help="samples per timed per-sample step (its speed per sample does not depend on the batch)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for NumPy's BLAS and PyTorch (default: as many as NumPy's BLAS uses)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (CuPy and PyTorch CUDA)")
    p.add_argument("--workers", type=csv(int), default=[2],
                   help="xpcnn[ENGINE] workers=T contenders for these T > 1 (CPU only; default: 2)")
    p.add_argument("--one-process", action="store_true",
                   help="time every contender in this one process, as bench.py did before: shows the interference")
    p.add_argument("--serve", default=None, help=argparse.SUPPRESS)  # one contender's process (run_config)
    p.add_argument("--quick", action="store_true", help="float32, batches 1 and 128, 3 repeats")
    p.add_argument("--json", dest="json_path", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.dtypes, args.batch_sizes, args.repeats = ["float32"], [1, 128], 3
    return args


def fail(message: str) -> "None":
    print(f"bench.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_arguments(args) -> list:
    """Every usage error in one line, before anything is timed (and the ``--json`` path writable); the targets."""
    models = [*bm.NETWORKS, *bm.CASES]
    unknown = [n for n in args.models if n not in models]
    if unknown:
        fail(f"unknown or unavailable model(s) {unknown}: available {sorted(models)}")
    bad = [e for e in args.engines if e not in NAMES]
    if bad:
        fail(f"unknown engine(s) {bad}: expected some of {list(NAMES)}")
    bad = [d for d in args.dtypes if d not in ("float32", "float64")]
    if bad or not args.batch_sizes or min(args.batch_sizes) < 1 or args.repeats < 1:
        fail("--dtypes takes float32,float64; --batch-sizes positive integers; --repeats >= 1")
    if "xpcnn" not in args.contenders:
        fail("--contenders must include xpcnn")
    unknown = [c for c in args.contenders if c not in ("xpcnn", "per-sample", "torch", ON_TORCH)]
    if unknown:
        fail(f"unknown contender(s) {unknown}: expected some of xpcnn, per-sample, torch, {ON_TORCH}")
    try:
        if args.json_path:
            check_output_path(args.json_path, "--json")
        return verdicts.load_targets(str(TARGETS))
    except xc.XpcnnError as exc:
        fail(str(exc))


def load_torch(args, device: str):
    """PyTorch if it is asked for, installed, and (for a GPU run) built with CUDA; else ``None``."""
    if "torch" not in args.contenders and ON_TORCH not in args.contenders:
        return None
    if importlib.util.find_spec("torch") is None:
        return print("torch is not installed: PyTorch left out (pip install -e '.[bench]')")
    torch = importlib.import_module("torch")
    if device != "cpu" and not torch.cuda.is_available():
        return print("this PyTorch build has no CUDA: PyTorch left out")
    return torch


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(json.loads(args.serve)) or 0
    args.models = args.models or [*bm.NETWORKS, *bm.CASES]
    args.engines = args.engines or list(bm.DEFAULT_ENGINES)
    targets = check_arguments(args)
    try:
        device = xc.get_device(args.device).name  # "cpu" or "cuda:N"
    except (xc.DeviceError, ValueError) as exc:
        fail(str(exc).splitlines()[0])
    torch = load_torch(args, device)
    try:
        threads, blas = bm.limit_threads(args.threads, torch)
    except xc.XpcnnError as exc:
        fail(str(exc))
    machine, lines = bm.describe_machine(cpu_name(), device, getattr(torch, "__version__", None), threads, blas)
    print("\n".join(lines))
    peaks = {d: roofline.measure_peak(device, d, 4096 if device != "cpu" else 1536) for d in args.dtypes}
    print("roofline: " + ", ".join(f"{d} matmul {peaks[d]:.0f} GFLOP/s" for d in args.dtypes)
          + " up front; each configuration's rounds time the matmul again and compare with it")
    default = "auto" if "auto" in args.engines else args.engines[0]
    if os.environ.get(auto.ENV):
        print(f"note: {auto.ENV}={os.environ[auto.ENV]} is set: it decides for xpcnn[auto] instead of a measurement")
    print(f"xpcnn default engine: {default}; per-sample contender timed on up to {args.per_sample_batch} "
          f"samples per step; {args.repeats} interleaved repeats of >= {args.min_time:g} s\n")

    rows, seconds_per_sample, started, choices = [], {}, time.perf_counter(), []
    for name in args.models:
        for dtype in args.dtypes:
            for batch in [bm.CASES[name][-1]] if name in bm.CASES else sorted(args.batch_sizes):
                rows += run_config(args, bm.Config(name, dtype, batch, device), torch, seconds_per_sample, choices)
                print(f"  done {name} {dtype} batch {batch} ({time.perf_counter() - started:.0f} s)", flush=True)
    choices = auto.choices() if args.one_process else choices
    entries = verdicts.ratios(rows, default)
    judged = verdicts.target_verdicts(targets, rows, entries, default, threads)
    more = more_ratios(rows, default)
    for line in ["", *verdicts.table_lines(rows), *verdicts.ratio_lines(entries), *more_ratio_lines(more),
                 *verdicts.target_lines(judged),
                 *verdicts.engine_lines(rows, choices), f"\ntotal {time.perf_counter() - started:.0f} s"]:
        print(line)
    if args.json_path:
        payload = {"machine": machine, "peak_gflops": peaks, "default_engine": default,
                   "settings": {k: v for k, v in vars(args).items() if k != "json_path"}, "results": rows,
                   "ratios": entries, "more_ratios": more, "targets": judged,
                   "auto_choices": choices}
        atomic_write(args.json_path, lambda f: json.dump(payload, f, indent=1), "--json", binary=False)
        print(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
