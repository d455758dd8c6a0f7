"""MaxPool2D, AvgPool2D and GlobalAveragePool2D (xpcnn/layers/pooling.py): reference loops, finite
differences, PyTorch, array_api_strict.

At the edges: the inference path, windows as large as the input, what training keeps (one byte
per output), constructor arguments and sample shapes named in errors."""

import re

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.errors import ShapeError
from xpcnn.layers import GlobalAveragePool2D, MaxPool2D

xs = pytest.importorskip("array_api_strict")

NAMESPACES = {
    "numpy": backend.CPU,
    "strict-cpu": backend.Device.of(xs.zeros(1, device=xs.Device("CPU_DEVICE"))),
    "strict-device1": backend.Device.of(xs.zeros(1, device=xs.Device("device1"))),
}


def reference_forward(x, k):
    """Y[n, c, u, v] = max over the k×k window, written as loops."""
    n, c, h, w = x.shape
    y = np.empty((n, c, h // k, w // k), dtype=x.dtype)
    for i in range(n):
        for j in range(c):
            for u in range(h // k):
                for v in range(w // k):
                    y[i, j, u, v] = x[i, j, u * k:(u + 1) * k, v * k:(v + 1) * k].max()
    return y


def reference_backward(x, dy, k):
    """∂E/∂X: each window's gradient to its first (row-major) maximum, loops."""
    n, c, h, w = x.shape
    dx = np.zeros_like(x)
    for i in range(n):
        for j in range(c):
            for u in range(h // k):
                for v in range(w // k):
                    window = x[i, j, u * k:(u + 1) * k, v * k:(v + 1) * k]
                    p, q = np.unravel_index(np.argmax(window), window.shape)
                    dx[i, j, u * k + p, v * k + q] += dy[i, j, u, v]
    return dx


@pytest.mark.parametrize("k, shape", [(2, (3, 2, 6, 8)), (2, (2, 3, 7, 5)), (3, (2, 1, 9, 10)), (1, (1, 2, 3, 3))])
def test_forward_and_backward_match_reference_loops(k, shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    layer = MaxPool2D(k)
    y = layer.forward(x)
    np.testing.assert_array_equal(y, reference_forward(x, k))
    np.testing.assert_array_equal(MaxPool2D(k).forward(x, training=False), y)  # rows, then columns
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(dy)
    assert dx.shape == x.shape and dx.dtype == np.float32
    np.testing.assert_array_equal(dx, reference_backward(x, dy, k))


def test_ties_send_the_gradient_to_the_first_maximum_only():
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    layer = MaxPool2D(2)
    layer.forward(x)
    dx = layer.backward(np.full((1, 1, 2, 2), 5.0, dtype=np.float32))
    expected = np.zeros((4, 4), dtype=np.float32)
    expected[::2, ::2] = 5.0
    np.testing.assert_array_equal(dx[0, 0], expected)
    assert dx.sum() == 20.0  # nothing counted twice


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_input_gradient_matches_finite_differences(dtype):
    rng = np.random.default_rng(2)
    x = rng.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6).astype(dtype) / 10.0  # distinct: no ties
    weights = rng.standard_normal((2, 2, 2, 3)).astype(dtype)
    layer = MaxPool2D(2)

    def energy(values):
        return float(np.sum(weights.astype(np.float64) * MaxPool2D(2).forward(values)))

    layer.forward(x)
    analytic = layer.backward(weights)
    eps = 1e-3
    numeric = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric[idx] = (energy(plus) - energy(minus)) / (2 * eps)
    assert analytic.dtype == np.dtype(dtype)
    # float32: x ± eps itself rounds at ~1e-6, a relative error ~1e-3 of the 2·eps step
    tol = {"rtol": 5e-3, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-7, "atol": 1e-9}
    np.testing.assert_allclose(analytic, numeric, **tol)


@pytest.mark.parametrize("name", list(NAMESPACES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_array_api_namespaces_give_numpy_results_on_their_own_device(name, dtype):
    dev = NAMESPACES[name]
    rng = np.random.default_rng(3)
    x_host = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    dy_host = rng.standard_normal((2, 3, 3, 3)).astype(dtype)
    layer = MaxPool2D(2)
    x = backend.to_device(x_host, dev)
    y = layer.forward(x)
    dx = layer.backward(backend.to_device(dy_host, dev))
    assert backend.Device.of(y) == dev and backend.Device.of(dx) == dev
    assert y.dtype == x.dtype and dx.dtype == x.dtype
    np.testing.assert_array_equal(backend.to_numpy(y), reference_forward(x_host, 2))
    np.testing.assert_array_equal(backend.to_numpy(dx), reference_backward(x_host, dy_host, 2))
    inferred = MaxPool2D(2).forward(x, training=False)
    assert backend.Device.of(inferred) == dev
    np.testing.assert_array_equal(backend.to_numpy(inferred), reference_forward(x_host, 2))


def test_output_shape_floors_and_sequential_walks_the_shapes():
    assert MaxPool2D(2).output_shape((4, 7, 9)) == (4, 3, 4)
    model = xc.Sequential([xc.Convolutional((1, 8, 8), 3, 4, padding="same", bias="tied"), xc.ReLU(), MaxPool2D(2),
                           xc.Flatten(), xc.Dense(4 * 4 * 4, 3), xc.Softmax()], seed=0)
    out = model.forward(np.zeros((5, 1, 8, 8), dtype=np.float32))
    assert out.shape == (5, 3)


def test_bad_shapes_are_named_errors():
    with pytest.raises(ShapeError, match=r"MaxPool2D.*\(N, C, H, W\)"):
        MaxPool2D(2).forward(np.zeros((2, 8, 8), dtype=np.float32))
    with pytest.raises(ShapeError, match="larger than the input"):
        MaxPool2D(4).forward(np.zeros((1, 1, 3, 8), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"expected input of shape \(N, 2, 4, 4\)"):
        MaxPool2D(2, input_shape=(2, 4, 4)).forward(np.zeros((1, 3, 4, 4), dtype=np.float32))
    layer = MaxPool2D(2)
    layer.forward(np.zeros((1, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"output gradient of shape \(1, 1, 2, 2\)"):
        layer.backward(np.zeros((1, 1, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="pool_size"):
        MaxPool2D(0)


def test_backward_before_forward_is_an_error():
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        MaxPool2D(2).backward(np.zeros((1, 1, 2, 2), dtype=np.float32))


def test_config_rebuilds_the_same_layer():
    layer = MaxPool2D(3, input_shape=(2, 9, 9))
    again = MaxPool2D(**layer.config())
    assert again.pool_size == 3 and again.input_shape == (2, 9, 9)


# -- average pooling and global average pooling ------------------------------------------------

def reference_average(x, k):
    """Y[n, c, u, v] = mean of the k×k window, loops; and ∂E/∂X for ∂E/∂Y = dy, loops."""
    n, c, h, w = x.shape
    y = np.zeros((n, c, h // k, w // k))
    for i, j, u, v in np.ndindex(*y.shape):
        y[i, j, u, v] = x[i, j, u * k:(u + 1) * k, v * k:(v + 1) * k].mean()
    return y


def reference_average_backward(x, dy, k):
    dx = np.zeros_like(x, dtype=np.float64)
    for i, j, u, v in np.ndindex(*dy.shape):
        dx[i, j, u * k:(u + 1) * k, v * k:(v + 1) * k] += dy[i, j, u, v] / (k * k)
    return dx


@pytest.mark.parametrize("name", list(NAMESPACES))
@pytest.mark.parametrize("k, shape", [(2, (3, 2, 6, 8)), (2, (2, 3, 7, 5)), (3, (2, 1, 9, 10))])
def test_avgpool_matches_reference_loops_on_every_namespace(name, k, shape):
    dev = NAMESPACES[name]
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    layer = xc.AvgPool2D(k)
    y = layer.forward(backend.to_device(x, dev))
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(backend.to_device(dy, dev))
    assert backend.Device.of(y) == dev and backend.Device.of(dx) == dev
    np.testing.assert_allclose(backend.to_numpy(y), reference_average(x, k), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx), reference_average_backward(x, dy, k), rtol=1e-12)


@pytest.mark.parametrize("k, shape", [(2, (3, 2, 6, 8)), (2, (2, 3, 7, 5)), (3, (2, 1, 9, 10))])
def test_avgpool_forward_and_input_gradient_match_pytorch(k, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, layer = rng.standard_normal(shape), xc.AvgPool2D(k)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, k)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.backward(dy), tx.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", list(NAMESPACES))
def test_global_average_pool_matches_pytorch_adaptive_avg_pool2d(name):
    torch = pytest.importorskip("torch")
    dev = NAMESPACES[name]
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 3, 5, 7))
    layer = xc.GlobalAveragePool2D()
    y = layer.forward(backend.to_device(x, dev))
    assert tuple(y.shape) == (4, 3) and layer.output_shape((3, 5, 7)) == (3,)
    dy = rng.standard_normal((4, 3))
    dx = layer.backward(backend.to_device(dy, dev))
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, 1).flatten(1)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(backend.to_numpy(y), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(dx), tx.grad.numpy(), rtol=1e-12)
    assert backend.to_numpy(dx).flags.writeable


def test_avgpool_and_global_pool_shapes_errors_and_config():
    assert xc.AvgPool2D(2).output_shape((4, 7, 9)) == (4, 3, 4)
    assert xc.AvgPool2D(**xc.AvgPool2D(3, input_shape=(2, 9, 9)).config()).input_shape == (2, 9, 9)
    with pytest.raises(ShapeError, match=r"AvgPool2D: pool_size 4 is larger"):
        xc.AvgPool2D(4).forward(np.zeros((1, 1, 3, 8), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"GlobalAveragePool2D.*\(N, C, H, W\)"):
        xc.GlobalAveragePool2D().forward(np.zeros((2, 8), dtype=np.float32))
    layer = xc.GlobalAveragePool2D()
    layer.forward(np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"output gradient of shape \(2, 3\)"):
        layer.backward(np.zeros((2, 4), dtype=np.float32))



# -- at the edges ----------------------------------------------------------------------------------

def test_inference_forward_is_the_reference_and_keeps_nothing_for_backward():
    x = np.random.default_rng(4).standard_normal((2, 3, 7, 6))
    layer = MaxPool2D(2)
    np.testing.assert_array_equal(layer.forward(x, training=False), reference_forward(x, 2))
    with pytest.raises(RuntimeError, match="backward needs a forward"):
        layer.backward(np.zeros((2, 3, 3, 3)))


def test_one_window_as_large_as_the_input_and_a_window_of_289_offsets():
    """h = w = k is allowed (one output); k = 17 has offsets 0..288, more than a uint8 holds."""
    rng = np.random.default_rng(5)
    for k, shape in [(2, (3, 2, 2, 2)), (17, (2, 2, 17, 18))]:
        x = rng.standard_normal(shape)
        x[0, 0, -1, k - 1] = 10.0  # the winner is the last offset of the first window
        layer = MaxPool2D(k)
        y = layer.forward(x)
        np.testing.assert_array_equal(y, reference_forward(x, k))
        dy = rng.standard_normal(y.shape)
        np.testing.assert_array_equal(layer.backward(dy), reference_backward(x, dy, k))
        assert layer.output_shape(shape[1:]) == (shape[1], shape[2] // k, shape[3] // k)


def test_training_keeps_one_byte_per_output_and_nothing_of_the_input():
    """The module's memory claim: only the uint8 winners (and the input's shape) are kept."""
    layer = MaxPool2D(2)
    layer.forward(np.random.default_rng(6).standard_normal((2, 3, 8, 8)))
    saved = layer.saved_for_backward()
    assert saved["winner"].dtype == np.uint8 and saved["winner"].shape == (2, 3, 4, 4)
    assert saved["input_shape"] == (2, 3, 8, 8) and set(saved) == {"winner", "input_shape"}


def test_constructor_arguments_are_checked_and_named():
    assert MaxPool2D().pool_size == 2 and MaxPool2D().config() == {"pool_size": 2, "input_shape": None}
    with pytest.raises(ValueError, match=r"MaxPool2D: pool_size must be an integer >= 1, got 0"):
        MaxPool2D(0)
    with pytest.raises(ValueError, match=r"MaxPool2D: input_shape \(C, H, W\) must be 3 integers >= 1, got \(4, 4\)"):
        MaxPool2D(2, input_shape=(4, 4))
    with pytest.raises(ShapeError, match=r"MaxPool2D: pool_size 4 is larger than the input \(1, 3, 8\)"):
        MaxPool2D(4, input_shape=(1, 3, 8))
    with pytest.raises(ShapeError, match=r"MaxPool2D: pool_size 4 is larger than the input \(1, 8, 3\)"):
        MaxPool2D(4).output_shape((1, 8, 3))
    with pytest.raises(ShapeError, match=r"MaxPool2D: expects \(C, H, W\) samples, got \(8, 8\)"):
        MaxPool2D(2).output_shape((8, 8))
    with pytest.raises(ShapeError, match=r"MaxPool2D\(pool_size=2, input_shape=None\): expected input of shape "
                                         r"\(N, C, H, W\), got \(2, 8, 8\)"):
        MaxPool2D(2).forward(np.zeros((2, 8, 8)))


def test_global_average_pool_names_a_sample_shape_that_is_not_c_h_w():
    assert GlobalAveragePool2D().output_shape((4, 3, 5)) == (4,)
    for shape in [(8, 8), (1, 2, 3, 4)]:
        with pytest.raises(ShapeError, match=rf"^GlobalAveragePool2D: expects \(C, H, W\) samples, got "
                                             rf"{re.escape(str(shape))}$"):
            GlobalAveragePool2D().output_shape(shape)
