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
import os
import signal
import sys
import threading

from .. import _startup, backend, zoo
from ..optim import schedules
from . import ranks
from ..errors import ConfigError, XpcnnError, is_out_of_memory, out_of_memory
from .run import Run, confusion_matrix
from .settings import DATASETS, DEFAULTS, DTYPES, OPTIMIZERS, parse_classes

__all__ = ["build_parser", "parse_args", "main", "Run", "confusion_matrix", "backend"]


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


def _schedule(text: str) -> str:
    """A ``--schedule`` spec, checked now (one line on a bad one); kept as text. ``none``: no schedule."""
    try:
        return text if schedules.parse(text) is not None else "none"
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 0 and < 1, got {text!r}")
    return value


def _min_delta(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = _Parser(description="Train an xpcnn network on MNIST, Fashion-MNIST, the embedded sample or your own "
                            "IDX files.",
                epilog="Errors are one line on stderr: exit status 2 for a bad flag, 1 for anything else, 130 after "
                       "Ctrl-C. XPCNN_DEBUG=1 shows the traceback.")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (CuPy), torch:cpu, torch:cuda[:N] or torch:mps "
                   "(PyTorch tensors; default: cpu)")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help=f"default: {d.dataset}, or the embedded sample when the MNIST files cannot be found; "
                        f"idx: your own IDX files in --data-dir (the four MNIST file names, not checksummed)")
    p.add_argument("--classes", nargs="+", default=None, metavar="C",
                   help=f"digits/classes to train on, or 'all' for ten (default: {' '.join(map(str, d.classes))} "
                        f"; all for fashion-mnist)")
    p.add_argument("--limit", type=_limit, default=None, metavar="N|all",
                   help=f"samples per class, train and test alike (default: {d.limit}, as in the "
                        f"derivation; all for fashion-mnist)")
    p.add_argument("--model", choices=sorted(zoo.MODELS), default=None,
                   help="default: seed (the derivation's network) for 2 classes, convnet for more")
    p.add_argument("--epochs", type=_integer(0), default=None,
                   help="epochs to run, more epochs when resuming (default: the model's recipe)")
    p.add_argument("--batch-size", type=_integer(1), default=None, help="default: the model's recipe")
    p.add_argument("--lr", type=_learning_rate, default=None, help="learning rate (default: the model's recipe)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="default: the model's recipe")
    p.add_argument("--schedule", type=_schedule, default=None, metavar="SPEC",
                   help="learning-rate schedule: step:EVERY[:GAMMA] (per epoch), cosine[:EPOCHS[:MIN_LR]] (per "
                        "epoch; EPOCHS: the last epoch of the run if left out), warmup:STEPS (per step), joined by "
                        "commas to multiply, e.g. warmup:500,cosine; none drops a resumed checkpoint's (default: the "
                        "resumed checkpoint's, else none)")
    p.add_argument("--early-stopping", type=_integer(1), default=None, metavar="PATIENCE",
                   help="stop when the validation loss has not improved for PATIENCE epochs and restore the best "
                        "epoch's weights; validates on a held-out part of the training data (--val-split, default "
                        "0.1), never on the test set")
    p.add_argument("--min-delta", type=_min_delta, default=None, metavar="D",
                   help="with --early-stopping: an improvement must lower the validation loss by more than D "
                        "(default 0)")
    p.add_argument("--val-split", type=_fraction, default=None, metavar="F",
                   help="hold out the fraction F of the training samples to validate on after every epoch instead "
                        "of the test set (default: 0, none, or 0.1 with --early-stopping; a resumed run keeps its "
                        "checkpoint's)")
    p.add_argument("--dtype", choices=DTYPES, default=None, help=f"default: {d.dtype}")
    p.add_argument("--seed", type=_integer(0), default=None,
                   help=f"initial weights, data selection and shuffling (default: {d.seed})")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder with the IDX files: searched first (and the only place for --dataset idx)")
    p.add_argument("--save", default=None, metavar="PATH.npz",
                   help="checkpoint after every epoch (the --resume file is only read: never written over "
                        "unless --save names it)")
    p.add_argument("--resume", default=None, metavar="PATH.npz", help="continue from a checkpoint")
    p.add_argument("--metrics-json", default=None, metavar="PATH", help="write settings, history and results")
    p.add_argument("--plot", default=None, metavar="PATH.png",
                   help="loss/accuracy curves, PNG (or the format of the suffix; needs matplotlib)")
    p.add_argument("--pictures", default=None, metavar="DIR",
                   help="after training, PNGs in DIR (created if missing; needs matplotlib): the curves, the first "
                        "convolution's kernels and feature maps, the confusion matrix, misclassified test images")
    p.add_argument("--export-onnx", default=None, metavar="PATH.onnx",
                   help="after training, write the model as ONNX (needs xpcnn[export]); with --resume CK "
                        "--epochs 0, exports a checkpoint")
    p.add_argument("--export-safetensors", default=None, metavar="PATH.safetensors",
                   help="after training, write the weights as safetensors under PyTorch nn.Sequential names "
                        "(needs xpcnn[export])")
    p.add_argument("--workers", type=_integer(1), default=None, metavar="T",
                   help="threads that each train on a share of every batch (default: one per core when each gets "
                        "32 samples; docs/workers.md)")
    p.add_argument("--quiet", action="store_true",
                   help="no model summary, no progress bar and no per-epoch lines")
    p.add_argument("--distributed", action="store_true",
                   help="train one model with every process of the MPI job (mpiexec -n 4 python scripts/train.py "
                        "--distributed; needs xpcnn[mpi]); --batch-size is the global batch, rank 0 prints and saves")
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
    if args.min_delta is not None and args.early_stopping is None:
        parser.error("--min-delta needs --early-stopping PATIENCE")
    if args.early_stopping is not None and args.val_split == 0:
        parser.error("--early-stopping needs a validation split; --val-split 0 holds out none (leave it out for 0.1)")
    if args.dataset == "idx" and args.data_dir is None:
        parser.error("--dataset idx needs --data-dir DIR, the folder holding your four IDX files")
    outputs = [(flag, path) for flag, path in (("--save", args.save), ("--metrics-json", args.metrics_json),
                                               ("--plot", args.plot), ("--export-onnx", args.export_onnx),
                                               ("--export-safetensors", args.export_safetensors)) if path]
    for i, (flag, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1:]:
            if os.path.abspath(path) == os.path.abspath(other_path):
                parser.error(f"{flag} and {other} name the same file {path}")
    return args


# -- errors --------------------------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _about_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    """An OS error about a path the user named (or a file inside ``--data-dir``)."""
    names = [p for p in (args.save, args.resume, args.metrics_json, args.plot, args.pictures, args.data_dir,
             args.export_onnx,
                         args.export_safetensors) if p]
    filename = getattr(exc, "filename", None)
    if not filename or not names:
        return False
    target = os.path.abspath(os.fspath(filename))
    return any(target == os.path.abspath(p) or target.startswith(os.path.abspath(p) + os.sep) for p in names)


def debugging() -> bool:
    """``XPCNN_DEBUG`` set to anything but empty, ``0``, ``false``, ``no`` or ``off``: show tracebacks."""
    return os.environ.get("XPCNN_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def main(argv: "list[str] | None" = None) -> int:
    """Parse ``argv``, train, and turn every expected failure into one line on stderr.

    In a job of several processes (``--distributed``) the line names the rank, and a failing
    rank ends them all (MPI_Abort, same exit status): the others would wait for it forever.
    """
    args = parse_args(argv)
    debug = debugging()
    comm = run = None
    previous = _stop_on_sigterm()
    _startup.release()  # Ctrl-C is KeyboardInterrupt again, caught below
    try:
        comm = ranks.communicator(args.distributed)
        run = Run(args, comm)
        run.execute()
    except ranks.UsageError as exc:
        print(f"error: {_one_line(exc)} (see --help)", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (exit 128 + the signal's number, as a shell reports)
        message = run.interrupted() if run is not None and run.root else "interrupted"
        if isinstance(exc, _Terminated):
            message = message.replace("interrupted", "stopped by SIGTERM", 1)
        ranks.report(comm, message)
        return ranks.end(comm, 143 if isinstance(exc, _Terminated) else 130)
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, XpcnnError) or (isinstance(exc, OSError) and _about_user_path(exc, args)):
            ranks.report(comm, _one_line(exc))
        elif is_out_of_memory(exc):  # outside a training step (inference, auto's engine timing, loading data)
            ranks.report(comm, _one_line(out_of_memory(exc, "", "--batch-size, --limit or the model's size")))
        else:  # a bug: still one line, the traceback on request
            ranks.report(comm, f"internal error {type(exc).__name__}: {_one_line(exc)} (XPCNN_DEBUG=1 shows the "
                               f"traceback)")
        return ranks.end(comm, 1, exc)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, as Ctrl-C is: the run stops as after Ctrl-C."""


def _raise_terminated(signum, frame):
    raise _Terminated


def _stop_on_sigterm():
    """Treat SIGTERM (``kill``, ``docker stop``, a batch system's time limit) as Ctrl-C; the old handler, or
    ``None`` where signals cannot be set (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
