"""``xpcnn-train`` / ``scripts/train.py``: train a network on MNIST, Fashion-MNIST or the sample.

The defaults reproduce the derivation's experiment: MNIST digits 0 and 1, 100 per class, the
derivation's network, 20 epochs of per-sample gradient descent (batch 1, η = 0.1). Without
the MNIST files and without a network, that run uses the embedded real-MNIST sample and says
so in one line. Every error is one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from . import backend, zoo
from .checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from .datasets import NAMES, DataNotFoundError, IdxError, load_dataset, prepare
from .errors import ShapeError, TrainingError, XpcnnDtypeError
from .losses import get_loss
from .optimizers import get_optimizer
from .reporting import EpochProgress, check_plot_available, format_confusion, plot_history, write_json

DEFAULTS = {"dataset": "mnist", "classes": [0, 1], "limit": 100, "seed": 0, "dtype": "float32"}
EXPECTED_ERRORS = (backend.DeviceError, IdxError, CheckpointError, ShapeError, XpcnnDtypeError,
                   TrainingError, DataNotFoundError, OSError, ValueError, ImportError)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _epochs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _limit(text: str) -> "int | str":
    return "all" if text == "all" else _positive_int(text)


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parse_classes(values: "list[str]") -> "list[int]":
    """``["all"]`` -> 0..9; otherwise distinct digits 0..9, at least two."""
    if values == ["all"]:
        return list(range(10))
    try:
        classes = [int(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--classes takes digits 0..9 or 'all', got {' '.join(values)!r}") from None
    if any(not 0 <= c <= 9 for c in classes) or len(set(classes)) != len(classes) or len(classes) < 2:
        raise argparse.ArgumentTypeError(f"--classes needs at least two distinct digits 0..9, got {classes}")
    return classes


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="train.py", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (needs CuPy)")
    p.add_argument("--dataset", choices=NAMES, default=None,
                   help="default: mnist, or the embedded sample when the MNIST files cannot be found")
    p.add_argument("--classes", nargs="+", default=None, metavar="C",
                   help="digits/classes to train on, or 'all' for ten (default: 0 1)")
    p.add_argument("--limit", type=_limit, default=None, metavar="N|all",
                   help="samples per class, train and test alike (default: 100, as in the derivation)")
    p.add_argument("--model", choices=sorted(zoo.MODELS), default=None,
                   help="default: seed (the derivation's network) for 2 classes, convnet for more")
    p.add_argument("--epochs", type=_epochs, default=None, help="epochs to run (more epochs when resuming)")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="default: the model's recipe")
    p.add_argument("--lr", type=_learning_rate, default=None, help="learning rate (default: the model's recipe)")
    p.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default=None)
    p.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: float32")
    p.add_argument("--seed", type=int, default=None, help="initial weights, data selection and shuffling (default: 0)")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files (searched first)")
    p.add_argument("--save", default=None, metavar="PATH.npz",
                   help="checkpoint after every epoch (default when resuming: the --resume file)")
    p.add_argument("--resume", default=None, metavar="PATH.npz", help="continue from a checkpoint")
    p.add_argument("--metrics-json", default=None, metavar="PATH", help="write settings, history and results")
    p.add_argument("--plot", default=None, metavar="PATH.png", help="loss/accuracy curves (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    return p


# -- settings ------------------------------------------------------------------------------------

def resolve(args: argparse.Namespace, saved: "dict | None") -> dict:
    """Explicit flags, then the checkpoint's settings, then the model's recipe, then the defaults."""
    saved = saved or {}
    classes = parse_classes(args.classes) if args.classes is not None else saved.get("classes", DEFAULTS["classes"])

    def pick(key, flag):
        return flag if flag is not None else saved.get(key, DEFAULTS.get(key))

    cfg = {
        "dataset": pick("dataset", args.dataset),
        # falling back to the sample is for the bare default run only
        "dataset_explicit": args.dataset is not None or args.data_dir is not None or "dataset" in saved,
        "classes": [int(c) for c in classes],
        "limit": pick("limit", args.limit),
        "seed": pick("seed", args.seed),
        "dtype": pick("dtype", args.dtype),
        "model": pick("model", args.model) or ("seed" if len(classes) <= 2 else "convnet"),
        "device": args.device,
        "data_dir": args.data_dir if args.data_dir is not None else saved.get("data_dir"),
    }
    spec = zoo.get_spec(cfg["model"])
    recipe = spec.recipe
    cfg["loss"] = saved.get("loss", spec.loss)
    cfg["optimizer"] = pick("optimizer", args.optimizer) or recipe["optimizer"]
    cfg["lr"] = args.lr if args.lr is not None else saved.get("lr", recipe["learning_rate"])
    cfg["batch_size"] = args.batch_size or saved.get("batch_size", recipe["batch_size"])
    cfg["epochs"] = args.epochs if args.epochs is not None else recipe["epochs"]
    if saved:
        for key, flag in (("model", args.model), ("dtype", args.dtype), ("optimizer", args.optimizer)):
            if flag is not None and flag != saved.get(key):
                raise ValueError(f"--{key} {flag} does not match the checkpoint's {key} {saved.get(key)!r}")
        if args.classes is not None and cfg["classes"] != saved.get("classes"):
            raise ValueError(f"--classes {cfg['classes']} does not match the checkpoint's classes "
                             f"{saved.get('classes')}")
    return cfg


# -- output --------------------------------------------------------------------------------------

def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """``m[i, j]`` = samples of class ``i`` predicted as ``j``: ``(k, k)`` int64 counts."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (true, pred), 1)
    return m


