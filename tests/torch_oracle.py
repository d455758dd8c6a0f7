"""PyTorch as an oracle: the same network, built from an xpcnn model with a copy of its weights.

PyTorch was written by other people, so agreeing with it is evidence the derivation was followed:
``torch_twin(model)`` returns a ``torch.nn.Sequential`` and the pairs ``(layer, name, parameter)``
that tie each xpcnn parameter to its PyTorch counterpart, by the state-dict names the library
writes (:mod:`xpcnn.export.names`, module ``i`` for layer ``i``). Only layers with an exact PyTorch
equivalent are mapped (by :mod:`xpcnn.doctor.pytorch`, which bench.py and the doctor use too); any
other raises, naming the layer, so a new zoo layer must be added there.
"""

from __future__ import annotations

import xpcnn as xc
from xpcnn.doctor.pytorch import torch_loss, torch_module  # noqa: F401  (torch_loss: for the tests)
from xpcnn.doctor.pytorch import torch_sequential as _torch_sequential
from xpcnn.export import state_dict, tensor_names


def _dropout(torch, layer):
    """Dropout with xpcnn's own mask: the twin multiplies by the mask (``B / (1 - rate)``) that the
    layer's last training forward drew, so run the xpcnn model first. PyTorch's own generator
    cannot draw the same mask; with the same mask, everything else is compared exactly. In eval
    mode (or before any training forward) it is the identity, as ``nn.Dropout`` is."""

    class SameMask(torch.nn.Module):
        def forward(self, x):
            saved = layer._saved
            if not self.training or saved is None or saved["mask"] is None:
                return x
            return x * torch.tensor(xc.to_numpy(saved["mask"])).to(x.dtype)

    return SameMask()


def torch_sequential(model: xc.Sequential, dtype=None):
    """The library's equivalent ``torch.nn.Sequential`` (:mod:`xpcnn.doctor.pytorch`), with Dropout replaced by
    the twin that reuses xpcnn's mask."""
    return _torch_sequential(model, dtype, module_of=_module)


def _module(torch, layer):
    return _dropout(torch, layer) if type(layer) is xc.Dropout else torch_module(torch, layer)


def torch_twin(model: xc.Sequential):
    """``(torch.nn.Sequential, [(xpcnn layer, param name, torch Parameter), ...])`` in float64.

    The weights go over by the names of :func:`xpcnn.export.state_dict` (the library owns the
    naming; ``strict=True``: every name must be the module's), and the pairs come from the same names.
    """
    import torch

    net = torch_sequential(model, torch.float64)
    net.load_state_dict({k: torch.tensor(v) for k, v in state_dict(model).items()}, strict=True)
    pairs = [(model.layers[e.index], e.key, net.get_parameter(e.name))
             for e in tensor_names(model) if e.group == "params"]
    return net, pairs
