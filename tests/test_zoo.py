"""Named networks (xpcnn/zoo.py): the derivation's ``seed`` network and the deeper ``convnet``."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import zoo
from xpcnn.datasets import load_dataset, prepare


def test_seed_is_the_derivations_network_with_binary_cross_entropy():
    model, loss = zoo.build_model("seed", (1, 28, 28), 2, seed=0)
    assert loss == "binary_cross_entropy"
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Convolutional", "Sigmoid", "Reshape", "Dense", "Sigmoid", "Dense", "Sigmoid"]
    conv = model.layers[0]
    assert conv.config()["kernel_size"] == 3 and conv.depth == 5 and conv.bias == "untied" and conv.padding == 0
    assert model.layers[2].config() == {"input_shape": [5, 26, 26], "output_shape": [3380]}
    assert model.layers[3].config() == {"input_size": 3380, "output_size": 100}
    assert model.layers[5].config() == {"input_size": 100, "output_size": 2}
    assert model.parameter_count() == 5 * 9 + 5 * 26 * 26 + 3380 * 100 + 100 + 100 * 2 + 2


def test_convnet_has_two_conv_pool_blocks_and_a_softmax():
    model, loss = zoo.build_model("convnet", (1, 28, 28), 10, seed=0)
    assert loss == "categorical_cross_entropy"
    convs = [layer for layer in model.layers if isinstance(layer, xc.Convolutional)]
    assert [(c.depth, c.padding, c.bias) for c in convs] == [(32, 1, "tied"), (64, 1, "tied")]
    assert sum(isinstance(layer, xc.MaxPool2D) for layer in model.layers) == 2
    out = xc.to_numpy(model.forward(np.zeros((3, 1, 28, 28), dtype=np.float32)))
    assert out.shape == (3, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)


def test_convnet_bn_has_conv_batchnorm_pool_relu_blocks_dropout_and_a_softmax():
    model, loss = zoo.build_model("convnet-bn", (1, 28, 28), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Convolutional", "BatchNorm2D", "MaxPool2D", "ReLU"] * 2 + [
        "Flatten", "Dropout", "Dense", "ReLU", "Dropout", "Dense", "Softmax"]
    assert [model.layers[i].bias for i in (0, 4)] == ["none", "none"]  # BatchNorm's beta is the bias
    assert loss == "categorical_cross_entropy" and model.output_shape == (10,)
    assert zoo.get_spec("convnet-bn").recipe["epochs"] == 15


def test_same_seed_same_weights_and_dtype_is_respected():
    a, _ = zoo.build_model("convnet", (1, 28, 28), 4, seed=7)
    b, _ = zoo.build_model("convnet", (1, 28, 28), 4, seed=7, dtype="float64")
    assert b.dtype == "float64" and b.layers[0].params["kernels"].dtype == np.float64
    np.testing.assert_allclose(b.layers[0].params["kernels"], a.layers[0].params["kernels"], rtol=1e-7)


def test_unknown_model_and_too_few_classes_are_value_errors():
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        zoo.build_model("resnet")
    with pytest.raises(ValueError, match="at least 2 classes"):
        zoo.build_model("seed", num_classes=1)


def test_every_model_has_a_training_recipe():
    for spec in zoo.MODELS.values():
        assert set(spec.recipe) == {"optimizer", "learning_rate", "batch_size", "epochs"}


def test_convnet_learns_real_digits_with_its_recipe():
    data = load_dataset("sample")
    x, y, _ = prepare(data.train.images, data.train.labels, [0, 1, 7], limit=60, seed=0)
    xt, yt, _ = prepare(data.test.images, data.test.labels, [0, 1, 7], limit=60, seed=0)
    model, loss = zoo.build_model("convnet", (1, 28, 28), 3, seed=0)
    recipe = zoo.get_spec("convnet").recipe
    model.fit(x, y, loss=loss, epochs=3, batch_size=16,
              optimizer=xc.get_optimizer(recipe["optimizer"], recipe["learning_rate"]))
    assert model.evaluate(xt, yt, loss=loss)["accuracy"] > 0.9


# -- one SGD step of every zoo model against PyTorch, parameter by parameter -------------------

@pytest.mark.parametrize("name", sorted(zoo.MODELS))
def test_one_sgd_step_of_each_zoo_model_matches_pytorch_parameter_by_parameter(name):
    torch = pytest.importorskip("torch")
    from xpcnn.testing.torch_twins import torch_loss, torch_twin

    classes = 10 if name != "seed" else 2
    model, loss = zoo.build_model(name, (1, 28, 28), classes, seed=0, dtype="float64")
    net, pairs = torch_twin(model)
    rng = np.random.default_rng(0)
    x = rng.random((6, 1, 28, 28))
    y = np.eye(classes)[rng.integers(0, classes, 6)]
    before = [np.array(xc.to_numpy(layer.params[key])) for layer, key, _ in pairs]
    assert len(pairs) == sum(len(layer.params) for layer in model.layers)  # every parameter is compared

    lr = 0.1
    value, out = model.train_step(x, y, *xc.get_loss(loss), xc.SGD(lr))
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    t_out = net(torch.tensor(x))
    t_value = torch_loss(torch, loss)(t_out, torch.tensor(y))
    t_value.backward()
    optimizer.step()

    np.testing.assert_allclose(xc.to_numpy(out), t_out.detach().numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(float(value), t_value.item(), rtol=1e-10)
    for (layer, key, param), old in zip(pairs, before):
        ours = xc.to_numpy(layer.params[key]) - old  # the step, compared relative to its own size
        theirs = param.detach().numpy() - old
        assert np.abs(theirs).max() > 0, f"{layer!r}.{key}: PyTorch did not move it; the check could not fail"
        np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9 * np.abs(theirs).max(),
                                   err_msg=f"{name}: {layer!r}.{key}")


def _relu_before_pool(layers):
    """The usual order, ``ReLU -> MaxPool``, for each ``MaxPool -> ReLU`` pair of ``layers``."""
    layers = list(layers)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], xc.MaxPool2D) and isinstance(layers[i + 1], xc.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return layers


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("build", [zoo.convnet_layers, zoo.convnet_bn_layers])
def test_pooling_before_the_relu_trains_the_same_network_bit_for_bit(build, dtype):
    """The zoo pools before each ReLU (a quarter of the ReLU's work): outputs, losses and the
    parameters after training steps equal the usual order's exactly, ties and all-negative windows included."""
    kwargs = {"widths": (3, 4), "hidden": 8}
    ours = build((2, 8, 8), 3, **kwargs)
    usual = _relu_before_pool(build((2, 8, 8), 3, **kwargs))
    assert [type(a) for a in ours] != [type(b) for b in usual]
    models = [xc.Sequential(layers, seed=7, dtype=dtype).compile("categorical_cross_entropy")
              for layers in (ours, usual)]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 2, 8, 8)).astype(dtype)
    # zero corners: windows of equal conv outputs (the bias alone), ties in every pool, and at
    # the first step (zero biases; shuffle=False makes them the first batch) windows where an exact 0
    # follows negative outputs: there a ReLU derivative of 1 at 0 would tell the orders apart
    x[:2, :, :4, :4] = 0.0
    x[2:4, :, 4:, 4:] = 0.0
    x[4:6] = -np.abs(x[4:6])
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 12)]
    histories = [m.fit(x, y, epochs=3, batch_size=4, optimizer=xc.Adam(0.05), shuffle=False) for m in models]
    assert histories[0]["loss"] == histories[1]["loss"]
    for a, b in zip(models[0].layers, models[1].layers):
        for name in a.params:
            assert np.array_equal(xc.to_numpy(a.params[name]), xc.to_numpy(b.params[name])), (a, name)
    assert np.array_equal(xc.to_numpy(models[0].predict(x)), xc.to_numpy(models[1].predict(x)))
