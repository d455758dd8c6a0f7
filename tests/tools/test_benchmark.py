"""xpcnn.tools.benchmark: the contenders compute the network they claim to, and one configuration's
rows carry what bench.py prints and writes. No timing is asserted: the numbers depend on the machine."""

import importlib.util

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import zoo
from xpcnn.losses import get_loss
from xpcnn.optim.optimizers import SGD
from xpcnn.tools import benchmark, roofline
from xpcnn.tools.timing import Contender

HAS_TORCH = importlib.util.find_spec("torch") is not None


def test_synthetic_batch_is_images_in_the_unit_interval_and_one_hot_labels():
    x, y = benchmark.synthetic_batch((1, 28, 28), (10,), 10, 64, "float32")
    rng = np.random.default_rng(1)  # the oracle: the same draws written with NumPy
    expected_x = rng.random((64, 1, 28, 28)).astype("float32")
    expected_y = np.eye(10, dtype="float32")[rng.integers(0, 10, 64)]
    np.testing.assert_array_equal(x, expected_x)
    np.testing.assert_array_equal(y, expected_y)
    x, y = benchmark.synthetic_batch((3, 8, 8), (5, 2), None, 4, "float64")
    assert y.shape == (4, 5, 2) and y.dtype == np.float64 and 0 <= y.min() and y.max() < 1


def test_the_xpcnn_contender_takes_the_libraries_training_step():
    model, loss = zoo.build_model("seed", (1, 28, 28), 2, seed=0, dtype="float64")
    twin, _ = zoo.build_model("seed", (1, 28, 28), 2, seed=0, dtype="float64")
    x, y = benchmark.synthetic_batch(model.input_shape, model.output_shape, 2, 4, "float64")
    train, infer = benchmark.model_contenders("xpcnn[gemm]", model, x, y, loss, 0.1, "cpu")
    np.testing.assert_array_equal(xc.to_numpy(infer.step()), xc.to_numpy(twin.forward(x)))
    assert (train.mode, infer.mode, train.batch) == ("train", "infer", 4)
    train.step()
    twin.train_step(x, y, *get_loss(loss), SGD(0.1))
    np.testing.assert_array_equal(xc.to_numpy(model.layers[0].kernels), xc.to_numpy(twin.layers[0].kernels))
    np.testing.assert_allclose(xc.to_numpy(infer.step()), xc.to_numpy(twin.forward(x, training=False)))


def test_set_engine_switches_every_convolution():
    model, _ = zoo.build_model("convnet", (1, 28, 28), 10)
    benchmark.set_engine(model.layers, "signal")
    assert [layer.engine_name for layer in model.layers if isinstance(layer, xc.Convolutional)] == ["signal"] * 2


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed (pip install -e '.[bench]')")
def test_the_torch_contender_computes_the_same_outputs_and_step():
    import torch

    from xpcnn.testing.torch_twins import torch_loss, torch_model

    model, loss = zoo.build_model("convnet", (1, 28, 28), 10, seed=0, dtype="float64")
    x, y = benchmark.synthetic_batch(model.input_shape, model.output_shape, 10, 3, "float64")
    net = torch_model(model, torch, "cpu", "float64")
    train, infer = benchmark.torch_contenders(torch, net, torch_loss(torch, loss), x, y, 0.1, "cpu")
    np.testing.assert_allclose(infer.step().numpy(), xc.to_numpy(model.forward(x)), atol=1e-12)
    train.step()
    model.train_step(x, y, *get_loss(loss), SGD(0.1))
    np.testing.assert_allclose(infer.step().detach().numpy(), xc.to_numpy(model.forward(x, training=False)),
                               atol=1e-10)


def test_output_differences_are_against_the_first_contender_on_the_samples_both_have():
    outputs = {"a": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": np.array([[1.5, 2.0]]), "c": np.array([[1.0, 2.0]])}
    assert benchmark.output_differences(outputs) == {"a": 0.0, "b": 0.5, "c": 0.0}
    assert benchmark.output_tolerance("float32") > benchmark.output_tolerance("float64")


def counting(name, mode, batch=4):
    return Contender(name, mode, lambda: None, lambda: None, batch)


def test_one_configuration_gives_a_row_per_contender_and_the_peak_in_each(capsys):
    model, _ = zoo.build_model("seed", (1, 28, 28), 2)
    config = benchmark.Config("seed", "float32", 4, "cpu")
    peak, flops = roofline.peak_contender("cpu", "float32", 8)
    contenders = [counting("xpcnn[gemm]", "train"), counting("xpcnn[gemm]", "infer"), counting("torch", "train")]
    outputs = {"xpcnn[gemm]": np.zeros((4, 2)), "torch": np.full((4, 2), 0.5)}  # torch disagrees
    plan = benchmark.Plan(repeats=2, min_time=0.0, max_step=10.0, pause=0.0)
    rows = benchmark.run_config(config, [*contenders, peak], outputs, model.layers, flops, plan, {})
    captured = capsys.readouterr()
    assert "warning: contenders' outputs differ by up to 5.00e-01" in captured.err
    assert "matmul peak in these rounds" in captured.out
    assert [(r["contender"], r["mode"]) for r in rows] == [("xpcnn[gemm]", "train"), ("xpcnn[gemm]", "infer"),
                                                           ("torch", "train")]
    assert [r["outputs_agree"] for r in rows] == [True, True, False]
    for r in rows:
        assert len(r["samples_per_s"]["runs"]) == len(r["peak_gflops"]["runs"]) == r["roofline"]["rounds"] == 2
        assert r["gflops"] == pytest.approx(r["samples_per_s"]["median"] * roofline.matrix_flops(
            model.layers, r["mode"] == "train") / 1e9)


def test_a_contender_estimated_too_slow_from_a_smaller_batch_is_not_even_warmed_up():
    config = benchmark.Config("seed", "float32", 512, "cpu")
    slow = counting("per-sample", "train", batch=512)
    slow.step = lambda: pytest.fail("a skipped contender must not run")
    seconds_per_sample = {("seed", "float32", "cpu", "per-sample", "train"): 0.01}  # 5 s at batch 512
    benchmark.time_contenders(config, [slow], benchmark.Plan(max_step=2.0), seconds_per_sample)
    assert slow.skipped == "about 5 s per step > 2 x --max-step 2" and slow.runs == []