# -- the run -------------------------------------------------------------------------------------

def _model(args: argparse.Namespace, cfg: dict, input_shape: tuple, k: int, device):
    """``(model, optimizer)``: from the checkpoint (its own optimizer: ``None``) or a fresh build."""
    if not args.resume:
        model, _ = zoo.build_model(cfg["model"], input_shape, k, seed=cfg["seed"], device=device, dtype=cfg["dtype"])
        return model, get_optimizer(cfg["optimizer"], cfg["lr"])
    model = load_checkpoint(args.resume, device)
    if tuple(model.output_shape) != (k,):
        raise ShapeError(f"{args.resume}: the model has {model.output_shape} outputs, {k} classes need ({k},)")
    if model.optimizer is None:  # saved before any training
        return model, get_optimizer(cfg["optimizer"], cfg["lr"])
    if args.lr is not None:
        model.optimizer.learning_rate = float(args.lr)
    return model, None


def _test(model, x_test: np.ndarray, y_test: np.ndarray, test_index: np.ndarray, loss_fn):
    """``(confusion matrix, test loss, seconds)`` from one pass over the test set."""
    t0 = time.perf_counter()
    out = model.predict(x_test)
    predicted = backend.to_numpy(model.xp.argmax(out, axis=1))
    targets = backend.to_device(y_test.astype(model.dtype), model.device)
    test_loss = float(loss_fn(targets, out))
    seconds = time.perf_counter() - t0
    return confusion_matrix(test_index, predicted, y_test.shape[1]), test_loss, seconds


def _load_data(cfg: dict, quiet: bool):
    try:
        return load_dataset(cfg["dataset"], data_dir=cfg["data_dir"], progress=not quiet), False
    except DataNotFoundError:
        if cfg["dataset_explicit"] or cfg["dataset"] != "mnist":
            raise
    print("note: the MNIST files were not found and could not be downloaded; training on the embedded "
          "real-MNIST sample instead (--dataset sample)", file=sys.stderr, flush=True)
    cfg["dataset"] = "sample"
    return load_dataset("sample"), True


