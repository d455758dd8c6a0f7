"""xpcnn.tools.timing: the statistics of interleaved rounds, against hand-computed values.

No timing is asserted: the contenders below count their steps instead of taking time.
"""

from xpcnn.tools.timing import Contender, calibrate, interleave, paired_ratios, spread, summary


def test_spread_is_the_median_and_the_range_of_the_rounds():
    assert spread([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "rounds": 4}


def test_paired_ratios_divide_round_by_round():
    assert paired_ratios([200, 300, 400], [100, 100, 200]) == [2.0, 3.0, 2.0]


def test_runs_that_cannot_be_paired_give_every_ratio_so_the_widest_bounds():
    assert sorted(paired_ratios([200, 400], [100, 200, 400])) == [0.5, 1.0, 1.0, 2.0, 2.0, 4.0]


def test_summary_gives_median_range_and_quartiles():
    s = summary([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s["median"], s["min"], s["max"], s["q1"], s["q3"]) == (3.0, 1.0, 5.0, 1.5, 4.5)
    assert summary([7.0])["q1"] == summary([7.0])["q3"] == 7.0


def test_interleave_gives_every_contender_one_run_per_round_the_first_one_rotating():
    order = []
    a = Contender("a", "train", lambda: order.append("a"), lambda: None, batch=2)
    b = Contender("b", "train", lambda: order.append("b"), lambda: None, batch=2)
    interleave([a, b], repeats=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert len(a.runs) == len(b.runs) == 3


def test_calibrate_skips_a_contender_slower_than_max_step():
    slow = Contender("slow", "train", lambda: sum(range(200_000)), lambda: None, batch=1)
    calibrate(slow, min_time=0.0, max_step=0.0)
    assert slow.skipped.endswith("per step > --max-step 0") and slow.first_step_s > 0
