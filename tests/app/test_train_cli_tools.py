"""train.py's summary, --schedule, --early-stopping and --val-split, end to end on the embedded sample."""

import json

import numpy as np
import pytest

from test_train_cli import assert_one_line_error, offline_env, train  # noqa: F401 (a fixture)
from xpcnn.app import cli
from xpcnn.io.checkpoint import load_checkpoint, read_metadata

COMMON = ["--dataset", "sample", "--limit", "30", "--batch-size", "8", "--optimizer", "momentum", "--lr", "0.05"]


def assert_same_parameters(a, b):
    for la, lb in zip(a.layers, b.layers):
        for key in la.params:
            np.testing.assert_array_equal(lb.params[key], la.params[key], err_msg=key)


def test_a_scheduled_run_resumed_from_its_checkpoint_equals_the_uninterrupted_one_and_prints_the_summary(
        tmp_path, offline_env):  # noqa: F811
    straight = train(offline_env, *COMMON, "--schedule", "warmup:10,step:1:0.5", "--epochs", "3",
                     "--save", tmp_path / "straight.npz")
    first = train(offline_env, *COMMON, "--schedule", "warmup:10,step:1:0.5", "--epochs", "2", "--quiet",
                  "--save", tmp_path / "resumed.npz")
    second = train(offline_env, "--resume", tmp_path / "resumed.npz", "--epochs", "1", "--quiet",
                   "--metrics-json", tmp_path / "m.json", "--save", tmp_path / "resumed.npz")
    for result in (straight, first, second):
        assert result.returncode == 0, result.stderr
    assert "Total params: 341,727 (1.30 MB)" in straight.stdout and "Layer (type)" in straight.stdout
    assert "Total params" not in first.stdout + second.stdout  # --quiet leaves the summary out
    assert "schedule warmup:10,step:1:0.5" in straight.stdout and "lr 0.0125" in straight.stdout
    a, b = load_checkpoint(tmp_path / "straight.npz"), load_checkpoint(tmp_path / "resumed.npz")
    assert a.epoch == b.epoch == 3 and b.schedule == a.schedule
    assert_same_parameters(a, b)
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["schedule"] == "warmup:10,step:1:0.5" and m["early_stopping"] is None
    # 8 steps an epoch: the warm-up is at 8/10 at the end of the first
    assert [h["learning_rate"] for h in m["history"]] == pytest.approx([0.04, 0.025, 0.0125], rel=1e-15)
    dropped = train(offline_env, "--resume", tmp_path / "resumed.npz", "--epochs", "1", "--schedule", "none",
                    "--save", tmp_path / "dropped.npz", "--metrics-json", tmp_path / "d.json")
    assert dropped.returncode == 0, dropped.stderr
    assert ", schedule" not in dropped.stdout.splitlines()[0]
    assert load_checkpoint(tmp_path / "dropped.npz").schedule is None
    assert json.loads((tmp_path / "d.json").read_text())["history"][-1]["learning_rate"] == 0.05


def test_early_stopping_stops_restores_the_best_epoch_and_says_so_in_the_metrics_and_checkpoint(
        tmp_path, offline_env):  # noqa: F811
    stopped = train(offline_env, *COMMON, "--epochs", "6", "--early-stopping", "1", "--min-delta", "100", "--quiet",
                    "--save", tmp_path / "es.npz", "--metrics-json", tmp_path / "es.json")
    one_epoch = train(offline_env, *COMMON, "--epochs", "1", "--val-split", "0.1", "--quiet",
                      "--save", tmp_path / "one.npz")
    for result in (stopped, one_epoch):
        assert result.returncode == 0, result.stderr
    assert "early stopping after epoch 2" in stopped.stdout and "best epoch 1" in stopped.stdout
    m = json.loads((tmp_path / "es.json").read_text())
    best = m["history"][0]["val_loss"]
    assert m["early_stopping"] == {"monitor": "val_loss", "patience": 1, "min_delta": 100.0, "restore_best": True,
                                   "stopped_epoch": 2, "best_epoch": 1, "best": best, "best_val_loss": best,
                                   "restored_epoch": 1}
    assert [h["epoch"] for h in m["history"]] == [1, 2] and m["epochs_total"] == 2
    assert m["config"]["val_split"] == 0.1 and m["dataset"]["validation_samples"] == m["validation_samples"] == 6
    assert m["dataset"]["train_samples"] == 54  # the held-out samples are not trained on
    saved = load_checkpoint(tmp_path / "es.npz")
    assert read_metadata(tmp_path / "es.npz")["extra"]["early_stopping"] == {"restored_epoch": 1, "stopped_epoch": 2}
    assert_same_parameters(load_checkpoint(tmp_path / "one.npz"), saved)  # epoch 1's weights, on the same split



