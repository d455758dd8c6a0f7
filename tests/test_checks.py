"""Constructor arguments (xpcnn/_checks.py and every constructor using it): a bad one is a
ConfigError naming it, before anything is allocated."""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn._checks import integer, number, one_of, shape


@pytest.mark.parametrize("make, error, fragment", [
    (lambda: xc.Convolutional((1, 8, 8), 0, depth=2), xc.ConfigError, "kernel_size must be an integer >= 1, got 0"),
    (lambda: xc.Convolutional((1, 8, 8), 3, depth=-2), xc.ConfigError, "depth must be an integer >= 1, got -2"),
    (lambda: xc.Convolutional((1, 8, 8), 3, depth=0), xc.ConfigError, "depth must be an integer >= 1, got 0"),
    (lambda: xc.Convolutional((1, 8, 8), 3, 2, padding=-1), xc.ConfigError, "padding must be an integer >= 0"),
    (lambda: xc.Convolutional((1, 8, 8), 3, 2, padding="full"), xc.ConfigError, "padding must be one of 'valid'"),
    (lambda: xc.Convolutional((1, 8, 8), 2, 2, padding="same"), xc.ConfigError, "needs an odd kernel_size, got 2"),
    (lambda: xc.Convolutional((1, 8, 8), 3.0, 2), xc.ConfigTypeError, "kernel_size must be an integer >= 1, got 3.0"),
    (lambda: xc.Convolutional((8, 8), 3, 2), xc.ConfigError, r"input_shape \(C, H, W\) must be 3 integers"),
    (lambda: xc.Convolutional((1, 0, 8), 3, 2), xc.ConfigError, r"input_shape \(C, H, W\)\[1\] must be an integer"),
    (lambda: xc.Convolutional((1, 8, 8), 3, 2, bias="shared"), xc.ConfigError,
     "bias must be one of 'untied', 'tied', 'none'"),
    (lambda: xc.Convolutional((1, 8, 8), 3, 2, engine="fast"), xc.ConfigError, "unknown convolution engine 'fast'"),
    (lambda: xc.Convolutional((1, 8, 8), 3, 2, dtype="float16"), xc.ConfigError, "dtype must be one of"),
    (lambda: xc.Convolutional((1, 2, 2), 3, 2), xc.ShapeError, "kernel_size 3 is larger than the padded input"),
    (lambda: xc.Dense(0, 3), xc.ConfigError, "Dense: input_size must be an integer >= 1, got 0"),
    (lambda: xc.Dense(4.7, 3), xc.ConfigTypeError, r"Dense: input_size must be an integer >= 1, got 4.7 \(float\)"),
    (lambda: xc.Dense(4, True), xc.ConfigTypeError, "output_size must be an integer >= 1, got True"),
    (lambda: xc.Dense(4, 3, seed=-1), xc.ConfigError, "seed must be None or an integer >= 0, got -1"),
    (lambda: xc.MaxPool2D(0), xc.ConfigError, "MaxPool2D: pool_size must be an integer >= 1, got 0"),
    (lambda: xc.MaxPool2D(2, input_shape=(1, 4)), xc.ConfigError, "input_shape"),
    (lambda: xc.Reshape((2, 3), (0, 6)), xc.ConfigError, r"Reshape: output_shape\[0\] must be an integer >= 1"),
    (lambda: xc.Reshape(6, (6,)), xc.ConfigTypeError, "Reshape: input_shape must be a sequence"),
    (lambda: xc.SGD(0.0), xc.ConfigError, "SGD: learning_rate must be > 0 and finite, got 0.0"),
    (lambda: xc.SGD(float("nan")), xc.ConfigError, "learning_rate must be > 0 and finite, got nan"),
    (lambda: xc.SGD(0.1, momentum=1.0), xc.ConfigError, r"momentum must be in \[0, 1\)"),
    (lambda: xc.Adam(0.1, beta2=1.5), xc.ConfigError, r"Adam: beta2 must be in \[0, 1\)"),
    (lambda: xc.Adam("fast"), xc.ConfigTypeError, "learning_rate must be a number > 0"),
    (lambda: xc.Sequential([]), xc.ConfigError, "needs at least one layer"),
    (lambda: xc.Sequential([xc.Dense(2, 2), "relu"]), xc.ConfigTypeError, r"layers\[1\] is 'relu', not an xpcnn layer"),
    (lambda: xc.Sequential([xc.Dense(2, 2)], dtype="int8"), xc.ConfigError, "dtype must be one of"),
    (lambda: xc.get_loss("hinge"), xc.ConfigError, "unknown loss 'hinge'"),
    (lambda: xc.get_loss((print,)), xc.ConfigTypeError, "a pair"),
])
def test_every_bad_constructor_argument_is_named(make, error, fragment):
    with pytest.raises(error, match=fragment):
        make()


def test_every_deliberate_error_is_an_xpcnn_error_and_its_builtin():
    assert issubclass(xc.ConfigTypeError, xc.ConfigError) and issubclass(xc.ConfigTypeError, TypeError)
    for cls, builtin in [(xc.ConfigError, ValueError), (xc.ShapeError, ValueError), (xc.DataError, ValueError),
                         (xc.CheckpointError, ValueError), (xc.TrainingError, RuntimeError), (xc.OutputError, OSError),
                         (xc.DeviceMismatchError, ValueError), (xc.MissingDependencyError, ImportError)]:
        assert issubclass(cls, xc.XpcnnError) and issubclass(cls, builtin)
    from xpcnn.datasets import DataNotFoundError, IdxError
    assert issubclass(IdxError, xc.DataError) and issubclass(DataNotFoundError, xc.DataError)
    assert issubclass(DataNotFoundError, FileNotFoundError)


def test_integer_types_of_any_library_are_accepted_and_returned_as_int():
    assert integer("L", "n", np.int64(3), minimum=1) == 3 and type(integer("L", "n", np.uint8(3))) is int
    assert shape("L", "s", np.array([1, 28, 28]), ndim=3) == (1, 28, 28)
    assert xc.Dense(np.int32(3), 2).input_size == 3


def test_numbers_come_back_as_python_floats_within_their_bounds():
    assert type(number("L", "x", np.float32(0.5), low=0.0)) is float
    assert number("L", "x", 0.0, low=0.0) == 0.0
    with pytest.raises(xc.ConfigError, match=r"L: x must be in \(0, 1\], got 0"):
        number("L", "x", 0, low=0.0, high=1.0, low_open=True)


def test_one_of_refuses_unhashable_values_with_the_same_message():
    with pytest.raises(xc.ConfigError, match=r"L: mode must be one of 'a', 'b', got \['a'\]"):
        one_of("L", "mode", ["a"], ("a", "b"))


def test_integer_maximum_names_the_bound_and_shortens_a_huge_value():
    assert integer("T", "n", 5, minimum=1, maximum=5) == 5
    with pytest.raises(xc.ConfigError, match=r"^T: n must be an integer <= 5, got 6$"):
        integer("T", "n", 6, minimum=1, maximum=5)
    with pytest.raises(xc.ConfigError, match=r"^T: n must be an integer >= 1, got 0$"):  # the lower bound alone
        integer("T", "n", 0, minimum=1, maximum=5)
    with pytest.raises(xc.ConfigError, match=r"got 12345678901234567890\.\.\. \(60 digits\)$"):
        integer("T", "n", int("1234567890" * 6), maximum=5)