def run(args: argparse.Namespace) -> dict:
    """Train as the flags say; returns the metrics (also written by ``--metrics-json``)."""
    started = time.perf_counter()
    device = backend.get_device(args.device)
    if args.plot:
        check_plot_available()
    saved_meta = read_metadata(args.resume) if args.resume else None
    saved = (saved_meta or {}).get("extra", {}).get("config") if saved_meta else None
    if args.resume and not saved:
        raise CheckpointError(f"{args.resume}: has no training settings (not written by train.py)")
    cfg = resolve(args, saved)
    save_path = args.save or args.resume

    data, fallback = _load_data(cfg, args.quiet)
    classes = cfg["classes"]
    limit = None if cfg["limit"] == "all" else cfg["limit"]
    x_train, y_train, _ = prepare(data.train.images, data.train.labels, classes, limit, cfg["seed"])
    x_test, y_test, test_index = prepare(data.test.images, data.test.labels, classes, limit, cfg["seed"])
    k = len(classes)

    model, optimizer = _model(args, cfg, tuple(x_train.shape[1:]), k, device)
    first_epoch, total_epochs = model.epoch, model.epoch + cfg["epochs"]
    names = [data.class_names[c] for c in classes]
    _say(args.quiet, f"xpcnn: {cfg['model']} ({model.parameter_count():,} parameters) on {data.name}, classes "
                     f"{' '.join(map(str, classes))}: {len(x_train)} train / {len(x_test)} test samples; "
                     f"{device.name}, {cfg['dtype']}, {cfg['optimizer']} lr {cfg['lr']:g}, "
                     f"batch {cfg['batch_size']}, epochs {first_epoch + 1}..{total_epochs}")
    extra = {"config": {key: cfg[key] for key in ("dataset", "classes", "limit", "seed", "dtype", "model", "loss",
                                                   "optimizer", "lr", "batch_size", "data_dir")}}
    progress = EpochProgress(args.quiet, total_epochs)

    def on_epoch(logs: dict) -> None:
        progress.close()
        _say(args.quiet, f"epoch {logs['epoch']:>3}/{total_epochs}  loss {logs['loss']:.4f}"
                         f"  acc {logs['accuracy']:.4f}  test_loss {logs['val_loss']:.4f}"
                         f"  test_acc {logs['val_accuracy']:.4f}"
                         f"  {logs['seconds']:.1f}s  {logs['samples_per_s']:.0f} samples/s")
        if save_path:
            save_checkpoint(save_path, model, extra)

    loss_fn, _ = get_loss(cfg["loss"])
    try:
        model.fit(x_train, y_train, loss=cfg["loss"], epochs=cfg["epochs"], batch_size=cfg["batch_size"],
                  optimizer=optimizer, validation_data=(x_test, y_test), on_batch=progress.on_batch,
                  on_epoch=on_epoch)
    finally:
        progress.close()
    if save_path and cfg["epochs"] == 0 and not args.resume:
        save_checkpoint(save_path, model, extra)

    matrix, test_loss, inference_s = _test(model, x_test, y_test, test_index, loss_fn)
    correct = int(np.trace(matrix))
    history = [dict(zip(model.history, values)) for values in zip(*model.history.values())]
    this_run = [h for h in history if h["epoch"] > first_epoch]
    train_seconds = sum(h["seconds"] for h in this_run)
    metrics = {
        "config": {key: cfg[key] for key in ("dataset", "classes", "limit", "model", "loss", "optimizer", "lr",
                                              "batch_size", "epochs", "dtype", "seed", "device")},
        "device": model.device.name,
        "dataset": {"name": data.name, "source": data.source, "fallback_to_sample": fallback,
                    "class_names": names, "train_samples": len(x_train), "test_samples": len(x_test)},
        "model": {"name": cfg["model"], "parameters": model.parameter_count(), "layers": repr(model)},
        "resumed_from": args.resume, "first_epoch": first_epoch + 1, "epochs_total": model.epoch,
        "history": history,
        "final": {"test_accuracy": correct / len(x_test), "test_correct": correct, "test_samples": len(x_test),
                  "test_loss": test_loss},
        "confusion_matrix": matrix.tolist(),
        "throughput": {
            "train_samples_per_s": (len(x_train) * len(this_run) / train_seconds) if train_seconds else None,
            "inference_samples_per_s": len(x_test) / inference_s if inference_s else None,
        },
        "seconds": time.perf_counter() - started,
        "checkpoint": save_path,
    }
    tp = metrics["throughput"]["train_samples_per_s"]
    print(f"test accuracy {correct / len(x_test):.4f} ({correct}/{len(x_test)}) after {model.epoch} epochs; "
          f"test loss {test_loss:.4f}; train {tp or 0:.0f} samples/s, inference "
          f"{metrics['throughput']['inference_samples_per_s']:.0f} samples/s; {metrics['seconds']:.1f}s in all",
          flush=True)
    _say(args.quiet, format_confusion(matrix.tolist(), classes, [str(n) for n in names]))
    if args.metrics_json:
        write_json(args.metrics_json, metrics)
    if args.plot:
        plot_history(history, args.plot)
    return metrics


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: "list[str] | None" = None) -> int:
    """Parse ``argv``, train, and turn every expected failure into one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        where = args.save or args.resume
        print("error: interrupted" + (f"; {where} holds the last finished epoch" if where else ""), file=sys.stderr)
        return 130
    except EXPECTED_ERRORS as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("XPCNN_DEBUG"):
            raise
        print(f"error: internal error {type(exc).__name__}: {_one_line(exc)} (XPCNN_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
