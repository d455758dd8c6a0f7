"""PyTorch names for an xpcnn model's tensors: the state dict of the equivalent ``torch.nn.Sequential``.

Layer ``i`` of an xpcnn :class:`~xpcnn.model.Sequential` is module ``i`` of the equivalent
PyTorch ``nn.Sequential`` (one module per layer, in order), so its tensors are named
``"<i>.<name>"``::

    xpcnn layer                     PyTorch module            tensors (xpcnn name -> PyTorch name)
    Convolutional(bias="tied")      Conv2d(C, D, k, stride, padding)   kernels -> weight (D, C, k, k)
                                                                       biases  -> bias (D,)
    Convolutional(bias="untied")    no PyTorch module        kernels -> weight (D, C, k, k)
                                                              biases  -> untied_bias (D, Ho, Wo)
    Convolutional(bias="none")      Conv2d(..., bias=False)   kernels -> weight
    Dense(in, out)                  Linear(in, out)           weights -> weight (out, in), bias -> bias
    BatchNorm2D(C), BatchNorm1D(F)  BatchNorm2d, BatchNorm1d  gamma -> weight, beta -> bias (C,);
                                    (same eps and momentum)   buffers running_mean, running_var (C,)
    Sigmoid, Tanh, ReLU, Softmax    Sigmoid, Tanh, ReLU, Softmax(dim=-1)
    MaxPool2D(k), AvgPool2D(k)      MaxPool2d(k), AvgPool2d(k)
    GlobalAveragePool2D             Sequential(AdaptiveAvgPool2d(1), Flatten())
    Dropout(rate)                   Dropout(rate)
    Reshape to (F,), Flatten        Flatten()

xpcnn keeps PyTorch's layouts (``Dense`` weights ``(out, in)``, kernels ``(D, C, k, k)``), so no
tensor is transposed. An untied bias (the derivation's ``B_i`` of shape ``(Ho, Wo)``) has no
PyTorch equivalent: ``Conv2d`` has one bias per channel. Such a file loads into
``Conv2d(bias=False)`` only with ``strict=False``, and the untied bias needs a module of your own
(:mod:`xpcnn.testing.torch_twins` has one, ``UntiedConv2d``).

PyTorch's BatchNorm also keeps ``num_batches_tracked``, a step counter that only matters for
``momentum=None`` (a cumulative average), which xpcnn does not have. It is not written (PyTorch's
``load_state_dict`` fills it in, with 0, when a file lacks it) and it is ignored when read.

Each layer class has one entry in :data:`TORCH_NAMES`; a layer without one cannot be exported,
and the error names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ... import backend
from ...errors import ExportError
from ...layers import (
    AvgPool2D, BatchNorm1D, BatchNorm2D, Convolutional, Dense, Dropout, Flatten, GlobalAveragePool2D, MaxPool2D, ReLU,
    Reshape, Sigmoid, Softmax, Tanh,
)
from ...layers.base import Layer


@dataclass(frozen=True)
class TensorName:
    """One tensor of layer ``index``: ``layer.<group>[key]`` is PyTorch's ``name``."""

    index: int
    group: str  # "params" or "buffers"
    key: str
    name: str

    def array(self, layer: Layer):
        return getattr(layer, self.group)[self.key]


def _conv(layer: Convolutional) -> dict:
    names = {("params", "kernels"): "weight"}
    if layer.bias != "none":
        names[("params", "biases")] = "bias" if layer.bias == "tied" else "untied_bias"
    return names


def _dense(layer: Dense) -> dict:
    return {("params", "weights"): "weight", ("params", "bias"): "bias"}


def _batchnorm(layer: "BatchNorm2D | BatchNorm1D") -> dict:
    return {("params", "gamma"): "weight", ("params", "beta"): "bias",
            ("buffers", "running_mean"): "running_mean", ("buffers", "running_var"): "running_var"}


def _nothing(layer: Layer) -> dict:
    return {}


#: Layer class -> ``{(group, xpcnn key): PyTorch name}`` (exact classes: a subclass needs its own entry).
TORCH_NAMES: "dict[type, Callable[[Layer], dict]]" = {
    Convolutional: _conv,
    Dense: _dense,
    BatchNorm2D: _batchnorm, BatchNorm1D: _batchnorm,
    MaxPool2D: _nothing, AvgPool2D: _nothing, GlobalAveragePool2D: _nothing, Dropout: _nothing,
    Reshape: _nothing, Flatten: _nothing,
    Sigmoid: _nothing, Tanh: _nothing, ReLU: _nothing, Softmax: _nothing,
}


def check_convertible(layers, what: str, known: "dict[type, object]") -> None:
    """One :class:`ExportError` naming *every* layer ``what`` has no mapping for (exact classes), if any."""
    missing = [f"layer {i} {layer!r}" for i, layer in enumerate(layers) if type(layer) not in known]
    if missing:
        names = ", ".join(sorted(cls.__name__ for cls in known))
        raise ExportError(f"{what}: cannot convert {'; '.join(missing)} (no mapping; layers that have one: {names})")


def tensor_names(model) -> "list[TensorName]":
    """Every parameter and buffer of ``model`` with its PyTorch state-dict name, layer by layer."""
    check_convertible(model.layers, "PyTorch names", TORCH_NAMES)
    names = []
    for i, layer in enumerate(model.layers):
        mapping = TORCH_NAMES[type(layer)]
        names += [TensorName(i, group, key, f"{i}.{name}") for (group, key), name in mapping(layer).items()]
    return names


def state_dict(model) -> dict:
    """``{PyTorch name: NumPy array}``: host copies of every tensor, in the model's dtype and PyTorch's layouts.

    The arrays are moved to the host explicitly (:func:`xpcnn.backend.to_numpy`), from any device.
    """
    return {entry.name: backend.to_numpy(entry.array(model.layers[entry.index])) for entry in tensor_names(model)}
