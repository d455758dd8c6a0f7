"""Run reports (xpcnn/app/reporting.py): confusion matrix, its text, the JSON file, the curves."""

import json

import pytest

from xpcnn.app.reporting import EpochProgress, format_confusion, plot_history, write_json


def test_confusion_text_names_rows_and_columns():
    text = format_confusion([[5, 1], [0, 6]], [3, 8], ["3", "8"])
    lines = text.splitlines()
    assert lines[1].split() == ["3", "8"]
    assert lines[2].split() == ["3", "|", "5", "1"] and lines[3].split() == ["8", "|", "0", "6"]
    named = format_confusion([[1, 0], [0, 1]], [0, 9], ["T-shirt/top", "Ankle boot"])
    assert "0 T-shirt/top" in named and "9 Ankle boot" in named


def test_json_is_strict_and_replaces_non_finite_numbers(tmp_path):
    path = tmp_path / "m.json"
    write_json(str(path), {"a": float("inf"), "b": [1.5, float("nan")], "c": {"d": "x"}})
    assert json.loads(path.read_text()) == {"a": None, "b": [1.5, None], "c": {"d": "x"}}
    assert not (tmp_path / "m.json.tmp").exists()


def test_quiet_progress_draws_nothing(capsys):
    progress = EpochProgress(quiet=True, total_epochs=1)
    progress.on_batch({"epoch": 1, "batch": 1, "batches": 1, "size": 2, "loss": 0.5, "correct": 1.0})
    progress.close()
    assert capsys.readouterr() == ("", "")


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    history = [{"epoch": e, "loss": 1.0 / e, "accuracy": 0.5 + e / 10, "val_loss": 1.1 / e, "val_accuracy": 0.5}
               for e in (1, 2, 3)]
    plot_history(history, str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_one_epoch_plot_has_integer_epoch_ticks(tmp_path, monkeypatch):
    """Issue 25: one epoch gave x ticks 0.945, 0.960, ... (MaxNLocator(integer=True) falls back to them)."""
    pytest.importorskip("matplotlib")
    from xpcnn import plot

    drawn = []
    real_save = plot.save

    def keep(fig, path, what="plot", dpi=100):
        fig.canvas.draw()
        drawn.extend(list(ax.get_xticks()) for ax in fig.axes)
        real_save(fig, path, what, dpi)

    monkeypatch.setattr(plot, "save", keep)
    plot_history([{"epoch": 1, "loss": 0.5, "accuracy": 0.5, "val_loss": 0.6, "val_accuracy": 0.4}],
                 str(tmp_path / "one.png"))
    assert drawn == [[1.0], [1.0]]
    assert (tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"
