"""The one timing helper of ``scripts/bench.py`` and ``xpcnn-doctor``: throughput in samples/s.

A :class:`Contender` is one thing to time: ``step()`` runs one batch and ``sync()`` waits for its
device (a GPU queues work; a timer read before the queue drains measures nothing). The first
step is timed on its own (:attr:`Contender.first_step_s`: FFT plans, ``engine="auto"``'s
measurement, CuPy's kernel compilation), then :func:`calibrate` picks how many steps one timed
run takes, and :func:`timed_run` appends one run's samples/s (after one untimed step). :func:`interleave` times several
contenders in rounds, taking turns, so that a noisy neighbour slows all of them alike.

A contender may live in a process of its own (:class:`Remote`, :func:`serve`): the rounds then
take turns between processes, so that no library's idle threads sit in another's process.

Statistics of the rounds: :func:`summary` (one contender's runs), :func:`paired_ratios` (two
contenders timed side by side, round by round) and :func:`spread` (median and min–max).
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import TrainingError

#: The folder that holds the ``xpcnn`` package: a :class:`Remote` process imports this xpcnn.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
#: What :func:`calibrate` in a :class:`Remote` process sends back.
REMOTE_FIELDS = ("step_seconds", "reps", "first_step_s", "skipped")


@dataclass
class Contender:
    """One thing to time: ``step()`` runs one batch of ``batch`` samples; ``sync()`` waits for the device."""

    name: str
    mode: str  # "train", "infer", or what the caller likes
    step: Callable[[], Any]
    sync: Callable[[], Any]
    batch: int
    reps: int = 1
    step_seconds: float = 0.0
    first_step_s: "float | None" = None
    runs: list = field(default_factory=list)
    skipped: str = ""
    #: The :class:`Remote` process that holds this contender and times it (``None``: this process),
    #: and the contender's place in that process's list.
    remote: Any = None
    remote_index: int = 0


def _one_step(c: Contender) -> float:
    start = time.perf_counter()
    c.step()
    c.sync()
    return time.perf_counter() - start


def first_step(c: Contender) -> None:
    """Time the very first step on its own (``first_step_s``): compilation and measurements, not steady state."""
    c.first_step_s = c.remote.ask(op="first", index=c.remote_index)["first_step_s"] if c.remote else _one_step(c)


def calibrate(c: Contender, min_time: float, max_step: float, steps: int = 2) -> None:
    """Warm up with ``steps`` steps, then choose how many steps one timed run takes (at least ``min_time`` s).

    The first step's time is kept in ``first_step_s`` (unless :func:`first_step` took it already); a
    step slower than ``max_step`` seconds is not repeated (``skipped`` says why)."""
    if c.remote is not None:
        reply = c.remote.ask(op="calibrate", index=c.remote_index, min_time=min_time, max_step=max_step, steps=steps)
        for key in REMOTE_FIELDS:
            setattr(c, key, reply[key])
        return
    one = 0.0
    for _ in range(steps):
        one = _one_step(c)
        if c.first_step_s is None:
            c.first_step_s = one
        if one > max_step:
            c.skipped = f"{one:.1f} s per step > --max-step {max_step:g}"
            return
    c.step_seconds = one
    c.reps = max(1, math.ceil(min_time / max(one, 1e-6)))


def timed_run(c: Contender) -> None:
    """One timed run of ``c.reps`` steps, after one untimed step; its samples/s goes to ``c.runs``.

    A run follows the other contenders' runs and the pauses between them, after which a step can be
    slower than the next ones (two workers' first step was, by a fifth). A training loop runs step
    after step: the untimed step brings the run to that steady state, for every contender alike
    (docs/performance.md, "Warm runs")."""
    if c.remote is not None:
        c.runs.append(c.remote.ask(op="run", index=c.remote_index)["run"])
        return
    c.step()
    c.sync()
    start = time.perf_counter()
    for _ in range(c.reps):
        c.step()
    c.sync()
    c.runs.append(c.reps * c.batch / (time.perf_counter() - start))


def interleave(contenders: "list[Contender]", repeats: int, pause: float = 0.0,
               family: Callable[[Contender], Any] = lambda c: None) -> None:
    """``repeats`` rounds; in each, every contender times one run, the first one rotating.

    Between two contenders of different ``family`` (NumPy and PyTorch, say) it sleeps ``pause``
    seconds: after a call, OpenBLAS's threads (and less so PyTorch's OpenMP threads) spin for up to
    ~0.2 s, and on a small machine they would take the other's cores. No garbage collection runs
    inside the rounds (one takes ~0.1 s with PyTorch loaded)."""
    active = [c for c in contenders if not c.skipped]
    gc.collect()
    gc.disable()
    try:
        previous = None
        for r in range(repeats):
            shift = r % max(len(active), 1)
            for c in active[shift:] + active[:shift]:
                kind = family(c)
                if previous is not None and kind != previous[0]:
                    time.sleep(pause)
                previous = (kind,)
                timed_run(c)
    finally:
        gc.enable()


def summary(runs: list) -> dict:
    """``{"median", "min", "max", "q1", "q3", "runs"}`` of a contender's samples/s."""
    q = statistics.quantiles(runs, n=4) if len(runs) > 1 else [runs[0]] * 3
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs),
            "q1": q[0], "q3": q[2], "runs": runs}


