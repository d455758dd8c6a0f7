"""Checkpoints: a whole training state in one ``.npz`` that loads with ``allow_pickle=False``.

Contents (all plain arrays, so loading a checkpoint can never run code)::

    meta               0-d str array: JSON with the format version, dtype, the layers
                       (class name + ``config()``), epoch, history, shuffling RNG state,
                       the loss (its name), optimizer type/config/iterations, the
                       learning-rate schedule (its spec, :mod:`xpcnn.optim.schedules`), and the
                       caller's ``extra`` dict
    param/<i>/<name>   parameter ``name`` of layer ``i`` (host copy, the model's dtype)
    buffer/<i>/<name>  buffer ``name`` of layer ``i`` (BatchNorm's running statistics)
    optim/<key>        optimizer slot ``key`` (momentum, Adam moments)

:func:`save_checkpoint` writes through :func:`xpcnn.io.files.atomic_write` (a temporary file in
the same folder, renamed over ``path``), so an interrupted save leaves the previous checkpoint
whole. :func:`load_checkpoint` rebuilds the model on any device: a checkpoint saved on CUDA loads
on CPU and back.

Loading trusts nothing in the file: every failure, from a truncated zip to an array header that
claims 10¹² values or a layer description that would allocate them, is a
:class:`~xpcnn.errors.CheckpointError` naming the file, raised before any large allocation.
"""

from __future__ import annotations

import json
import os
import struct
import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import backend
from ..errors import CheckpointError, ConfigError, ConfigTypeError
from ..layers import registry
from ..layers.base import Layer, ParameterLayer, parameter_budget
from ..losses import LOSSES
from .. import model as _model
from ..model import Sequential
from ..optim.optimizers import SGD, Adam, Optimizer, check_optimizer
from ..optim.schedules import check_schedule, parse_schedule, saved_spec
from .files import atomic_write

FORMAT = "xpcnn-checkpoint"
VERSION = 1

#: Layer classes a checkpoint may name, nothing else is ever instantiated (see :mod:`xpcnn.layers.registry`).
LAYER_CLASSES = registry.LAYERS
OPTIMIZER_CLASSES: "dict[str, type[Optimizer]]" = {"SGD": SGD, "Adam": Adam}


def _meta(model: Sequential, extra: "dict | None") -> dict:
    layers = []
    for layer in model.layers:
        name = registry.registered_name(layer)
        if name is None:
            cls = type(layer)
            raise CheckpointError(f"save_checkpoint: layer {len(layers)} {layer!r} ({cls.__module__}."
                                  f"{cls.__qualname__}) is not registered, so a checkpoint could not rebuild it; "
                                  f"decorate its class with @xpcnn.register_layer")
        entry = {"class": name, "config": layer.config(), "params": list(layer.params)}
        if layer.buffers:
            entry["buffers"] = list(layer.buffers)
        layers.append(entry)
    optimizer = None
    try:
        check_optimizer(model.optimizer, "model.optimizer")  # set by hand, perhaps
    except ConfigTypeError as exc:
        raise CheckpointError(f"save_checkpoint: {exc}") from None
    if model.optimizer is not None:
        state = model.optimizer.state_dict()
        optimizer = {"type": state["type"], "config": state["config"], "iterations": state["iterations"],
                     "slots": sorted(state["slots"])}
    return {
        "format": FORMAT, "version": VERSION, "dtype": model.dtype, "saved_on": model.device.name,
        "layers": layers, "epoch": model.epoch, "history": model.history,
        "rng_state": backend.rng_state(model.rng), "optimizer": optimizer, "extra": extra or {},
        "loss": model.loss if isinstance(model.loss, str) else None,
        "schedule": _saved_schedule(model.schedule),
    }


def _saved_schedule(schedule) -> "str | None":
    """The schedule's spec, refused before anything is written when it would not load back."""
    if schedule is None:
        return None
    try:
        return saved_spec(check_schedule(schedule, "model.schedule"))
    except ConfigError as exc:
        raise CheckpointError(f"save_checkpoint: {exc}") from None


def save_checkpoint(path: "str | os.PathLike", model: Sequential, extra: "dict | None" = None) -> None:
    """Write ``model`` (layers, parameters, optimizer state, epoch, RNG state, dtype, loss) to ``path``.

    ``extra`` is any JSON-serialisable dict (the CLI stores its settings there).
    """
    meta = _meta(model, extra)
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        for i, layer in enumerate(model.layers):
            try:
                json.dumps(layer.config())
            except (TypeError, ValueError):
                raise CheckpointError(f"save_checkpoint: layer {i} {type(layer).__name__}: config() must return "
                                      f"JSON values (numbers, strings, lists, dicts): {exc}") from None
        raise CheckpointError(f"save_checkpoint: the metadata is not JSON ({exc}); extra= must hold JSON values") \
            from None
    arrays = {"meta": np.array(text)}
    for i, layer in enumerate(model.layers):
        for name, value in layer.params.items():
            arrays[f"param/{i}/{name}"] = backend.to_numpy(value)
        for name, value in layer.buffers.items():
            arrays[f"buffer/{i}/{name}"] = backend.to_numpy(value)
    if model.optimizer is not None:
        for key, value in model.optimizer.slots.items():
            arrays[f"optim/{key}"] = backend.to_numpy(value)
    atomic_write(path, lambda f: np.savez(f, **arrays), "checkpoint", error=CheckpointError)


