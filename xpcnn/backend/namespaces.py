"""``array_namespace``, looked up once per array type.

array-api-compat's :func:`array_api_compat.array_namespace` inspects its argument on every call
(about 5 µs for one NumPy array on the project's machine, docs/performance.md "Batch 1"), and a
training step at batch 1 asks about twenty times. For every library xpcnn runs on (NumPy, CuPy,
PyTorch tensors, array_api_strict, and any other with ``__array_namespace__``) one array's namespace
depends on its type alone, so :func:`array_namespace` of one array answers from a dictionary after
the first array of that type. Several arrays, and anything array-api-compat refuses, go to
array-api-compat every time: the answer, and the error, are its own.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace as _compat_namespace

_BY_TYPE: "dict[type, Any]" = {}


def array_namespace(*arrays: Any) -> Any:
    """The array-API namespace of ``arrays`` (array-api-compat's wrapped one for NumPy, CuPy and torch)."""
    if len(arrays) == 1:
        kind = type(arrays[0])
        xp = _BY_TYPE.get(kind)
        if xp is None:
            xp = _BY_TYPE[kind] = _compat_namespace(arrays[0])  # raises, and remembers nothing, for a non-array
        return xp
    return _compat_namespace(*arrays)
