"""xpcnn/export: ONNX graphs checked by onnxruntime (and onnx's reference evaluator), safetensors weights
checked by a round trip and by PyTorch, and every bad input one clear error with nothing left behind."""

import sys

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import zoo
from xpcnn.io.checkpoint import save_checkpoint
from xpcnn.errors import ConfigError, ExportError, MissingDependencyError
from xpcnn.io.export import CONVERTERS, TORCH_NAMES, build_onnx, from_safetensors, state_dict, tensor_names, to_onnx
from xpcnn.io.export import to_safetensors

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
safetensors = pytest.importorskip("safetensors")
from onnx.reference import ReferenceEvaluator  # noqa: E402


def randomized(model, seed=0):
    """Every parameter drawn anew, biases included (they start at zero: a dropped bias would pass)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for key, value in layer.params.items():
            fan_in = int(np.prod(value.shape[1:])) if value.ndim > 1 else 4  # outputs of order 1
            fresh = rng.uniform(-1, 1, tuple(value.shape)).astype(model.dtype) / np.sqrt(fan_in).astype(model.dtype)
            layer.params[key] = xc.to_device(fresh, model.device)
        for key, value in layer.buffers.items():  # running statistics: a mean, and a variance > 0
            low = 0.5 if key == "running_var" else -0.5
            layer.buffers[key] = xc.to_device(rng.uniform(low, low + 1, tuple(value.shape)).astype(model.dtype),
                                              model.device)
    return model


def every_layer(dtype="float32"):
    """Small models that between them hold every layer class, in every configuration that changes the graph."""
    models = {
        "seed": zoo.build_model("seed", (1, 12, 12), 3, dtype=dtype)[0],
        "convnet": zoo.build_model("convnet", (1, 12, 12), 4, dtype=dtype)[0],
        # untied bias with stride and padding; odd image so MaxPool drops a row; Tanh
        "untied-strided": [xc.Convolutional((2, 9, 9), 3, 4, padding=1, stride=2), xc.Tanh(), xc.MaxPool2D(2),
                           xc.Flatten(), xc.Dense(16, 3), xc.Softmax()],
        "tied-strided": [xc.Convolutional((3, 11, 10), 4, 2, stride=3, bias="tied"), xc.ReLU(),
                         xc.Reshape((2, 3, 3), (18,)), xc.Dense(18, 5), xc.Sigmoid()],
        # a Reshape that does not flatten, and Softmax over the last axis of a 3-D output
        "reshape-softmax": [xc.Dense(6, 8), xc.Reshape((8,), (2, 4)), xc.Softmax()],
        "dense-only": [xc.Dense(5, 7), xc.Tanh(), xc.Dense(7, 2), xc.ReLU()],
        # BatchNorm2D (running statistics), convolutions without bias, Dropout (the identity)
        "convnet-bn": zoo.build_model("convnet-bn", (1, 12, 12), 4, dtype=dtype)[0],
        "pools-batchnorm1d": [xc.Convolutional((2, 9, 9), 3, 4, padding="same", bias="tied"), xc.AvgPool2D(2),
                              xc.BatchNorm2D(4), xc.Sigmoid(), xc.GlobalAveragePool2D(), xc.BatchNorm1D(4),
                              xc.Dropout(0.5), xc.Dense(4, 3), xc.Softmax()],
        "dense-batchnorm1d": [xc.Dense(5, 6), xc.BatchNorm1D(6), xc.Dropout(0.3), xc.Tanh()],
    }
    return {name: randomized(m if isinstance(m, xc.Sequential) else xc.Sequential(m, seed=0, dtype=dtype))
            for name, m in models.items()}


def batch(model, n, seed=1):
    return np.random.default_rng(seed).random((n, *model.input_shape)).astype(model.dtype)


def onnxruntime_predict(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def test_every_layer_class_has_an_onnx_converter_and_pytorch_names():
    models = every_layer()
    used = {type(layer) for m in models.values() for layer in m.layers}
    assert used == set(CONVERTERS) == set(TORCH_NAMES)
    for name in zoo.MODELS:  # every zoo model exports
        model = zoo.build_model(name, (1, 28, 28), 10)[0]
        assert all(type(layer) in CONVERTERS for layer in model.layers)


@pytest.mark.parametrize("name", list(every_layer()))
def test_onnxruntime_predicts_what_predict_does_for_batches_of_1_and_7_from_one_file(name, tmp_path):
    model = every_layer()[name]
    path = tmp_path / f"{name}.onnx"
    to_onnx(model, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for n in (1, 7):
        x = batch(model, n)
        ours = xc.to_numpy(model.predict(x))
        theirs = onnxruntime_predict(path, x)
        assert theirs.dtype == np.float32 and theirs.shape == ours.shape == (n, *model.output_shape)
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.abs(ours).max() > 0.05  # not a check of zeros


@pytest.mark.parametrize("name", list(every_layer("float64")))
def test_float64_graphs_compute_predict_in_float64(name, tmp_path):
    """onnxruntime's CPU provider has no float64 Conv: onnx's own reference evaluator runs every graph,
    onnxruntime those without a convolution."""
    model = every_layer("float64")[name]
    path = tmp_path / "m.onnx"
    to_onnx(model, path)
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = batch(model, 7)
    ours = xc.to_numpy(model.predict(x))
    theirs = ReferenceEvaluator(proto).run(None, {"input": x})[0]
    assert theirs.dtype == np.float64
    np.testing.assert_allclose(theirs, ours, rtol=1e-10, atol=1e-12)
    if not any(isinstance(layer, xc.Convolutional) for layer in model.layers):
        np.testing.assert_allclose(onnxruntime_predict(path, x), ours, rtol=1e-10, atol=1e-12)


def test_the_graph_has_a_dynamic_batch_the_standard_operators_and_names_the_producer(tmp_path):
    model = every_layer()["seed"]
    proto = build_onnx(model, opset=13)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == [1, 12, 12]
    assert [n.op_type for n in proto.graph.node] == ["Conv", "Add", "Sigmoid", "Reshape", "Gemm", "Sigmoid", "Gemm",
                                                     "Sigmoid", "Identity"]
    assert proto.opset_import[0].version == 13 and proto.producer_name == "xpcnn"
    untied = next(t for t in proto.graph.initializer if t.name == "0.untied_bias")
    assert list(untied.dims) == [5, 10, 10]
    assert "Convolutional" in {p.key: p.value for p in proto.metadata_props}["xpcnn_layers"]


def test_a_model_whose_first_layer_takes_any_shape_needs_input_shape(tmp_path):
    model = randomized(xc.Sequential([xc.Flatten(), xc.Dense(12, 3), xc.Softmax()], seed=0))
    with pytest.raises(ExportError, match=r"pass input_shape=\(C, H, W\)"):
        to_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []
    to_onnx(model, tmp_path / "m.onnx", input_shape=(3, 2, 2))
    x = np.random.default_rng(0).random((7, 3, 2, 2), dtype=np.float32)
    np.testing.assert_allclose(onnxruntime_predict(tmp_path / "m.onnx", x), xc.to_numpy(model.predict(x)),
                               rtol=1e-5, atol=1e-6)


def test_an_opset_outside_what_the_operators_and_onnx_support_is_refused():
    model = every_layer()["dense-only"]
    with pytest.raises(ConfigError, match="opset"):
        build_onnx(model, opset=12)
    with pytest.raises(ExportError, match="opset 999"):
        build_onnx(model, opset=999)


# -- safetensors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_safetensors_round_trip_gives_identical_parameters_in_the_models_dtype(dtype, tmp_path):
    for name, model in every_layer(dtype).items():
        path = tmp_path / f"{name}.safetensors"
        to_safetensors(model, path)
        from safetensors.numpy import load_file

        stored = load_file(str(path))
        assert {k: v.dtype for k, v in stored.items()} == {k: np.dtype(dtype) for k in state_dict(model)}
        fresh = every_layer(dtype)[name]
        randomized(fresh, seed=5)
        from_safetensors(fresh, path)
        for a, b in zip(model.layers, fresh.layers):
            for key in a.params:
                assert np.array_equal(xc.to_numpy(a.params[key]), xc.to_numpy(b.params[key])), (name, key)
        np.testing.assert_array_equal(xc.to_numpy(fresh.predict(batch(model, 3))),
                                      xc.to_numpy(model.predict(batch(model, 3))))


def test_safetensors_names_follow_pytorch_sequential_and_the_header_describes_the_model(tmp_path):
    model = every_layer()["seed"]
    assert [e.name for e in tensor_names(model)] == ["0.weight", "0.untied_bias", "3.weight", "3.bias",
                                                      "5.weight", "5.bias"]
    assert state_dict(model)["3.weight"].shape == (100, 500)  # PyTorch's Linear layout (out, in)
    path = tmp_path / "m.safetensors"
    to_safetensors(model, path)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "xpcnn" and meta["xpcnn_version"] == xc.__version__ and meta["dtype"] == "float32"
    assert '"class": "Convolutional"' in meta["layers"]


def test_a_pytorch_file_loads_a_float32_file_into_a_float64_model_as_load_state_dict_does(tmp_path):
    model = every_layer()["convnet"]
    to_safetensors(model, tmp_path / "m.safetensors")
    wide = from_safetensors(every_layer("float64")["convnet"], tmp_path / "m.safetensors")
    assert wide.dtype == "float64" and xc.to_numpy(wide.layers[0].kernels).dtype == np.float64
    np.testing.assert_array_equal(xc.to_numpy(wide.layers[0].kernels), xc.to_numpy(model.layers[0].kernels))


# -- PyTorch ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["seed", "convnet", "untied-strided", "tied-strided", "dense-only", "convnet-bn",
                                  "pools-batchnorm1d", "dense-batchnorm1d"])
def test_pytorch_loads_the_file_into_the_equivalent_sequential_and_predicts_the_same(name, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    from xpcnn.testing.torch_twins import torch_sequential

    model = every_layer()[name]
    to_safetensors(model, tmp_path / "m.safetensors")
    net = torch_sequential(model).eval()
    net.load_state_dict(load_file(str(tmp_path / "m.safetensors")), strict=True)
    x = batch(model, 7)
    with torch.no_grad():
        theirs = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(theirs, xc.to_numpy(model.predict(x)), rtol=1e-5, atol=1e-6)


def test_a_model_with_untied_biases_does_not_load_into_plain_pytorch_modules(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    model = every_layer()["seed"]
    to_safetensors(model, tmp_path / "m.safetensors")
    nn = torch.nn
    plain = nn.Sequential(nn.Conv2d(1, 5, 3, bias=False), nn.Sigmoid(), nn.Flatten(), nn.Linear(500, 100),
                          nn.Sigmoid(), nn.Linear(100, 3), nn.Sigmoid())
    with pytest.raises(RuntimeError, match="untied_bias"):
        plain.load_state_dict(load_file(str(tmp_path / "m.safetensors")))


@pytest.mark.parametrize("name", ["seed", "convnet", "tied-strided", "convnet-bn", "pools-batchnorm1d"])
def test_weights_pytorch_saves_load_into_xpcnn_and_predict_the_same(name, tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    from xpcnn.testing.torch_twins import torch_sequential

    model = every_layer()[name]
    torch.manual_seed(0)
    net = torch_sequential(model)
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.2, 0.2)
        net.train()(torch.rand(8, *model.input_shape))  # BatchNorm: running statistics of its own
    net.eval()
    state = net.state_dict()
    assert any(k.endswith("num_batches_tracked") for k in state) == ("bn" in name or "batchnorm" in name)
    save_file(state, str(tmp_path / "t.safetensors"))  # num_batches_tracked included: xpcnn reads past it
    from_safetensors(model, tmp_path / "t.safetensors")
    x = batch(model, 5)
    with torch.no_grad():
        theirs = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(xc.to_numpy(model.predict(x)), theirs, rtol=1e-5, atol=1e-6)


# -- bad input: one clear error, nothing half-written --------------------------------------------------

class Unmapped(xc.Layer):
    def forward(self, x, training=True):
        return x


class SigmoidVariant(xc.Sigmoid):
    """A subclass may change the math: it needs its own entry."""


@pytest.mark.parametrize("layer", [Unmapped(), SigmoidVariant()])
def test_a_layer_with_no_mapping_is_an_error_naming_it_and_writes_nothing(layer, tmp_path):
    model = xc.Sequential([xc.Dense(3, 2), layer], seed=0)
    name = type(layer).__name__
    with pytest.raises(ExportError, match=f"cannot convert layer 1 {name}\\(\\) \\(no mapping"):
        to_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(ExportError, match=f"cannot convert layer 1 {name}\\(\\) \\(no mapping"):
        to_safetensors(model, tmp_path / "m.safetensors")
    with pytest.raises(ExportError, match=name):
        from_safetensors(model, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("write", [to_onnx, to_safetensors])
def test_a_path_in_a_missing_folder_is_one_error_naming_it(write, tmp_path):
    with pytest.raises(ExportError, match="the folder .*missing does not exist"):
        write(every_layer()["dense-only"], tmp_path / "missing" / "m.out")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_safetensors_is_one_error_and_the_model_is_unchanged(tmp_path):
    model = every_layer()["seed"]
    before = state_dict(model)
    save_checkpoint(tmp_path / "ck.npz", model)  # a checkpoint is not a weights file either
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "text").write_bytes(b"hello, not a safetensors file")
    for name in ("empty", "text", "ck.npz"):
        with pytest.raises(ExportError, match=f"{name}: not a safetensors file"):
            from_safetensors(model, tmp_path / name)
    with pytest.raises(ExportError, match="no such file"):
        from_safetensors(model, tmp_path / "absent.safetensors")
    with pytest.raises(ExportError, match="is a folder"):
        from_safetensors(model, tmp_path)
    assert all(np.array_equal(v, state_dict(model)[k]) for k, v in before.items())


def test_tensors_of_the_wrong_shape_name_or_dtype_are_one_error_each_and_change_nothing(tmp_path):
    from safetensors.numpy import save_file

    model = every_layer()["tied-strided"]
    before = state_dict(model)
    good = {k: v.copy() for k, v in before.items()}
    cases = {
        "shape": ({**good, "3.weight": np.zeros((5, 17), np.float32)}, r"3.weight has shape \(5, 17\), layer 3 "),
        "missing": ({k: v for k, v in good.items() if k != "0.bias"}, r"missing \['0.bias'\]"),
        "unexpected": ({**good, "9.weight": np.zeros(2, np.float32)}, r"unexpected \['9.weight'\]"),
        "dtype": ({**good, "0.bias": np.zeros(2, np.int64)}, "0.bias has dtype I64"),
    }
    for name, (tensors, message) in cases.items():
        save_file(tensors, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(ExportError, match=message):
            from_safetensors(model, tmp_path / f"{name}.safetensors")
    # a whole other model's file: the first tensor that does not fit is named
    to_safetensors(every_layer()["convnet"], tmp_path / "other.safetensors")
    with pytest.raises(ExportError, match="do not match the model's"):
        from_safetensors(model, tmp_path / "other.safetensors")
    assert all(np.array_equal(v, state_dict(model)[k]) for k, v in before.items())


def test_an_interrupted_write_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    model = every_layer()["dense-only"]
    path = tmp_path / "m.onnx"
    path.write_bytes(b"previous")

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx.ModelProto, "SerializeToString", fail)
    with pytest.raises(KeyboardInterrupt):
        to_onnx(model, path)
    assert path.read_bytes() == b"previous" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("package, write", [("onnx", to_onnx), ("safetensors.numpy", to_safetensors)])
def test_without_the_export_extra_the_error_names_the_install_command(package, write, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # import fails, as when the package is missing
    with pytest.raises(MissingDependencyError, match=r"pip install 'xpcnn\[export\]'"):
        write(every_layer()["dense-only"], tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


# -- a model trained on a GPU -------------------------------------------------------------------------

def test_a_model_trained_on_a_device_that_refuses_implicit_host_copies_exports(device1, tmp_path):
    """array_api_strict's device1 stands in for a GPU: np.asarray on its arrays raises, so the export
    works only if every tensor is moved to the host explicitly, through the backend."""
    rng = np.random.default_rng(0)
    x = rng.random((10, 1, 12, 12), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 10)]
    model = zoo.build_model("convnet", (1, 12, 12), 3)[0].to(device1)
    model.fit(x, y, epochs=1, batch_size=5, optimizer=xc.Adam(1e-2))
    to_onnx(model, tmp_path / "m.onnx")
    to_safetensors(model, tmp_path / "m.safetensors")
    ours = xc.to_numpy(model.predict(x))
    np.testing.assert_allclose(onnxruntime_predict(tmp_path / "m.onnx", x), ours, rtol=1e-5, atol=1e-6)
    back = from_safetensors(zoo.build_model("convnet", (1, 12, 12), 3, seed=3)[0].to(device1),
                            tmp_path / "m.safetensors")
    assert xc.Device.of(back.layers[0].kernels) == device1
    np.testing.assert_array_equal(xc.to_numpy(back.predict(x)), ours)


@pytest.mark.gpu
def test_a_model_trained_with_cupy_exports_its_weights_moved_to_the_host(cuda, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((16, 1, 12, 12), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    model = zoo.build_model("convnet", (1, 12, 12), 3, device=cuda)[0]
    model.fit(x, y, epochs=1, batch_size=8, optimizer=xc.Adam(1e-2))
    assert model.device == cuda
    to_onnx(model, tmp_path / "m.onnx")
    to_safetensors(model, tmp_path / "m.safetensors")
    ours = xc.to_numpy(model.predict(x))
    np.testing.assert_allclose(onnxruntime_predict(tmp_path / "m.onnx", x), ours, rtol=1e-4, atol=1e-5)
    host = from_safetensors(zoo.build_model("convnet", (1, 12, 12), 3, seed=3)[0], tmp_path / "m.safetensors")
    np.testing.assert_allclose(xc.to_numpy(host.predict(x)), ours, rtol=1e-4, atol=1e-5)
    back = from_safetensors(zoo.build_model("convnet", (1, 12, 12), 3, seed=3, device=cuda)[0],
                            tmp_path / "m.safetensors")
    assert back.device == cuda and xc.Device.of(back.layers[0].kernels) == cuda


# -- what the mutation run found untested (docs/mutation.md) ----------------------------------------

def test_a_name_mismatch_lists_only_what_is_missing_or_unexpected(tmp_path):
    from safetensors.numpy import save_file

    model = every_layer()["dense-only"]
    good = {k: v.copy() for k, v in state_dict(model).items()}
    first = sorted(good)[0]
    cases = {
        "missing": ({k: v for k, v in good.items() if k != first}, rf"missing \['{first}'\]"),
        "unexpected": ({**good, "9.weight": np.zeros(2, np.float32)}, r"unexpected \['9.weight'\]"),
        "both": ({**{k: v for k, v in good.items() if k != first}, "9.weight": np.zeros(2, np.float32)},
                 rf"missing \['{first}'\]; unexpected \['9.weight'\]"),
    }
    for name, (tensors, listed) in cases.items():
        save_file(tensors, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(ExportError, match=rf"^from_safetensors {tmp_path / name}.safetensors: the tensors do not "
                                              rf"match the model's: {listed}$"):
            from_safetensors(model, tmp_path / f"{name}.safetensors")


def test_reading_without_the_export_extra_names_from_safetensors_and_the_install_command(tmp_path, monkeypatch):
    model = every_layer()["dense-only"]
    to_safetensors(model, tmp_path / "m.safetensors")
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails, as when the package is missing
    with pytest.raises(MissingDependencyError, match=r"^from_safetensors needs the safetensors package: pip install "):
        from_safetensors(model, tmp_path / "m.safetensors")


def test_a_missing_file_or_a_folder_is_one_error_naming_it(tmp_path):
    model = every_layer()["dense-only"]
    with pytest.raises(ExportError, match=rf"^from_safetensors {tmp_path / 'none.safetensors'}: no such file$"):
        from_safetensors(model, tmp_path / "none.safetensors")
    with pytest.raises(ExportError, match=rf"^from_safetensors {tmp_path}: is a folder$"):
        from_safetensors(model, tmp_path)


def test_a_file_that_cannot_be_read_is_one_error_with_the_systems_reason(tmp_path, monkeypatch):
    model = every_layer()["dense-only"]
    to_safetensors(model, tmp_path / "m.safetensors")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # what an unreadable file gives (root reads any file)

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    with pytest.raises(ExportError, match=rf"^from_safetensors {tmp_path / 'm.safetensors'}: cannot read "
                                          rf"\(Permission denied\)$"):
        from_safetensors(model, tmp_path / "m.safetensors")


def test_the_header_lists_each_layers_class_and_config_as_the_module_documents(tmp_path):
    import json

    model = every_layer()["dense-only"]
    to_safetensors(model, tmp_path / "m.safetensors")
    with safetensors.safe_open(str(tmp_path / "m.safetensors"), framework="numpy") as f:
        layers = json.loads(f.metadata()["layers"])
    assert layers == [{"class": type(layer).__name__, "config": json.loads(json.dumps(layer.config()))}
                      for layer in model.layers]


def test_writing_without_the_export_extra_names_to_safetensors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(MissingDependencyError, match=r"^to_safetensors needs the safetensors.numpy package: pip "):
        to_safetensors(every_layer()["dense-only"], tmp_path / "m")


def test_a_dense_layer_is_a_gemm_with_the_onnx_flag_trans_b_set_to_1():
    proto = build_onnx(every_layer()["dense-only"])
    gemms = [node for node in proto.graph.node if node.op_type == "Gemm"]
    assert len(gemms) == 2  # transB is a 0/1 flag in the ONNX operator's definition: B is (out, in), as Dense keeps it
    assert all({a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} == {"transB": 1} for node in gemms)


@pytest.mark.parametrize("write", [to_onnx, to_safetensors])
def test_a_bad_output_path_is_named_with_the_function_that_writes_it(write, tmp_path):
    target = tmp_path / "missing" / "m.out"
    with pytest.raises(ExportError, match=rf"^{write.__name__} {target}: the folder {tmp_path / 'missing'} does not "
                                          rf"exist"):
        write(every_layer()["dense-only"], target)


# -- what the graph says about itself, and every error naming the function the user called -------------

def test_every_node_is_named_after_its_one_output_and_the_graph_after_xpcnn():
    model = every_layer()["convnet-bn"]
    proto = build_onnx(model)
    names = [node.name for node in proto.graph.node]
    assert all(list(node.output) == [node.name] for node in proto.graph.node)
    assert len(set(names)) == len(names) and names[-1] == "output" and names[0] == "0.Conv"
    assert proto.graph.name == "xpcnn"
    out = proto.graph.output[0].type.tensor_type.shape.dim
    assert out[0].dim_param == "N" and [d.dim_value for d in out[1:]] == [4]


def test_the_producer_version_and_the_layers_property_describe_the_model_exactly():
    model = every_layer()["dense-only"]
    proto = build_onnx(model)
    assert proto.producer_version == xc.__version__
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {"xpcnn_layers": "Dense(input_size=5, output_size=7); Tanh(); Dense(input_size=7, output_size=2); "
                                      "ReLU()"}
    assert props["xpcnn_layers"] == "; ".join(repr(layer) for layer in model.layers)


def test_the_newest_opset_this_onnx_package_knows_is_accepted():
    newest = onnx.defs.onnx_opset_version()
    assert build_onnx(every_layer()["dense-only"], opset=newest).opset_import[0].version == newest
    with pytest.raises(ExportError, match=rf"^to_onnx: opset {newest + 1} is newer .*expected 13\.\.{newest}$"):
        build_onnx(every_layer()["dense-only"], opset=newest + 1)


def test_build_onnx_names_to_onnx_in_each_of_its_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"^to_onnx: opset must be an integer >= 13, got 12$"):
        build_onnx(every_layer()["dense-only"], opset=12)
    with pytest.raises(ExportError, match=r"^to_onnx: cannot convert layer 1 Unmapped\(\)"):
        build_onnx(xc.Sequential([xc.Dense(3, 2), Unmapped()], seed=0))
    with pytest.raises(ExportError, match=r"^to_onnx: the model's first layer does not fix the input shape"):
        build_onnx(xc.Sequential([xc.Flatten(), xc.Dense(12, 3)], seed=0))
    model = every_layer()["dense-only"]
    model.layers[2].params["bias"] = np.zeros(2, np.float64)  # one parameter in another dtype than the model's
    with pytest.raises(ExportError, match=r"^to_onnx: 2\.bias has dtype float64, the model float32$"):
        build_onnx(model)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"^to_onnx needs the onnx package: pip install"):
        build_onnx(every_layer()["dense-only"])


def test_writing_without_onnx_names_to_onnx(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(MissingDependencyError, match=r"^to_onnx needs the onnx package: pip install"):
        to_onnx(every_layer()["dense-only"], tmp_path / "m.onnx")


@pytest.mark.parametrize("write", [to_onnx, to_safetensors])
def test_a_write_that_fails_is_an_export_error_naming_the_function_and_the_systems_reason(write, tmp_path,
                                                                                          monkeypatch):
    import errno
    import os

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)  # the last step of the atomic write: the disk is full
    target = tmp_path / "m.out"
    with pytest.raises(ExportError, match=rf"^{write.__name__} {target}: cannot write \(No space left on device\)$"):
        write(every_layer()["dense-only"], target)
    assert list(tmp_path.iterdir()) == []


def test_a_graph_whose_declared_shapes_disagree_with_its_operators_is_refused(monkeypatch):
    """``check_model(full_check=True)`` infers every shape: a converter's mistake is caught before a file is
    written (the plain check reads the declared shapes without inferring any)."""
    from xpcnn.io.export import onnx_export

    model = every_layer()["dense-only"]
    monkeypatch.setattr(onnx_export, "_shapes", lambda model, shape: ((5,), (3,)))  # the graph computes (N, 2)
    with pytest.raises(Exception, match="(?i)shape"):
        build_onnx(model)


def test_every_layer_without_a_mapping_is_listed_with_the_classes_that_have_one(tmp_path):
    model = xc.Sequential([Unmapped(), xc.Dense(3, 2), SigmoidVariant()], seed=0)
    onnx_names = ", ".join(sorted(cls.__name__ for cls in CONVERTERS))
    torch_names = ", ".join(sorted(cls.__name__ for cls in TORCH_NAMES))
    missing = "layer 0 Unmapped(); layer 2 SigmoidVariant()"
    with pytest.raises(ExportError) as info:
        build_onnx(model)
    assert str(info.value) == f"to_onnx: cannot convert {missing} (no mapping; layers that have one: {onnx_names})"
    with pytest.raises(ExportError) as info:
        to_safetensors(model, tmp_path / "m.safetensors")
    assert str(info.value) == (f"PyTorch names: cannot convert {missing} (no mapping; layers that have one: "
                               f"{torch_names})")
