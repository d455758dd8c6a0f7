"""The settings of one ``train.py`` run: one frozen dataclass, built once from flags, checkpoint and recipe.

Precedence, field by field: an explicit flag, then the resumed checkpoint's setting, then the
model's recipe (:data:`xpcnn.zoo.MODELS`), then the defaults below. The fields a checkpoint
keeps are marked ``saved`` here and nowhere else (:data:`SAVED`); a resumed checkpoint's values
are checked as strictly as flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Union

from .. import zoo
from ..errors import CheckpointError, ConfigError, XpcnnError
from ..losses import LOSSES
from .._checks import integer, number, one_of

DATASETS = ("mnist", "fashion-mnist", "sample", "idx")
#: Datasets that default to all classes, all samples and this zoo network with its recipe. The others (mnist, the
#: sample, and idx, whose classes are unknown until its files are read) default to the derivation's experiment.
DATASET_MODELS = {"fashion-mnist": "convnet-bn"}
OPTIMIZERS = ("sgd", "momentum", "adam")
DTYPES = ("float32", "float64")
Limit = Union[int, str]  # samples per class, or "all"


def _saved(default: Any = None) -> Any:
    """A field the checkpoint keeps (and a resumed run takes back)."""
    return field(default=default, metadata={"saved": True})


@dataclass(frozen=True)
class Settings:
    """Everything one run does; :data:`SAVED` lists what a checkpoint keeps."""

    # what is trained (kept in checkpoints)
    dataset: str = _saved("mnist")
    classes: "tuple[int, ...]" = _saved((0, 1))
    limit: Limit = _saved(100)
    seed: int = _saved(0)
    dtype: str = _saved("float32")
    model: str = _saved("seed")
    loss: str = _saved("binary_cross_entropy")
    optimizer: str = _saved("sgd")
    lr: float = _saved(0.1)
    batch_size: int = _saved(1)
    data_dir: "str | None" = _saved(None)
    #: Fraction of the training samples held out to validate on (``None``: validate on the test set).
    val_split: "float | None" = _saved(None)
    # this run only
    epochs: int = 20
    device: str = "cpu"
    #: False for the bare default run, which may fall back to the embedded sample.
    dataset_explicit: bool = False
    save: "str | None" = None
    resume: "str | None" = None
    metrics_json: "str | None" = None
    plot: "str | None" = None
    pictures: "str | None" = None
    export_onnx: "str | None" = None
    export_safetensors: "str | None" = None
    quiet: bool = False
    #: ``--schedule`` as given (``None``: the checkpoint's schedule when resuming, else none).
    schedule: "str | None" = None
    #: ``--early-stopping`` patience (``None``: off) and ``--min-delta``.
    early_stopping: "int | None" = None
    min_delta: float = 0.0
    #: ``--workers``: threads per process, each training on a share of every batch (``None``: fit's default).
    workers: "int | None" = None
    #: What the run chose for the settings not given (a dataset other than the derivation's), said in one note.
    chosen: str = ""

    @property
    def checkpoint_path(self) -> "str | None":
        """Where checkpoints go: ``--save`` only. The ``--resume`` file is an input, never written over
        unless ``--save`` names it too (as Keras and PyTorch never write into the file you loaded)."""
        return self.save

    def saved(self) -> dict:
        """The fields a checkpoint keeps, JSON-ready."""
        return {name: _jsonable(getattr(self, name)) for name in SAVED}

    def as_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


#: The settings a checkpoint keeps, in one place.
SAVED: "tuple[str, ...]" = tuple(f.name for f in dataclasses.fields(Settings) if f.metadata.get("saved"))
DEFAULTS = Settings()


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def parse_classes(values: "list[str]") -> "tuple[int, ...]":
    """``["all"]`` -> 0..9; otherwise distinct digits 0..9, at least two (a ConfigError otherwise)."""
    if values == ["all"]:
        return tuple(range(10))
    if "all" in values:
        raise ConfigError(f"--classes takes 'all' alone or digits 0..9, got {' '.join(values)!r}")
    try:
        classes = [int(v) for v in values]
    except ValueError:
        raise ConfigError(f"--classes takes digits 0..9 or 'all', got {' '.join(values)!r}") from None
    if any(not 0 <= c <= 9 for c in classes) or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError(f"--classes needs at least two distinct digits 0..9, got {' '.join(values)}")
    return tuple(classes)


def check_saved(saved: dict, path: str) -> dict:
    """A checkpoint's settings, each as strictly checked as its flag, or a CheckpointError."""
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: has no training settings (not written by train.py)")
    checks = {
        "dataset": lambda v: one_of("settings", "dataset", v, DATASETS),
        "classes": lambda v: parse_classes([str(c) for c in v]) if isinstance(v, list) else one_of(
            "settings", "classes", v, ()),
        "limit": lambda v: v if v == "all" else integer("settings", "limit", v, minimum=1),
        "seed": lambda v: integer("settings", "seed", v, minimum=0),
        "dtype": lambda v: one_of("settings", "dtype", v, DTYPES),
        "model": lambda v: one_of("settings", "model", v, sorted(zoo.MODELS)),
        "loss": lambda v: one_of("settings", "loss", v, sorted(LOSSES)),
        "optimizer": lambda v: one_of("settings", "optimizer", v, OPTIMIZERS),
        "lr": lambda v: number("settings", "lr", v, low=0.0, low_open=True),
        "batch_size": lambda v: integer("settings", "batch_size", v, minimum=1),
        "data_dir": lambda v: v if v is None or isinstance(v, str) else one_of("settings", "data_dir", v, ()),
        "val_split": lambda v: v if v is None else number("settings", "val_split", v, low=0.0, high=1.0,
                                                          low_open=True, high_open=True),
    }
    checked = {}
    for key, check in checks.items():
        if key in saved:
            try:
                checked[key] = check(saved[key])
            except XpcnnError as exc:
                raise CheckpointError(f"{path}: bad training setting {key}={saved[key]!r} ({exc})") from None
    return checked


