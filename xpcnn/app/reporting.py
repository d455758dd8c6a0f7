"""What a training run reports: progress bars, the confusion matrix, the metrics JSON, the curves.

Host-side code on plain Python values (tqdm, matplotlib), used by :mod:`xpcnn.app.cli`.
"""

from __future__ import annotations

import json
import math
import os
import sys

from ..errors import MissingDependencyError
from ..io.files import atomic_write
from ..plot import PLOT_HINT, image_format

__all__ = ["PLOT_HINT", "write_json", "format_confusion", "check_plot_available", "plot_format", "plot_history",
           "EpochProgress"]


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
