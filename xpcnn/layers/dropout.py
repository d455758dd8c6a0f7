"""Inverted dropout (Srivastava et al., 2014), with the scaling at training time.

For a batch ``X`` of any shape and ``rate = r`` (the probability of dropping a value), a training
forward pass draws a mask ``B`` of independent Bernoulli(1 - r) values, one per element::

    Y = X ⊙ B / (1 - r)                B ∈ {0, 1}, P(B = 1) = 1 - r       Y: the shape of X
    ∂E/∂X = ∂E/∂Y ⊙ B / (1 - r)

so ``E[Y] = X`` and inference is the identity (``training=False``: ``Y = X``). The mask kept
for backward is ``B / (1 - r)`` in the data's dtype: survivors are multiplied by exactly that
value.

The mask is ``U ≥ r`` for ``U ~ U[0, 1)`` drawn on the data's device
(:func:`xpcnn.backend.uniform_from_key`) from one key of the layer's generator ``self.rng``.
In a :class:`~xpcnn.model.Sequential` that generator is the model's (seeded by ``seed``, kept in
checkpoints), so the same seed gives the same masks on a device, and a resumed run draws the
masks the uninterrupted one would have. A layer used alone draws from its own ``seed``.

In data-parallel training each rank draws ``U`` for the whole global batch and keeps its own rows
(:attr:`~xpcnn.layers.base.Layer.batch_rows`), so the masks, like the parameters, do not depend
on the number of ranks. That costs each rank the random numbers of the whole batch, which is small
next to the convolutions.
"""

from __future__ import annotations

from ..backend.namespaces import array_namespace
from .. import backend
from .._checks import number
from ..errors import XpcnnDtypeError
from .base import Layer


class Dropout(Layer):
    """``(N, ...) -> (N, ...)``: each value zeroed with probability ``rate`` in training, else scaled."""

    preserves_shape = True

    uses_rng = True

    def __init__(self, rate: float = 0.5, *, seed=None):
        super().__init__()
        self.rate = number("Dropout", "rate", rate, low=0.0, high=1.0, high_open=True)
        #: The generator masks come from (the model's, once in a Sequential).
        self.rng = backend.new_rng(seed)

    def config(self) -> dict:
        return {"rate": self.rate}

    def forward(self, x, training=True):
        x = self.check_input(x)
        dtype = backend.dtype_name(x)
        if dtype not in ("float32", "float64"):
            raise XpcnnDtypeError(f"{self!r}: expected float32 or float64 input, got {dtype}; cast it (x.astype)")
        if not training:
            self.save_for_backward(False)
            return x
        if self.rate == 0.0:
            self.save_for_backward(True, mask=None, shape=tuple(x.shape))
            return x
        xp = array_namespace(x)
        where = backend.Device.of(x)
        n, rest = x.shape[0], tuple(x.shape[1:])
        start, total = self.batch_rows if self.batch_rows is not None else (0, n)
        # the whole batch's U, then this rank's rows: 1, 2 or 4 ranks drop the same values
        u = backend.uniform_from_key(backend.random_key(self.rng), (total, *rest), dtype, where)
        if (start, total) != (0, n):
            u = u[start:start + n, ...]
        mask = xp.astype(u >= self.rate, x.dtype) * (1.0 / (1.0 - self.rate))
        self.save_for_backward(True, mask=mask, shape=tuple(x.shape))
        return x * mask

    def backward(self, output_gradient, learning_rate=None):
        saved = self.saved_for_backward()
        self.check_gradient(output_gradient, saved["shape"])
        mask = saved["mask"]
        return output_gradient if mask is None else output_gradient * mask