def resolve(args: Any, saved: "dict | None") -> Settings:
    """The run's :class:`Settings` from parsed flags ``args`` and a resumed checkpoint's ``saved`` settings."""
    saved = saved or {}
    flags = {"dataset": args.dataset, "limit": args.limit, "seed": args.seed, "dtype": args.dtype,
             "model": args.model, "optimizer": args.optimizer, "lr": args.lr, "batch_size": args.batch_size,
             "data_dir": args.data_dir, "val_split": args.val_split}

    def pick(key: str, fallback: Any = None) -> Any:
        if flags[key] is not None:
            return flags[key]
        if key in saved:
            return saved[key]
        return fallback if fallback is not None else getattr(DEFAULTS, key)

    # Only the derivation's datasets default to its experiment; any other: all classes, all data, its recipe
    derivation = pick("dataset") not in DATASET_MODELS or bool(saved)
    classes = parse_classes(args.classes) if args.classes is not None else saved.get(
        "classes", DEFAULTS.classes if derivation else tuple(range(10)))
    limit = pick("limit", None if derivation else "all")
    suits = DATASET_MODELS.get(pick("dataset"), "convnet")
    model = pick("model", "seed" if derivation and len(classes) <= 2 else suits)
    chosen = "" if derivation else ", ".join(
        text for given, text in ((args.classes, "all classes"), (args.limit, "all samples"),
                                 (args.model, f"--model {model}")) if given is None)
    spec = zoo.get_spec(model)
    if saved:
        for key in ("model", "dtype", "optimizer"):
            if flags[key] is not None and flags[key] != saved.get(key):
                raise ConfigError(f"--{key} {flags[key]} does not match the checkpoint's {key} {saved.get(key)!r}")
        if args.classes is not None and classes != saved.get("classes"):
            raise ConfigError(f"--classes {' '.join(map(str, classes))} does not match the checkpoint's classes "
                              f"{' '.join(map(str, saved.get('classes', ())))}")
    return Settings(
        dataset=pick("dataset"),
        classes=tuple(classes),
        limit=limit,
        seed=pick("seed"),
        dtype=pick("dtype"),
        model=model,
        loss=saved.get("loss", spec.loss),
        optimizer=pick("optimizer", spec.recipe["optimizer"]),
        lr=pick("lr", spec.recipe["learning_rate"]),
        batch_size=pick("batch_size", spec.recipe["batch_size"]),
        data_dir=pick("data_dir"),
        val_split=_val_split(args, saved),
        epochs=args.epochs if args.epochs is not None else spec.recipe["epochs"],
        device=args.device,
        dataset_explicit=args.dataset is not None or args.data_dir is not None or "dataset" in saved,
        save=args.save,
        resume=args.resume,
        metrics_json=args.metrics_json,
        plot=args.plot,
        pictures=getattr(args, "pictures", None),
        export_onnx=getattr(args, "export_onnx", None),
        export_safetensors=getattr(args, "export_safetensors", None),
        quiet=args.quiet,
        schedule=args.schedule,
        early_stopping=args.early_stopping,
        min_delta=args.min_delta if args.min_delta is not None else 0.0,
        workers=getattr(args, "workers", None),
        chosen=f"--dataset {pick('dataset')}: {chosen} and the model's recipe (pass the flags to choose)" if chosen
        else "",
    )


#: The validation split ``--early-stopping`` takes when no ``--val-split`` is given.
DEFAULT_VAL_SPLIT = 0.1


def _val_split(args: Any, saved: dict) -> "float | None":
    """``--val-split`` (0: none), else the checkpoint's, else :data:`DEFAULT_VAL_SPLIT` with ``--early-stopping``."""
    if args.val_split is not None:
        return args.val_split or None  # 0: no split
    if "val_split" in saved:  # the resumed run trains on the same samples
        return saved["val_split"]
    return DEFAULT_VAL_SPLIT if args.early_stopping is not None else None
