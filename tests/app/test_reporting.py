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


def test_pictures_are_written_for_a_convnet_and_a_network_without_convolutions(tmp_path):
    pytest.importorskip("matplotlib")
    import numpy as np

    import xpcnn as xc
    from xpcnn.app.reporting import PICTURES, check_pictures_folder, write_pictures
    from tests.plot.test_plot import digits, read_back, small_model

    x, y = digits(24)
    model = small_model()
    model.fit(x, y, epochs=2, batch_size=8)
    folder = check_pictures_folder(tmp_path / "new" / "pictures")  # created, with its parents
    written = write_pictures(folder, model, model.history, x, y, ["a", "b", "c"])
    assert [p.name for p in written] == list(PICTURES)
    for path in written:
        read_back(path)
    flat = xc.Sequential([xc.Reshape((1, 8, 8), (64,)), xc.Dense(64, 3), xc.Softmax()], seed=0)
    flat.fit(x, y, epochs=1, batch_size=8)
    names = [p.name for p in write_pictures(tmp_path / "new", flat, flat.history, x, y, ["a", "b", "c"])]
    assert names == ["history.png", "confusion_matrix.png", "misclassified.png"]
    assert np.isfinite(read_back(tmp_path / "new" / "confusion_matrix.png")).all()


def test_a_pictures_path_that_is_a_file_is_refused_in_one_line(tmp_path):
    pytest.importorskip("matplotlib")
    from xpcnn.app.reporting import check_pictures_folder
    from xpcnn.errors import OutputError

    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    with pytest.raises(OutputError, match=r"--pictures .*notes.txt: is a file; give a folder"):
        check_pictures_folder(taken)
    assert taken.read_text() == "mine"


def _train_py(capsys, monkeypatch, tmp_path, *args):
    from xpcnn.app import cli

    monkeypatch.setenv("XPCNN_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("XPCNN_DATA", raising=False)
    try:
        code = cli.main(["--dataset", "sample", "--limit", "10", "--batch-size", "10", *map(str, args)])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_train_py_pictures_writes_the_five_pictures_of_the_run(capsys, monkeypatch, tmp_path):
    pytest.importorskip("matplotlib")
    from tests.plot.test_plot import read_back

    from xpcnn.model import Sequential

    folder = tmp_path / "run" / "pictures"
    predicted = []  # the test set's sizes: predicted once, for the report and the pictures alike
    predict = Sequential.predict
    monkeypatch.setattr(Sequential, "predict", lambda self, x, *a, **k: predicted.append(len(x)) or predict(
        self, x, *a, **k))
    code, out, err = _train_py(capsys, monkeypatch, tmp_path, "--model", "convnet", "--classes", "all",
                               "--epochs", "1", "--pictures", folder)
    assert code == 0, err
    assert predicted.count(max(predicted)) == 1, predicted
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["history.png", "kernels.png", "feature_maps.png", "confusion_matrix.png", "misclassified.png"])
    for path in folder.iterdir():
        read_back(path)
    assert f"in {folder}" in out


def test_train_py_pictures_refuses_a_file_and_never_writes_over_the_resumed_checkpoint(capsys, monkeypatch,
                                                                                       tmp_path):
    pytest.importorskip("matplotlib")
    taken = tmp_path / "notes"
    taken.write_text("mine")
    code, _, err = _train_py(capsys, monkeypatch, tmp_path, "--epochs", "1", "--quiet", "--pictures", taken)
    assert code != 0 and len(err) == 1 and "is a file; give a folder" in err[0], err
    assert taken.read_text() == "mine"
    saved = tmp_path / "history.png"
    assert _train_py(capsys, monkeypatch, tmp_path, "--epochs", "1", "--quiet", "--save", saved)[0] == 0
    before = (tmp_path / "history.png").read_bytes()
    code, _, err = _train_py(capsys, monkeypatch, tmp_path, "--epochs", "1", "--quiet",
                             "--resume", tmp_path / "history.png", "--pictures", tmp_path)
    assert code != 0 and len(err) == 1 and "would write history.png over --resume" in err[0], err
    assert (tmp_path / "history.png").read_bytes() == before
