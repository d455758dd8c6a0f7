"""Weights as safetensors, under PyTorch ``nn.Sequential`` state-dict names (:mod:`.names`).

``to_safetensors(model, path)`` writes every parameter (and buffer) in the model's dtype, with
the ``safetensors`` library's NumPy API (no pickle), and the header metadata::

    format "xpcnn", xpcnn_version, dtype, layers (JSON: [{"class", "config"}, ...])

``from_safetensors(model, path)`` reads such a file, or one PyTorch wrote
(``safetensors.torch.save_file(net.state_dict(), path)``), into an existing model of the same
architecture. Everything is checked before anything changes: the names (every one the model
needs, no other), the shapes, and a floating-point dtype (float16/32/64, cast to the model's
dtype, as ``load_state_dict`` casts). Each failure is one :class:`~xpcnn.errors.ExportError`
naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


from ... import backend
from ...errors import ExportError
from ..files import atomic_write, check_output_path
from .deps import require
from .names import tensor_names

#: Names PyTorch writes that xpcnn reads past: BatchNorm's step counter (xpcnn keeps none).
IGNORED_SUFFIXES = (".num_batches_tracked",)
_FLOATS = ("F16", "F32", "F64")


def _metadata(model) -> "dict[str, str]":
    from ... import __version__

    layers = [{"class": type(layer).__name__, "config": layer.config()} for layer in model.layers]
    return {"format": "xpcnn", "xpcnn_version": __version__, "dtype": model.dtype, "layers": json.dumps(layers)}


def to_safetensors(model, path: "str | os.PathLike") -> None:
    """Write ``model``'s tensors to ``path`` (checked first, written whole or not at all)."""
    numpy_api = require("safetensors.numpy", "to_safetensors")
    names = tensor_names(model)  # an unknown layer fails here, before the path is touched
    target = check_output_path(path, "to_safetensors", error=ExportError)
    tensors = {e.name: backend.host_buffer(e.array(model.layers[e.index])) for e in names}
    data = numpy_api.save(tensors, metadata=_metadata(model))
    atomic_write(target, lambda f: f.write(data), "to_safetensors", error=ExportError)


def _open(path: Path):
    safetensors = require("safetensors", "from_safetensors")
    if not path.is_file():
        raise ExportError(f"from_safetensors {path}: " + ("is a folder" if path.is_dir() else "no such file"))
    try:
        return safetensors.safe_open(str(path), framework="numpy")
    except OSError as exc:
        raise ExportError(f"from_safetensors {path}: cannot read ({exc.strerror or exc})") from None
    except Exception as exc:  # safetensors.SafetensorError derives from Exception alone
        raise ExportError(f"from_safetensors {path}: not a safetensors file ({exc})") from None


def _check_names(path: Path, found: "set[str]", needed: "set[str]") -> None:
    extra = sorted(n for n in found - needed if not n.endswith(IGNORED_SUFFIXES))
    missing = sorted(needed - found)
    if missing or extra:
        parts = [f"missing {missing}" if missing else "", f"unexpected {extra}" if extra else ""]
        raise ExportError(f"from_safetensors {path}: the tensors do not match the model's: "
                          f"{'; '.join(p for p in parts if p)}")


def from_safetensors(model, path: "str | os.PathLike"):
    """Load ``path``'s tensors into ``model`` (on its device, in its dtype); returns ``model``.

    On any error the model is left as it was.
    """
    path = Path(path)
    names = tensor_names(model)
    loaded = {}
    with _open(path) as f:
        _check_names(path, set(f.keys()), {e.name for e in names})
        for e in names:
            current = e.array(model.layers[e.index])
            view = f.get_slice(e.name)
            shape, dtype = tuple(view.get_shape()), view.get_dtype()
            if shape != tuple(current.shape):
                raise ExportError(f"from_safetensors {path}: {e.name} has shape {shape}, layer {e.index} "
                                  f"{model.layers[e.index]!r} needs {tuple(current.shape)} for its {e.key}")
            if dtype not in _FLOATS:
                raise ExportError(f"from_safetensors {path}: {e.name} has dtype {dtype}, expected one of {_FLOATS}")
            loaded[e] = f.get_tensor(e.name).astype(model.dtype)
    for e, value in loaded.items():
        getattr(model.layers[e.index], e.group)[e.key] = backend.to_device(value, model.device)
    return model