#: zipfile and the .npy header reader raise all of these on damaged bytes.
_DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError, IndexError,
           TypeError, struct.error, zlib.error, NotImplementedError, RuntimeError, OverflowError, UnicodeError,
           SyntaxError, tokenize.TokenError)  # the last two: a damaged .npy header (parsed as a Python literal)
#: A deflated member may claim at most this many times its compressed size (np.savez stores).
_MAX_RATIO = 100
#: Parameter values a layer description may draw beyond those the file stores for it.
_SLACK = 1 << 20


def _read_npy(path: Path, member, name: str, size: int) -> np.ndarray:
    """One ``.npy`` member, its header checked against its size before anything is allocated."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise CheckpointError(f"{path}: {name}: unknown .npy version {version}")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = reader(member)
    if dtype.hasobject:
        raise CheckpointError(f"{path}: holds pickled Python objects; refused (a checkpoint never runs code)")
    if not all(isinstance(d, int) and d >= 0 for d in shape):
        raise CheckpointError(f"{path}: {name}: bad shape {shape}")
    count = 1
    for d in shape:
        count *= d
    expected = count * dtype.itemsize
    if expected != size - member.tell():
        raise CheckpointError(f"{path}: {name} declares {shape} of {dtype} ({expected} bytes) but holds "
                              f"{size - member.tell()} bytes")
    data = member.read(expected)
    if len(data) != expected or member.read(1):
        raise CheckpointError(f"{path}: {name}: truncated array data")
    order = "F" if fortran else "C"
    return np.frombuffer(data, dtype=dtype).reshape(shape, order=order).copy()


def _read_arrays(path: Path) -> "dict[str, np.ndarray]":
    on_disk = path.stat().st_size
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if sum(info.file_size for info in infos) > max(_MAX_RATIO * on_disk, 1 << 20):
            raise CheckpointError(f"{path}: claims {sum(i.file_size for i in infos)} bytes unpacked from "
                                  f"{on_disk} on disk; refused")
        for info in infos:
            if not info.filename.endswith(".npy"):
                raise CheckpointError(f"{path}: unexpected member {info.filename!r} (not an .npy array)")
            with archive.open(info) as member:
                arrays[info.filename[:-4]] = _read_npy(path, member, info.filename, info.file_size)
    return arrays


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
        arrays = _read_arrays(path)
    except CheckpointError:
        raise
    except _DAMAGE as exc:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({type(exc).__name__}: {exc})") from exc
    raw = arrays.pop("meta", None)
    if raw is None or raw.ndim != 0 or raw.dtype.kind != "U":
        raise CheckpointError(f"{path}: not an xpcnn checkpoint (no 'meta' string)")
    try:
        meta = json.loads(str(raw))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not an xpcnn checkpoint (format {found!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {meta.get('version')!r}, this xpcnn reads version {VERSION}")
    if not isinstance(meta.get("extra", {}), dict):
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ('extra' is not a dict)")
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


def _build_layer(path: Path, index: int, spec: dict, dtype: str, arrays: dict) -> Layer:
    """Layer ``index`` from its description, drawing no more parameter values than the file stores."""
    try:
        name, config = spec["class"], dict(spec["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: layer {index}: malformed description {spec!r}") from exc
    cls = registry.layer_class(name)
    if cls is None:
        raise CheckpointError(f"{path}: layer {index}: unknown layer class {name!r}; if it is a layer of your own, "
                              f"import the module that defines it (its class decorated with @xpcnn.register_layer) "
                              f"before loading (registered: {', '.join(sorted(LAYER_CLASSES))})")
    # what the file stores for this layer, plus slack so that a small mismatch gets its precise message
    stored = sum(v.size for k, v in arrays.items()
                 if k.startswith((f"param/{index}/", f"buffer/{index}/"))) + _SLACK
    try:
        with parameter_budget(stored):
            if issubclass(cls, ParameterLayer):
                return cls(**config, dtype=dtype, seed=0)
            return cls(**config)
    except (TypeError, ValueError, MemoryError) as exc:  # MemoryError: a layer larger than this machine's memory
        raise CheckpointError(f"{path}: layer {index}: cannot rebuild {name}({config}): {exc}") from exc


def _field(path: Path, meta: dict, key: str, kind: type, check=lambda v: True):
    value = meta.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or not check(value):
        raise CheckpointError(f"{path}: incomplete or corrupt checkpoint metadata ({key!r} is {value!r})")
    return value


def load_checkpoint(path: "str | os.PathLike", device=None) -> Sequential:
    """The model saved in ``path``, with its loss, optimizer, epoch, history and RNG state, on ``device``.

    ``device`` defaults to ``"cpu"`` whatever device the checkpoint was saved on.
    """
    path = Path(path)
    meta, arrays = _read(path)
    dtype = meta.get("dtype")
    if dtype not in ("float32", "float64"):
        raise CheckpointError(f"{path}: unsupported dtype {dtype!r}")
    specs = _field(path, meta, "layers", list)
    epoch = _field(path, meta, "epoch", int, lambda v: v >= 0)
    history = _field(path, meta, "history", dict, lambda h: all(isinstance(v, list) for v in h.values()))
    rng_state = _field(path, meta, "rng_state", dict)
    loss = meta.get("loss")
    if loss is not None and (not isinstance(loss, str) or loss not in LOSSES):
        raise CheckpointError(f"{path}: unknown loss {loss!r} (known: {sorted(LOSSES)})")
    layers = [_build_layer(path, i, spec, dtype, arrays) for i, spec in enumerate(specs)]
    for i, layer in enumerate(layers):
        for kind, held in (("param", layer.params), ("buffer", layer.buffers)):
            for name, value in held.items():
                held[name] = _array(path, arrays, f"{kind}/{i}/{name}", tuple(value.shape), dtype)
    expected = {f"{kind}/{i}/{name}" for i, layer in enumerate(layers)
                for kind, held in (("param", layer.params), ("buffer", layer.buffers)) for name in held}
    unused = sorted(k for k in arrays if k.startswith(("param/", "buffer/")) and k not in expected)
    if unused:
        raise CheckpointError(f"{path}: parameters {unused} belong to no layer of the saved architecture")
    try:
        model = Sequential(layers)
        backend.set_rng_state(model.rng, rng_state)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CheckpointError(f"{path}: cannot restore the model ({exc})") from exc
    model.epoch, model.history, model.loss = epoch, history, loss
    model.schedule = _schedule(path, meta.get("schedule"))
    if meta.get("optimizer") is not None:
        model.optimizer = _build_optimizer(path, meta["optimizer"], arrays, layers)
    return model.to(backend.get_device(device) if device is not None else backend.CPU)


def load_model(path: "str | os.PathLike", device=None) -> Sequential:
    """Keras's ``load_model``: the model :meth:`Sequential.save <xpcnn.Sequential.save>` (or
    :func:`save_checkpoint`) wrote to ``path``, as :func:`load_checkpoint` reads it."""
    return load_checkpoint(path, device)


_model.CHECKPOINT_WRITER[0] = save_checkpoint  # Sequential.save writes through this module


def _schedule(path: Path, spec):
    """The saved schedule (``None``: none; older checkpoints have no entry)."""
    if spec is None:
        return None
    try:
        return parse_schedule(spec)
    except ConfigError as exc:
        raise CheckpointError(f"{path}: bad learning-rate schedule {spec!r} ({exc})") from None


def _slot_parameter(path: Path, key: str, layers: "list[Layer]"):
    """The parameter an optimizer slot ``"<layer>.<param>.<what>"`` belongs to (same shape and dtype)."""
    parts = key.split(".")
    if len(parts) >= 3 and parts[0].isdigit() and int(parts[0]) < len(layers):
        param = layers[int(parts[0])].params.get(parts[1])
        if param is not None:
            return param
    raise CheckpointError(f"{path}: optimizer slot {key!r} belongs to no parameter")


def _build_optimizer(path: Path, spec: dict, arrays: dict, layers: "list[Layer]") -> Optimizer:
    try:
        cls = OPTIMIZER_CLASSES[spec["type"]]
        optimizer = cls(**spec["config"])
        optimizer.iterations = spec["iterations"]
        keys = [str(k) for k in spec["slots"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the optimizer {spec!r} ({exc})") from exc
    if not isinstance(optimizer.iterations, int) or isinstance(optimizer.iterations, bool) or optimizer.iterations < 0:
        raise CheckpointError(f"{path}: optimizer step count {optimizer.iterations!r} is not an integer >= 0")
    for key in keys:
        if f"optim/{key}" not in arrays:
            raise CheckpointError(f"{path}: missing optimizer slot {'optim/' + key!r}")
        param = _slot_parameter(path, key, layers)
        optimizer.slots[key] = _array(path, arrays, f"optim/{key}", tuple(param.shape), str(param.dtype))
    return optimizer
