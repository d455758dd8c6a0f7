"""xpcnn.tools.verdicts: ratios between contenders paired round by round, verdicts against the
targets, and the lines bench.py prints, on made-up rows whose ratios are computed by hand."""

from pathlib import Path

import pytest

from xpcnn.errors import ConfigError
from xpcnn.tools import verdicts
from xpcnn.tools.timing import spread, summary

ROOT = Path(__file__).resolve().parents[2]
TARGETS = verdicts.load_targets(str(ROOT / "benchmarks" / "targets.json"))


def made_up_row(contender, runs, batch=128, mode="train", agree=True, roofline=None, model="seed"):
    """A result row as run_config writes it, with per-round samples/s ``runs``."""
    row = {"model": model, "dtype": "float32", "batch": batch, "mode": mode, "contender": contender,
           "samples_per_s": summary(list(runs)), "outputs_agree": agree}
    if roofline is not None:
        row["roofline"] = spread(list(roofline))
    return row


def test_ratios_are_ours_over_theirs_paired_round_by_round():
    rows = [made_up_row("xpcnn[gemm]", [200, 300, 400]), made_up_row("torch", [100, 100, 200]),
            made_up_row("per-sample", [4, 5, 8]), made_up_row("xpcnn[signal]", [1, 1, 1])]
    [entry] = verdicts.ratios(rows, "gemm")
    assert entry["xpcnn"] == "xpcnn[gemm]"
    over_torch, over_per_sample = entry["xpcnn_over_torch"], entry["xpcnn_over_per_sample"]
    # rounds: 200/100, 300/100, 400/200 and 200/4, 300/5, 400/8
    assert (over_torch["median"], over_torch["min"], over_torch["max"], over_torch["rounds"]) == (2.0, 2.0, 3.0, 3)
    assert (over_per_sample["median"], over_per_sample["min"], over_per_sample["max"]) == (50.0, 50.0, 60.0)
    assert over_torch["outputs_agree"] is True and over_per_sample["outputs_agree"] is True


def test_ratios_skip_configurations_without_the_default_engine_and_flag_disagreeing_outputs():
    rows = [made_up_row("xpcnn[signal]", [10]), made_up_row("torch", [5]),
            made_up_row("xpcnn[gemm]", [30], batch=1), made_up_row("torch", [10], batch=1, agree=False)]
    [entry] = verdicts.ratios(rows, "gemm")
    assert entry["batch"] == 1 and entry["xpcnn_over_torch"]["median"] == 3.0
    assert entry["xpcnn_over_torch"]["outputs_agree"] is False
    assert "xpcnn_over_per_sample" not in entry


def test_ratios_of_runs_that_cannot_be_paired_take_the_widest_bounds():
    rows = [made_up_row("xpcnn[gemm]", [200, 400]), made_up_row("torch", [100, 200, 400])]
    ratio = verdicts.ratios(rows, "gemm")[0]["xpcnn_over_torch"]
    assert (ratio["min"], ratio["max"]) == (0.5, 4.0)


@pytest.mark.parametrize("goal", [1.2, 1.0, 50.0, 0.30])
@pytest.mark.parametrize("low, high, expected", [
    (1.0, 1.0, "met"),            # the whole spread at the goal
    (1.0, 1.5, "met"),            # at and above
    (1.1, 1.5, "met"),            # all above
    (0.999, 1.5, "within noise"),  # straddles the goal
    (0.5, 1.0, "within noise"),   # reaches the goal only at its top
    (0.5, 0.999, "missed"),       # all below
    (0.5, 0.5, "missed"),         # half the goal
])
def test_verdict_is_met_only_when_the_whole_spread_reaches_the_goal(goal, low, high, expected):
    ratio = {"median": goal * (low + high) / 2, "min": goal * low, "max": goal * high, "outputs_agree": True}
    assert verdicts.verdict(ratio, goal) == expected


def test_no_verdict_when_the_outputs_differ_or_were_not_compared():
    assert verdicts.verdict({"median": 9, "min": 9, "max": 9, "outputs_agree": False}, 1.0).startswith("no verdict")
    assert verdicts.verdict({"median": 9, "min": 9, "max": 9}, 1.0).startswith("no verdict")
    assert verdicts.verdict(None, 1.0) == "not measured"


