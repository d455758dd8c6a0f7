"""The export extra's packages (``onnx``, ``safetensors``), imported only when an export needs them."""

from __future__ import annotations

import importlib

from ...errors import MissingDependencyError

#: How to install them, as the README says.
EXPORT_HINT = "pip install 'xpcnn[export]' (from a checkout: pip install -e '.[export]')"


def require(package: str, who: str):
    """The module ``package``, or a one-line :class:`MissingDependencyError` naming the extra."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise MissingDependencyError(f"{who} needs the {package} package: {EXPORT_HINT}") from None
