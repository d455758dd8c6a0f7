"""``fit``, ``evaluate``, ``predict``: the training loop as a component of its own (Keras's ``Trainer``).

:class:`Trainer` is mixed into :class:`xpcnn.Sequential`, as Keras's ``Model`` inherits its
``Trainer``. It imports no model class, and it drives the model through its public API only:

* ``forward(x, training)`` and ``backward(∂E/∂Y)``, the two passes;
* ``layers`` (their ``params``, ``grads``, ``buffers``, for the optimizer and the step guard),
  ``device``, ``dtype``, ``xp``, ``rng``, ``input_shape`` and ``output_shape``.

What it adds to the model is the training state: ``loss``, ``optimizer``, ``schedule``,
``early_stopping``, ``epoch`` and ``history``, which checkpoints keep.

The path of one ``fit`` (:mod:`xpcnn.train.loop` runs the epochs)::

    fit:   check arguments and data  →  choose loss, optimizer, schedule  →  run_epochs
    step:  batch to the model's device  →  forward  →  loss  →  backward  →  optimizer.step(layers)
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from .. import backend
from .._checks import integer, number
from ..distributed import Communicator
from ..distributed.data_parallel import DataParallel, fit_settings
from ..errors import ConfigError, ConfigTypeError, is_out_of_memory, out_of_memory
from ..layers import Sigmoid, Softmax
from ..losses import LOSSES, get_loss
from ..optim import SGD, Optimizer, Schedule, ZeroRateWarning, check_optimizer, check_schedule
from ..tools import roofline
from . import conventions, data_checks, loop, threads
from .batches import to_model
from .loop import evaluate_batches
from .early_stopping import EarlyStopping
from .metrics import correct_count
from .workers import Workers

#: ``fit``'s learning rate for the ``SGD`` it makes when neither the call nor the model has an optimizer.
DEFAULT_LEARNING_RATE = 0.1


class Trainer:
    """The training half of a model: ``compile``, ``fit``, ``evaluate``, ``predict``, ``train_step``."""

    def __init__(self) -> None:
        #: The loss: a name from :data:`xpcnn.losses.LOSSES` or a ``(loss, loss_prime)`` pair; set
        #: by :meth:`compile` or :meth:`fit`, kept in checkpoints (names only).
        self.loss: "str | tuple | None" = None
        self.optimizer: "Optimizer | None" = None
        #: The learning-rate schedule ``fit`` follows (:mod:`xpcnn.optim.schedules`), kept in checkpoints.
        self.schedule: "Schedule | None" = None
        #: The :class:`~xpcnn.train.EarlyStopping` of the last ``fit`` (``None`` without).
        self.early_stopping: "EarlyStopping | None" = None
        self.epoch = 0
        self.history: dict[str, list] = {}
        #: Set to ``True`` by a callback (Keras's spelling) to stop ``fit`` after the current epoch.
        self.stop_training = False
        #: The workers and BLAS threads of the last ``fit``, ``evaluate`` or ``predict`` (``xpcnn.train.threads``).
        self.parallelism: "threads.Plan | None" = None

    def compile(self, loss: "str | tuple | None" = None, optimizer: "Optimizer | str | None" = None, *,
                metrics: "list[str] | None" = None) -> "Trainer":
        """Set the loss (and, optionally, the optimizer) that ``fit`` and ``evaluate`` use; returns ``self``.

        ``loss`` is a name of :data:`xpcnn.losses.LOSSES` or Keras's (``"categorical_crossentropy"``,
        ``"sparse_categorical_crossentropy"``: :mod:`xpcnn.train.conventions`), or a ``(loss,
        loss_prime)`` pair; ``None`` takes the one the output layer calls for (Softmax: categorical,
        Sigmoid: binary cross-entropy). ``optimizer`` is an :class:`~xpcnn.optim.Optimizer` or a name
        (``"sgd"``, ``"momentum"``, ``"adam"``, at Keras's default rates). ``metrics`` may name
        ``"accuracy"``, which every epoch reports anyway.
        """
        conventions.check_loss_not_optimizer(loss, optimizer, "compile")
        conventions.check_metrics(metrics, "compile")
        loss = self._loss_or_default(loss, "compile", infer=True)
        self.loss = "categorical_cross_entropy" if loss == conventions.SPARSE else loss  # labels: see fit
        optimizer = conventions.optimizer_named(optimizer, "compile")
        if optimizer is not None:
            self._set_optimizer(self._optimizer_for(optimizer, None, "compile"))
        return self

    def __call__(self, x, training: bool = False):
        """``model(x)``, as Keras: the outputs for one batch ``x`` (any namespace), in the model's namespace.

        Inference (``training=False``) unless asked; no batching (:meth:`predict` batches).
        """
        data_checks.check_inputs(self, x, "model(x)")
        return self.forward(to_model(self, x), training=bool(training))

    def train_step(self, x, y, loss_fn: Callable, loss_prime: Callable, optimizer: Optimizer):
        """One forward, backward and update on a prepared batch; returns ``(loss, output)``.

        Running out of memory is an :class:`~xpcnn.errors.OutOfMemoryError` of one line naming the batch."""
        try:
            out = self.forward(x)
            loss = loss_fn(y, out)
            self.backward(loss_prime(y, out))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            raise out_of_memory(exc, f"in a training step on a batch of {x.shape[0]} samples",
                                "the batch size (batch_size=, --batch-size) or the model's size") from None
        optimizer.step(self.layers)
        return loss, out

    def predict(self, x, batch_size: int = 256, verbose: int = 0, *, workers: "int | None" = None):
        """Outputs ``(N, *output_shape)`` for ``x`` (any namespace), in batches, in the model's namespace.

        ``N = 0`` gives an empty ``(0, *output_shape)`` array. ``verbose`` is accepted for Keras's
        code; predict prints nothing. ``workers`` splits every batch between threads as ``fit`` does
        (``None``: one per core, see ``xpcnn.train.threads``).
        """
        conventions.check_verbose(verbose, "predict")
        batch_size = integer("predict", "batch_size", batch_size, minimum=1)
        data_checks.check_inputs(self, x, "predict")
        chosen = self._plan("predict", workers, min(batch_size, max(1, x.shape[0])))
        if x.shape[0] == 0:
            shape = tuple(x.shape[1:])
            for layer in self.layers:
                shape = tuple(layer.output_shape(shape))
            return backend.to_device(backend.zeros((0, *shape), self.dtype), self.device)
        bounds = data_checks.batch_bounds(x.shape[0], batch_size)
        if chosen.workers == 1:
            with threads.blas_threads(chosen.blas_threads):
                outs = [self.forward(to_model(self, x[lo:hi, ...]), training=False) for lo, hi in bounds]
        else:
            team = Workers(self, chosen.workers)
            with threads.blas_threads(chosen.blas_threads):
                outs = [out for lo, hi in bounds for _, out in team.forward_shares(to_model(self, x[lo:hi, ...]))]
        return self.xp.concat(outs, axis=0) if len(outs) != 1 else outs[0]

    def evaluate(self, x, y, *, loss: "str | tuple | None" = None, batch_size: int = 256,
                 verbose: int = 0, workers: "int | None" = None) -> dict:
        """``{"loss", "accuracy"}`` over ``(x, y)``, as Python floats; ``loss`` defaults to the model's.

        Integer class labels ``(N,)`` are taken as :meth:`fit` takes them. ``verbose=1`` or ``2``
        prints the result in one line (Keras's ``evaluate`` returns a list; xpcnn a dict, as
        ``return_dict=True``). ``workers`` splits every batch between threads as ``fit`` does
        (``None``: one per core).
        """
        batch_size = integer("evaluate", "batch_size", batch_size, minimum=1)
        verbose = conventions.check_verbose(verbose, "evaluate")
        loss = self._loss_or_default(loss, "evaluate")
        y, loss = conventions.targets_for(self, y, loss, "evaluate")
        data_checks.check_data(self, x, y, "evaluate", loss)
        chosen = self._plan("evaluate", workers, min(batch_size, x.shape[0]))
        run = evaluate_batches if chosen.workers == 1 else Workers(self, chosen.workers).evaluate_part
        with threads.blas_threads(chosen.blas_threads):
            result = run(self, x, y, get_loss(loss), batch_size)
        if verbose:
            print(f"loss: {result['loss']:.4f} - accuracy: {result['accuracy']:.4f}")
        return result

    def fit(
        self,
        x,
        y,
        *,
        loss: "str | tuple | None" = None,
        epochs: int = 1,
        batch_size: int = 32,
        learning_rate: "float | None" = None,
        optimizer: "Optimizer | None" = None,
        shuffle: bool = True,
        seed=None,
        validation_data: "tuple | None" = None,
        on_batch: "Callable[[dict], Any] | None" = None,
        on_epoch: "Callable[[dict], Any] | None" = None,
        communicator: "Communicator | None" = None,
        schedule: "Schedule | None" = None,
        early_stopping: "EarlyStopping | int | None" = None,
        verbose: int = 0,
        validation_split: "float | None" = None,
        callbacks: "list | None" = None,
        workers: "int | None" = None,
    ) -> dict:
        """Train for ``epochs`` more epochs; returns the per-epoch history (also ``self.history``).

        ``loss`` defaults to the model's (from ``compile`` or an earlier ``fit``), else to the one
        its output layer calls for (:func:`loss_for_output`: Softmax → categorical cross-entropy,
        Sigmoid → binary cross-entropy; any other output asks for ``loss=`` in one line); it becomes
        the model's loss. ``optimizer`` defaults to the model's, else ``SGD(learning_rate)`` (0.1 when
        not given). ``learning_rate`` given to a model that has an optimizer becomes that optimizer's base
        rate (its state is kept: momentum, Adam's moments, the step count), as ``--lr`` does on
        ``--resume``; with ``optimizer=`` it must be that optimizer's rate, since the rate belongs to the
        optimizer. ``seed`` re-seeds the shuffling generator.

        Before any step, ``x`` and ``y`` (and ``validation_data``) are checked: matching shapes, at
        least one sample, no NaN or infinity, and 0/1 (one-hot for categorical cross-entropy)
        targets for the cross-entropies; each failure names the first bad sample.

        Every step's loss is checked (see :mod:`xpcnn.train.step_guard`): at the first non-finite
        one, training stops with a :class:`~xpcnn.errors.TrainingError` naming the epoch and the
        step; the parameters and optimizer state are left as after the last finite step, and the
        history holds the finished epochs only (``self.epoch`` counts them).

        ``on_batch`` receives ``{epoch, batch, batches, size, loss, correct}`` (``loss`` and the
        batch's number of right answers ``correct`` are 0-d arrays: converting them synchronises
        a GPU), plus Python floats ``running_loss`` and ``running_accuracy`` on the batches where
        fit read them on the host (at most every 0.2 s, and the last batch). ``on_epoch``
        receives the epoch's logs and may return ``True`` to stop.

        ``communicator`` (:func:`xpcnn.distributed.init`) trains data-parallel with the other
        processes of an ``mpiexec`` job (see :mod:`xpcnn.distributed.data_parallel`):
        ``batch_size`` is the global batch, every rank passes the same data, and every rank gets
        the same parameters and logs; callbacks run on every rank (``communicator.rank == 0`` is
        the one to print).

        ``schedule`` (:mod:`xpcnn.optim.schedules`: ``StepDecay``, ``Cosine``, ``Warmup``,
        ``Chain``) sets the optimizer's rate before every step from its base ``learning_rate``,
        the optimizer's step count and the finished epochs; it becomes the model's (checkpoints
        keep it) and is followed by later ``fit`` calls until replaced (``model.schedule = None``
        drops it). A ``Cosine()`` without a length ends at this fit's last epoch, and stays so: a
        later fit that starts where a schedule gives rate 0 (that cosine after its end, with
        ``min_lr`` 0) would change nothing, and warns in one line
        (:class:`~xpcnn.optim.ZeroRateWarning`) naming the fix. Each epoch's logs hold ``learning_rate``, the rate
        of its last step.

        ``early_stopping`` (an :class:`~xpcnn.train.EarlyStopping`, or an integer patience) stops
        when ``val_loss`` has not improved for ``patience`` epochs and restores the best epoch's
        weights; it needs ``validation_data``. ``model.early_stopping`` reports it.

        Keras's spellings (:mod:`xpcnn.train.conventions`): integer class labels ``(N,)`` with
        ``loss="sparse_categorical_cross_entropy"`` (or categorical cross-entropy) become one-hot
        rows; ``verbose`` is 0 (silent, the default), 1 (a progress bar per epoch) or 2 (one line per
        epoch); ``validation_split`` holds out the last fraction of the samples, before shuffling;
        ``callbacks`` are objects with Keras's ``on_train_begin``, ``on_epoch_end(epoch, logs)``,
        ``on_train_batch_end(batch, logs)`` and ``on_train_end`` (an ``EarlyStopping`` among them is
        ``early_stopping``), and one that sets ``model.stop_training = True`` stops after the epoch.

        ``workers`` (``xpcnn.train.workers``, docs/workers.md) trains ``workers`` replicas in
        threads, each on its share of every batch, with the parameters one pass would give (up to
        the order of floating-point sums); ``None`` chooses one per core when every share gets at
        least ``xpcnn.train.threads.MIN_SHARE`` rows and ``MIN_WORK`` matrix FLOPs, else 1.
        ``model.parallelism`` says what was chosen.
        """
        epochs = integer("fit", "epochs", epochs, minimum=0)
        batch_size = integer("fit", "batch_size", batch_size, minimum=1)
        verbose = conventions.check_verbose(verbose, "fit")
        hooks, keras_stopper = conventions.callback_hooks(self, callbacks, "fit")
        if keras_stopper is not None:
            if early_stopping is not None:
                raise ConfigError("fit: pass early_stopping=... or an EarlyStopping in callbacks, not both")
            early_stopping = keras_stopper
        loss = self._loss_or_default(loss, "fit", infer=True)
        x, y, validation_data = conventions.split_validation(x, y, validation_split, validation_data, "fit")
        y, loss = conventions.targets_for(self, y, loss, "fit")
        data_checks.check_data(self, x, y, "fit", loss)
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ConfigTypeError("fit: validation_data must be a pair (x, y)")
            val_y, _ = conventions.targets_for(self, validation_data[1], loss, "fit (validation_data)")
            validation_data = (validation_data[0], val_y)
            data_checks.check_data(self, *validation_data, "fit (validation_data)", loss)
        stopper = EarlyStopping.of(early_stopping)
        if stopper is not None and validation_data is None:
            raise ConfigError(f"fit: early_stopping watches {stopper.monitor}, which needs validation data; "
                              f"pass validation_data=(x, y)")
        check_schedule(schedule)
        check_schedule(self.schedule, "fit (model.schedule)")  # set by hand, perhaps
        ranks = communicator.size if communicator is not None else 1
        data_checks.check_batch_sizes(self, x, batch_size, "fit", ranks)
        chosen_plan = self._plan("fit", workers, min(batch_size, x.shape[0]) // ranks,
                                 getattr(communicator, "local_size", 1))
        chosen = self._optimizer_for(optimizer, learning_rate, "fit")
        rate = chosen.learning_rate if learning_rate is None else float(learning_rate)
        planned = schedule if schedule is not None else self.schedule
        if planned is not None:
            planned.check_base(rate)
        self.loss = loss
        chosen.learning_rate = rate  # the model's optimizer at the rate this fit asked for
        self._set_optimizer(chosen)
        if schedule is not None:
            self.schedule = schedule
        if self.schedule is not None and epochs:  # epochs=0 trains nothing: an open Cosine() stays open
            self.schedule = self.schedule.resolve(self.epoch + epochs)
            self._warn_zero_rate(schedule is None)
        self.optimizer.scheduled_rate = None
        if seed is not None:
            self.rng = backend.new_rng(seed)
        loss_fns = get_loss(loss)
        team = Workers(self, chosen_plan.workers, *loss_fns, correct_count) if chosen_plan.workers > 1 else None
        parallel = team
        if communicator is not None:
            parallel = DataParallel(communicator, self, *loss_fns, correct_count,
                                    evaluate_batches if team is None else team.evaluate_part, workers=team)
            parallel.start(batch_size, fit_settings(self, x, y, loss, batch_size, epochs, shuffle, seed,
                                                    validation_data, stopper))
        self.early_stopping = stopper
        on_batch, on_epoch = self._with_conventions(on_batch, on_epoch, verbose, epochs, hooks)
        self.stop_training = False
        conventions.call(hooks, "on_train_begin", {})
        with threads.blas_threads(chosen_plan.blas_threads):
            loop.run_epochs(self, x, y, loss_fns, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                            validation_data=validation_data, on_batch=on_batch, on_epoch=on_epoch,
                            parallel=parallel, stopper=stopper)
        conventions.call(hooks, "on_train_end", {k: v[-1] for k, v in self.history.items() if v})
        return self.history

    def _with_conventions(self, on_batch, on_epoch, verbose: int, epochs: int, hooks: list):
        """``on_batch`` and ``on_epoch`` extended by the progress display and Keras's callbacks."""
        progress = conventions.Progress(verbose, self.epoch + epochs) if verbose else None

        def keras_batch(logs: dict) -> None:
            conventions.call(hooks, "on_train_batch_end", logs["batch"] - 1, logs)

        def keras_epoch(logs: dict) -> bool:
            conventions.call(hooks, "on_epoch_end", logs["epoch"] - 1, logs)
            return bool(self.stop_training)

        return (conventions.chained(on_batch, progress.on_batch if progress else None,
                                    keras_batch if hooks else None),
                conventions.chained(progress.on_epoch if progress else None, keras_epoch if hooks else None,
                                    on_epoch))

    # -- the choices fit and compile share ----------------------------------------------------
    def _plan(self, who: str, workers: "int | None", batch: int, ranks_on_node: int = 1) -> "threads.Plan":
        kind = "cpu" if self.device.name == "cpu" else self.device.name
        statistics = who == "fit" and any(layer.buffers for layer in self.layers)  # inference uses running ones
        # the matrix work matters only where the default chooses the workers of a CPU model
        flops = roofline.matrix_flops(self.layers, train=who == "fit") if workers is None and kind == "cpu" else None
        self.parallelism = threads.plan(who, workers, batch, kind, ranks_on_node, statistics, flops)
        return self.parallelism

    def _warn_zero_rate(self, inherited: bool) -> None:
        """A :class:`~xpcnn.optim.ZeroRateWarning` when the schedule gives rate 0 from this fit's first step."""
        opt = self.optimizer
        if self.schedule.learning_rate(opt.learning_rate, opt.iterations, self.epoch) != 0:
            return
        try:
            spec = self.schedule.spec()
        except ConfigError:
            spec = repr(self.schedule)
        whence = "the model's schedule (from an earlier fit or a checkpoint)" if inherited else "the schedule"
        warnings.warn(f"fit: {whence} {spec} gives learning rate 0 from epoch {self.epoch + 1} on, "
                      f"so this fit changes nothing; set model.schedule = None to train at the base rate "
                      f"{opt.learning_rate:g}, or pass schedule=...", ZeroRateWarning, stacklevel=3)

    def _loss_or_default(self, loss, who: str, infer: bool = False):
        chosen = conventions.canonical_loss(loss if loss is not None else self.loss)
        if chosen is None and infer:
            chosen = loss_for_output(self.layers[-1], who)
        if chosen is None:
            raise ConfigError(f"{who}: the model has no loss yet; pass loss=..., or call compile(loss=...) or "
                              f"fit(...) first")
        get_loss(chosen if chosen != conventions.SPARSE else "categorical_cross_entropy")
        return chosen

    def _optimizer_for(self, optimizer: "Optimizer | None", learning_rate: "float | None", who: str) -> Optimizer:
        """The optimizer ``fit`` or ``compile`` will use: ``optimizer``, else the model's, else
        ``SGD(learning_rate)`` (:data:`DEFAULT_LEARNING_RATE` when not given). ``learning_rate`` is checked
        here, and refused beside an ``optimizer`` of another rate; nothing is changed: ``fit`` sets the
        model's optimizer to a given rate once every argument has passed its checks."""
        if learning_rate is not None:
            learning_rate = number(who, "learning_rate", learning_rate, low=0.0, low_open=True)
        if check_optimizer(optimizer) is not None:
            if learning_rate is not None and learning_rate != optimizer.learning_rate:
                raise ConfigError(
                    f"{who}: got optimizer={optimizer!r} and learning_rate={learning_rate:g}; the rate belongs to "
                    f"the optimizer: pass {type(optimizer).__name__}(learning_rate={learning_rate:g}, ...) alone")
            return optimizer
        own = check_optimizer(self.optimizer, "model.optimizer")  # set by hand, perhaps
        return own if own is not None else SGD(DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate)

    def _set_optimizer(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer if optimizer is self.optimizer else optimizer.to(self.device)


#: The loss each output layer calls for, as PyTorch's and Keras's users pair them.
OUTPUT_LOSSES = {Softmax: "categorical_cross_entropy", Sigmoid: "binary_cross_entropy"}


def loss_for_output(layer, who: str) -> str:
    """The loss ``layer`` (a model's last) calls for: categorical cross-entropy after a Softmax,
    binary cross-entropy after a Sigmoid; any other output is a :class:`ConfigError` asking for one,
    since a cross-entropy on outputs that are not probabilities trains silently to nonsense."""
    for kind, name in OUTPUT_LOSSES.items():
        if isinstance(layer, kind):
            return name
    raise ConfigError(f"{who}: the model has no loss and its output layer {layer!r} is neither Softmax nor "
                      f"Sigmoid, so none follows from it; pass loss=... (one of {sorted(LOSSES)}) or call "
                      f"compile(loss=...) first")
