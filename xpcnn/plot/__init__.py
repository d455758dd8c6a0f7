"""Pictures for learners: what a network learned and how it trained, with matplotlib.

Each function draws one figure and returns it (a :class:`matplotlib.figure.Figure`); with
``path=`` it writes the figure there instead (PNG, or the format the suffix names; whole or not
at all) and closes it. Arrays may live on any device: they are copied to the host with
:func:`xpcnn.to_numpy` first. Needs matplotlib: ``pip install 'xpcnn[plot]'``.

* :func:`history`: loss and accuracy per epoch, training and validation;
* :func:`kernels`: a convolution's kernels, one small image per (output, input) pair;
* :func:`feature_maps`: one image's activations after a layer, one panel per channel;
* :func:`confusion_matrix`: counts of (true class, predicted class), annotated;
* :func:`misclassified`: the samples a model gets wrong, with the true and predicted class.

Host-side presentation code: it draws with plain Python values and host arrays, and holds no
equation of the network.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from ..backend import to_numpy
from ..errors import ConfigError, MissingDependencyError, OutputError, ShapeError
from ..io.files import atomic_write
from ..train.batches import to_model

__all__ = ["PLOT_HINT", "history", "kernels", "feature_maps", "confusion_matrix", "misclassified",
           "image_format", "save"]

#: The hint every "needs matplotlib" error gives (the README gives the same two spellings).
PLOT_HINT = "pip install 'xpcnn[plot]' (from a checkout: pip install -e '.[plot]')"


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise MissingDependencyError(f"plots need matplotlib: {PLOT_HINT}") from None
    if "matplotlib.pyplot" not in sys.modules and "ipykernel" not in sys.modules and "MPLBACKEND" not in os.environ:
        matplotlib.use("Agg")  # files only, no window; a notebook (Jupyter's inline backend) keeps its own
    import matplotlib.pyplot as plt

    return plt


def image_format(path: "str | os.PathLike", what: str = "plot") -> str:
    """The image format the file name asks for: its suffix if matplotlib writes it, PNG without one.

    The file is written at exactly ``path`` (matplotlib alone would add ``.png`` to a name
    without a suffix); a suffix matplotlib cannot write is an :class:`~xpcnn.OutputError`.
    """
    _pyplot()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    known = FigureCanvasAgg.get_supported_filetypes()
    if suffix not in known:
        raise OutputError(f"{what} {os.fspath(path)}: matplotlib cannot write .{suffix} files "
                          f"(it writes {', '.join('.' + k for k in sorted(known))})")
    return suffix


def save(fig: Any, path: "str | os.PathLike", what: str = "plot", dpi: int = 100) -> None:
    """Write ``fig`` to ``path`` whole or not at all (format from the suffix, PNG without one), then close it."""
    fmt = image_format(path, what)
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=dpi), what)
    finally:
        _pyplot().close(fig)


def _done(fig: Any, path: "str | os.PathLike | None", what: str) -> Any:
    fig.tight_layout()
    if path is None:
        return fig
    save(fig, path, what)
    return None


def _epochs(history: Any) -> "tuple[list, dict]":
    """``(epochs, {key: values})`` from ``model.history`` (a dict of lists) or a metrics JSON's list of epochs."""
    if isinstance(history, dict):
        columns = {k: list(v) for k, v in history.items()}
        n = len(columns.get("loss", []))
        epochs = columns.pop("epoch", list(range(1, n + 1)))
    elif isinstance(history, (list, tuple)):
        epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
        keys = {k for h in history for k in h if k != "epoch"}
        columns = {k: [h.get(k) for h in history] for k in keys}
    else:
        raise ConfigError(f"history: expected model.history (a dict of lists) or a list of epochs, "
                          f"got {type(history).__name__}")
    if not epochs or "loss" not in columns:
        raise ConfigError("history: expected at least one finished epoch with a 'loss', got none")
    return epochs, columns


