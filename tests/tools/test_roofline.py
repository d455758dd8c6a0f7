"""xpcnn.tools.roofline: a network's matrix FLOPs counted by hand, and the roofline fraction of made-up rounds."""

import pytest

import xpcnn as xc
from xpcnn import zoo
from xpcnn.tools import roofline


def test_flop_count_of_the_seed_network_matches_the_hand_count():
    model, _ = zoo.build_model("seed", (1, 28, 28), 2)
    conv = 2 * 5 * 9 * 26 * 26            # one correlation pass of the 5 kernels
    dense = 2 * 3380 * 100 + 2 * 100 * 2  # both dense layers, forward
    assert roofline.matrix_flops(model.layers, train=False) == conv + dense
    # training: conv forward + kernel gradient (no input gradient for the first layer),
    # dense forward + weight gradient + input gradient
    assert roofline.matrix_flops(model.layers, train=True) == 2 * conv + 3 * dense


def test_a_convolution_that_computes_its_input_gradient_counts_three_products():
    conv = xc.Convolutional((3, 64, 64), kernel_size=11, depth=8)  # bench.py's conv11 case
    forward = 2 * 8 * 3 * 11 * 11 * 54 * 54
    assert roofline.matrix_flops([conv, xc.Flatten()], train=True) == 3 * forward
    conv.compute_input_gradient = False
    assert roofline.matrix_flops([conv], train=True) == 2 * forward


def test_the_roofline_fraction_is_each_rounds_gflops_over_the_same_rounds_peak():
    # 1000 and 2000 samples/s at 1e6 FLOPs each: 1 and 2 GFLOP/s, against peaks of 10 and 10
    result = roofline.roofline([1000.0, 2000.0], 10 ** 6, [10.0, 10.0])
    assert result["roofline"] == {"median": pytest.approx(0.15), "min": pytest.approx(0.1),
                                  "max": pytest.approx(0.2), "rounds": 2}
    assert result["roofline_fraction"] == result["roofline"]["median"]
    assert result["peak_gflops"]["median"] == 10.0


def test_the_peak_contender_multiplies_two_square_matrices():
    peak, flops = roofline.peak_contender("cpu", "float32", 8)
    assert flops == 2 * 8 ** 3 and peak.mode == "peak" and peak.batch == 1
    product = peak.step()
    assert product.shape == (8, 8) and str(product.dtype) == "float32"
    assert roofline.measure_peak("cpu", "float64", 16, repeats=1) > 0
