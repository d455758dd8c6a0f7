"""Exceptions with messages that name the layer, what it expected and what it got.

Every error xpcnn raises on purpose derives from :class:`XpcnnError`, so a caller (the CLI
among them) can tell a user's mistake from a bug: anything else that escapes is a bug.
Each class also derives from the built-in exception it refines (``ShapeError`` is a
``ValueError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import math
import os


class XpcnnError(Exception):
    """Base class of every error xpcnn raises on purpose."""


class ConfigError(XpcnnError, ValueError):
    """An argument is out of its domain (a kernel size of 0, an unknown engine, a bad option)."""


class ConfigTypeError(ConfigError, TypeError):
    """An argument has the wrong type (a float where a count is expected, a number for a device)."""


class ShapeError(XpcnnError, ValueError):
    """An array's shape does not fit the layer, loss or model it was given to."""


class XpcnnDtypeError(XpcnnError, TypeError):
    """An array's dtype does not match the model's (a float32 model never computes in float64)."""


class DeviceError(XpcnnError, RuntimeError):
    """A device was asked for that this machine cannot provide, or arrays live on different devices."""


class DeviceMismatchError(DeviceError, ValueError):
    """Arrays given together live on different devices, or come from different array libraries."""


class DataError(XpcnnError, ValueError):
    """A data set cannot be found, read or verified, or its contents are not what they claim."""


class OutputError(XpcnnError, OSError):
    """An output path cannot be written: its folder is missing or read-only, it names a folder, or
    the file is read-only. Raised before any work that would be lost."""


class MissingDependencyError(XpcnnError, ImportError):
    """An optional package a feature needs is not installed (matplotlib for plots)."""


class CheckpointError(XpcnnError, ValueError):
    """A checkpoint cannot be written, read, or does not describe a model xpcnn can rebuild."""


class ExportError(XpcnnError, ValueError):
    """A model cannot be exported (a layer with no mapping), or a weights file does not fit the model."""


class TrainingError(XpcnnError, RuntimeError):
    """Training cannot go on (a non-finite loss, say)."""


class StateError(XpcnnError, RuntimeError):
    """A call came out of order: ``backward`` without a ``forward(x, training=True)`` before it."""


class GradientCheckError(XpcnnError, AssertionError):
    """:func:`xpcnn.gradcheck` found an analytic gradient that disagrees with finite differences."""


class DistributedError(XpcnnError, RuntimeError):
    """Ranks cannot train together: no mpi4py or NCCL, settings that differ between ranks, a bad split."""


class OutOfMemoryError(XpcnnError, MemoryError):
    """Memory ran out, or would: the line says what was too large and what to lower."""


#: Bytes per value of the dtypes xpcnn builds parameters in (anything else counts 8).
_ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}


def memory_bytes() -> "int | None":
    """This machine's physical memory in bytes, or ``None`` where the system does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(count: float) -> str:
    """``3.47 EiB``, ``125 GiB``, ``512 B``: powers of 1024, three significant digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024:
            return f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} EiB"


def check_parameter_memory(who: str, shapes: "list[tuple]", dtype: str, lower: str) -> None:
    """Refuse, before anything is allocated, parameters of ``shapes`` in ``dtype`` that take more bytes than
    this machine's memory: an :class:`OutOfMemoryError` naming the size and ``lower`` (which of its sizes to lower).

    The bound is generous (training also holds gradients and optimizer slots): it refuses only sizes that
    cannot be built at all, such as ``Dense(10**12, 10**6)``, instead of NumPy's ``MemoryError`` for 6.94
    EiB. A checkpoint's loader caps each layer tighter still (``parameter_budget``)."""
    values = sum(math.prod(int(d) for d in s) for s in shapes)
    need, have = values * _ITEMSIZE.get(str(dtype), 8), memory_bytes()
    if have is not None and need > have:
        raise OutOfMemoryError(f"{who}: its parameters take {values:.3g} values, {format_bytes(need)} in {dtype}, "
                               f"more than this machine's {format_bytes(have)} of memory; lower its {lower}")


def out_of_memory(exc: BaseException, what: str, lower: str) -> OutOfMemoryError:
    """One line for a ``MemoryError`` (NumPy's, CuPy's) or a torch ``OutOfMemoryError`` met while ``what``."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = f" {what}" if what else ""
    return OutOfMemoryError(f"out of memory{where} ({detail}); lower {lower}")


def is_out_of_memory(exc: BaseException) -> bool:
    """A ``MemoryError``, or a library's out-of-memory error that is not one (torch's is a RuntimeError)."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def format_shape(shape: tuple, batch: bool = True) -> str:
    """``(N, 1, 28, 28)`` for a per-sample shape ``(1, 28, 28)``."""
    dims = ("N",) + tuple(shape) if batch else tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ")"