def history(history: Any, *, val_label: str = "validation", path: "str | os.PathLike | None" = None) -> Any:
    """Loss and accuracy per epoch: training (``loss``, ``accuracy``) and ``val_*`` as ``val_label``.

    ``history`` is what ``fit`` returns (``model.history``) or a metrics JSON's ``"history"`` list.
    The epoch axis has integer ticks only, one per epoch when there are few (a one-epoch run
    included).
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs, columns = _epochs(history)
    panels = [k for k in ("loss", "accuracy") if k in columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, key in zip(axes[0], panels):
        ax.plot(epochs, columns[key], "o-", label="train")
        val = columns.get("val_" + key)
        if val is not None and any(v is not None for v in val):
            ax.plot(epochs, [math.nan if v is None else v for v in val], "s-", label=val_label)
        ax.set_xlabel("epoch")
        if len(set(epochs)) <= 12:
            ax.set_xticks(sorted(set(epochs)))  # MaxNLocator(integer=True) falls back to fractions on one epoch
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key)
        ax.grid(True, alpha=0.3)
        ax.legend()
    return _done(fig, path, "history plot")


def _grid(count: int, columns: "int | None" = None) -> "tuple[int, int]":
    cols = columns or min(count, max(1, math.ceil(math.sqrt(count))))
    return math.ceil(count / cols), cols


def kernels(layer: Any, *, path: "str | os.PathLike | None" = None, cmap: str = "RdBu_r") -> Any:
    """A convolution's kernels ``(D, C, k, k)``: row ``i`` is output channel ``i``, column ``j`` input channel ``j``.

    Colours are symmetric around zero (red positive, blue negative) and shared by every panel, so
    kernels compare by colour.
    """
    params = getattr(layer, "params", None)
    if not isinstance(params, dict) or "kernels" not in params:
        raise ConfigError(f"kernels: expected a Convolutional layer (params['kernels']), got {type(layer).__name__}")
    k = to_numpy(params["kernels"])
    depth, channels = k.shape[0], k.shape[1]
    limit = float(abs(k).max()) or 1.0
    plt = _pyplot()
    fig, axes = plt.subplots(depth, channels, figsize=(1.4 * channels + 0.8, 1.4 * depth), squeeze=False)
    for i in range(depth):
        for j in range(channels):
            ax = axes[i][j]
            image = ax.imshow(k[i, j], cmap=cmap, vmin=-limit, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(f"out {i}")
            if i == 0 and channels > 1:
                ax.set_title(f"in {j}", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8)
    fig.suptitle(f"{depth}x{channels} kernels of {k.shape[2]}x{k.shape[3]}")
    if path is None:
        return fig
    save(fig, path, "kernels plot")
    return None


def feature_maps(model: Any, x: Any, *, layer: "int | None" = None, columns: "int | None" = None,
                 path: "str | os.PathLike | None" = None, cmap: str = "viridis") -> Any:
    """One image's activations after layer ``layer`` of ``model``: one panel per channel, and the image itself.

    ``x`` is one sample ``(C, H, W)`` or a batch whose first sample is drawn. ``layer`` indexes
    ``model.layers``; by default the first layer whose output has channels and a height and width
    (a convolution, or the activation after it). The layers run in inference mode
    (``training=False``), on the model's device.
    """
    if getattr(x, "ndim", None) == 3:
        x = x[None, ...]
    if getattr(x, "ndim", None) != 4:
        raise ShapeError(f"feature_maps: expected one image (C, H, W) or a batch (N, C, H, W), "
                         f"got shape {getattr(x, 'shape', type(x).__name__)}")
    layers = list(model.layers)
    if layer is not None and not -len(layers) <= layer < len(layers):
        raise ConfigError(f"feature_maps: layer must index model.layers (0..{len(layers) - 1}), got {layer}")
    out = to_model(model, x[:1, ...])
    stop = None if layer is None else layer % len(layers)
    for i, each in enumerate(layers):
        out = each.forward(out, training=False)
        if i == stop or (stop is None and out.ndim == 4):
            break
    if out.ndim != 4:
        raise ShapeError(f"feature_maps: layer {i} ({type(layers[i]).__name__}) gives shape {tuple(out.shape)}, "
                         "not images (N, C, H, W)")
    maps, image = to_numpy(out)[0], to_numpy(x[:1, ...])[0]
    rows, cols = _grid(maps.shape[0] + 1, columns)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    flat[0].imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray")
    flat[0].set_title("input", fontsize=9)
    for c in range(maps.shape[0]):
        flat[c + 1].imshow(maps[c], cmap=cmap)
        flat[c + 1].set_title(f"channel {c}", fontsize=9)
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in flat[maps.shape[0] + 1:]:
        ax.axis("off")
    fig.suptitle(f"after layer {i}: {type(layers[i]).__name__}")
    return _done(fig, path, "feature maps plot")


def _classes(y: Any) -> list:
    """Class indices as Python ints from labels ``(N,)`` or outputs / one-hot rows ``(N, K)``."""
    a = to_numpy(y)
    if a.ndim == 2:
        a = a.argmax(axis=1) if a.shape[1] > 1 else (a[:, 0] >= 0.5)
    if a.ndim != 1:
        raise ShapeError(f"expected class labels (N,) or rows (N, K), got shape {tuple(a.shape)}")
    return [int(v) for v in a.tolist()]


def confusion_matrix(y_true: Any, y_pred: Any, *, names: "list[str] | None" = None, normalize: bool = False,
                     path: "str | os.PathLike | None" = None) -> Any:
    """Counts of (true class, predicted class), annotated; rows are the true class, as in scikit-learn.

    ``y_true`` and ``y_pred`` are class labels ``(N,)`` or rows ``(N, K)`` (one-hot targets,
    ``model.predict`` outputs). ``names`` labels the classes; ``normalize=True`` shows each row
    as fractions of its true class.
    """
    true, pred = _classes(y_true), _classes(y_pred)
    if len(true) != len(pred):
        raise ShapeError(f"confusion_matrix: {len(true)} true labels but {len(pred)} predictions")
    k = max([*true, *pred, len(names) - 1 if names else 0]) + 1
    counts = [[0] * k for _ in range(k)]
    for t, p in zip(true, pred):
        counts[t][p] += 1
    shown = [[c / max(1, sum(row)) for c in row] for row in counts] if normalize else counts
    labels = names or [str(i) for i in range(k)]
    plt = _pyplot()
    size = 1.5 + 0.55 * k
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(shown, cmap="Blues")
    top = max(max(row) for row in shown) or 1
    for i in range(k):
        for j in range(k):
            text = f"{shown[i][j]:.2f}" if normalize else str(counts[i][j])
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if shown[i][j] > top / 2 else "black")
    ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right" if names else "center")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    accuracy = sum(counts[i][i] for i in range(k)) / max(1, len(true))
    ax.set_title(f"accuracy {accuracy:.2%} on {len(true)} samples")
    fig.colorbar(image, ax=ax, shrink=0.8)
    return _done(fig, path, "confusion matrix plot")


def misclassified(model: Any, x: Any, y: Any, *, count: int = 16, names: "list[str] | None" = None,
                  path: "str | os.PathLike | None" = None, predictions: Any = None) -> Any:
    """The first ``count`` samples of ``x`` the model gets wrong, each titled ``true -> predicted``.

    ``y`` is class labels ``(N,)`` or one-hot rows ``(N, K)``. With no mistake the figure says so.
    ``predictions``: ``model.predict(x)`` where the caller has it already (else it is computed).
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ConfigError(f"misclassified: count must be an integer >= 1, got {count!r}")
    true, pred = _classes(y), _classes(model.predict(x) if predictions is None else predictions)
    if len(true) != len(pred):
        raise ShapeError(f"misclassified: {len(pred)} samples but {len(true)} labels")
    wrong = [i for i, (t, p) in enumerate(zip(true, pred)) if t != p][:count]
    label = (lambda c: names[c]) if names else str
    plt = _pyplot()
    rows, cols = _grid(max(1, len(wrong)))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    images = to_numpy(x)
    for n, i in enumerate(wrong):
        image = images[i]
        flat[n].imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray")
        flat[n].set_title(f"{label(true[i])} -> {label(pred[i])}", fontsize=9, color="firebrick")
    for ax in flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if not wrong:
        flat[0].text(0.5, 0.5, "no mistakes", ha="center", va="center")
    fig.suptitle(f"{sum(t != p for t, p in zip(true, pred))} of {len(true)} misclassified (true -> predicted)")
    return _done(fig, path, "misclassified plot")
