"""PyTorch as an oracle: the same network, built from an xpcnn model with a copy of its weights.

PyTorch was written by other people, so agreeing with it is evidence the derivation was followed.
It is the tests' oracle (:func:`torch_twin`), and the speed reference of ``scripts/bench.py`` and
``xpcnn-doctor`` (:func:`torch_model`). ``torch`` is passed in or imported where it is needed:
importing this module does not import it.

Layer ``i`` becomes module ``i`` of an ``nn.Sequential``, and the weights go over by the
state-dict names the library writes (:mod:`xpcnn.io.export.names`), so there is one naming.
Only layers with an exact PyTorch equivalent are mapped; any other raises, naming the layer, so
a new zoo layer must be added here.
"""

from __future__ import annotations

from .. import layers as xc
from ..model import Sequential
from ..backend import to_numpy
from ..errors import ConfigError
from ..io.export.names import state_dict, tensor_names


def untied_conv2d(torch, conv):
    """``Conv2d(bias=False)`` plus the derivation's untied bias ``B: (D, Ho, Wo)``, a parameter named
    ``untied_bias`` (:mod:`xpcnn.io.export.names`): ``Y_i = B_i + Σ_j X_j ⋆ K_ij``."""
    nn = torch.nn

    class UntiedConv2d(nn.Conv2d):
        def __init__(self):
            super().__init__(conv.input_shape[0], conv.depth, conv.kernel_size, stride=conv.stride,
                             padding=conv.padding, bias=False)
            self.untied_bias = nn.Parameter(torch.zeros(conv.depth, *conv.out_hw))

        def forward(self, x):
            return super().forward(x) + self.untied_bias

    return UntiedConv2d()


def torch_module(torch, layer):
    """The PyTorch module of one xpcnn layer (its parameters not yet set), or ConfigError."""
    nn = torch.nn
    kind = type(layer)
    if kind is xc.Convolutional:
        if layer.bias == "untied":
            return untied_conv2d(torch, layer)
        return nn.Conv2d(layer.input_shape[0], layer.depth, layer.kernel_size, stride=layer.stride,
                         padding=layer.padding, bias=layer.bias == "tied")
    if kind is xc.Dense:
        return nn.Linear(layer.input_size, layer.output_size)
    if kind is xc.MaxPool2D:
        return nn.MaxPool2d(layer.pool_size)
    if kind is xc.AvgPool2D:
        return nn.AvgPool2d(layer.pool_size)
    if kind is xc.GlobalAveragePool2D:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if kind in (xc.BatchNorm2D, xc.BatchNorm1D):
        batchnorm = nn.BatchNorm2d if kind is xc.BatchNorm2D else nn.BatchNorm1d
        return batchnorm(layer.num_channels, eps=layer.eps, momentum=layer.momentum)
    if kind is xc.Dropout:
        return nn.Dropout(layer.rate)
    if kind is xc.Reshape and len(layer.output_shape(layer.input_shape)) != 1:
        raise ConfigError(f"only a Reshape that flattens has a PyTorch equivalent, not {layer!r}")
    simple = {
        xc.Sigmoid: nn.Sigmoid, xc.Tanh: nn.Tanh, xc.ReLU: nn.ReLU,
        xc.Softmax: lambda: nn.Softmax(dim=-1), xc.Reshape: nn.Flatten, xc.Flatten: nn.Flatten,
    }
    if kind in simple:
        return simple[kind]()
    raise ConfigError(f"no PyTorch equivalent for {layer!r}; add one in xpcnn/testing/torch_twins.py")


def torch_sequential(model: Sequential, dtype=None, module_of=torch_module):
    """The equivalent ``torch.nn.Sequential``, module ``i`` for layer ``i``, with PyTorch's initial weights.

    ``module_of(torch, layer)`` builds each module (:func:`torch_twin` swaps Dropout's).
    """
    import torch

    net = torch.nn.Sequential(*(module_of(torch, layer) for layer in model.layers))
    return net.to(dtype or (torch.float64 if model.dtype == "float64" else torch.float32))


def torch_model(model: Sequential, torch, device: str, dtype: str):
    """A ``torch.nn.Sequential`` with the xpcnn model's layers and a copy of its weights, on ``device``."""
    net = torch_sequential(model, getattr(torch, dtype))
    net.load_state_dict({k: torch.tensor(v) for k, v in state_dict(model).items()}, strict=True)
    return net.to(device)


def torch_loss(torch, name: str):
    """The xpcnn loss ``name`` from PyTorch's own functions (each the mean over all N·K elements)."""
    f = torch.nn.functional
    if name == "binary_cross_entropy":
        return f.binary_cross_entropy
    if name == "mse":
        return f.mse_loss
    if name == "categorical_cross_entropy":  # nll_loss is the mean over N samples: divide by K too
        return lambda out, y: f.nll_loss(torch.log(out), y.argmax(dim=1)) / out.shape[1]
    raise ConfigError(f"no PyTorch equivalent for loss {name!r}")


def same_mask_dropout(torch, layer):
    """Dropout with xpcnn's own mask: the twin multiplies by the mask (``B / (1 - rate)``) that the
    layer's last training forward drew, so run the xpcnn model first. PyTorch's own generator
    cannot draw the same mask; with the same mask, everything else is compared exactly. In eval
    mode (or before any training forward) it is the identity, as ``nn.Dropout`` is."""

    class SameMask(torch.nn.Module):
        def forward(self, x):
            saved = layer._saved
            if not self.training or saved is None or saved["mask"] is None:
                return x
            return x * torch.tensor(to_numpy(saved["mask"])).to(x.dtype)

    return SameMask()


def _twin_module(torch, layer):
    return same_mask_dropout(torch, layer) if type(layer) is xc.Dropout else torch_module(torch, layer)


def torch_twin(model: Sequential):
    """``(torch.nn.Sequential, [(xpcnn layer, param name, torch Parameter), ...])`` in float64, for
    comparing values and gradients; Dropout reuses xpcnn's mask (:func:`same_mask_dropout`).

    The weights go over by the names of :func:`xpcnn.io.export.state_dict` (the library owns the
    naming; ``strict=True``: every name must be the module's), and the pairs come from the same names.
    """
    import torch

    net = torch_sequential(model, torch.float64, module_of=_twin_module)
    net.load_state_dict({k: torch.tensor(v) for k, v in state_dict(model).items()}, strict=True)
    pairs = [(model.layers[e.index], e.key, net.get_parameter(e.name))
             for e in tensor_names(model) if e.group == "params"]
    return net, pairs