def target_rows(factor_128, factor_1, per_sample_factor, roofline, agree=True):
    """Rows for the four targets; each ratio is ``goal × factor`` in every round."""
    return [
        made_up_row("xpcnn[gemm]", [1200 * f for f in factor_128], roofline=[0.30 * f for f in roofline]),
        made_up_row("torch", [1000] * len(factor_128), agree=agree),
        made_up_row("per-sample", [24 * f / g for f, g in zip(factor_128, per_sample_factor)]),
        made_up_row("xpcnn[gemm]", [1000 * f for f in factor_1], batch=1),
        made_up_row("torch", [1000] * len(factor_1), batch=1, agree=agree),
    ]


@pytest.mark.parametrize("factors, expected", [
    ((1.0, 1.0, 1.0), "met"),
    ((1.0, 1.2, 1.5), "met"),
    ((0.9, 1.0, 1.2), "within noise"),
    ((0.5, 0.8, 0.99), "missed"),
])
def test_each_target_is_judged_on_its_own_goal(factors, expected):
    rows = target_rows(factors, factors, factors, factors)
    judged = verdicts.target_verdicts(TARGETS, rows, verdicts.ratios(rows, "gemm"), "gemm", threads=3)
    seed = [t for t in TARGETS if t.model == "seed"]  # the rows are the seed's: only its targets are measured
    assert [v["target"] for v in judged] == [t.text for t in seed]
    for v, (*_, goal) in zip(judged, seed):
        assert v["goal"] == goal and v["threads"] == 3 and v["rounds"] == 3
        assert v["min"] == pytest.approx(goal * min(factors)) and v["max"] == pytest.approx(goal * max(factors))
        assert v["verdict"] == expected, v


def test_targets_give_no_verdict_on_ratios_to_torch_when_its_outputs_differ():
    rows = target_rows((2, 2), (2, 2), (2, 2), (2, 2), agree=False)
    entries = verdicts.ratios(rows, "gemm")
    judged = {v["target"]: v["verdict"] for v in verdicts.target_verdicts(TARGETS, rows, entries, "gemm", 2)}
    assert judged["seed train batch 128 >= 1.2x torch"].startswith("no verdict")
    assert judged["seed train batch 1 >= 1.0x torch"].startswith("no verdict")
    assert judged["seed train batch 128 >= 50x per-sample"] == "met"


def test_targets_print_two_decimals_the_spread_and_the_thread_count(capsys):
    rows = target_rows((0.9, 1.0, 1.1), (1.0, 1.0, 1.0), (2.0, 2.5, 3.0), (0.5, 0.6, 0.7))
    entries = verdicts.ratios(rows, "gemm")
    print("\n".join(verdicts.ratio_lines(entries)))
    print("\n".join(verdicts.target_lines(verdicts.target_verdicts(TARGETS, rows, entries, "gemm", threads=4))))
    out = capsys.readouterr().out
    assert "/torch 1.20x (1.08–1.32)" in out and "/per-sample 125.00x (100.00–150.00)" in out
    lines = {line.split("  ")[1]: line for line in out.splitlines() if line.startswith("  seed train")}
    assert lines["seed train batch 128 >= 1.2x torch"].endswith("1.20x (1.08–1.32)  within noise at 4 threads")
    assert lines["seed train batch 1 >= 1.0x torch"].endswith("1.00x (1.00–1.00)  met at 4 threads")
    assert lines["seed train batch 128 >= 50x per-sample"].endswith("125.00x (100.00–150.00)  met at 4 threads")
    assert lines["seed train batch 128 >= 0.30 of the GEMM roofline"].endswith(
        "0.18 (0.15–0.21)  missed at 4 threads")


