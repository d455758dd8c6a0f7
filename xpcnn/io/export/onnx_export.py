"""``to_onnx``: an xpcnn model as an ONNX graph of standard operators, built with the ``onnx`` library.

The graph computes what ``model.predict`` computes (inference: ``forward(x, training=False)``),
for a batch ``input: (N, *model.input_shape)`` with a dynamic ``N``, in the model's dtype
(``float32`` or ``float64``), to ``output: (N, *model.output_shape)``. One small function per
layer class, in :data:`CONVERTERS`, adds that layer's nodes::

    Convolutional   Conv(kernel_shape k, strides s, pads p) with B = the (D,) bias (tied);
                    untied: Conv, then Add of the (D, Ho, Wo) bias constant (broadcast over N);
                    bias "none": Conv alone
                    (xpcnn's valid cross-correlation is exactly ONNX's Conv, which does not flip)
    Dense           Gemm(X, W, b, transB=1)            Y = X Wᵀ + b, W: (out, in)
    Sigmoid, Tanh, ReLU    Sigmoid, Tanh, Relu
    Softmax         Softmax(axis=-1)
    MaxPool2D(k)    MaxPool(kernel_shape k, strides k)  (floor: cut-off rows are dropped, as in xpcnn)
    AvgPool2D(k)    AveragePool(kernel_shape k, strides k)
    GlobalAveragePool2D    GlobalAveragePool, then Flatten(axis=1): (N, C)
    BatchNorm2D/1D  BatchNormalization(epsilon) with the running statistics (inference)
    Dropout         Identity (inference)
    Reshape         Reshape to (0, *output_shape)       (0: copy N)
    Flatten         Flatten(axis=1)

Every graph passes ``onnx.checker.check_model(full_check=True)`` (which also infers every shape)
before it is written, atomically (:func:`xpcnn.io.files.atomic_write`). onnxruntime's CPU provider
has no float64 ``Conv``: a float64 model with a convolution is valid ONNX, runs in
``onnx.reference.ReferenceEvaluator``, and runs in onnxruntime once exported from
``model.to(dtype="float32")``.
"""

from __future__ import annotations

import os
from typing import Callable

from ... import backend
from ...errors import ExportError
from ...layers import (
    AvgPool2D, BatchNorm1D, BatchNorm2D, Convolutional, Dense, Dropout, Flatten, GlobalAveragePool2D, MaxPool2D, ReLU,
    Reshape, Sigmoid, Softmax, Tanh,
)
from ...layers.base import Layer
from ..files import atomic_write, check_output_path
from ..._checks import integer
from .deps import require
from .names import check_convertible

#: The opset written by default, and the oldest one accepted (Softmax over one axis needs 13).
DEFAULT_OPSET = 17
MIN_OPSET = 13


class GraphBuilder:
    """Nodes and constants of one graph; each layer's converter appends to it."""

    def __init__(self, onnx, dtype: str) -> None:
        self.onnx = onnx
        self.dtype = dtype  # the model's: "float32" or "float64"
        self.nodes: list = []
        self.initializers: list = []

    def constant(self, name: str, array) -> str:
        """A named constant (initializer) from a host array; returns its name."""
        self.initializers.append(self.onnx.numpy_helper.from_array(backend.host_buffer(array), name))
        return name

    def parameter(self, name: str, array) -> str:
        """A layer's parameter, moved to the host explicitly, as a constant in the model's dtype."""
        if backend.dtype_name(array) != self.dtype:
            raise ExportError(f"to_onnx: {name} has dtype {backend.dtype_name(array)}, the model {self.dtype}")
        return self.constant(name, array)

    def node(self, op: str, inputs: "list[str]", name: str, **attributes) -> str:
        """Append ``op`` named ``name``; its one output is also called ``name``."""
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [name], name=name, **attributes))
        return name


# -- one converter per layer class: (graph, layer, input name, prefix) -> output name ---------------

def _conv(g: GraphBuilder, layer: Convolutional, x: str, at: str) -> str:
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    inputs = [x, g.parameter(f"{at}.weight", layer.kernels)]
    if layer.bias == "tied":  # (bias "none": Conv alone)
        inputs.append(g.parameter(f"{at}.bias", layer.biases))
    y = g.node("Conv", inputs, f"{at}.Conv", kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])
    if layer.bias == "untied":  # Y_i = B_i + Σ_j X_j ⋆ K_ij with B: (D, Ho, Wo)
        y = g.node("Add", [y, g.parameter(f"{at}.untied_bias", layer.biases)], f"{at}.Add")
    return y


def _dense(g: GraphBuilder, layer: Dense, x: str, at: str) -> str:
    w, b = g.parameter(f"{at}.weight", layer.weights), g.parameter(f"{at}.bias", layer.bias)
    return g.node("Gemm", [x, w, b], f"{at}.Gemm", transB=1)


def _pointwise(op: str, **attributes) -> Callable:
    def convert(g: GraphBuilder, layer: Layer, x: str, at: str) -> str:
        return g.node(op, [x], f"{at}.{op}", **attributes)

    return convert


def _max_pool(g: GraphBuilder, layer: MaxPool2D, x: str, at: str) -> str:
    k = layer.pool_size
    return g.node("MaxPool", [x], f"{at}.MaxPool", kernel_shape=[k, k], strides=[k, k])


