"""Issue 25 ("a user's first hour"), end to end through scripts/train.py: what stands at an output path."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "train.py"
QUICK = ("--dataset", "sample", "--epochs", "1", "--batch-size", "8", "--quiet")


@pytest.fixture
def offline_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("XPCNN_DATA", "XPCNN_DEBUG")}
    env.update(XPCNN_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    return env


def train(env, *args, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def test_metrics_json_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path, offline_env):
    target, link = tmp_path / "runs" / "metrics.json", tmp_path / "latest.json"
    target.parent.mkdir()
    target.write_text("old")
    link.symlink_to(target)
    result = train(offline_env, *QUICK, "--metrics-json", link)
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text())["config"]["dataset"] == "sample"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]  # no temporary left


def test_metrics_json_to_dev_stdout_lands_on_standard_output(offline_env):
    result = train(offline_env, *QUICK, "--metrics-json", "/dev/stdout")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert json.loads(text[text.index("{"):])["config"]["dataset"] == "sample"


def test_metrics_json_to_a_full_device_is_one_line_and_the_device_stays(tmp_path, offline_env):
    """The issue's ``--metrics-json /dev/full`` as root, on a private node (major 1, minor 7): code that renamed
    over it would replace this node, not the machine's /dev/full."""
    full = tmp_path / "full"
    try:
        os.mknod(full, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, AttributeError):
        pytest.skip("mknod needs root (CI runs as root)")
    before = full.stat()
    result = train(offline_env, *QUICK, "--metrics-json", full)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: --metrics-json {full}: cannot write (No space left on device)"
    after = full.stat()
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


# -- item 8: only mnist and the sample default to the derivation's experiment --------------------------

def _resolved(*flags):
    from xpcnn.app import cli
    from xpcnn.app.settings import resolve
    return resolve(cli.parse_args(list(flags)), None)


def test_fashion_mnist_defaults_to_all_classes_all_data_and_convnet_bn_and_says_so():
    s = _resolved("--dataset", "fashion-mnist")
    assert (s.classes, s.limit, s.model, s.batch_size, s.optimizer) == (tuple(range(10)), "all", "convnet-bn", 64,
                                                                        "adam")
    assert s.chosen == ("--dataset fashion-mnist: all classes, all samples, --model convnet-bn and the model's "
                        "recipe (pass the flags to choose)")


def test_given_flags_stay_and_only_the_rest_is_chosen():
    s = _resolved("--dataset", "fashion-mnist", "--limit", "50", "--classes", "3", "8")
    assert (s.classes, s.limit, s.model) == ((3, 8), 50, "convnet-bn")
    assert s.chosen == "--dataset fashion-mnist: --model convnet-bn and the model's recipe (pass the flags to choose)"


@pytest.mark.parametrize("flags", [(), ("--dataset", "mnist"), ("--dataset", "sample"),
                                   ("--dataset", "idx", "--data-dir", "somewhere")])
def test_mnist_and_the_sample_keep_the_derivations_experiment_silently(flags):
    s = _resolved(*flags)
    assert (s.classes, s.limit, s.model, s.batch_size, s.chosen) == ((0, 1), 100, "seed", 1, "")


def test_the_run_prints_what_it_chose_in_one_note(tmp_path, offline_env):
    result = train(offline_env, "--dataset", "fashion-mnist", "--data-dir", tmp_path / "none", "--epochs", "1",
                   "--quiet")
    assert result.stderr.splitlines()[0] == ("note: --dataset fashion-mnist: all classes, all samples, --model "
                                             "convnet-bn and the model's recipe (pass the flags to choose)")
