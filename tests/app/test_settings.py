"""A run's settings (xpcnn/app/settings.py): one frozen dataclass, its precedence, what a checkpoint keeps."""

import dataclasses

import pytest

from xpcnn.app import cli
from xpcnn.errors import CheckpointError, ConfigError
from xpcnn.app.settings import DEFAULTS, SAVED, Settings, check_saved, resolve


def args(*argv):
    return cli.build_parser().parse_args(list(argv))


def test_settings_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULTS.lr = 1.0


def test_the_saved_settings_are_listed_once_and_are_what_a_checkpoint_keeps():
    assert SAVED == ("dataset", "classes", "limit", "seed", "dtype", "model", "loss", "optimizer", "lr",
                     "batch_size", "data_dir", "val_split")
    settings = resolve(args("--classes", "3", "8", "--lr", "0.5"), None)
    assert set(settings.saved()) == set(SAVED) and settings.saved()["classes"] == [3, 8]


def test_flags_beat_the_checkpoint_which_beats_the_recipe():
    saved = check_saved({"dataset": "sample", "classes": [0, 1, 2], "limit": 30, "seed": 4, "dtype": "float32",
                         "model": "convnet", "loss": "categorical_cross_entropy", "optimizer": "adam", "lr": 0.01,
                         "batch_size": 8, "data_dir": None}, "m.npz")
    settings = resolve(args("--resume", "m.npz", "--lr", "0.002"), saved)
    assert (settings.lr, settings.batch_size, settings.classes, settings.seed) == (0.002, 8, (0, 1, 2), 4)
    assert settings.epochs == 10  # the recipe: epochs are never saved
    fresh = resolve(args("--classes", "all"), None)
    assert (fresh.model, fresh.optimizer, fresh.lr, fresh.batch_size) == ("convnet", "adam", 1e-3, 64)
    assert resolve(args(), None) == dataclasses.replace(DEFAULTS, epochs=20, dataset_explicit=False)


def test_a_flag_that_contradicts_the_checkpoint_is_refused():
    saved = check_saved({"model": "seed", "classes": [0, 1], "dtype": "float32", "optimizer": "sgd"}, "m.npz")
    with pytest.raises(ConfigError, match="--model convnet does not match the checkpoint's model 'seed'"):
        resolve(args("--model", "convnet"), saved)
    with pytest.raises(ConfigError, match="--classes 0 1 2 does not match the checkpoint's classes 0 1"):
        resolve(args("--classes", "0", "1", "2"), saved)


@pytest.mark.parametrize("saved, fragment", [
    ({"lr": -1}, "lr=-1"), ({"classes": [1, 1]}, "classes=[1, 1]"), ({"classes": "01"}, "classes='01'"),
    ({"model": "resnet"}, "model='resnet'"), ({"batch_size": 2.5}, "batch_size=2.5"), (["not a dict"], "no training"),
    ({"data_dir": 3}, "data_dir=3"), ({"limit": 0}, "limit=0"), ({"val_split": 1.5}, "val_split=1.5"),
])
def test_a_checkpoints_settings_are_checked_like_flags(saved, fragment):
    with pytest.raises(CheckpointError, match=f"m.npz: .*{fragment}".replace("[", r"\[").replace("]", r"\]")):
        check_saved(saved, "m.npz")


def test_every_field_has_a_default_so_settings_build_without_flags():
    for field in dataclasses.fields(Settings):
        assert field.default is not dataclasses.MISSING, field.name
    assert Settings().checkpoint_path is None and Settings(resume="a.npz").checkpoint_path is None


def test_the_validation_split_is_the_flag_then_the_checkpoints_then_a_tenth_with_early_stopping():
    assert resolve(args(), None).val_split is None
    assert resolve(args("--early-stopping", "3"), None).val_split == 0.1
    assert resolve(args("--early-stopping", "3", "--val-split", "0.2"), None).val_split == 0.2
    # a resumed run trains on the checkpoint's samples, split or not
    assert resolve(args("--resume", "m.npz", "--early-stopping", "3"), {"val_split": None}).val_split is None
    assert resolve(args("--resume", "m.npz"), {"val_split": 0.25}).val_split == 0.25
    assert resolve(args("--val-split", "0"), None).val_split is None  # 0 is none: validate on the test set
    assert resolve(args("--resume", "m.npz", "--val-split", "0"), {"val_split": 0.25}).val_split is None
    settings = resolve(args("--schedule", "warmup:5,cosine", "--early-stopping", "4", "--min-delta", "0.01"), None)
    assert (settings.schedule, settings.early_stopping, settings.min_delta) == ("warmup:5,cosine", 4, 0.01)
