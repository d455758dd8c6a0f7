"""What a training run reports: progress bars, the confusion matrix, the metrics JSON, the curves.

Host-side code on plain Python values (tqdm, matplotlib), used by :mod:`xpcnn.app.cli`.
"""

from __future__ import annotations

import json
import math
import os
import sys

from pathlib import Path

from ..errors import MissingDependencyError, OutputError
from ..io.files import atomic_write, check_output_path
from ..plot import PLOT_HINT, image_format

__all__ = ["PLOT_HINT", "write_json", "format_confusion", "check_plot_available", "plot_format", "plot_history",
           "PICTURES", "check_pictures_folder", "write_pictures", "EpochProgress"]


def _finite(value):
    """JSON-safe: non-finite floats become ``None``; containers are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: "str | os.PathLike", data: dict, what: str = "metrics") -> None:
    """Write ``data`` to ``path`` whole or not at all (:func:`xpcnn.io.files.atomic_write`)."""
    text = json.dumps(_finite(data), indent=2, allow_nan=False)
    atomic_write(path, lambda f: f.write(text), what, binary=False)


def format_confusion(m: "list[list[int]]", classes: "list[int]", names: "list[str]") -> str:
    """The matrix ``m[true][predicted]`` as text: columns headed by class id, rows by class id and name."""
    width = max(5, len(str(max(max(row) for row in m))) + 1)
    rows = [f"{c} {n}" if n != str(c) else str(c) for c, n in zip(classes, names)]
    label = max(len(r) for r in rows)
    head = " " * (label + 4) + "".join(f"{c:>{width}}" for c in classes)
    body = [f"  {r:<{label}} |" + "".join(f"{v:>{width}}" for v in m[i]) for i, r in enumerate(rows)]
    return "\n".join(["confusion matrix (rows: true class, columns: predicted):", head, *body])


def check_plot_available() -> None:
    """A :class:`~xpcnn.MissingDependencyError` with :data:`PLOT_HINT` where matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingDependencyError(f"plots need matplotlib: {PLOT_HINT}") from None


def plot_format(path: "str | os.PathLike", what: str = "plot") -> str:
    """The image format the file name asks for (:func:`xpcnn.plot.image_format`)."""
    check_plot_available()
    return image_format(path, what)


def plot_history(history: "list[dict]", path: "str | os.PathLike", what: str = "plot",
                 val_label: str = "test") -> None:
    """Loss and accuracy per epoch, train and ``val_*`` (labelled ``val_label``), written to ``path``
    (:func:`xpcnn.plot.history`: PNG unless the suffix says otherwise, integer epoch ticks)."""
    check_plot_available()
    from .. import plot

    plot.save(plot.history(history, val_label=val_label), path, what)


#: The files ``--pictures DIR`` writes (:mod:`xpcnn.plot`); the conv ones only for a model with a convolution.
PICTURES = ("history.png", "kernels.png", "feature_maps.png", "confusion_matrix.png", "misclassified.png")


def check_pictures_folder(folder: "str | os.PathLike", what: str = "--pictures") -> Path:
    """``folder`` (created, with its parents, if missing) where every file of :data:`PICTURES` can be written."""
    check_plot_available()
    folder = Path(os.fspath(folder))
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder}: is a file; give a folder for the pictures")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    for name in PICTURES:
        check_output_path(folder / name, what)
    return folder


def write_pictures(folder: "str | os.PathLike", model, history: "list[dict]", x_test, y_test,
                   names: "list[str]", val_label: str = "test", what: str = "--pictures",
                   outputs=None) -> "list[Path]":
    """The learner's pictures of a finished run, each written whole or not at all; returns the files written.

    ``history.png`` (curves), ``kernels.png`` (the first convolution's kernels) and
    ``feature_maps.png`` (the first test image after it), ``confusion_matrix.png`` and
    ``misclassified.png`` on ``(x_test, y_test)`` (one-hot or class rows; ``names`` label the classes).
    ``outputs``: the model's outputs on ``x_test``, where the caller has them (else predicted here, once).
    """
    from .. import plot

    folder, written = Path(os.fspath(folder)), []

    def put(name: str, figure) -> None:
        plot.save(figure, folder / name, what)
        written.append(folder / name)

    put("history.png", plot.history(history, val_label=val_label))
    conv = next((layer for layer in model.layers if "kernels" in getattr(layer, "params", {})), None)
    if conv is not None:
        put("kernels.png", plot.kernels(conv))
        put("feature_maps.png", plot.feature_maps(model, x_test[:1]))
    if outputs is None:
        outputs = model.predict(x_test)  # once, for both pictures
    put("confusion_matrix.png", plot.confusion_matrix(y_test, outputs, names=names))
    put("misclassified.png", plot.misclassified(model, x_test, y_test, names=names, predictions=outputs))
    return written


class EpochProgress:
    """One tqdm bar per epoch with the running loss and accuracy that ``fit`` read on the host.

    It converts nothing itself: ``fit`` passes Python floats (``running_loss``,
    ``running_accuracy``) on the batches where it read them, at most 5 times a second, so the
    bar adds no GPU synchronisation.
    """

    def __init__(self, quiet: bool, total_epochs: int) -> None:
        self.quiet, self.total_epochs = quiet, total_epochs
        self.bar = None

    def on_batch(self, logs: dict) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if logs["batch"] == 1:
            self.close()
            self.bar = tqdm(total=logs["batches"], desc=f"epoch {logs['epoch']}/{self.total_epochs}",
                            unit="batch", leave=False, file=sys.stderr, dynamic_ncols=True,
                            disable=None)  # None: no bar when stderr is not a terminal
        if "running_loss" in logs:
            self.bar.set_postfix({"loss": f"{logs['running_loss']:.4f}", "acc": f"{logs['running_accuracy']:.4f}"},
                                 refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
