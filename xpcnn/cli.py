"""``xpcnn-train`` / ``scripts/train.py``: train a network on MNIST, Fashion-MNIST, the sample or your IDX files.

The defaults reproduce the derivation's experiment: MNIST digits 0 and 1, 100 per class, the
derivation's network, 20 epochs of per-sample gradient descent (batch 1, η = 0.1). Without
the MNIST files and without a network, that run uses the embedded real-MNIST sample and says
so in one line.

Errors are one line on stderr: exit status 2 for a usage error (a bad flag or flag value), 1
for any other expected failure (an :class:`~xpcnn.errors.XpcnnError`: missing data, a bad
checkpoint, an unwritable output path, a diverging run, ...). Anything else is a bug: it is
reported as an internal error with the hint to rerun with ``XPCNN_DEBUG=1``, which shows the
traceback of any error. Every output path is checked before training starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

from . import backend, zoo
from .checkpoint import load_checkpoint, read_metadata, save_checkpoint
from .datasets import DataNotFoundError, class_counts, load_dataset, prepare
from .errors import ConfigError, ShapeError, XpcnnError
from .losses import get_loss
from .model import output_classes
from .optimizers import get_optimizer
from .outputs import check_output_path
from .reporting import EpochProgress, format_confusion, plot_format, plot_history, write_json
from .settings import DATASETS, DEFAULTS, DTYPES, OPTIMIZERS, Settings, check_saved, parse_classes, resolve


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see --help)\n")


def _integer(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _limit(text: str) -> "int | str":
    if text == "all":
        return "all"
    try:
        return _integer(1)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None


def _learning_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = _Parser(prog="train.py",
                description="Train an xpcnn network on MNIST, Fashion-MNIST, the embedded sample or your own IDX files.",
                epilog="Errors are one line on stderr: exit status 2 for a bad flag, 1 for anything else, 130 after "
                       "Ctrl-C. XPCNN_DEBUG=1 shows the traceback.")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (needs CuPy; default: cpu)")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help=f"default: {d.dataset}, or the embedded sample when the MNIST files cannot be found; "
                        f"idx: your own IDX files in --data-dir (the four MNIST file names, not checksummed)")
    p.add_argument("--classes", nargs="+", default=None, metavar="C",
                   help=f"digits/classes to train on, or 'all' for ten (default: {' '.join(map(str, d.classes))})")
    p.add_argument("--limit", type=_limit, default=None, metavar="N|all",
                   help=f"samples per class, train and test alike (default: {d.limit}, as in the derivation)")
    p.add_argument("--model", choices=sorted(zoo.MODELS), default=None,
                   help="default: seed (the derivation's network) for 2 classes, convnet for more")
    p.add_argument("--epochs", type=_integer(0), default=None,
                   help="epochs to run, more epochs when resuming (default: the model's recipe)")
    p.add_argument("--batch-size", type=_integer(1), default=None, help="default: the model's recipe")
    p.add_argument("--lr", type=_learning_rate, default=None, help="learning rate (default: the model's recipe)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default: the model's recipe")
    p.add_argument("--dtype", choices=DTYPES, default=None, help=f"default: {d.dtype}")
    p.add_argument("--seed", type=_integer(0), default=None,
                   help=f"initial weights, data selection and shuffling (default: {d.seed})")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the IDX files: searched first (and the only place for --dataset idx)")
    p.add_argument("--save", default=None, metavar="PATH.npz",
                   help="checkpoint after every epoch (default when resuming: the --resume file, written over)")
    p.add_argument("--resume", default=None, metavar="PATH.npz", help="continue from a checkpoint")
    p.add_argument("--metrics-json", default=None, metavar="PATH", help="write settings, history and results")
    p.add_argument("--plot", default=None, metavar="PATH.png",
                   help="loss/accuracy curves, PNG (or the format of the suffix; needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    return p


def parse_args(argv: "list[str] | None" = None) -> argparse.Namespace:
    """Flags, with the checks that need several of them; every failure is a usage error (exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.classes is not None:
        try:
            parse_classes(args.classes)
        except ConfigError as exc:
            parser.error(str(exc))
    if args.dataset == "idx" and args.data_dir is None:
        parser.error("--dataset idx needs --data-dir DIR, the folder holding your four IDX files")
    outputs = [(flag, path) for flag, path in (("--save", args.save), ("--metrics-json", args.metrics_json),
                                               ("--plot", args.plot)) if path]
    for i, (flag, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1:]:
            if os.path.abspath(path) == os.path.abspath(other_path):
                parser.error(f"{flag} and {other} name the same file {path}")
    return args


# -- output --------------------------------------------------------------------------------------

def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """``m[i, j]`` = samples of class ``i`` predicted as ``j``: ``(k, k)`` int64 counts."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (true, pred), 1)
    return m


def check_outputs(settings: Settings) -> None:
    """Every path the run will write, checked before any data is loaded or any epoch runs."""
    if settings.save:
        check_output_path(settings.save, "--save")
    elif settings.resume:
        check_output_path(settings.resume, "--resume (written back after every epoch: no --save)")
    if settings.metrics_json:
        check_output_path(settings.metrics_json, "--metrics-json")
    if settings.plot:
        plot_format(settings.plot, "--plot")
        check_output_path(settings.plot, "--plot")


# -- the run -------------------------------------------------------------------------------------

class Run:
    """One training run; remembers what its checkpoint file holds, for an honest Ctrl-C message."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.settings: "Settings | None" = None
        self.saved_epoch: "int | None" = None  # the epoch the checkpoint file holds, when known

    def interrupted(self) -> str:
        """What is true about the checkpoint after Ctrl-C."""
        path = self.settings.checkpoint_path if self.settings else (self.args.save or self.args.resume)
        if not path:
            return "interrupted (nothing is saved without --save)"
        if self.saved_epoch is None:
            return f"interrupted before the first epoch finished; {path} was not written"
        return f"interrupted; {path} holds epoch {self.saved_epoch}, the last finished one"

    def _save(self, model, settings: Settings) -> None:
        save_checkpoint(settings.checkpoint_path, model, {"config": settings.saved()})
        self.saved_epoch = model.epoch

    def _resolve(self) -> Settings:
        args = self.args
        saved = None
        if args.resume:
            extra = read_metadata(args.resume).get("extra", {})
            saved = check_saved(extra.get("config"), args.resume)
        return resolve(args, saved)

    def _load_data(self, settings: Settings):
        """``(data, settings, fell back)``: the bare default run falls back to the sample, and says so."""
        try:
            data = load_dataset(settings.dataset, data_dir=settings.data_dir, progress=not settings.quiet)
            return data, settings, False
        except DataNotFoundError:
            if settings.dataset_explicit or settings.dataset != "mnist":
                raise
        _note("the MNIST files were not found and could not be downloaded; training on the embedded "
              "real-MNIST sample instead (--dataset sample)")
        return load_dataset("sample"), dataclasses.replace(settings, dataset="sample"), True

    def _model(self, settings: Settings, input_shape: tuple, k: int, device):
        """``(model, optimizer)``: from the checkpoint (its own optimizer: ``None``) or a fresh build."""
        if not settings.resume:
            model, _ = zoo.build_model(settings.model, input_shape, k, seed=settings.seed, device=device,
                                       dtype=settings.dtype)
            return model, get_optimizer(settings.optimizer, settings.lr)
        model = load_checkpoint(settings.resume, device)
        self.saved_epoch = model.epoch if not settings.save else None
        if tuple(model.output_shape) != (k,):
            raise ShapeError(f"{settings.resume}: the model has {model.output_shape} outputs, {k} classes need ({k},)")
        if model.optimizer is None:  # saved before any training
            return model, get_optimizer(settings.optimizer, settings.lr)
        if self.args.lr is not None:
            model.optimizer.learning_rate = float(self.args.lr)
        return model, None

    def execute(self) -> dict:
        """Train as the flags say; returns the metrics (also written by ``--metrics-json``)."""
        started = time.perf_counter()
        device = backend.get_device(self.args.device)
        self.settings = settings = self._resolve()
        check_outputs(settings)
        data, settings, fallback = self._load_data(settings)
        self.settings = settings
        limit = None if settings.limit == "all" else settings.limit
        x_train, y_train, _ = prepare(data.train.images, data.train.labels, settings.classes, limit, settings.seed)
        x_test, y_test, test_index = prepare(data.test.images, data.test.labels, settings.classes, limit, settings.seed)
        _note_short_limit(settings, data)
        model, optimizer = self._model(settings, tuple(x_train.shape[1:]), len(settings.classes), device)
        first_epoch = model.epoch
        _say(settings.quiet, _banner(settings, data, model, len(x_train), len(x_test), device))
        history = self._train(settings, model, optimizer, (x_train, y_train), (x_test, y_test))
        matrix, test_loss, inference_s = _test(model, x_test, y_test, test_index, settings.loss)
        metrics = _metrics(settings, data, model, history, first_epoch, matrix, test_loss,
                           (len(x_train), len(x_test), inference_s), time.perf_counter() - started)
        metrics["dataset"]["fallback_to_sample"] = fallback
        _report(settings, data, metrics, matrix)
        return metrics

    def _train(self, settings: Settings, model, optimizer, train: tuple, test: tuple) -> list:
        total_epochs = model.epoch + settings.epochs
        progress = EpochProgress(settings.quiet, total_epochs)

        def on_epoch(logs: dict) -> None:
            progress.close()
            _say(settings.quiet, f"epoch {logs['epoch']:>3}/{total_epochs}  loss {logs['loss']:.4f}"
                                 f"  acc {logs['accuracy']:.4f}  test_loss {logs['val_loss']:.4f}"
                                 f"  test_acc {logs['val_accuracy']:.4f}"
                                 f"  {logs['seconds']:.1f}s  {logs['samples_per_s']:.0f} samples/s")
            if settings.checkpoint_path:
                self._save(model, settings)

        try:
            model.fit(*train, loss=settings.loss, epochs=settings.epochs, batch_size=settings.batch_size,
                      optimizer=optimizer, validation_data=test, on_batch=progress.on_batch, on_epoch=on_epoch)
        finally:
            progress.close()
        if settings.save and settings.epochs == 0 and not settings.resume:
            self._save(model, settings)
        return [dict(zip(model.history, values)) for values in zip(*model.history.values())]


def _note_short_limit(settings: Settings, data) -> None:
    """One line when ``--limit`` asks for more samples of a class than the data set has."""
    if settings.limit == "all":
        return
    short = []
    for name, split in (("train", data.train), ("test", data.test)):
        counts = class_counts(split.labels, settings.classes)
        short += [f"class {c} {name} {n}" for c, n in zip(settings.classes, counts) if n < settings.limit]
    if short:
        _note(f"--limit {settings.limit} asks for more samples per class than {data.name} has, so all of them are "
              f"used: {', '.join(short)}")


def _banner(settings: Settings, data, model, n_train: int, n_test: int, device) -> str:
    return (f"xpcnn: {settings.model} ({model.parameter_count():,} parameters) on {data.name}, classes "
            f"{' '.join(map(str, settings.classes))}: {n_train} train / {n_test} test samples; {device.name}, "
            f"{settings.dtype}, {settings.optimizer} lr {settings.lr:g}, batch {settings.batch_size}, "
            f"epochs {model.epoch + 1}..{model.epoch + settings.epochs}")


def _test(model, x_test: np.ndarray, y_test: np.ndarray, test_index: np.ndarray, loss: str):
    """``(confusion matrix, test loss, seconds)`` from one pass over the test set."""
    t0 = time.perf_counter()
    out = model.predict(x_test)
    predicted = backend.to_numpy(output_classes(out))
    targets = backend.to_device(y_test.astype(model.dtype), model.device)
    test_loss = float(get_loss(loss)[0](targets, out))
    seconds = time.perf_counter() - t0
    return confusion_matrix(test_index, predicted, y_test.shape[1]), test_loss, seconds


def _metrics(settings: Settings, data, model, history: list, first_epoch: int, matrix: np.ndarray,
             test_loss: float, sizes: tuple, seconds: float) -> dict:
    n_train, n_test, inference_s = sizes
    correct = int(np.trace(matrix))
    this_run = [h for h in history if h["epoch"] > first_epoch]
    train_seconds = sum(h["seconds"] for h in this_run)
    return {
        "config": settings.as_dict(),
        "device": model.device.name,
        "dataset": {"name": data.name, "source": data.source, "class_names": [data.class_names[c] for c in settings.classes],
                    "train_samples": n_train, "test_samples": n_test},
        "model": {"name": settings.model, "parameters": model.parameter_count(), "layers": repr(model)},
        "resumed_from": settings.resume, "first_epoch": first_epoch + 1, "epochs_total": model.epoch,
        "history": history,
        "final": {"test_accuracy": correct / n_test, "test_correct": correct, "test_samples": n_test,
                  "test_loss": test_loss},
        "confusion_matrix": matrix.tolist(),
        "throughput": {
            "train_samples_per_s": (n_train * len(this_run) / train_seconds) if train_seconds else None,
            "inference_samples_per_s": n_test / inference_s if inference_s else None,
        },
        "seconds": seconds,
        "checkpoint": settings.checkpoint_path,
    }


def _report(settings: Settings, data, metrics: dict, matrix: np.ndarray) -> None:
    final, tp = metrics["final"], metrics["throughput"]
    print(f"test accuracy {final['test_accuracy']:.4f} ({final['test_correct']}/{final['test_samples']}) after "
          f"{metrics['epochs_total']} epochs; test loss {final['test_loss']:.4f}; train "
          f"{tp['train_samples_per_s'] or 0:.0f} samples/s, inference {tp['inference_samples_per_s'] or 0:.0f} "
          f"samples/s; {metrics['seconds']:.1f}s in all", flush=True)
    _say(settings.quiet, format_confusion(matrix.tolist(), list(settings.classes),
                                          [data.class_names[c] for c in settings.classes]))
    if settings.metrics_json:
        write_json(settings.metrics_json, metrics, "--metrics-json")
    if settings.plot:
        plot_history(metrics["history"], settings.plot, "--plot")


# -- errors --------------------------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _about_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    """An OS error about a path the user named (or a file inside ``--data-dir``)."""
    names = [p for p in (args.save, args.resume, args.metrics_json, args.plot, args.data_dir) if p]
    filename = getattr(exc, "filename", None)
    if not filename or not names:
        return False
    target = os.path.abspath(os.fspath(filename))
    return any(target == os.path.abspath(p) or target.startswith(os.path.abspath(p) + os.sep) for p in names)


def main(argv: "list[str] | None" = None) -> int:
    """Parse ``argv``, train, and turn every expected failure into one line on stderr."""
    args = parse_args(argv)
    run = Run(args)
    debug = bool(os.environ.get("XPCNN_DEBUG"))
    try:
        run.execute()
    except KeyboardInterrupt:
        print(f"error: {run.interrupted()}", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, XpcnnError) or (isinstance(exc, OSError) and _about_user_path(exc, args)):
            print(f"error: {_one_line(exc)}", file=sys.stderr)
        else:  # a bug: still one line, the traceback on request
            print(f"error: internal error {type(exc).__name__}: {_one_line(exc)} (XPCNN_DEBUG=1 shows the traceback)",
                  file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
