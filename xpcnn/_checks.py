"""Argument checks shared by every constructor: one line each, and a message naming the argument.

    kernel_size = integer("Convolutional", "kernel_size", kernel_size, minimum=1)
    rate = number("Dropout", "rate", rate, low=0.0, high=1.0, high_open=True)

A value of the wrong type is a :class:`~xpcnn.errors.ConfigTypeError` (``Dense(4.7, 3)`` is
refused, not truncated; ``True`` is not a count); a value of the right type outside its domain
is a :class:`~xpcnn.errors.ConfigError`. Both are ``ValueError``s, the first also a ``TypeError``.
Integers of any integer type (``numpy.int64`` from a shape, say) are accepted and returned as
Python ``int``; numbers are returned as Python ``float`` (hyper-parameters stay Python floats, so
a float32 model stays float32).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Iterable

from .errors import ConfigError, ConfigTypeError


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def integer(owner: str, name: str, value: Any, *, minimum: "int | None" = None,
            maximum: "int | None" = None) -> int:
    """``value`` as an ``int`` (``>= minimum`` and ``<= maximum`` when given), or an error naming ``owner.name``."""
    want = "an integer" if minimum is None else f"an integer >= {minimum}"
    if isinstance(value, bool):
        raise ConfigTypeError(f"{owner}: {name} must be {want}, got {_describe(value)}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ConfigTypeError(f"{owner}: {name} must be {want}, got {_describe(value)}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{owner}: {name} must be {want}, got {number}")
    if maximum is not None and number > maximum:
        digits = str(number)
        shown = digits if len(digits) <= 40 else f"{digits[:20]}... ({len(digits)} digits)"
        raise ConfigError(f"{owner}: {name} must be an integer <= {maximum}, got {shown}")
    return int(number)


def number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: "float | None" = None,
    high: "float | None" = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite Python ``float`` within ``[low, high]`` (``(`` / ``)`` when open)."""
    if low is not None and high is not None:
        want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        want = f"{'>' if low_open else '>='} {low:g} and finite"
    elif high is not None:
        want = f"{'<' if high_open else '<='} {high:g} and finite"
    else:
        want = "finite"
    noun = "a finite number" if want == "finite" else f"a number {want}"
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise ConfigTypeError(f"{owner}: {name} must be {noun}, got {_describe(value)}")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigTypeError(f"{owner}: {name} must be {noun}, got {_describe(value)}") from None
    too_low = low is not None and (result <= low if low_open else result < low)
    too_high = high is not None and (result >= high if high_open else result > high)
    if not math.isfinite(result) or too_low or too_high:
        raise ConfigError(f"{owner}: {name} must be {want}, got {value!r}")
    return result


def one_of(owner: str, name: str, value: Any, options: Iterable[Any]) -> Any:
    """``value`` if it is one of ``options``, else an error listing them."""
    options = tuple(options)
    try:
        if value in options:
            return value
    except TypeError:  # an unhashable or incomparable value is simply not an option
        pass
    listed = ", ".join(repr(o) for o in options)
    raise ConfigError(f"{owner}: {name} must be one of {listed}, got {value!r}")


def shape(owner: str, name: str, value: Any, *, ndim: "int | None" = None) -> "tuple[int, ...]":
    """A per-sample shape: a sequence of integers >= 1 (``ndim`` of them when given)."""
    want = f"{ndim} integers >= 1" if ndim is not None else "a sequence of integers >= 1"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigTypeError(f"{owner}: {name} must be {want}, got {_describe(value)}")
    items = tuple(value)
    if (ndim is not None and len(items) != ndim) or not items:
        raise ConfigError(f"{owner}: {name} must be {want}, got {items}")
    return tuple(integer(owner, f"{name}[{i}]", d, minimum=1) for i, d in enumerate(items))
