"""Ratios between contenders, verdicts against the project's targets, and the lines ``scripts/bench.py`` prints.

A ratio (xpcnn / PyTorch, say) is taken per round, between runs timed side by side
(:func:`xpcnn.tools.timing.paired_ratios`), and given as its median and min–max. A target is
"met" only when the whole min–max is at or above the goal, "missed" only when all of it is
below, and "within noise" otherwise; there is no verdict when the two contenders' outputs differ
(the same weights must give the same outputs). The targets are data: ``benchmarks/targets.json``.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ..errors import ConfigError
from .timing import paired_ratios, spread

#: What a ratio compares the default engine with, and its key in an entry of :func:`ratios`.
OTHERS = (("torch", "xpcnn_over_torch"), ("per-sample", "xpcnn_over_per_sample"), ("xpcnn[gemm]", "xpcnn_over_gemm"))


class Target(NamedTuple):
    """A goal on a float32 ratio: ``ratio`` is a key of :func:`ratios`' entries, or ``roofline``."""

    text: str
    model: str
    batch: int
    mode: str
    ratio: str
    goal: float


def load_targets(path: str, key: str = "bench") -> list:
    """The targets under ``key`` in the JSON file at ``path`` (a list of :class:`Target` for ``bench``)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)[key]
        if key != "bench":
            return data
        return [Target(t["target"], t["model"], int(t["batch"]), t["mode"], t["ratio"], float(t["goal"]))
                for t in data]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"targets {path}: expected JSON with a {key!r} list of targets, got "
                          f"{type(exc).__name__}: {exc}") from None


def _by_config(rows: list) -> dict:
    table: dict = {}
    for row in rows:
        if "samples_per_s" in row:
            table.setdefault((row["model"], row["dtype"], row["batch"], row["mode"]), {})[row["contender"]] = row
    return table


def ratios(rows: list, default: str) -> list:
    """xpcnn (default engine) / torch, / per-sample and (another default than gemm) / gemm samples/s,
    per (model, dtype, batch, mode).

    Each ratio is ``{"median", "min", "max", "rounds", "outputs_agree"}`` over the interleaved
    rounds; ``outputs_agree`` is False when either side's outputs differed from the others'."""
    out = []
    for (model, dtype, batch, mode), by in _by_config(rows).items():
        ours = by.get(f"xpcnn[{default}]")
        if ours is None:
            continue
        entry = {"model": model, "dtype": dtype, "batch": batch, "mode": mode, "xpcnn": f"xpcnn[{default}]"}
        for other, key in OTHERS:
            if other in by and other != f"xpcnn[{default}]":  # gemm: what choosing (auto) gains over im2col
                entry[key] = spread(paired_ratios(ours["samples_per_s"]["runs"], by[other]["samples_per_s"]["runs"]))
                agree = ours.get("outputs_agree") is True and by[other].get("outputs_agree") is True
                entry[key]["outputs_agree"] = agree
        out.append(entry)
    return out


def verdict(ratio: "dict | None", goal: float) -> str:
    """"met" only when the whole spread is at or above ``goal``, "missed" only when all of it is
    below, "within noise" otherwise; no verdict on contenders that did not compute the same outputs."""
    if ratio is None:
        return "not measured"
    if ratio.get("outputs_agree") is not True:
        return "no verdict: the outputs differ"
    if ratio["min"] >= goal:
        return "met"
    if ratio["max"] < goal:
        return "missed"
    return "within noise"


def target_verdicts(targets: list, rows: list, entries: list, default: str, threads: int) -> list:
    """One ``{target, goal, median, min, max, rounds, verdict, threads}`` per target this run measured."""
    def measured(t: Target) -> "dict | None":
        where = (t.model, "float32", t.batch, t.mode)
        if t.ratio == "roofline":  # a property of xpcnn's own row: its outputs must agree with the others'
            row = next((r for r in rows if (r["model"], r["dtype"], r["batch"], r["mode"]) == where
                        and r["contender"] == f"xpcnn[{default}]" and "roofline" in r), None)
            return None if row is None else dict(row["roofline"], outputs_agree=row.get("outputs_agree"))
        return next((e[t.ratio] for e in entries if (e["model"], e["dtype"], e["batch"], e["mode"]) == where
                     and t.ratio in e), None)

    out = []
    for t in targets:
        ratio = measured(t)
        if ratio is not None:
            out.append({"target": t.text, "goal": t.goal, **{k: ratio[k] for k in ("median", "min", "max", "rounds")},
                        "verdict": verdict(ratio, t.goal), "threads": threads})
    return out


# -- the printout --------------------------------------------------------------------------------

def format_ratio(ratio: dict, unit: str = "x") -> str:
    """``1.05x (0.98–1.12)``: the median and the min–max over the rounds, two decimals."""
    return f"{ratio['median']:.2f}{unit} ({ratio['min']:.2f}–{ratio['max']:.2f})"


def table_lines(rows: list) -> "list[str]":
    """The results table: samples/s (median, min–max), GFLOP/s and roofline fraction per row."""
    head = f"{'model':8} {'dtype':7} {'batch':>5} {'mode':5} {'contender':22} {'samples/s':>10} " \
           f"{'min–max':>17} {'GFLOP/s':>8} {'roofline':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lead = f"{r['model']:8} {r['dtype']:7} {r['batch']:>5} {r['mode']:5} {r['contender']:22}"
        if "skipped" in r:
            lines.append(f"{lead} skipped: {r['skipped']}")
            continue
        s = r["samples_per_s"]
        span = f"{s['min']:.0f}–{s['max']:.0f}"
        roof = f"{r['roofline_fraction']:>8.1%}" if "roofline_fraction" in r else f"{'-':>8}"
        lines.append(f"{lead} {s['median']:>10.0f} {span:>17} {r['gflops']:>8.1f} {roof}")
    return lines


def ratio_lines(entries: list) -> "list[str]":
    lines = ["", "ratios (xpcnn default engine; median and min–max of the per-round ratios):"]
    for e in entries:
        parts = []
        for key, label in (("xpcnn_over_torch", "/torch"), ("xpcnn_over_per_sample", "/per-sample")):
            if key in e:
                note = "" if e[key]["outputs_agree"] else " [outputs differ]"
                parts.append(f"{label} {format_ratio(e[key])}{note}")
        if parts:
            lines.append(f"  {e['model']:8} {e['dtype']:7} batch {e['batch']:>4} {e['mode']:5} {'  '.join(parts)}")
    return lines


def target_lines(verdicts: list) -> "list[str]":
    """The targets (float32) this run measured; none when it measured none."""
    if not verdicts:
        return []
    lines = ["", f"targets (float32; median and min–max over {verdicts[0]['rounds']} interleaved rounds):"]
    for v in verdicts:
        unit = "" if "roofline" in v["target"] else "x"
        lines.append(f"  {v['target']:50} {format_ratio(v, unit):>22}  {v['verdict']} at {v['threads']} threads")
    return lines


def engine_lines(rows: list, choices: list) -> "list[str]":
    """Each engine against ``gemm`` (per-round ratios), and what ``auto`` measured and chose per layer."""
    table: dict = {}
    for key, by in _by_config(rows).items():
        for name, row in by.items():
            if name.startswith("xpcnn["):
                table.setdefault(key, {})[name[6:-1]] = row["samples_per_s"]["runs"]
    lines = []
    found = [(key, by) for key, by in table.items() if "gemm" in by and len(by) > 1]
    if found:
        lines += ["", "engines against gemm (median and min–max of the per-round ratios; > 1 is faster):"]
        for (model, dtype, batch, mode), by in found:
            parts = "  ".join(f"{name} {format_ratio(spread(paired_ratios(runs, by['gemm'])))}"
                              for name, runs in by.items() if name != "gemm")
            lines.append(f"  {model:8} {dtype:7} batch {batch:>4} {mode:5} {parts}")
    if choices:
        lines += ["", "auto's choices (input, kernels, stride, mode: engine; best seconds of each engine measured):"]
        for c in choices:
            times = ", ".join(f"{name} {seconds * 1e3:.1f} ms" + (" (forward, dropped)" if name in c["dropped"] else "")
                              for name, seconds in c["seconds"].items())
            lines.append(f"  {tuple(c['input'])} {tuple(c['kernels'])} s={c['stride']} {c['dtype']:7} {c['mode']:5}: "
                         f"{c['engine']:13} ({times or 'one candidate'}; {c['measured_s'] * 1e3:.0f} ms to measure)")
    return lines
