"""float32 in, float32 everywhere: outputs, gradients, parameters, losses and optimizer state."""

import numpy as np
import pytest

import xpcnn as xc


@pytest.mark.parametrize("engine", ["signal", "gemm"])
@pytest.mark.parametrize("optimizer", [lambda: xc.SGD(0.1), lambda: xc.SGD(0.1, momentum=0.9), lambda: xc.Adam()])
def test_float32_model_never_computes_in_float64(engine, optimizer):
    model = xc.Sequential([
        xc.Convolutional((1, 9, 9), 3, 4, engine=engine), xc.Sigmoid(), xc.Flatten(),
        xc.Dense(4 * 7 * 7, 10), xc.ReLU(), xc.Dense(10, 3), xc.Softmax(),
    ], seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 9, 9), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 6)]
    out = x
    for layer in model.layers:
        out = layer.forward(out)
        assert out.dtype == np.float32, f"{layer!r} output is {out.dtype}"
    loss_fn, prime = xc.get_loss("categorical_cross_entropy")
    assert loss_fn(y, out).dtype == np.float32
    grad = prime(y, out)
    assert grad.dtype == np.float32
    for layer in reversed(model.layers):
        grad = layer.backward(grad)
        if grad is not None:
            assert grad.dtype == np.float32, f"{layer!r} input gradient is {grad.dtype}"
        for name, g in layer.grads.items():
            assert g.dtype == np.float32, f"{layer!r} grad {name} is {g.dtype}"
    opt = optimizer()
    opt.step(model.layers)
    for layer in model.layers:
        for name, p in layer.params.items():
            assert p.dtype == np.float32, f"{layer!r} {name} became {p.dtype}"
    assert all(s.dtype == np.float32 for s in opt.slots.values())


def test_fit_casts_float64_and_uint8_inputs_to_the_model_dtype():
    model = xc.Sequential([xc.Flatten(), xc.Dense(4, 2), xc.Sigmoid()], seed=0)
    x = np.arange(32, dtype=np.uint8).reshape(8, 2, 2)
    y = np.eye(2)[np.arange(8) % 2]  # float64 labels
    model.fit(x, y, epochs=1, batch_size=4)
    assert model.predict(x.astype(np.float64)).dtype == np.float32
