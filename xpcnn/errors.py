"""Exceptions with messages that name the layer, what it expected and what it got.

Every error xpcnn raises on purpose derives from :class:`XpcnnError`, so a caller (the CLI
among them) can tell a user's mistake from a bug: anything else that escapes is a bug.
Each class also derives from the built-in exception it refines (``ShapeError`` is a
``ValueError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


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


def format_shape(shape: tuple, batch: bool = True) -> str:
    """``(N, 1, 28, 28)`` for a per-sample shape ``(1, 28, 28)``."""
    dims = ("N",) + tuple(shape) if batch else tuple(shape)
    return "(" + ", ".join(str(d) for d in dims) + ")"
