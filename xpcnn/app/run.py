"""One ``train.py`` run: its settings, data, model, training, test pass and reports.

:class:`Run` is what :func:`xpcnn.app.cli.main` executes once the flags parse. It checks every
output path before loading any data, falls back to the embedded sample only for the bare
default run, and remembers what its checkpoint file holds so that Ctrl-C can say what is true.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import TYPE_CHECKING

from array_api_compat import array_namespace, device

from .. import backend, zoo
from ..io import export
from ..optim import schedules
from . import ranks
from ..backend import Array
from ..io.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from ..datasets import DataNotFoundError, class_counts, hold_out, load_dataset, prepare
from ..train.early_stopping import EarlyStopping
from ..errors import ConfigError, DataError, OutputError, ShapeError
from ..losses import get_loss
from ..optim.optimizers import get_optimizer
from ..io.files import check_output_path
from .reporting import (PICTURES, EpochProgress, check_pictures_folder, format_confusion, plot_format, plot_history,
                        write_json, write_pictures)
from .settings import Settings, check_saved, resolve
from ..train import output_classes, threads

if TYPE_CHECKING:
    from ..distributed import Communicator


# -- output --------------------------------------------------------------------------------------

def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


def confusion_matrix(true: Array, pred: Array, k: int) -> Array:
    """``m[i, j]`` = samples of class ``i`` predicted as ``j``: ``(k, k)`` int64 counts, in the
    labels' namespace: ``onehot(true)ᵀ onehot(pred)``, a product of two ``(N, k)`` indicator matrices."""
    xp = array_namespace(true, pred)
    classes = xp.arange(k, dtype=xp.int64, device=device(true))
    rows = xp.astype(xp.reshape(true, (-1, 1)) == classes, xp.int64)
    columns = xp.astype(xp.reshape(pred, (-1, 1)) == classes, xp.int64)
    return xp.matmul(xp.matrix_transpose(rows), columns)


def check_outputs(settings: Settings) -> None:
    """Every path the run will write, checked before any data is loaded or any epoch runs."""
    if settings.save:
        check_output_path(settings.save, "--save")
    if settings.metrics_json:
        check_output_path(settings.metrics_json, "--metrics-json")
    if settings.plot:
        plot_format(settings.plot, "--plot")
        check_output_path(settings.plot, "--plot")
    if settings.pictures:
        folder = check_pictures_folder(settings.pictures)
        for name in PICTURES:
            if settings.resume and os.path.abspath(folder / name) == os.path.abspath(settings.resume):
                raise OutputError(f"--pictures {settings.pictures}: would write {name} over --resume "
                                  f"{settings.resume}; choose another folder")
    for flag, path, package in (("--export-onnx", settings.export_onnx, "onnx"),
                                ("--export-safetensors", settings.export_safetensors, "safetensors.numpy")):
        if path:
            export.require(package, flag)
            check_output_path(path, flag)


# -- the run -------------------------------------------------------------------------------------

