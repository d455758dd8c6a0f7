"""``model.summary()``: a Keras-style table of the layers, their output shapes and parameter counts.

Each row is one layer: its index and class, the per-batch output shape ``(N, ...)`` walked from
the model's input shape with every layer's ``output_shape`` (the walk ``Sequential`` checks its
layers with, so a layer added later needs nothing special), its parameter count (trainable
``params`` plus non-trained ``buffers`` such as running statistics), and, for layers that
choose a convolution engine, the engine asked for and the one the last pass used
(``auto -> gemm``; ``auto`` alone before any pass). The footer gives the total, trainable and
non-trainable counts with their bytes in the model's dtype, and the bytes the gradients take
(one per trainable parameter), as ``1,234 (4.82 KB)`` with 1 KB = 1024 bytes, as Keras writes,
and what training holds in all: parameters, gradients and buffers.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import ShapeError, format_shape
from .._checks import shape as check_shape


def readable_bytes(n: int) -> str:
    """``512 B``, ``4.82 KB``, ``1.20 MB``, ``3.00 GB`` (powers of 1024)."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} B" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return ""  # pragma: no cover - the loop always returns


def _bytes(array: Any) -> int:
    """Bytes of ``array`` from its dtype's name (``float32`` -> 4 per value, ``bool`` -> 1), in any namespace."""
    bits = re.search(r"(\d+)$", str(array.dtype))
    return math.prod(array.shape) * (int(bits.group(1)) // 8 if bits else 1)


def _count(arrays: dict) -> "tuple[int, int]":
    return sum(math.prod(a.shape) for a in arrays.values()), sum(_bytes(a) for a in arrays.values())


def _engine(layer: Any) -> str:
    """``auto -> gemm`` (train and inference alike), ``auto -> train gemm, infer signal``, or ``''``."""
    asked = getattr(layer, "engine_name", None)
    if asked is None:
        return ""
    chosen = dict(getattr(layer, "chosen_engines", {}) or {})
    used = sorted(set(chosen.values()))
    if not used or used == [asked]:
        return str(asked)
    if len(used) == 1:
        return f"{asked} -> {used[0]}"
    return f"{asked} -> " + ", ".join(f"{mode} {name}" for mode, name in sorted(chosen.items()))


def input_shape_of(model: Any, input_shape: "tuple | None") -> tuple:
    """The per-sample input shape to walk: ``input_shape`` (which must agree with the model's), the
    model's, or that of the first batch it ran on (its first layer takes any shape)."""
    known = model.input_shape
    if input_shape is not None:
        given = check_shape("summary", "input_shape", input_shape)
        if known is not None and tuple(known) != given:
            raise ShapeError(f"summary: input_shape {given} does not match the model's input "
                             f"{format_shape(known, batch=False)}")
        return given
    if known is None:
        known = getattr(model, "first_input_shape", None)
    if known is None:
        raise ShapeError(f"summary: the first layer {model.layers[0]!r} takes any input shape; pass "
                         f"summary(input_shape=(C, H, W)) with the shape of one sample, or run the model "
                         f"on a batch first")
    return tuple(known)


def rows(model: Any, input_shape: "tuple | None" = None) -> "list[dict]":
    """One dict per layer: ``index``, ``layer`` (class name), ``output_shape``, ``params``, ``engine``."""
    shape = input_shape_of(model, input_shape)
    out = []
    for i, layer in enumerate(model.layers):
        shape = tuple(layer.output_shape(shape))
        trained = _count(layer.params)
        kept = _count(getattr(layer, "buffers", {}) or {})
        out.append({"index": i, "layer": type(layer).__name__, "output_shape": shape,
                    "params": trained[0] + kept[0], "trainable": trained, "buffers": kept,
                    "engine": _engine(layer)})
    return out


def summary_text(model: Any, input_shape: "tuple | None" = None) -> str:
    """The table :meth:`Sequential.summary` prints."""
    table = rows(model, input_shape)
    with_engine = any(r["engine"] for r in table)
    header = ["#", "Layer (type)", "Output shape", "Param #"] + (["Engine"] if with_engine else [])
    cells = [[str(r["index"]), r["layer"], format_shape(r["output_shape"]), f"{r['params']:,}"]
             + ([r["engine"]] if with_engine else []) for r in table]
    widths = [max(len(row[c]) for row in [header] + cells) for c in range(len(header))]
    right = {0, 3}  # numbers align right

    def line(row: "list[str]") -> str:
        return "  ".join(v.rjust(w) if c in right else v.ljust(w) for c, (v, w) in enumerate(zip(row, widths))).rstrip()

    trainable = sum(r["trainable"][0] for r in table), sum(r["trainable"][1] for r in table)
    buffers = sum(r["buffers"][0] for r in table), sum(r["buffers"][1] for r in table)
    rule = "─" * max(len(line(header)), 40)

    def amount(label: str, count: int, size: int) -> str:
        return f"{label}: {count:,} ({readable_bytes(size)})"

    def memory(size: int) -> str:
        return f"Parameters + gradients + buffers: {readable_bytes(size)} ({size:,} bytes)"

    lines = [f"Model: Sequential ({model.dtype}, {model.device.name})", rule, line(header), rule]
    lines += [line(row) for row in cells]
    lines += [rule,
              amount("Total params", trainable[0] + buffers[0], trainable[1] + buffers[1]),
              amount("Trainable params", *trainable),
              amount("Non-trainable params", *buffers),
              amount("Gradients", *trainable),
              memory(2 * trainable[1] + buffers[1]),
              rule]
    return "\n".join(lines)
