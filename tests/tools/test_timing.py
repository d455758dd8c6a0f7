"""xpcnn.tools.timing: the statistics of interleaved rounds, against hand-computed values.

No timing is asserted: the contenders below count their steps instead of taking time.
"""

from xpcnn.tools.timing import Contender, calibrate, interleave, paired_ratios, spread, summary, timed_run


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
    assert order == ["a", "a", "b", "b", "b", "b", "a", "a", "a", "a", "b", "b"]  # each run: untimed, timed
    assert len(a.runs) == len(b.runs) == 3


def test_a_timed_run_starts_after_one_untimed_step():
    import time

    calls = []
    cold = Contender("cold", "train", lambda: calls.append(1) or time.sleep(0.2 if len(calls) == 1 else 0.0),
                     lambda: None, batch=10)
    timed_run(cold)
    assert len(calls) == 2
    assert cold.runs[0] > 10 / 0.2  # the slow first step (caches cold, threads asleep) is not in the run


def test_calibrate_skips_a_contender_slower_than_max_step():
    slow = Contender("slow", "train", lambda: sum(range(200_000)), lambda: None, batch=1)
    calibrate(slow, min_time=0.0, max_step=0.0)
    assert slow.skipped.endswith("per step > --max-step 0") and slow.first_step_s > 0


def test_serve_answers_a_remote_one_json_line_at_a_time_by_index():
    import io
    import json

    from xpcnn.tools.timing import serve

    steps = []
    a = Contender("a", "train", lambda: steps.append("a"), lambda: None, batch=4)
    b = Contender("b", "infer", lambda: steps.append("b"), lambda: None, batch=8)
    requests = [{"op": "hello"}, {"op": "first", "index": 1}, {"op": "calibrate", "index": 0, "min_time": 0.0,
                                                               "max_step": 60.0, "steps": 2},
                {"op": "run", "index": 0}, {"op": "quit"}, {"op": "run", "index": 1}]
    out = io.StringIO()
    lines = io.StringIO("".join(json.dumps(r) + "\n" for r in requests))
    serve([a, b], {"flops": 7}, lambda: {"bye": True}, stdin=lines, stdout=out)
    hello, first, calibrated, run, bye = [json.loads(line) for line in out.getvalue().splitlines()]
    assert hello == {"flops": 7, "contenders": [{"name": "a", "mode": "train", "batch": 4},
                                                {"name": "b", "mode": "infer", "batch": 8}]}
    assert first["first_step_s"] > 0 and steps[0] == "b"
    assert calibrated["reps"] == 1 and calibrated["skipped"] == "" and run["run"] > 0
    assert bye == {"bye": True}
    assert steps == ["b", "a", "a", "a", "a"]  # after quit nothing more runs (the last request is never read)


def test_a_remote_contender_is_timed_in_its_own_process(tmp_path):
    """The stand-ins ask the process; its step runs there (it writes its process id), never here."""
    import os
    import sys

    from xpcnn.tools.timing import Remote, first_step, timed_run

    child = (f"import os, sys\n"
             f"from xpcnn.tools import timing\n"
             f"channel = timing.claim_stdout()\n"
             f"print('a library printing to stdout cannot garble a reply')\n"
             f"os.write(1, b'nor can a C library writing to file descriptor 1\\n')\n"
             f"step = lambda: open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n"
             f"timing.serve([timing.Contender('c', 'train', step, lambda: None, 3)], {{}},"
             f" lambda: {{'pid': os.getpid()}}, stdout=channel)\n")
    remote = Remote([sys.executable, "-c", child])
    (c,) = remote.contenders()
    assert (c.name, c.mode, c.batch, c.remote) == ("c", "train", 3, remote)
    first_step(c)
    calibrate(c, min_time=0.0, max_step=60.0)
    interleave([c], repeats=2)
    timed_run(c)
    assert len(c.runs) == 3 and c.first_step_s > 0 and c.reps == 1
    pid = remote.close()["pid"]
    assert pid != os.getpid() and (tmp_path / "pid").read_text() == str(pid)
    assert remote.proc.returncode == 0 and remote.close() == {}


def test_a_remote_process_that_dies_is_one_error_not_a_hang():
    import sys

    import pytest

    from xpcnn.tools.timing import Remote

    with pytest.raises(RuntimeError, match=r"a contender's process ended \(exit status 3\)"):
        Remote([sys.executable, "-c", "raise SystemExit(3)"])
