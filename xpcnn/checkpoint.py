"""Checkpoints: a whole training state in one ``.npz`` that loads with ``allow_pickle=False``.

Contents (all plain arrays, so loading a checkpoint can never run code)::

    meta               0-d str array: JSON with the format version, dtype, the layers
                       (class name + ``config()``), epoch, history, shuffling RNG state,
                       optimizer type/config/iterations, and the caller's ``extra`` dict
    param/<i>/<name>   parameter ``name`` of layer ``i`` (host copy, the model's dtype)
    optim/<key>        optimizer slot ``key`` (momentum, Adam moments)

:func:`save_checkpoint` writes a temporary file in the same folder and renames it over
``path``, so an interrupted save leaves the previous checkpoint whole. :func:`load_checkpoint`
rebuilds the model on any device: a checkpoint saved on CUDA loads on CPU and back.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import backend
from .errors import CheckpointError
from .layers import Convolutional, Dense, Flatten, MaxPool2D, ReLU, Reshape, Sigmoid, Softmax, Tanh
from .layers.base import Layer, ParameterLayer
from .model import Sequential
from .optimizers import SGD, Adam, Optimizer

FORMAT = "xpcnn-checkpoint"
VERSION = 1

#: Layer classes a checkpoint may name (nothing else is ever instantiated).
LAYER_CLASSES: "dict[str, type[Layer]]" = {
    cls.__name__: cls for cls in (Convolutional, Dense, MaxPool2D, Reshape, Flatten, Sigmoid, Tanh, ReLU, Softmax)
}
OPTIMIZER_CLASSES: "dict[str, type[Optimizer]]" = {"SGD": SGD, "Adam": Adam}


def _meta(model: Sequential, extra: "dict | None") -> dict:
    layers = []
    for layer in model.layers:
        name = type(layer).__name__
        if name not in LAYER_CLASSES:
            raise CheckpointError(f"save_checkpoint: layer {layer!r} is not one a checkpoint can rebuild "
                                  f"({sorted(LAYER_CLASSES)})")
        layers.append({"class": name, "config": layer.config(), "params": list(layer.params)})
    optimizer = None
    if model.optimizer is not None:
        state = model.optimizer.state_dict()
        optimizer = {"type": state["type"], "config": state["config"], "iterations": state["iterations"],
                     "slots": sorted(state["slots"])}
    return {
        "format": FORMAT, "version": VERSION, "dtype": model.dtype, "saved_on": model.device.name,
        "layers": layers, "epoch": model.epoch, "history": model.history,
        "rng_state": backend.rng_state(model.rng), "optimizer": optimizer, "extra": extra or {},
    }


def save_checkpoint(path: "str | os.PathLike", model: Sequential, extra: "dict | None" = None) -> None:
    """Write ``model`` (layers, parameters, optimizer state, epoch, RNG state, dtype) to ``path``.

    ``extra`` is any JSON-serialisable dict (the CLI stores its settings there).
    """
    path = Path(path)
    meta = _meta(model, extra)
    arrays = {"meta": np.array(json.dumps(meta))}
    for i, layer in enumerate(model.layers):
        for name, value in layer.params.items():
            arrays[f"param/{i}/{name}"] = backend.to_numpy(value)
    if model.optimizer is not None:
        for key, value in model.optimizer.slots.items():
            arrays[f"optim/{key}"] = backend.to_numpy(value)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot write the checkpoint ({exc.strerror or exc})") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path: Path) -> "tuple[dict, dict[str, np.ndarray]]":
    """``(meta, arrays)`` of a checkpoint file, every failure a :class:`CheckpointError`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({exc.strerror or exc})") from exc
    if head[:2] != b"PK":
        raise CheckpointError(f"{path}: not an .npz checkpoint (no zip header)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise CheckpointError(f"{path}: holds pickled Python objects; refused "
                                  f"(a checkpoint never runs code)") from exc
        raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {exc})") from exc
    raw = arrays.pop("meta", None)
    if raw is None or raw.ndim != 0 or raw.dtype.kind != "U":
        raise CheckpointError(f"{path}: not an xpcnn checkpoint (no 'meta' string)")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not an xpcnn checkpoint (format {found!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')!r}, this xpcnn reads version {VERSION}")
    return meta, arrays


def read_metadata(path: "str | os.PathLike") -> dict:
    """The checkpoint's metadata (layers, epoch, history, optimizer, ``extra``) without building the model."""
    return _read(Path(path))[0]


def _array(path: Path, arrays: dict, key: str, shape: tuple, dtype: str) -> np.ndarray:
    if key not in arrays:
        raise CheckpointError(f"{path}: missing array {key!r}")
    value = arrays[key]
    if tuple(value.shape) != tuple(shape):
        raise CheckpointError(f"{path}: {key!r} has shape {tuple(value.shape)}, the model needs {tuple(shape)}")
    if value.dtype != np.dtype(dtype):
        raise CheckpointError(f"{path}: {key!r} has dtype {value.dtype}, the checkpoint says {dtype}")
    return value


def _build_layer(path: Path, index: int, spec: dict, dtype: str) -> Layer:
    try:
        name, config = spec["class"], dict(spec["config"])
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: layer {index}: malformed description {spec!r}") from exc
    cls = LAYER_CLASSES.get(name)
    if cls is None:
        raise CheckpointError(f"{path}: layer {index}: unknown layer class {name!r} (known: {sorted(LAYER_CLASSES)})")
    try:
        if issubclass(cls, ParameterLayer):
            return cls(**config, dtype=dtype, seed=0)
        return cls(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: layer {index}: cannot rebuild {name}({config}): {exc}") from exc


def load_checkpoint(path: "str | os.PathLike", device=None) -> Sequential:
    """The model saved in ``path``, with its optimizer, epoch, history and RNG state, on ``device``.

    ``device`` defaults to ``"cpu"`` whatever device the checkpoint was saved on.
    """
    path = Path(path)
    meta, arrays = _read(path)
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise CheckpointError(f"{path}: unsupported dtype {dtype!r}")
    try:
        specs = list(meta["layers"])
        epoch, history, rng_state = int(meta["epoch"]), dict(meta["history"]), meta["rng_state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete checkpoint metadata ({exc})") from exc
    layers = [_build_layer(path, i, spec, dtype) for i, spec in enumerate(specs)]
    for i, layer in enumerate(layers):
        for name, value in layer.params.items():
            layer.params[name] = _array(path, arrays, f"param/{i}/{name}", tuple(value.shape), dtype)
    expected = {f"param/{i}/{name}" for i, layer in enumerate(layers) for name in layer.params}
    unused = sorted(k for k in arrays if k.startswith("param/") and k not in expected)
    if unused:
        raise CheckpointError(f"{path}: parameters {unused} belong to no layer of the saved architecture")
    try:
        model = Sequential(layers)
        backend.set_rng_state(model.rng, rng_state)
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path}: cannot restore the model ({exc})") from exc
    model.epoch, model.history = epoch, history
    if meta.get("optimizer") is not None:
        model.optimizer = _build_optimizer(path, meta["optimizer"], arrays)
    return model.to(backend.get_device(device) if device is not None else backend.CPU)


def _build_optimizer(path: Path, spec: dict, arrays: dict) -> Optimizer:
    try:
        cls = OPTIMIZER_CLASSES[spec["type"]]
        optimizer = cls(**spec["config"])
        optimizer.iterations = int(spec["iterations"])
        keys = list(spec["slots"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the optimizer {spec!r} ({exc})") from exc
    for key in keys:
        if f"optim/{key}" not in arrays:
            raise CheckpointError(f"{path}: missing optimizer slot {'optim/' + key!r}")
        optimizer.slots[key] = arrays[f"optim/{key}"]
    return optimizer
