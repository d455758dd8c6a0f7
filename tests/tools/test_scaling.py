"""xpcnn.tools.scaling: bench_dist.py's medians, speed-ups, scaling model and verdict, on made-up jobs
whose numbers are worked out by hand."""

import pytest

from xpcnn.tools import scaling


def job(ranks, samples_per_s, step_ms, median_step_ms, alone_ms=0.0, model="seed"):
    return {"model": model, "ranks": ranks, "samples_per_s": samples_per_s, "step_ms": step_ms,
            "median_step_ms": median_step_ms, "steady_samples_per_s": 256 / (median_step_ms / 1e3),
            "in_step_allreduce_ms": alone_ms * 2, "alone_allreduce_ms": alone_ms, "gradient_bytes": 1_366_908}


def test_rows_are_medians_over_repeats_with_speed_up_and_the_scaling_model():
    runs = [job(1, 1000, 256, 250), job(2, 1500, 170, 130, 4.0), job(1, 1200, 213, 200),
            job(2, 2100, 122, 120, 6.0), job(1, 800, 320, 300), job(2, 1800, 142, 125, 5.0)]
    one, two = scaling.summarise(runs, [1, 2])
    assert (one["samples_per_s"], one["step_ms"], one["repeats"], one["spread"]) == (1000, 256, 3, [800, 1200])
    assert one["speedup"] == 1.0 and one["model_ms"] == 256 + 0.0
    assert two["samples_per_s"] == 1800 and two["speedup"] == pytest.approx(1.8)
    assert two["steady_speedup"] == pytest.approx(250 / 125)  # median of the median steps: 250 ms and 125 ms
    assert two["model_ms"] == pytest.approx(256 / 2 + 5.0)  # compute / P + the allreduce alone


@pytest.mark.parametrize("speedup, steady, expected", [
    (1.7, 1.0, "met"), (1.69, 1.7, "met in steady steps"), (1.5, 1.6, "missed")])
def test_the_target_is_met_by_the_mean_steps_or_else_in_the_steady_ones(speedup, steady, expected):
    assert scaling.verdict({"speedup": speedup, "steady_speedup": steady}, 1.7) == expected


def test_the_table_ends_with_the_verdict_of_every_model_on_the_targets_rank_count():
    runs = [job(1, 1000, 256, 250), job(2, 1800, 142, 125, 5.0),
            job(1, 100, 2560, 2500, model="convnet"), job(2, 150, 1700, 1600, 9.0, model="convnet")]
    lines = scaling.table_lines(scaling.summarise(runs, [1, 2]), {"ranks": 2, "speedup": 1.7})
    assert lines[0].split()[:4] == ["model", "ranks", "samples/s", "(min-max)"] and len(lines) == 7
    assert lines[1].split()[:5] == ["seed", "1", "1000", "1000-1000", "1.00"]
    assert lines[-2] == "target seed, 2 ranks >= 1.7x 1 rank: 1.80x (2.00x in the median step): met"
    assert lines[-1] == "target convnet, 2 ranks >= 1.7x 1 rank: 1.50x (1.56x in the median step): missed"