class Run:
    """One training run; remembers what its checkpoint file holds, for an honest Ctrl-C message."""

    def __init__(self, args: argparse.Namespace, comm: "Communicator | None" = None) -> None:
        self.args = args
        #: The MPI job with ``--distributed``: every rank trains, rank 0 alone prints, writes and tests.
        self.comm = comm
        self.root = comm is None or comm.is_root
        self.settings: "Settings | None" = None
        self.saved_epoch: "int | None" = None  # the epoch the checkpoint file holds, when known

    def interrupted(self) -> str:
        """What is true about the checkpoint after Ctrl-C."""
        path = self.settings.checkpoint_path if self.settings else self.args.save
        if not path:
            return "interrupted (nothing is saved without --save)"
        if self.saved_epoch is None:
            return f"interrupted before the first epoch finished; {path} was not written"
        return f"interrupted; {path} holds epoch {self.saved_epoch}, the last finished one"

    def _save(self, model, settings: Settings, early_stopping: "dict | None" = None) -> None:
        extra = {"config": settings.saved()}
        if early_stopping is not None:  # the weights are those of an earlier epoch than model.epoch
            extra["early_stopping"] = early_stopping
        save_checkpoint(settings.checkpoint_path, model, extra)
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
        if settings.save and os.path.abspath(settings.save) == os.path.abspath(settings.resume):
            self.saved_epoch = model.epoch  # --save names the resumed file: it holds the resumed epoch
        if tuple(model.output_shape) != (k,):
            raise ShapeError(f"{settings.resume}: the model has {model.output_shape} outputs, {k} classes need ({k},)")
        if model.optimizer is None:  # saved before any training
            return model, get_optimizer(settings.optimizer, settings.lr)
        if self.args.lr is not None:
            model.optimizer.learning_rate = float(self.args.lr)
        return model, None

    def execute(self) -> dict:
        """Train as the flags say; returns the metrics (also written by ``--metrics-json``).

        In a job of several ranks the others return ``{}`` after training.
        """
        started = time.perf_counter()
        comm = self.comm
        device = comm.device(self.args.device) if comm is not None else backend.get_device(self.args.device)
        self.settings = settings = ranks.agree(self._resolve(), self.args.batch_size, comm)
        _check_schedule(settings)
        if self.root:
            check_outputs(settings)
            if settings.chosen:
                _note(settings.chosen)
        data, settings, fallback = ranks.load_in_turn(self._load_data, settings, comm)
        self.settings = settings
        limit = None if settings.limit == "all" else settings.limit
        x_train, y_train, _ = prepare(data.train.images, data.train.labels, settings.classes, limit, settings.seed)
        x_test, y_test, test_index = prepare(data.test.images, data.test.labels, settings.classes, limit, settings.seed)
        _note_short_limit(settings, data)
        validation = (x_test, y_test)
        if settings.val_split is not None:
            try:
                (x_train, y_train), validation = hold_out(x_train, y_train, settings.val_split)
            except DataError as exc:  # a flag too large for these data
                raise ranks.UsageError(str(exc)) from None
        elif settings.early_stopping is not None:
            raise ranks.UsageError(f"--early-stopping needs a validation split, and {settings.resume} was trained "
                                   f"without one; pass --val-split F (this changes the training samples)")
        model, optimizer = self._model(settings, tuple(x_train.shape[1:]), len(settings.classes), device)
        first_epoch = model.epoch
        if settings.resume and not settings.save and settings.epochs and self.root:
            _note(f"{settings.resume} is only read: this run's checkpoints are not written "
                  f"(--save PATH.npz keeps them; naming the resumed file there writes over it)")
        _say(settings.quiet, _banner(settings, data, model, (len(x_train), len(validation[0]), len(x_test)), device)
             + ranks.describe(comm))
        _say(settings.quiet, model.summary_text())
        history, stopper = self._train(settings, model, optimizer, (x_train, y_train), validation)
        if not self.root:
            return {}
        matrix, test_loss, inference_s, test_outputs = _test(model, x_test, y_test, test_index, settings.loss)
        metrics = _metrics(settings, data, model, history, first_epoch, matrix, test_loss,
                           (len(x_train), len(x_test), inference_s), time.perf_counter() - started)
        metrics["dataset"]["fallback_to_sample"] = fallback
        metrics["dataset"]["validation_samples"] = len(validation[0]) if settings.val_split is not None else None
        metrics["validation_samples"] = metrics["dataset"]["validation_samples"]  # the early-stopping split
        metrics["schedule"] = model.schedule.spec() if model.schedule is not None else None
        metrics["early_stopping"] = stopper.report() if stopper is not None else None
        metrics["world_size"], metrics["comm_backend"] = (comm.size, comm.backend) if comm is not None else (1, None)
        _report(settings, data, metrics)
        if settings.pictures:
            names = [data.class_names[c] for c in settings.classes]
            written = write_pictures(settings.pictures, model, metrics["history"], x_test, y_test, names,
                                     val_label="test" if settings.val_split is None else "validation",
                                     outputs=test_outputs)
            _say(settings.quiet, f"wrote {', '.join(p.name for p in written)} in {settings.pictures}")
        _export(settings, model)
        return metrics

    def _train(self, settings: Settings, model, optimizer, train: tuple, validation: tuple):
        """``(history as a list of per-epoch dicts, the EarlyStopping or None)``."""
        total_epochs = model.epoch + settings.epochs
        progress = EpochProgress(settings.quiet, total_epochs)
        val = "test" if settings.val_split is None else "val"
        stopper = None if settings.early_stopping is None else EarlyStopping(settings.early_stopping,
                                                                             settings.min_delta)

        def on_epoch(logs: dict) -> None:
            progress.close()
            _say(settings.quiet, f"epoch {logs['epoch']:>3}/{total_epochs}  loss {logs['loss']:.4f}"
                                 f"  acc {logs['accuracy']:.4f}  {val}_loss {logs['val_loss']:.4f}"
                                 f"  {val}_acc {logs['val_accuracy']:.4f}  lr {logs['learning_rate']:.3g}"
                                 f"  {logs['seconds']:.1f}s  {logs['samples_per_s']:.0f} samples/s")
            if settings.checkpoint_path and self.root:
                self._save(model, settings)

        schedule = None if settings.schedule is None else schedules.parse(settings.schedule)
        if settings.schedule is not None and schedule is None:  # --schedule none drops the resumed checkpoint's
            model.schedule = None
        if self.root:
            _note_schedule_ended(settings, model, schedule or model.schedule, optimizer or model.optimizer)
            _note_threads(settings, model, self.comm)
        try:
            model.fit(*train, loss=settings.loss, epochs=settings.epochs, batch_size=settings.batch_size,
                      optimizer=optimizer, validation_data=validation, on_batch=progress.on_batch,
                      on_epoch=on_epoch, communicator=self.comm,
                      schedule=schedule,
                      early_stopping=stopper, workers=settings.workers)
        finally:
            progress.close()
        if stopper is not None and stopper.stopped_epoch is not None and self.root:
            self._stopped(settings, model, stopper)
        if settings.save and settings.epochs == 0 and not settings.resume and self.root:
            self._save(model, settings)
        return [dict(zip(model.history, values)) for values in zip(*model.history.values())], stopper

    def _stopped(self, settings: Settings, model, stopper: EarlyStopping) -> None:
        """Say where early stopping stopped; the checkpoint then holds the restored weights."""
        restored = stopper.restored_epoch
        print(f"early stopping after epoch {stopper.stopped_epoch}: no val_loss improvement for {stopper.patience} "
              f"epochs; best epoch {stopper.best_epoch} (val_loss {stopper.best_val_loss:.4f})"
              + (", its weights restored" if restored is not None else ""), flush=True)
        if restored is not None and settings.checkpoint_path:
            self._save(model, settings, {"restored_epoch": restored, "stopped_epoch": stopper.stopped_epoch})