def spread(values: list) -> dict:
    """``{"median", "min", "max", "rounds"}`` of per-round values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": len(values)}


def paired_ratios(ours: list, theirs: list) -> list:
    """``ours[i] / theirs[i]``: both were timed in round ``i`` of :func:`interleave`, under the same
    load. Runs that cannot be paired give the widest bounds: every ratio of one to the other."""
    if len(ours) == len(theirs):
        return [a / b for a, b in zip(ours, theirs)]
    return [a / b for a in ours for b in theirs]


class Remote:
    """A process holding contenders (``command`` runs :func:`serve`), asked one JSON line at a time.

    The process finds this xpcnn first on its path. :meth:`contenders` gives stand-ins for the
    contenders it holds: :func:`first_step`, :func:`calibrate` and :func:`timed_run` on a stand-in
    ask the process, which times the step itself, so its clock never counts the messages."""

    def __init__(self, command: "list[str]", env: "dict | None" = None) -> None:
        env = dict(os.environ if env is None else env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.hello = self.ask(op="hello")

    def ask(self, **request) -> dict:
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise TrainingError(f"a contender's process ended (exit status {self.proc.wait()}); its error is above")
        return json.loads(line)

    def contenders(self) -> "list[Contender]":
        """One stand-in per contender the process holds, in its order."""
        return [Contender(c["name"], c["mode"], None, None, c["batch"], remote=self, remote_index=i)
                for i, c in enumerate(self.hello["contenders"])]

    def close(self) -> dict:
        """The process's last words (``op="quit"``), then its end; ``{}`` from a process already ended."""
        reply = self.ask(op="quit") if self.proc.poll() is None else {}
        self.proc.wait(timeout=60)
        return reply


def claim_stdout():
    """The protocol's channel for :func:`serve`: this process's standard output, which from now on
    goes to standard error instead (a library's print, or a C library's, cannot garble a reply)."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def serve(contenders: "list[Contender]", hello: dict, last_words: Callable[[], dict] = dict,
          stdin=None, stdout=None) -> None:
    """Answer :class:`Remote`'s requests about ``contenders`` (by index) until it says ``quit``.

    ``hello`` goes to the first request, with the contenders' names, modes and batches; the
    reply to ``quit`` is ``last_words()``. ``stdout``: best :func:`claim_stdout`'s channel."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    gc.collect()
    gc.disable()  # as in interleave: no collection inside a timed run
    for line in stdin:
        request = json.loads(line)
        op = request["op"]
        c = contenders[request["index"]] if "index" in request else None
        if op == "hello":
            reply = {**hello, "contenders": [{"name": x.name, "mode": x.mode, "batch": x.batch} for x in contenders]}
        elif op == "first":
            first_step(c)
            reply = {"first_step_s": c.first_step_s}
        elif op == "calibrate":
            calibrate(c, request["min_time"], request["max_step"], request["steps"])
            reply = {k: getattr(c, k) for k in REMOTE_FIELDS}
        elif op == "run":
            timed_run(c)
            reply = {"run": c.runs[-1]}
        elif op == "quit":
            reply = last_words()
        else:
            reply = {"error": f"unknown request {op!r}"}
        stdout.write(json.dumps(reply) + "\n")
        stdout.flush()
        if op == "quit":
            return
