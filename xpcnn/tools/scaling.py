"""Data-parallel scaling: P ranks against one process, the statistics of ``scripts/bench_dist.py``.

Each job (a model on P ranks, one run) reports global samples/s, its mean and median step, and
the time of its allreduce inside the step and alone. Per (model, P), :func:`summarise` takes the
median over the repeats, the speed-up over one process in the same run (of the mean steps and of
the median ones, the "steady" steps in which no neighbour took a core), and the scaling model
``compute / P + allreduce alone``, with compute the one-process step.
"""

from __future__ import annotations

import statistics

#: The per-job numbers whose median over the repeats a row gives.
MEDIANS = ("samples_per_s", "step_ms", "median_step_ms", "steady_samples_per_s", "in_step_allreduce_ms",
           "alone_allreduce_ms")


def summarise(runs: "list[dict]", ranks: "list[int]") -> "list[dict]":
    """One row per (model, rank count), rank counts in the order of ``ranks`` (1 first)."""
    rows = []
    for model in dict.fromkeys(r["model"] for r in runs):
        base = None
        for p in ranks:
            mine = [r for r in runs if r["model"] == model and r["ranks"] == p]
            row = {key: statistics.median(r[key] for r in mine) for key in MEDIANS}
            row.update(model=model, ranks=p, gradient_bytes=mine[0]["gradient_bytes"], repeats=len(mine),
                       spread=[min(r["samples_per_s"] for r in mine), max(r["samples_per_s"] for r in mine)])
            base = row if p == 1 else base
            if base:
                row["speedup"] = row["samples_per_s"] / base["samples_per_s"]
                row["steady_speedup"] = row["steady_samples_per_s"] / base["steady_samples_per_s"]
                row["model_ms"] = base["step_ms"] / p + row["alone_allreduce_ms"]
            rows.append(row)
    return rows


def verdict(row: dict, goal: float) -> str:
    """"met" when the speed-up reaches ``goal``, else "met in steady steps" when the median steps' does."""
    if row["speedup"] >= goal:
        return "met"
    return "met in steady steps" if row["steady_speedup"] >= goal else "missed"


def table_lines(rows: "list[dict]", target: dict) -> "list[str]":
    """The table, then the target's verdict (``{"ranks", "speedup"}``) for every model run on its rank count."""
    lines = [f"{'model':<8} {'ranks':>5} {'samples/s':>10} {'(min-max)':>15} {'speed-up':>8} {'step ms':>8} "
             f"{'median ms':>9} {'steady':>6} {'in-step ms':>10} {'alone ms':>8} {'model ms':>8} {'grad MB':>7}"]
    for r in rows:
        spread = f"{r['spread'][0]:.0f}-{r['spread'][1]:.0f}"
        lines.append(f"{r['model']:<8} {r['ranks']:>5} {r['samples_per_s']:>10.0f} {spread:>15} "
                     f"{r.get('speedup', float('nan')):>8.2f} {r['step_ms']:>8.1f} {r['median_step_ms']:>9.1f} "
                     f"{r.get('steady_speedup', float('nan')):>6.2f} {r['in_step_allreduce_ms']:>10.2f} "
                     f"{r['alone_allreduce_ms']:>8.2f} {r.get('model_ms', float('nan')):>8.1f} "
                     f"{r['gradient_bytes'] / 1e6:>7.2f}")
    goal, ranks = target["speedup"], target["ranks"]
    for r in rows:
        if r["ranks"] == ranks:
            lines.append(f"target {r['model']}, {ranks} ranks >= {goal}x 1 rank: {r['speedup']:.2f}x "
                         f"({r['steady_speedup']:.2f}x in the median step): {verdict(r, goal)}")
    return lines