def _check_schedule(settings: Settings) -> None:
    """``--schedule`` against the run's base rate (``cosine:10:0.1`` with ``--lr 0.001`` would rise): a usage error."""
    schedule = None if settings.schedule is None else schedules.parse(settings.schedule)
    if schedule is not None:
        try:
            schedule.check_base(settings.lr)
        except ConfigError as exc:
            flags = f"--schedule {settings.schedule} with learning rate {settings.lr:g}"
            raise ranks.UsageError(f"{flags}: {exc}") from None


def _note_threads(settings: Settings, model, comm) -> None:
    """One line: on stdout when BLAS runs one thread because other jobs hold the cores (a choice made, not a
    fault), on stderr when BLAS cannot be held to one thread per worker (docs/workers.md)."""
    ranks_here, size = (comm.local_size, comm.size) if comm is not None else (1, 1)
    kind = "cpu" if model.device.name == "cpu" else model.device.name
    chosen = threads.plan("--workers", settings.workers, settings.batch_size // size, kind, ranks_here)
    note = threads.blas_note(chosen)
    if note and note != chosen.note:
        _note(note)
    elif note:
        _say(settings.quiet, f"note: {note}")


def _note_schedule_ended(settings: Settings, model, schedule, optimizer) -> None:
    """One line when the schedule gives rate 0 from the run's first epoch (a resumed cosine that has ended)."""
    if schedule is None or settings.epochs == 0 or optimizer is None:
        return
    first = model.epoch
    if schedule.resolve(first + settings.epochs).learning_rate(optimizer.learning_rate, optimizer.iterations,
                                                              first) == 0:
        hint = (f", --schedule cosine anneals over all {first + settings.epochs} epochs"
                if any(isinstance(part, schedules.Cosine) for part in schedule.parts()) else "")
        last = first + settings.epochs
        span = f"epoch {last} changes" if settings.epochs == 1 else f"epochs {first + 1}..{last} change"
        _note(f"the schedule {schedule.spec()} gives learning rate 0 from epoch {first + 1} on, so {span} nothing; "
              f"--schedule none trains at the base rate{hint}")


def _note_short_limit(settings: Settings, data) -> None:
    """One line when ``--limit`` asks for more samples of a class than the data set has."""
    if settings.limit == "all":
        return
    short = []
    for name, split in (("train", data.train), ("test", data.test)):
        counts = class_counts(split.labels, settings.classes)
        few = [(c, n) for c, n in zip(settings.classes, counts) if n < settings.limit]
        if len(few) == len(settings.classes) and len({n for _, n in few}) == 1:
            short.append(f"{name} {few[0][1]} per class")  # ten classes of 100: one number, not ten
        elif few:
            short.append(f"{name} " + ", ".join(f"class {c} {n}" for c, n in few))
    if short:
        _note(f"--limit {settings.limit} asks for more samples per class than {data.name} has, so all of them are "
              f"used: {'; '.join(short)}")


def _banner(settings: Settings, data, model, sizes: tuple, device) -> str:
    n_train, n_val, n_test = sizes
    held = f" / {n_val} validation" if settings.val_split is not None else ""
    extras = "".join([
        f", schedule {model.schedule.spec() if settings.schedule is None else settings.schedule}"
        if (settings.schedule not in (None, "none") or (settings.schedule is None and model.schedule)) else "",
        f", early stopping (patience {settings.early_stopping})" if settings.early_stopping else "",
    ])
    return (f"xpcnn: {settings.model} ({model.parameter_count():,} parameters) on {data.name}, classes "
            f"{' '.join(map(str, settings.classes))}: {n_train} train{held} / {n_test} test samples; {device.name}, "
            f"{settings.dtype}, {settings.optimizer} lr {settings.lr:g}, batch {settings.batch_size}, "
            f"epochs {model.epoch + 1}..{model.epoch + settings.epochs}{extras}")


def _test(model, x_test: Array, y_test: Array, test_index: Array, loss: str):
    """``(confusion matrix, test loss, seconds, outputs)`` from one pass over the test set (the pictures reuse
    the outputs)."""
    t0 = time.perf_counter()
    out = model.predict(x_test)
    predicted = backend.to_numpy(output_classes(out))
    targets = backend.to_device(y_test.astype(model.dtype), model.device)
    test_loss = float(get_loss(loss)[0](targets, out))
    seconds = time.perf_counter() - t0
    return confusion_matrix(test_index, predicted, y_test.shape[1]), test_loss, seconds, out


def _metrics(settings: Settings, data, model, history: list, first_epoch: int, matrix: Array,
             test_loss: float, sizes: tuple, seconds: float) -> dict:
    n_train, n_test, inference_s = sizes
    counts = matrix.tolist()
    correct = sum(row[i] for i, row in enumerate(counts))
    this_run = [h for h in history if h["epoch"] > first_epoch]
    train_seconds = sum(h["seconds"] for h in this_run)
    return {
        "config": settings.as_dict(),
        "device": model.device.name,
        "dataset": {"name": data.name, "source": data.source,
                    "class_names": [data.class_names[c] for c in settings.classes],
                    "train_samples": n_train, "test_samples": n_test},
        "model": {"name": settings.model, "parameters": model.parameter_count(), "layers": repr(model),
                  # each convolution's engine: the one asked for, and those its last passes used
                  "engines": [{"layer": i, "requested": layer.engine_name, **layer.chosen_engines}
                              for i, layer in enumerate(model.layers) if hasattr(layer, "chosen_engines")]},
        "resumed_from": settings.resume, "first_epoch": first_epoch + 1, "epochs_total": model.epoch,
        "history": history,
        "final": {"test_accuracy": correct / n_test, "test_correct": correct, "test_samples": n_test,
                  "test_loss": test_loss},
        "confusion_matrix": counts,
        "throughput": {
            "train_samples_per_s": (n_train * len(this_run) / train_seconds) if train_seconds else None,
            "inference_samples_per_s": n_test / inference_s if inference_s else None,
        },
        "seconds": seconds,
        "checkpoint": settings.checkpoint_path,
    }


def _report(settings: Settings, data, metrics: dict) -> None:
    final, tp = metrics["final"], metrics["throughput"]
    print(f"test accuracy {final['test_accuracy']:.4f} ({final['test_correct']}/{final['test_samples']}) after "
          f"{metrics['epochs_total']} epochs; test loss {final['test_loss']:.4f}; train "
          f"{tp['train_samples_per_s'] or 0:.0f} samples/s, inference {tp['inference_samples_per_s'] or 0:.0f} "
          f"samples/s; {metrics['seconds']:.1f}s in all", flush=True)
    _say(settings.quiet, format_confusion(metrics["confusion_matrix"], list(settings.classes),
                                          [data.class_names[c] for c in settings.classes]))
    if settings.metrics_json:
        write_json(settings.metrics_json, metrics, "--metrics-json")
    if settings.plot:
        plot_history(metrics["history"], settings.plot, "--plot",
                     val_label="test" if settings.val_split is None else "validation")


def _export(settings: Settings, model) -> None:
    """``--export-onnx`` and ``--export-safetensors``: the trained model, each file written whole or not at all."""
    if settings.export_onnx:
        export.to_onnx(model, settings.export_onnx)
        _say(settings.quiet, f"wrote {settings.export_onnx} (ONNX opset {export.DEFAULT_OPSET}, {model.dtype}, "
                             f"input (N, {', '.join(map(str, model.input_shape))}))")
    if settings.export_safetensors:
        export.to_safetensors(model, settings.export_safetensors)
        _say(settings.quiet, f"wrote {settings.export_safetensors} (safetensors, PyTorch nn.Sequential names)")
