"""What a training run reports: progress bars, the confusion matrix, the metrics JSON, the curves.

Host-side code on plain Python values (tqdm, matplotlib), used by :mod:`xpcnn.cli`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time


def _finite(value):
    """JSON-safe: non-finite floats become ``None``; containers are walked."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(_finite(data), f, indent=2, allow_nan=False)
    os.replace(tmp, path)


def format_confusion(m: "list[list[int]]", classes: "list[int]", names: "list[str]") -> str:
    """The matrix ``m[true][predicted]`` as text: columns headed by class id, rows by class id and name."""
    width = max(5, len(str(max(max(row) for row in m))) + 1)
    rows = [f"{c} {n}" if n != str(c) else str(c) for c, n in zip(classes, names)]
    label = max(len(r) for r in rows)
    head = " " * (label + 4) + "".join(f"{c:>{width}}" for c in classes)
    body = [f"  {r:<{label}} |" + "".join(f"{v:>{width}}" for v in m[i]) for i, r in enumerate(rows)]
    return "\n".join(["confusion matrix (rows: true class, columns: predicted):", head, *body])


def check_plot_available() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'xpcnn[plot]'") from None


def plot_history(history: "list[dict]", path: str) -> None:
    """Loss and accuracy per epoch, train and test, as a PNG."""
    check_plot_available()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((ax_loss, "loss", "loss"), (ax_acc, "accuracy", "accuracy")):
        ax.plot(epochs, [h[key] for h in history], "o-", label="train")
        ax.plot(epochs, [h.get("val_" + key) for h in history], "s-", label="test")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


class EpochProgress:
    """One tqdm bar per epoch with the running loss and accuracy (converted at most 5 times a second)."""

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
            self.loss_sum, self.correct, self.seen, self.shown = 0.0, 0.0, 0, 0.0
        self.loss_sum = self.loss_sum + logs["loss"] * logs["size"]
        self.correct = self.correct + logs.get("correct", 0.0)
        self.seen += logs["size"]
        now = time.monotonic()
        if now - self.shown > 0.2 or logs["batch"] == logs["batches"]:
            self.shown = now
            postfix = {"loss": f"{float(self.loss_sum) / self.seen:.4f}"}
            if "correct" in logs:
                postfix["acc"] = f"{float(self.correct) / self.seen:.4f}"
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
