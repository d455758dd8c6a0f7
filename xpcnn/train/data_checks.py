"""What ``fit``, ``evaluate`` and ``predict`` check before any work, and how they cut batches.

Every check fails with one line that names what was expected and what was received: the
shapes of inputs and labels against the model's, at least one sample, no NaN or infinity
(naming the first bad sample), targets that suit the loss (0/1, one-hot rows for categorical
cross-entropy), and batches large enough for every layer in training (BatchNorm needs two
values per channel), over every process of a data-parallel job.
"""

from __future__ import annotations

from typing import Any

from ..backend.namespaces import array_namespace
from ..distributed import shard
from ..errors import ConfigError, DataError, ShapeError, format_shape
from ..losses import target_problem


# -- data checks, before any training ----------------------------------------------------------

def as_batch(x: Any, who: str, what: str) -> Any:
    """``x`` if it is an array with a batch axis, else a :class:`ShapeError`."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or len(tuple(x.shape)) == 0:
        raise ShapeError(f"{who}: {what} must be an array of shape (N, ...), got {type(x).__name__}"
                         + (f" of shape {tuple(x.shape)}" if hasattr(x, "shape") else ""))
    return x


def first_non_finite(x: Any) -> "int | None":
    """Index of the first sample of ``x`` (``(N, ...)``) holding a NaN or an infinity, or ``None``."""
    xp = array_namespace(x)
    if not xp.isdtype(x.dtype, ("real floating", "complex floating")) or x.shape[0] == 0:
        return None
    good = xp.all(xp.isfinite(xp.reshape(x, (x.shape[0], -1))), axis=1)
    if bool(xp.all(good)):
        return None
    return int(xp.argmax(xp.astype(~good, xp.int8)))


def check_values(x: Any, y: Any, who: str, loss: "str | tuple | None") -> None:
    """Refuse NaN or infinity in ``x`` or ``y``, and targets that do not suit ``loss``, naming the sample."""
    for array, what in ((x, "input"), (y, "label")):
        bad = first_non_finite(array)
        if bad is not None:
            raise DataError(f"{who}: {what} of sample {bad} holds NaN or infinity; clean the data before training")
    if loss is not None:
        problem = target_problem(loss, y)
        if problem is not None:
            index, why = problem
            raise DataError(f"{who}: the label of sample {index} does not fit: {why} (one-hot rows for integer "
                            f"classes: numpy.eye(K)[labels])")


def check_count(n: int, who: str) -> None:
    if n == 0:
        raise ShapeError(f"{who}: got 0 samples; needs at least one")


def check_inputs(model: Any, x: Any, who: str, what: str = "input") -> None:
    """``x`` is a batch ``(N, *model.input_shape)`` (any ``N``, 0 included)."""
    as_batch(x, who, what)
    if model.input_shape is not None and tuple(x.shape[1:]) != tuple(model.input_shape):
        raise ShapeError(f"{who}: expected {what} of shape {format_shape(model.input_shape)} for "
                         f"{model.layers[0]!r}, got {tuple(x.shape)}")


def check_labels(model: Any, x: Any, y: Any, who: str) -> None:
    """``y`` holds one label per input, of the model's output shape."""
    as_batch(y, who, "labels")
    if y.shape[0] != x.shape[0]:
        raise ShapeError(f"{who}: {x.shape[0]} inputs but {y.shape[0]} labels")
    if model.output_shape is not None and tuple(y.shape[1:]) != tuple(model.output_shape):
        raise ShapeError(f"{who}: labels of shape {tuple(y.shape)} do not match the model's output "
                         f"{format_shape(model.output_shape)}")


def check_data(model: Any, x: Any, y: Any, who: str, loss: "str | tuple | None") -> None:
    """Shapes, at least one sample, finite values and targets that suit ``loss``: before any work."""
    check_inputs(model, x, who)
    check_labels(model, x, y, who)
    check_count(x.shape[0], who)
    check_values(x, y, who, loss)


# -- batches and classes -------------------------------------------------------------------------

def batch_bounds(n: int, batch_size: int) -> "list[tuple[int, int]]":
    """``(lo, hi)`` bounds of consecutive batches; ``hi`` never passes ``n`` (strict slicing)."""
    return [(lo, min(n, lo + batch_size)) for lo in range(0, n, batch_size)]


def smallest_batch(n: int, batch_size: int, ranks: int = 1) -> int:
    """The fewest samples a forward pass of ``fit`` gets: the short last batch, or a rank's share of a batch
    (:func:`xpcnn.distributed.shard`; a rank left without samples makes no forward pass)."""
    sizes = {min(n, batch_size)} | ({n % batch_size} if n % batch_size else set())
    shares = (hi - lo for m in sizes for lo, hi in (shard(0, m, r, ranks) for r in range(ranks)))
    return min(share for share in shares if share > 0)


def check_batch_sizes(model: Any, x: Any, batch_size: int, who: str, ranks: int = 1) -> None:
    """Every batch ``fit`` will make of ``x`` is large enough for every layer in training (BatchNorm needs two
    values per channel): a :class:`~xpcnn.errors.ConfigError` before the first step, not a failure mid-epoch."""
    n, shape = x.shape[0], tuple(x.shape[1:])
    smallest = smallest_batch(n, batch_size, ranks)
    for i, layer in enumerate(model.layers):
        need = layer.min_training_batch(shape)
        if smallest < need:
            where = f"{n} sample{'s' * (n != 1)} in batches of {batch_size}" + (
                f" over {ranks} processes" if ranks > 1 else "")
            raise ConfigError(f"{who}: {layer!r} (layer {i}) needs at least {need} samples per batch in training, "
                              f"but {where} give a batch of {smallest}; choose another batch_size")
        shape = tuple(layer.output_shape(shape))
