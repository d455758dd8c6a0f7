"""The textbook optimizer updates, written from their papers, one step at a time in NumPy float64.

The tests and ``xpcnn-doctor`` check :mod:`xpcnn.optim` against them.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def optimizer_steps(name: str, param, grads: list, learning_rate: float, momentum: float = 0.9,
                    beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """``param`` after one update per gradient in ``grads``, by the textbook rule of ``name``.

    ``sgd``: ``P ← P - η g``; ``momentum``: ``v ← μ v + g``, ``P ← P - η v``; ``adam``: Kingma and
    Ba's Algorithm 1 with the bias corrections ``m / (1 - β₁ᵗ)``, ``v / (1 - β₂ᵗ)``.
    """
    p = np.array(param, dtype=np.float64)
    velocity, m, v = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        if name == "sgd":
            p = p - learning_rate * g
        elif name == "momentum":
            velocity = momentum * velocity + g
            p = p - learning_rate * velocity
        elif name == "adam":
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            p = p - learning_rate * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        else:
            raise ConfigError(f"optimizer_steps: unknown rule {name!r}: expected 'sgd', 'momentum' or 'adam'")
    return p