def test_the_convnet_and_large_kernel_targets_judge_their_own_rows_and_auto_against_gemm():
    rows = [made_up_row("xpcnn[auto]", [900, 1000, 1100], model="convnet"),
            made_up_row("torch", [1000, 1000, 1000], model="convnet"),
            made_up_row("xpcnn[auto]", [3000, 3000, 3000], mode="infer", model="convnet"),
            made_up_row("torch", [2000, 2000, 2000], mode="infer", model="convnet"),
            made_up_row("xpcnn[auto]", [700, 800, 900], batch=32, model="conv11"),
            made_up_row("xpcnn[gemm]", [100, 100, 100], batch=32, model="conv11"),
            made_up_row("torch", [400, 400, 400], batch=32, model="conv11")]
    entries = verdicts.ratios(rows, "auto")
    assert all("xpcnn_over_gemm" not in e for e in entries if e["model"] == "convnet")  # no gemm row there
    judged = {v["target"]: v for v in verdicts.target_verdicts(TARGETS, rows, entries, "auto", 2)}
    assert list(judged) == ["convnet train batch 128 >= 1.0x torch", "convnet infer batch 128 >= 1.0x torch",
                              "conv11 train batch 32 >= 3x gemm"]
    assert judged["convnet train batch 128 >= 1.0x torch"]["verdict"] == "within noise"  # 0.9-1.1
    assert judged["convnet infer batch 128 >= 1.0x torch"]["verdict"] == "met"  # 1.5, the inference row's
    gemm = judged["conv11 train batch 32 >= 3x gemm"]
    assert (gemm["min"], gemm["median"], gemm["max"], gemm["verdict"]) == (7.0, 8.0, 9.0, "met")
    assert verdicts.ratios(rows, "gemm")[-1].get("xpcnn_over_gemm") is None  # gemm against itself: no ratio


def test_targets_are_left_out_when_the_run_did_not_measure_them():
    rows = [made_up_row("xpcnn[gemm]", [10], batch=2), made_up_row("torch", [5], batch=2)]
    assert verdicts.target_verdicts(TARGETS, rows, verdicts.ratios(rows, "gemm"), "gemm", 2) == []
    assert verdicts.target_lines([]) == []


def test_engines_are_compared_with_gemm_round_by_round_and_autos_choices_listed():
    rows = [made_up_row("xpcnn[auto]", [300, 600]), made_up_row("xpcnn[gemm]", [100, 200]),
            made_up_row("xpcnn[signal]", [50, 100]), made_up_row("torch", [1, 1])]
    choice = {"input": [128, 1, 28, 28], "kernels": [5, 1, 3, 3], "stride": 1, "dtype": "float32", "mode": "train",
              "engine": "gemm", "seconds": {"gemm": 0.001, "signal": 0.002}, "dropped": ["signal"], "measured_s": 0.05}
    lines = verdicts.engine_lines(rows, [choice])
    assert lines[2] == "  seed     float32 batch  128 train auto 3.00x (3.00–3.00)  signal 0.50x (0.50–0.50)"
    assert lines[-1] == ("  (128, 1, 28, 28) (5, 1, 3, 3) s=1 float32 train: gemm          "
                         "(gemm 1.0 ms, signal 2.0 ms (forward, dropped); 50 ms to measure)")
    assert verdicts.engine_lines([made_up_row("xpcnn[gemm]", [1])], []) == []  # gemm alone: nothing to compare


def test_the_table_gives_median_spread_gflops_and_roofline_or_why_a_row_was_skipped():
    row = dict(made_up_row("xpcnn[gemm]", [100, 200, 300]), gflops=1.5, roofline_fraction=0.25)
    skipped = {"model": "seed", "dtype": "float32", "batch": 512, "mode": "train", "contender": "per-sample",
               "skipped": "about 9 s per step > 2 x --max-step 2"}
    head, rule, ours, theirs = verdicts.table_lines([row, skipped])
    assert head.split() == ["model", "dtype", "batch", "mode", "contender", "samples/s", "min–max", "GFLOP/s",
                            "roofline"] and set(rule) == {"-"}
    assert ours.split() == ["seed", "float32", "128", "train", "xpcnn[gemm]", "200", "100–300", "1.5", "25.0%"]
    assert theirs.endswith("per-sample             skipped: about 9 s per step > 2 x --max-step 2")


def test_a_targets_file_that_is_not_a_list_of_targets_is_one_line_naming_it(tmp_path):
    bad = tmp_path / "targets.json"
    bad.write_text('{"bench": [{"target": "seed", "model": "seed"}]}')
    with pytest.raises(ConfigError) as err:
        verdicts.load_targets(str(bad))
    assert str(err.value).startswith(f"targets {bad}: expected JSON with a 'bench' list of targets")
    assert "\n" not in str(err.value)
