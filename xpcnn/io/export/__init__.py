"""Interoperability: a trained model as ONNX, and its weights as safetensors that PyTorch loads.

* :func:`to_onnx` writes the model as an ONNX graph of standard operators (inference semantics,
  dynamic batch, float32 or float64), built with the ``onnx`` library and checked by its checker;
* :func:`to_safetensors` and :func:`from_safetensors` write and read the parameters (and
  buffers) under the state-dict names of the equivalent PyTorch ``nn.Sequential`` (``"0.weight"``,
  ``"0.bias"``, ...), in PyTorch's layouts, with the ``safetensors`` library (no pickle);
* :func:`tensor_names` / :func:`state_dict`: that naming, which :mod:`xpcnn.testing.torch_twins` uses too.

Both formats need the ``export`` extra (``pip install 'xpcnn[export]'``); the core install
does not. Every tensor is moved to the host explicitly, so a model on a GPU exports as it is.
"""

from .deps import EXPORT_HINT, require
from .names import TORCH_NAMES, TensorName, state_dict, tensor_names
from .onnx_export import CONVERTERS, DEFAULT_OPSET, build_onnx, to_onnx
from .weights import from_safetensors, to_safetensors

__all__ = [
    "to_onnx", "build_onnx", "to_safetensors", "from_safetensors", "tensor_names", "state_dict", "TensorName",
    "TORCH_NAMES", "CONVERTERS", "DEFAULT_OPSET", "EXPORT_HINT", "require",
]
