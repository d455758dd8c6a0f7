"""The correctness checks, in the order printed: the parity cases (:mod:`xpcnn.testing.parity`), then the
derivation's experiment, which must reach its accuracy on the device.

The experiment (``tests/test_learning.py``, ``docs/derivation.md``): the derivation's network
(Conv 5×3×3, Sigmoid, Dense 100, Sigmoid, Dense 2, Sigmoid), binary cross-entropy, plain gradient
descent one sample at a time (batch 1, η = 0.1), 20 epochs, seed 0, on the first 100 zeros and 100
ones of the embedded real-MNIST sample; tested on the other 100 of each: accuracy at least 98%.
"""

from __future__ import annotations

import time
from typing import Iterator

from array_api_compat import array_namespace

from ..datasets import load_sample
from ..layers import Convolutional, Dense, Reshape, Sigmoid
from ..model import Sequential
from ..testing.parity import Check, parity_checks

ACCURACY = 0.98
EPOCHS = 20


def derivation_data() -> "tuple[tuple, tuple]":
    """``((x_train, y_train), (x_test, y_test))``: 100 + 100 digits 0 and 1 each, float32, one-hot."""
    images, labels = load_sample()
    xp = array_namespace(images, labels)
    zeros, ones = xp.nonzero(labels == 0)[0], xp.nonzero(labels == 1)[0]
    train = xp.concat([zeros[:100], ones[:100]])
    test = xp.concat([zeros[100:200], ones[100:200]])
    x = xp.astype(images[:, None, ...], xp.float32) / 255.0
    y = xp.take(xp.eye(2, dtype=xp.float32), xp.astype(labels == 1, xp.int64), axis=0)
    return ((xp.take(x, train, axis=0), xp.take(y, train, axis=0)),
            (xp.take(x, test, axis=0), xp.take(y, test, axis=0)))


def seed_network(device, dtype: str = "float32") -> Sequential:
    """The derivation's network, seed 0."""
    return Sequential([
        Convolutional((1, 28, 28), 3, 5), Sigmoid(), Reshape((5, 26, 26), (5 * 26 * 26,)),
        Dense(5 * 26 * 26, 100), Sigmoid(), Dense(100, 2), Sigmoid(),
    ], seed=0, device=device, dtype=dtype)


def check_training(device, epochs: int = EPOCHS) -> "tuple[Check, dict]":
    """Train the derivation's experiment on ``device``; ok when the held-out accuracy reaches 98%."""
    check = Check(f"training: the derivation's experiment on {device}, {epochs} epochs, accuracy >= {ACCURACY:.0%}",
                  tolerance=ACCURACY)
    details: dict = {"epochs": epochs, "required_accuracy": ACCURACY}
    start = time.perf_counter()
    try:
        (x, y), (x_test, y_test) = derivation_data()
        model = seed_network(device)
        history = model.fit(x, y, loss="binary_cross_entropy", epochs=epochs, batch_size=1, learning_rate=0.1,
                            seed=0)
        result = model.evaluate(x_test, y_test, loss="binary_cross_entropy")
        accuracy, loss = float(result["accuracy"]), float(result["loss"])
        details.update({"accuracy": accuracy, "test_loss": loss, "train_loss": [float(v) for v in history["loss"]]})
        check.ok = accuracy >= ACCURACY
        check.worst, check.worst_array = 1.0 - accuracy, "error rate"
        if not check.ok:
            check.problems.append(f"held-out accuracy {accuracy:.3f} < {ACCURACY}")
    except Exception as exc:  # the verdict reports it; the doctor goes on
        check.ok, check.worst = False, float("inf")
        check.problems.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    check.seconds = details["seconds"] = time.perf_counter() - start
    return check, details


def correctness(device) -> "Iterator[Check]":
    """Every parity check on ``device``, run one at a time as the caller asks for the next."""
    for _, run in parity_checks(device):
        yield run()
