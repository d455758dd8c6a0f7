"""The same network in PyTorch, with a copy of the xpcnn model's weights: the speed reference of
``scripts/bench.py`` and ``xpcnn-doctor`` (``torch`` is passed in: nothing here imports it).
"""

from __future__ import annotations

import numpy as np

import xpcnn as xc

from ..errors import ConfigError


def torch_model(model: xc.Sequential, torch, device: str, dtype: str):
    """A ``torch.nn.Sequential`` with the xpcnn model's layers and a copy of its weights."""
    nn = torch.nn
    tdtype = getattr(torch, dtype)

    def tensor(a):
        return torch.tensor(np.asarray(xc.to_numpy(a)), dtype=tdtype, device=device)

    class UntiedConv2d(nn.Module):
        """``Y_i = B_i + Σ_j X_j ⋆ K_ij`` with one bias per output element, like xpcnn's default."""

        def __init__(self, conv):
            super().__init__()
            self.conv = nn.Conv2d(conv.input_shape[0], conv.depth, conv.kernel_size, padding=conv.padding, bias=False)
            self.bias = nn.Parameter(tensor(conv.biases))

        def forward(self, x):
            return self.conv(x) + self.bias

    modules = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Convolutional":
            if layer.bias == "untied":
                module = UntiedConv2d(layer)
                module.conv.weight = nn.Parameter(tensor(layer.kernels))
            else:
                module = nn.Conv2d(layer.input_shape[0], layer.depth, layer.kernel_size, padding=layer.padding)
                module.weight, module.bias = nn.Parameter(tensor(layer.kernels)), nn.Parameter(tensor(layer.biases))
        elif name == "Dense":
            module = nn.Linear(layer.input_size, layer.output_size)
            module.weight, module.bias = nn.Parameter(tensor(layer.weights)), nn.Parameter(tensor(layer.bias))
        elif name in ("Reshape", "Flatten"):
            module = nn.Flatten()
        elif name == "MaxPool2D":
            module = nn.MaxPool2d(layer.pool_size)
        elif name == "Softmax":
            module = nn.Softmax(dim=-1)
        elif name in ("Sigmoid", "Tanh", "ReLU"):
            module = getattr(nn, name)()
        else:
            raise ConfigError(f"no PyTorch equivalent for {layer!r}")
        modules.append(module)
    return nn.Sequential(*modules).to(device=device, dtype=tdtype)


def torch_loss(torch, name: str):
    f = torch.nn.functional
    if name == "mse":
        return f.mse_loss
    if name == "binary_cross_entropy":
        return f.binary_cross_entropy
    if name == "categorical_cross_entropy":
        def cce(out, y):
            eps = torch.finfo(out.dtype).eps
            return -(y * torch.log(out.clamp(eps, 1 - eps))).sum() / out.numel()
        return cce
    raise ConfigError(f"no PyTorch equivalent for loss {name!r}")
