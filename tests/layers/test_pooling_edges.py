"""MaxPool2D: inference path, window sizes at the edges, what training keeps, named errors (mutation tests).

Written to kill mutmut's survivors in xpcnn/layers/pooling.py, against the loops of test_pooling.py.
"""
import re

import numpy as np
import pytest

from test_pooling import reference_backward, reference_forward
from xpcnn.errors import ShapeError
from xpcnn.layers import MaxPool2D


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
    saved = layer._recall()
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
    from xpcnn.layers import GlobalAveragePool2D

    assert GlobalAveragePool2D().output_shape((4, 3, 5)) == (4,)
    for shape in [(8, 8), (1, 2, 3, 4)]:
        with pytest.raises(ShapeError, match=rf"^GlobalAveragePool2D: expects \(C, H, W\) samples, got "
                                             rf"{re.escape(str(shape))}$"):
            GlobalAveragePool2D().output_shape(shape)
