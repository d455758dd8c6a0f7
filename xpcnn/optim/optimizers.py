"""Optimizers that update every layer's ``params`` from its ``grads`` in any array namespace.

    SGD            P ← P - η g
    SGD, momentum  v ← μ v + g;  P ← P - η v                      (PyTorch's convention)
    Adam           m ← β₁ m + (1-β₁) g;  v ← β₂ v + (1-β₂) g²
                   P ← P - η m̂ / (√v̂ + ε),  m̂ = m/(1-β₁ᵗ), v̂ = v/(1-β₂ᵗ)

Hyper-parameters stay Python floats, so a float32 model stays float32. State arrays ("slots")
live next to the parameters and move with :meth:`Optimizer.to`.

``η`` above is :attr:`Optimizer.rate`: the base ``learning_rate`` (the optimizer's setting, kept
in checkpoints), or, while ``fit`` follows a schedule (:mod:`xpcnn.optim.schedules`), the rate the
schedule gives the next step (``scheduled_rate``, set by ``fit`` before every step).
"""

from __future__ import annotations

from typing import Any

from ..backend.namespaces import array_namespace
from .. import backend
from ..errors import ConfigError, ConfigTypeError
from .._checks import number


class Optimizer:
    """Base: ``step(layers)`` applies ``update`` to every parameter with a gradient."""

    def __init__(self, learning_rate: float) -> None:
        self.learning_rate = number(type(self).__name__, "learning_rate", learning_rate, low=0.0, low_open=True)
        self.iterations = 0
        self.slots: dict[str, Any] = {}
        #: The schedule's rate for the next step (``fit`` sets it), or ``None``: the base ``learning_rate``.
        self.scheduled_rate: "float | None" = None

    @property
    def rate(self) -> float:
        """The ``η`` of the next step: the scheduled rate, else ``learning_rate``."""
        return self.learning_rate if self.scheduled_rate is None else self.scheduled_rate

    def config(self) -> dict:
        return {"learning_rate": self.learning_rate}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config().items())})"

    def step(self, layers) -> None:
        self.iterations += 1
        for index, layer in enumerate(layers):
            for name, param in layer.params.items():
                grad = layer.grads.get(name)
                if grad is not None:
                    layer.params[name] = self.update(f"{index}.{name}", param, grad)

    def update(self, key: str, param, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def _slot(self, key: str, like):
        if key not in self.slots:
            self.slots[key] = array_namespace(like).zeros_like(like)
        return self.slots[key]

    def state_dict(self) -> dict:
        """``{"type", "config", "iterations", "slots"}``; slots are arrays on the model's device."""
        return {"type": type(self).__name__, "config": self.config(), "iterations": self.iterations,
                "slots": dict(self.slots)}

    def load_state_dict(self, state: dict) -> None:
        self.iterations = int(state["iterations"])
        self.slots = dict(state["slots"])

    def to(self, device) -> "Optimizer":
        self.slots = {k: backend.to_device(v, device) for k, v in self.slots.items()}
        return self


class SGD(Optimizer):
    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0) -> None:
        super().__init__(learning_rate)
        self.momentum = number("SGD", "momentum", momentum, low=0.0, high=1.0, high_open=True)

    def config(self):
        return {"learning_rate": self.learning_rate, "momentum": self.momentum}

    def update(self, key, param, grad):
        if self.momentum:
            velocity = _axpy(self.momentum, self._slot(key + ".velocity", param), grad)
            self.slots[key + ".velocity"] = velocity
            grad = velocity
        return _axpy(-self.rate, grad, param)


class Adam(Optimizer):
    def __init__(self, learning_rate: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(learning_rate)
        self.beta1 = number("Adam", "beta1", beta1, low=0.0, high=1.0, high_open=True)
        self.beta2 = number("Adam", "beta2", beta2, low=0.0, high=1.0, high_open=True)
        self.eps = number("Adam", "eps", eps, low=0.0, low_open=True)

    def config(self):
        return {"learning_rate": self.learning_rate, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def update(self, key, param, grad):
        xp = array_namespace(param)
        m = _axpy(self.beta1, self._slot(key + ".m", param), (1.0 - self.beta1) * grad)
        v = _axpy(self.beta2, self._slot(key + ".v", param), (1.0 - self.beta2) * (grad * grad))
        self.slots[key + ".m"], self.slots[key + ".v"] = m, v
        t = self.iterations
        m_hat = m / (1.0 - self.beta1 ** t)
        v_hat = v / (1.0 - self.beta2 ** t)
        denominator = xp.sqrt(v_hat)
        denominator += self.eps
        step = m_hat * self.rate
        step /= denominator
        return _axpy(-1.0, step, param)


def _axpy(a: float, x, y):
    """``a x + y`` in a new array, allocated once (``a·x``, then ``y`` added in place): the same rounding as
    ``a * x + y``, one large temporary fewer, which makes a batch-1 step measurably faster."""
    out = x * a
    out += y
    return out


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get_optimizer(name: str, learning_rate: float, **kwargs) -> Optimizer:
    """``"sgd"``, ``"momentum"`` (SGD with momentum 0.9) or ``"adam"``."""
    if name == "momentum":
        return SGD(learning_rate, momentum=kwargs.pop("momentum", 0.9))
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}: expected 'sgd', 'momentum' or 'adam'")
    return OPTIMIZERS[name](learning_rate, **kwargs)


def check_optimizer(value: object, what: str = "optimizer") -> "Optimizer | None":
    """``value`` if it is an xpcnn :class:`Optimizer` or ``None``, else a :class:`ConfigTypeError`
    naming ``what`` (as :func:`~xpcnn.optim.schedules.check_schedule` for schedules)."""
    if value is not None and not isinstance(value, Optimizer):
        raise ConfigTypeError(f"{what} must be an xpcnn Optimizer (SGD, Adam) or None, got {value!r}")
    return value