def test_early_stopping_on_a_checkpoint_trained_without_a_validation_split_is_one_line(tmp_path, offline_env):  # noqa
    assert train(offline_env, *COMMON, "--epochs", "1", "--quiet", "--save", tmp_path / "plain.npz").returncode == 0
    assert_one_line_error(train(offline_env, "--resume", tmp_path / "plain.npz", "--early-stopping", "2"),
                          "--early-stopping needs a validation split", "--val-split F", code=2)
    before = (tmp_path / "plain.npz").read_bytes()
    assert_one_line_error(train(offline_env, "--resume", tmp_path / "plain.npz", "--early-stopping", "2",
                                "--save", tmp_path / "more.npz"), "--early-stopping needs a validation split", code=2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["plain.npz"]  # nothing written
    assert (tmp_path / "plain.npz").read_bytes() == before


def test_a_validation_split_that_leaves_no_training_sample_is_one_line(offline_env):  # noqa: F811
    assert_one_line_error(train(offline_env, "--dataset", "sample", "--limit", "1", "--val-split", "0.9"),
                          "a validation split of 0.9 leaves no training sample out of 2", "--val-split", code=2)


@pytest.mark.parametrize("args, fragment", [
    (["--schedule", "cosine:0"], "argument --schedule: schedule 'cosine:0': Cosine: epochs must be an integer >= 1"),
    (["--schedule", "linear:3"], "unknown kind 'linear'"),
    (["--schedule", "warmup:5,warmup:6"], "each kind of schedule at most once"),
    (["--schedule", ""], "empty spec"),
    (["--early-stopping", "0"], "argument --early-stopping: expected an integer >= 1"),
    (["--min-delta", "0.1"], "--min-delta needs --early-stopping"),
    (["--early-stopping", "2", "--min-delta", "-1"], "argument --min-delta: expected a number >= 0"),
    (["--val-split", "1"], "argument --val-split: expected a number >= 0 and < 1, got '1'"),
    (["--val-split", "-0.1"], "argument --val-split: expected a number >= 0 and < 1"),
    (["--val-split", "nan"], "argument --val-split"),
    (["--val-split", "a tenth"], "argument --val-split: expected a number >= 0 and < 1, got 'a tenth'"),
    (["--early-stopping", "2", "--val-split", "0"], "--early-stopping needs a validation split; --val-split 0"),
    (["--early-stopping", "two"], "argument --early-stopping"),
    (["--min-delta", "x", "--early-stopping", "2"], "argument --min-delta: expected a number >= 0, got 'x'"),
    (["--schedule", "none:3"], "schedule 'none:3': unknown kind 'none'"),
    (["--schedule", "step:2:0"], "schedule 'step:2:0': StepDecay: gamma must be in (0, 1]"),
    (["--schedule", "warmup:3,cosine:2:x"], "schedule 'cosine:2:x': MIN_LR must be a number, got 'x'"),
])
def test_bad_flags_are_one_line_usage_errors(capsys, args, fragment):
    with pytest.raises(SystemExit) as info:
        cli.parse_args(args)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


@pytest.mark.parametrize("args, fragment", [
    (["--schedule", "cosine:3:0.1", "--model", "convnet"],  # Adam 1e-3: a Keras user's alpha=0.1 as MIN_LR
     "--schedule cosine:3:0.1 with learning rate 0.001: Cosine: min_lr 0.1 is above the base learning rate 0.001"),
    (["--schedule", "cosine:3:0.1", "--lr", "0.05"], "min_lr 0.1 is above the base learning rate 0.05"),
    (["--schedule", "warmup:5,"], "schedule 'warmup:5,': an empty item"),
    (["--schedule", "none,step:2"], "'none' (no schedule) stands alone"),
    (["--schedule", "step:1.5"], "argument --schedule: schedule 'step:1.5': EVERY must be an integer, got '1.5' ("),
])
def test_schedule_mistakes_are_one_line_usage_errors_before_any_data_is_read(capsys, monkeypatch, args, fragment):
    monkeypatch.setattr("xpcnn.app.run.load_dataset", lambda *a, **k: pytest.fail("read data"))
    with pytest.raises(SystemExit) as info:
        raise SystemExit(cli.main(["--dataset", "sample", "--epochs", "1", *args]))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


def test_resuming_a_cosine_that_has_ended_says_in_one_line_that_the_rate_is_zero(tmp_path, capsys):
    base = ["--dataset", "sample", "--limit", "10", "--quiet"]
    assert cli.main([*base, "--epochs", "2", "--schedule", "cosine", "--save", str(tmp_path / "c.npz")]) == 0
    capsys.readouterr()
    assert cli.main(["--resume", str(tmp_path / "c.npz"), "--epochs", "2", "--quiet",
                     "--save", str(tmp_path / "c.npz")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["note: the schedule cosine:2:0.0 gives learning rate 0 from epoch 3 on, so epochs 3..4 change "
                   "nothing; --schedule none trains at the base rate, --schedule cosine anneals over all 4 epochs"]
    assert cli.main(["--resume", str(tmp_path / "c.npz"), "--epochs", "1", "--quiet", "--schedule", "cosine",
                     "--save", str(tmp_path / "c.npz")]) == 0
    assert capsys.readouterr().err == ""


def test_an_open_cosine_saved_after_zero_epochs_anneals_over_the_resumed_run(tmp_path, capsys):
    base = ["--dataset", "sample", "--limit", "10", "--quiet"]
    assert cli.main([*base, "--epochs", "0", "--schedule", "cosine", "--save", str(tmp_path / "c.npz")]) == 0
    assert load_checkpoint(tmp_path / "c.npz").schedule.spec() == "cosine"
    assert cli.main(["--resume", str(tmp_path / "c.npz"), "--epochs", "2", "--quiet",
                     "--metrics-json", str(tmp_path / "m.json"), "--save", str(tmp_path / "c2.npz")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["schedule"] == "cosine:2:0.0" and [h["learning_rate"] for h in m["history"]] == [0.1, 0.05]
    assert capsys.readouterr().err == ""


def test_a_schedule_length_too_large_for_a_float_is_a_usage_error_not_an_internal_overflow(capsys):
    with pytest.raises(SystemExit) as info:
        raise SystemExit(cli.main(["--dataset", "sample", "--epochs", "1", "--schedule", "cosine:1" + "0" * 400]))
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "Cosine: epochs must be an integer <= 1000000000000000" in err[0]
