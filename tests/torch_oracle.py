"""PyTorch as an oracle: the same network, built from an xpcnn model with a copy of its weights.

PyTorch was written by other people, so agreeing with it is evidence the derivation was followed:
``torch_twin(model)`` returns a ``torch.nn.Sequential`` and the pairs ``(layer, name, parameter)``
that tie each xpcnn parameter to its PyTorch counterpart. Only layers with an exact PyTorch
equivalent are mapped; any other raises, naming the layer, so a new zoo layer must be added here.
"""

from __future__ import annotations

import numpy as np

import xpcnn as xc


def _tensor(torch, array):
    return torch.tensor(np.asarray(xc.to_numpy(array)))


def _conv(torch, layer, pairs):
    """``Y_i = B_i + Σ_j X_j ⋆ K_ij``: PyTorch's Conv2d is the same correlation; an untied bias is
    one learned ``(D, Ho, Wo)`` tensor added after it."""
    nn = torch.nn
    untied = layer.bias == "untied"
    conv = nn.Conv2d(layer.input_shape[0], layer.depth, layer.kernel_size, padding=layer.padding,
                     stride=layer.stride, bias=layer.bias == "tied")
    conv.weight = nn.Parameter(_tensor(torch, layer.kernels))
    pairs.append((layer, "kernels", conv.weight))
    if layer.bias == "none":
        return conv
    if not untied:
        conv.bias = nn.Parameter(_tensor(torch, layer.biases))
        pairs.append((layer, "biases", conv.bias))
        return conv

    class UntiedBias(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bias = conv, nn.Parameter(_tensor(torch, layer.biases))

        def forward(self, x):
            return self.conv(x) + self.bias

    module = UntiedBias()
    pairs.append((layer, "biases", module.bias))
    return module


def _dense(torch, layer, pairs):
    """``Y = X Wᵀ + b``: PyTorch's Linear with the same ``(out, in)`` weight."""
    nn = torch.nn
    linear = nn.Linear(layer.input_size, layer.output_size)
    linear.weight, linear.bias = nn.Parameter(_tensor(torch, layer.weights)), nn.Parameter(_tensor(torch, layer.bias))
    pairs += [(layer, "weights", linear.weight), (layer, "bias", linear.bias)]
    return linear


def _batchnorm(torch, layer, pairs):
    """PyTorch's BatchNorm2d / BatchNorm1d with the same γ, β, running statistics, momentum and ε."""
    kind = torch.nn.BatchNorm2d if isinstance(layer, xc.BatchNorm2D) else torch.nn.BatchNorm1d
    bn = kind(layer.num_channels, eps=layer.eps, momentum=layer.momentum)
    bn.weight = torch.nn.Parameter(_tensor(torch, layer.params["gamma"]))
    bn.bias = torch.nn.Parameter(_tensor(torch, layer.params["beta"]))
    bn.running_mean = _tensor(torch, layer.buffers["running_mean"])
    bn.running_var = _tensor(torch, layer.buffers["running_var"])
    pairs += [(layer, "gamma", bn.weight), (layer, "beta", bn.bias)]
    return bn


def _dropout(torch, layer):
    """Dropout with xpcnn's own mask: the twin multiplies by the mask (``B / (1 - rate)``) that the
    layer's last training forward drew, so run the xpcnn model first. PyTorch's own generator
    cannot draw the same mask; with the same mask, everything else is compared exactly."""

    class SameMask(torch.nn.Module):
        def forward(self, x):
            saved = layer._saved
            if not self.training or saved is None or saved["mask"] is None:
                return x
            return x * _tensor(torch, saved["mask"]).to(x.dtype)

    return SameMask()


def torch_twin(model: xc.Sequential):
    """``(torch.nn.Sequential, [(xpcnn layer, param name, torch Parameter), ...])`` in float64."""
    import torch

    nn = torch.nn
    simple = {
        xc.Sigmoid: nn.Sigmoid, xc.Tanh: nn.Tanh, xc.ReLU: nn.ReLU,
        xc.Softmax: lambda: nn.Softmax(dim=-1), xc.Reshape: nn.Flatten, xc.Flatten: nn.Flatten,
    }
    pairs: list = []
    modules = []
    for layer in model.layers:
        kind = type(layer)
        if kind is xc.Convolutional:
            modules.append(_conv(torch, layer, pairs))
        elif kind is xc.Dense:
            modules.append(_dense(torch, layer, pairs))
        elif kind is xc.MaxPool2D:
            modules.append(nn.MaxPool2d(layer.pool_size))
        elif kind is xc.AvgPool2D:
            modules.append(nn.AvgPool2d(layer.pool_size))
        elif kind is xc.GlobalAveragePool2D:
            modules.append(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
        elif kind in (xc.BatchNorm2D, xc.BatchNorm1D):
            modules.append(_batchnorm(torch, layer, pairs))
        elif kind is xc.Dropout:
            modules.append(_dropout(torch, layer))
        elif kind is xc.Reshape and len(layer.output_shape(layer.input_shape)) != 1:
            raise NotImplementedError(f"torch_twin: only a Reshape that flattens has a twin, not {layer!r}")
        elif kind in simple:
            modules.append(simple[kind]())
        else:
            raise NotImplementedError(
                f"torch_twin: no PyTorch equivalent for {layer!r}; add one in tests/torch_oracle.py")
    return nn.Sequential(*modules).double(), pairs


def torch_loss(torch, name: str):
    """The xpcnn loss ``name`` from PyTorch's own functions (each the mean over all N·K elements)."""
    f = torch.nn.functional
    if name == "binary_cross_entropy":
        return f.binary_cross_entropy
    if name == "mse":
        return f.mse_loss
    if name == "categorical_cross_entropy":  # nll_loss is the mean over N samples: divide by K too
        return lambda out, y: f.nll_loss(torch.log(out), y.argmax(dim=1)) / out.shape[1]
    raise NotImplementedError(f"torch_loss: no PyTorch equivalent for {name!r}")
