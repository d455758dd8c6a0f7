"""Sequential model: a list of layers, trained with mini-batch gradient descent.

    forward:   Y = f_L(... f_2(f_1(X)))
    backward:  ∂E/∂X_l = backward_l(∂E/∂X_{l+1}),  starting from ∂E/∂Y = loss_prime(Y*, Y)
    step:      optimizer.step(layers)   (every layer's params from its grads)

Inputs from any namespace (NumPy arrays for a CUDA model, say) are moved to the model's
device once per batch and cast to its dtype; outputs stay in the model's namespace (use
:func:`xpcnn.to_numpy` to bring them home).

The model knows its loss once :meth:`Sequential.compile` or :meth:`Sequential.fit` has set it
(checkpoints keep it), so ``evaluate`` computes the loss the model was trained with.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

from array_api_compat import array_namespace, is_numpy_array

from . import backend, fit_loop
from . import summary as _summary
from . import training as _training  # not `training`: forward's flag has that name
from .early_stopping import EarlyStopping
from .errors import ConfigError, ConfigTypeError, ShapeError, format_shape
from .layers.base import Layer, ParameterLayer
from .losses import get_loss
from .optimizers import SGD, Optimizer
from .parallel import DataParallel, fit_settings
from .schedules import Schedule, check_schedule
from .validation import integer, one_of

if TYPE_CHECKING:
    from .distributed import Communicator


class Sequential:
    """``Sequential([Convolutional(...), Sigmoid(), ...], seed=0)``.

    ``seed`` draws every layer's parameters from one generator, in order, directly in the final
    ``dtype`` and for the final ``device``, so ``Sequential([Dense(3, 2)], seed=0,
    dtype="float64")`` holds the weights of ``Dense(3, 2, seed=0, dtype="float64")``, and a
    seed gives the same weights on every device. Without a seed the layers keep the parameters
    they were built with (moved and cast when ``device`` or ``dtype`` is given). The model's
    device and dtype are its parameters'.
    """

    def __init__(self, layers: "list[Layer]", *, seed=None, device=None, dtype: "str | None" = None):
        if not isinstance(layers, (list, tuple)):
            raise ConfigTypeError(f"Sequential: layers must be a list of layers, got {type(layers).__name__}")
        self.layers = list(layers)
        if not self.layers:
            raise ConfigError("Sequential: needs at least one layer")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise ConfigTypeError(f"Sequential: layers[{i}] is {layer!r}, not an xpcnn layer")
        if dtype is not None:
            one_of("Sequential", "dtype", dtype, ("float32", "float64"))
        target = backend.get_device(device) if device is not None else None
        self.rng = backend.new_rng(seed)
        placed = set()
        if seed is not None:
            init_rng = backend.new_rng(seed)
            for layer in self.layers:
                if isinstance(layer, ParameterLayer):
                    layer.place(target, dtype).reset_parameters(init_rng)
                    placed.add(id(layer))
        if target is not None or dtype is not None:
            for layer in self.layers:
                if id(layer) not in placed:
                    layer.to(target if target is not None else _layer_device(layer), dtype)
        self._check_shapes()
        first = self.layers[0]
        if hasattr(first, "compute_input_gradient"):
            first.compute_input_gradient = False
        params = [p for layer in self.layers for p in layer.params.values()]
        self.device = backend.device_of(*params) if params else (target or backend.CPU)
        self.dtype = dtype or next((layer.dtype for layer in self.layers if isinstance(layer, ParameterLayer)),
                                   "float32")
        #: The loss: a name from :data:`xpcnn.losses.LOSSES` or a ``(loss, loss_prime)`` pair; set
        #: by :meth:`compile` or :meth:`fit`, kept in checkpoints (names only).
        self.loss: "str | tuple | None" = None
        self.optimizer: "Optimizer | None" = None
        #: The learning-rate schedule ``fit`` follows (:mod:`xpcnn.schedules`), kept in checkpoints.
        self.schedule: "Schedule | None" = None
        #: The :class:`~xpcnn.early_stopping.EarlyStopping` of the last ``fit`` (``None`` without).
        self.early_stopping: "EarlyStopping | None" = None
        self.epoch = 0
        self.history: dict[str, list] = {}
        #: One sample's shape in the first batch the model ran on, when the first layer takes any
        #: shape: what :meth:`summary` walks without ``input_shape``, as Keras builds a model on
        #: its first call.
        self.first_input_shape: "tuple | None" = None

    # -- structure ---------------------------------------------------------------------------
    def _check_shapes(self) -> None:
        """Walk the per-sample shapes through the layers; name both layers where they disagree."""
        shape = None
        previous = None
        for layer in self.layers:
            expected = layer.input_shape
            if shape is not None and expected is not None and tuple(expected) != tuple(shape):
                raise ShapeError(
                    f"{layer!r} expects input {format_shape(expected)} but {previous!r} "
                    f"produces {format_shape(shape)}"
                )
            if expected is not None:
                shape = tuple(expected)
            if shape is not None:
                shape = tuple(layer.output_shape(shape))
            previous = layer
        self.input_shape = self.layers[0].input_shape
        self.output_shape = shape

    def __repr__(self) -> str:
        inner = ",\n".join(f"    {layer!r}" for layer in self.layers)
        return f"Sequential([\n{inner}\n], device={self.device.name!r}, dtype={self.dtype!r})"

    def to(self, device=None, dtype: "str | None" = None) -> "Sequential":
        """Move (and optionally cast) every parameter and the optimizer state; returns ``self``."""
        if dtype is not None:
            one_of("Sequential.to", "dtype", dtype, ("float32", "float64"))
        dev = backend.get_device(device if device is not None else self.device)
        for layer in self.layers:
            layer.to(dev, dtype)
        if self.optimizer is not None:
            self.optimizer.to(dev)
        self.device = dev
        if dtype is not None:
            self.dtype = dtype
        return self

    @property
    def xp(self):
        return self.device.xp

    def parameter_count(self) -> int:
        return sum(math.prod(p.shape) for layer in self.layers for p in layer.params.values())

    def summary(self, input_shape: "tuple | None" = None, *,
                print_fn: "Callable[[str], Any] | None" = print) -> None:
        """Print the layer table (output shapes, parameters, engines, bytes), as Keras's ``summary()`` does.

        ``input_shape`` (one sample's, ``(C, H, W)``) is needed only when the first layer takes
        any shape and the model has not run on a batch yet; ``print_fn`` receives the whole table
        (``None``: ``print``, as in Keras).
        :meth:`summary_text` returns it instead.
        """
        if print_fn is None:
            print_fn = print
        if not callable(print_fn):
            raise ConfigTypeError(f"summary: print_fn must be a function taking the table, or None, got {print_fn!r}")
        print_fn(self.summary_text(input_shape))

    def summary_text(self, input_shape: "tuple | None" = None) -> str:
        """The table :meth:`summary` prints (see :mod:`xpcnn.summary`)."""
        return _summary.summary_text(self, input_shape)

    def compile(self, loss: "str | tuple" = "binary_cross_entropy",
                optimizer: "Optimizer | None" = None) -> "Sequential":
        """Set the loss (and, optionally, the optimizer) that ``fit`` and ``evaluate`` use; returns ``self``."""
        get_loss(loss)  # a bad loss fails here
        self.loss = loss
        if optimizer is not None:
            self._set_optimizer(self._optimizer_for(optimizer, None))
        return self

    # -- data in -----------------------------------------------------------------------------
    def _prepare(self, x):
        """Move ``x`` to the model's device and cast floating or integer data to its dtype."""
        x = backend.to_device(x, self.device)
        xp = self.xp
        dtype = backend.as_dtype(xp, self.dtype)
        if x.dtype != dtype:
            x = xp.astype(x, dtype)
        return x

    def _take(self, x, idx):
        """Rows ``idx`` (host indices) of ``x``, moved: NumPy inputs are sliced on the host first."""
        if is_numpy_array(x):
            return self._prepare(x[idx])
        xp = array_namespace(x)
        return self._prepare(xp.take(x, backend.to_device(idx, backend.Device.of(x)), axis=0))

    def _batch(self, x, y, order, lo: int, hi: int):
        """Batch ``[lo, hi)`` of ``(x, y)``, in ``order`` (host indices) when shuffling."""
        if order is None:
            return self._prepare(x[lo:hi, ...]), self._prepare(y[lo:hi, ...])
        return self._take(x, order[lo:hi]), self._take(y, order[lo:hi])

    def _loss_or_default(self, loss, who: str, default: "str | None" = None):
        chosen = loss if loss is not None else (self.loss if self.loss is not None else default)
        if chosen is None:
            raise ConfigError(f"{who}: the model has no loss yet; pass loss=..., or call compile(loss=...) or "
                              f"fit(...) first")
        get_loss(chosen)
        return chosen

    # -- forward and backward ----------------------------------------------------------------
    def forward(self, x, training: bool = True):
        """``(N, *input_shape) -> (N, *output_shape)`` on the model's device (no batching).

        ``training=False`` (inference) keeps nothing for backward in any layer. A layer that draws
        random numbers (Dropout) draws them from the model's seeded generator ``self.rng``. On
        NumPy the pass may run on xpcnn's own threads (:mod:`xpcnn.backend.threads`, off by
        default).
        """
        batch = x
        key = ("forward", id(self), bool(training), tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", "")))
        with backend.host_threads(key):  # (the first layer names what is wrong with a non-array)
            for layer in self.layers:
                if layer.uses_rng:
                    layer.rng = self.rng
                x = layer.forward(x, training)
        if self.first_input_shape is None and self.input_shape is None:
            self.first_input_shape = tuple(batch.shape[1:])  # a batch every layer took, not one that failed
        return x

    def backward(self, output_gradient):
        """Back-propagate ``∂E/∂Y`` through every layer, filling their ``grads`` (on the host
        threads when they are on, as :meth:`forward`)."""
        key = ("backward", id(self), tuple(getattr(output_gradient, "shape", ())),
               str(getattr(output_gradient, "dtype", "")))
        with backend.host_threads(key):
            for layer in reversed(self.layers):
                output_gradient = layer.backward(output_gradient)
        return output_gradient

    def predict(self, x, batch_size: int = 256):
        """Outputs ``(N, *output_shape)`` for ``x`` (any namespace), in batches, in the model's namespace.

        ``N = 0`` gives an empty ``(0, *output_shape)`` array.
        """
        batch_size = integer("predict", "batch_size", batch_size, minimum=1)
        _training.check_inputs(self, x, "predict")
        if x.shape[0] == 0:
            shape = tuple(x.shape[1:])
            for layer in self.layers:
                shape = tuple(layer.output_shape(shape))
            return backend.to_device(backend.zeros((0, *shape), self.dtype), self.device)
        outs = [self.forward(self._prepare(x[lo:hi, ...]), training=False)
                for lo, hi in _training.batch_bounds(x.shape[0], batch_size)]
        return self.xp.concat(outs, axis=0) if len(outs) != 1 else outs[0]

    def train_step(self, x, y, loss_fn: Callable, loss_prime: Callable, optimizer: Optimizer):
        """One forward, backward and update on a prepared batch; returns ``(loss, output)``.

        The whole step is one pass for the host threads (:mod:`xpcnn.backend.threads`): ``auto``
        times and decides it as one."""
        key = ("step", id(self), tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", "")))
        with backend.host_threads(key):
            out = self.forward(x)
            loss = loss_fn(y, out)
            self.backward(loss_prime(y, out))
            optimizer.step(self.layers)
        return loss, out

    # -- training ----------------------------------------------------------------------------
    def fit(
        self,
        x,
        y,
        *,
        loss: "str | tuple | None" = None,
        epochs: int = 1,
        batch_size: int = 32,
        learning_rate: float = 0.1,
        optimizer: "Optimizer | None" = None,
        shuffle: bool = True,
        seed=None,
        validation_data: "tuple | None" = None,
        on_batch: "Callable[[dict], Any] | None" = None,
        on_epoch: "Callable[[dict], Any] | None" = None,
        communicator: "Communicator | None" = None,
        schedule: "Schedule | None" = None,
        early_stopping: "EarlyStopping | int | None" = None,
    ) -> dict:
        """Train for ``epochs`` more epochs; returns the per-epoch history (also ``self.history``).

        ``loss`` defaults to the model's (from ``compile`` or an earlier ``fit``), else binary
        cross-entropy; it becomes the model's loss. ``optimizer`` defaults to the model's, else
        ``SGD(learning_rate)``. ``seed`` re-seeds the shuffling generator.

        Before any step, ``x`` and ``y`` (and ``validation_data``) are checked: matching shapes, at
        least one sample, no NaN or infinity, and 0/1 (one-hot for categorical cross-entropy)
        targets for the cross-entropies; each failure names the first bad sample.

        Every step's loss is checked (see :mod:`xpcnn.training`): at the first non-finite one,
        training stops with a :class:`~xpcnn.errors.TrainingError` naming the epoch and the step;
        the parameters and optimizer state are left as after the last finite step, and the
        history holds the finished epochs only (``self.epoch`` counts them).

        ``on_batch`` receives ``{epoch, batch, batches, size, loss, correct}`` (``loss`` and the
        batch's number of right answers ``correct`` are 0-d arrays: converting them synchronises
        a GPU), plus Python floats ``running_loss`` and ``running_accuracy`` on the batches where
        fit read them on the host (at most every 0.2 s, and the last batch). ``on_epoch``
        receives the epoch's logs and may return ``True`` to stop.

        ``communicator`` (:func:`xpcnn.distributed.init`) trains data-parallel with the other
        processes of an ``mpiexec`` job (see :mod:`xpcnn.parallel`): ``batch_size`` is the global
        batch, every rank passes the same data, and every rank gets the same parameters and
        logs; callbacks run on every rank (``communicator.rank == 0`` is the one to print).

        ``schedule`` (:mod:`xpcnn.schedules`: ``StepDecay``, ``Cosine``, ``Warmup``, ``Chain``) sets
        the optimizer's rate before every step from its base ``learning_rate``, the optimizer's
        step count and the finished epochs; it becomes the model's (checkpoints keep it) and is
        followed by later ``fit`` calls until replaced (``model.schedule = None`` drops it). A
        ``Cosine()`` without a length ends at this fit's last epoch. Each epoch's logs hold
        ``learning_rate``, the rate of its last step.

        ``early_stopping`` (an :class:`~xpcnn.early_stopping.EarlyStopping`, or an integer patience)
        stops when ``val_loss`` has not improved for ``patience`` epochs and restores the best
        epoch's weights; it needs ``validation_data``. ``model.early_stopping`` reports it.
        """
        epochs = integer("fit", "epochs", epochs, minimum=0)
        batch_size = integer("fit", "batch_size", batch_size, minimum=1)
        loss = self._loss_or_default(loss, "fit", default="binary_cross_entropy")
        _training.check_data(self, x, y, "fit", loss)
        if validation_data is not None:
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise ConfigTypeError("fit: validation_data must be a pair (x, y)")
            _training.check_data(self, *validation_data, "fit (validation_data)", loss)
        stopper = EarlyStopping.of(early_stopping)
        if stopper is not None and validation_data is None:
            raise ConfigError(f"fit: early_stopping watches {stopper.monitor}, which needs validation data; "
                              f"pass validation_data=(x, y)")
        check_schedule(schedule)
        check_schedule(self.schedule, "fit (model.schedule)")  # set by hand, perhaps
        _training.check_batch_sizes(self, x, batch_size, "fit", communicator.size if communicator is not None else 1)
        chosen = self._optimizer_for(optimizer, learning_rate)
        planned = schedule if schedule is not None else self.schedule
        if planned is not None:
            planned.check_base(chosen.learning_rate)
        self.loss = loss
        self._set_optimizer(chosen)
        if schedule is not None:
            self.schedule = schedule
        if self.schedule is not None and epochs:  # epochs=0 trains nothing: an open Cosine() stays open
            self.schedule = self.schedule.resolve(self.epoch + epochs)
        self.optimizer.scheduled_rate = None
        if seed is not None:
            self.rng = backend.new_rng(seed)
        loss_fns = get_loss(loss)
        parallel = None
        if communicator is not None:
            parallel = DataParallel(communicator, self, *loss_fns, _training.correct_count)
            parallel.start(batch_size, fit_settings(self, x, y, loss, batch_size, epochs, shuffle, seed,
                                                    validation_data, stopper))
        self.early_stopping = stopper
        fit_loop.run_epochs(self, x, y, loss_fns, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                            validation_data=validation_data, on_batch=on_batch, on_epoch=on_epoch,
                            parallel=parallel, stopper=stopper)
        return self.history

    def _optimizer_for(self, optimizer: "Optimizer | None", learning_rate: "float | None") -> Optimizer:
        """The optimizer ``fit`` or ``compile`` will use: ``optimizer``, else the model's, else
        ``SGD(learning_rate)``."""
        if check_optimizer(optimizer) is not None:
            return optimizer
        own = check_optimizer(self.optimizer, "model.optimizer")  # set by hand, perhaps
        return own if own is not None else SGD(learning_rate)

    def _set_optimizer(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer if optimizer is self.optimizer else optimizer.to(self.device)

    def evaluate(self, x, y, *, loss: "str | tuple | None" = None, batch_size: int = 256) -> dict:
        """``{"loss", "accuracy"}`` over ``(x, y)``, as Python floats; ``loss`` defaults to the model's."""
        batch_size = integer("evaluate", "batch_size", batch_size, minimum=1)
        loss = self._loss_or_default(loss, "evaluate")
        _training.check_data(self, x, y, "evaluate", loss)
        return self._evaluate(x, y, get_loss(loss), batch_size)

    def _evaluate(self, x, y, loss_fns: tuple, batch_size: int) -> dict:
        loss_fn = loss_fns[0]
        n = x.shape[0]
        total_loss, correct = 0.0, 0.0
        for lo, hi in _training.batch_bounds(n, batch_size):
            yb = self._prepare(y[lo:hi, ...])
            out = self.forward(self._prepare(x[lo:hi, ...]), training=False)
            total_loss = total_loss + loss_fn(yb, out) * yb.shape[0]
            correct = correct + _training.correct_count(self.xp, yb, out)
        return {"loss": float(total_loss) / n, "accuracy": float(correct) / n}


def check_optimizer(value: object, what: str = "optimizer") -> "Optimizer | None":
    """``value`` if it is an xpcnn :class:`~xpcnn.optimizers.Optimizer` or ``None``, else a
    :class:`ConfigTypeError` naming ``what`` (as :func:`~xpcnn.schedules.check_schedule` for schedules)."""
    if value is not None and not isinstance(value, Optimizer):
        raise ConfigTypeError(f"{what} must be an xpcnn Optimizer (SGD, Adam) or None, got {value!r}")
    return value


def _layer_device(layer: Layer):
    params = list(layer.params.values())
    return backend.device_of(*params) if params else backend.CPU


def predict_classes(model: Sequential, x, batch_size: int = 256):
    """Class indices ``(N,)`` in the model's namespace (see :func:`xpcnn.training.output_classes`)."""
    return _training.output_classes(model.predict(x, batch_size))