def _avg_pool(g: GraphBuilder, layer: AvgPool2D, x: str, at: str) -> str:
    k = layer.pool_size
    return g.node("AveragePool", [x], f"{at}.AveragePool", kernel_shape=[k, k], strides=[k, k])


def _global_average_pool(g: GraphBuilder, layer: GlobalAveragePool2D, x: str, at: str) -> str:
    y = g.node("GlobalAveragePool", [x], f"{at}.GlobalAveragePool")  # (N, C, 1, 1)
    return g.node("Flatten", [y], f"{at}.Flatten", axis=1)          # (N, C), as xpcnn's


def _batchnorm(g: GraphBuilder, layer: "BatchNorm2D | BatchNorm1D", x: str, at: str) -> str:
    """Inference: the running statistics, ``Y = γ (X - running_mean) / √(running_var + ε) + β``."""
    inputs = [x, g.parameter(f"{at}.weight", layer.params["gamma"]), g.parameter(f"{at}.bias", layer.params["beta"]),
              g.parameter(f"{at}.running_mean", layer.buffers["running_mean"]),
              g.parameter(f"{at}.running_var", layer.buffers["running_var"])]
    return g.node("BatchNormalization", inputs, f"{at}.BatchNormalization", epsilon=float(layer.eps))


def _reshape(g: GraphBuilder, layer: Reshape, x: str, at: str) -> str:
    shape = g.constant(f"{at}.shape", backend.host_buffer((0, *layer.output_shape(layer.input_shape)), "int64"))
    return g.node("Reshape", [x, shape], f"{at}.Reshape")


#: Layer class -> converter (exact classes: a subclass needs its own entry).
CONVERTERS: "dict[type, Callable]" = {
    Convolutional: _conv,
    Dense: _dense,
    Sigmoid: _pointwise("Sigmoid"),
    Tanh: _pointwise("Tanh"),
    ReLU: _pointwise("Relu"),
    Softmax: _pointwise("Softmax", axis=-1),
    MaxPool2D: _max_pool,
    AvgPool2D: _avg_pool,
    GlobalAveragePool2D: _global_average_pool,
    BatchNorm2D: _batchnorm,
    BatchNorm1D: _batchnorm,
    Dropout: _pointwise("Identity"),  # inference: Y = X
    Reshape: _reshape,
    Flatten: _pointwise("Flatten", axis=1),
}


# -- the model ----------------------------------------------------------------------------------

def _shapes(model, input_shape) -> "tuple[tuple, tuple]":
    """Per-sample input and output shapes (the first layer's, or ``input_shape``)."""
    shape = model.input_shape if input_shape is None else tuple(input_shape)
    if shape is None:
        raise ExportError("to_onnx: the model's first layer does not fix the input shape; pass input_shape=(C, H, W)")
    start = tuple(int(d) for d in shape)
    for layer in model.layers:
        shape = tuple(layer.output_shape(shape))
    return start, shape


def build_onnx(model, opset: int = DEFAULT_OPSET, input_shape=None):
    """The checked ``onnx.ModelProto`` of ``model`` (see the module docstring); nothing is written."""
    onnx = require("onnx", "to_onnx")
    newest = onnx.defs.onnx_opset_version()
    opset = integer("to_onnx", "opset", opset, minimum=MIN_OPSET)
    if opset > newest:
        raise ExportError(f"to_onnx: opset {opset} is newer than this onnx package knows ({newest}); "
                          f"expected {MIN_OPSET}..{newest}")
    check_convertible(model.layers, "to_onnx", CONVERTERS)
    helper = onnx.helper
    g = GraphBuilder(onnx, model.dtype)
    x = "input"
    for i, layer in enumerate(model.layers):
        x = CONVERTERS[type(layer)](g, layer, x, str(i))
    g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    elem = onnx.TensorProto.FLOAT if g.dtype == "float32" else onnx.TensorProto.DOUBLE
    start, end = _shapes(model, input_shape)
    graph = helper.make_graph(
        g.nodes, "xpcnn", [helper.make_tensor_value_info("input", elem, ["N", *start])],
        [helper.make_tensor_value_info("output", elem, ["N", *end])], g.initializers)
    proto = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)],
                                          producer_name="xpcnn", producer_version=_version())
    helper.set_model_props(proto, {"xpcnn_layers": "; ".join(repr(layer) for layer in model.layers)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _version() -> str:
    from ... import __version__

    return __version__


def to_onnx(model, path: "str | os.PathLike", opset: int = DEFAULT_OPSET, *, input_shape=None) -> None:
    """Write ``model`` to ``path`` as ONNX (inference semantics, dynamic batch, the model's dtype).

    ``path`` is checked before anything is built, and written whole or not at all. A layer with
    no converter is an :class:`~xpcnn.errors.ExportError` naming it; without the ``onnx``
    package, a :class:`~xpcnn.errors.MissingDependencyError` naming ``pip install 'xpcnn[export]'``.
    """
    require("onnx", "to_onnx")
    target = check_output_path(path, "to_onnx", error=ExportError)
    proto = build_onnx(model, opset, input_shape)
    data = proto.SerializeToString()
    atomic_write(target, lambda f: f.write(data), "to_onnx", error=ExportError)
