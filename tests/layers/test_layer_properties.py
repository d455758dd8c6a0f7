"""Property tests of layer constructors and input shapes: any argument is either accepted or a
ConfigError / ShapeError naming it; any input is either computed with the promised shape or a
ShapeError. Never a ZeroDivisionError, "math domain error", broadcast error or IndexError."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import xpcnn as xc

FAST = settings(max_examples=120, deadline=None)
EXPECTED = (xc.ConfigError, xc.ShapeError)

SMALL = st.integers(-3, 12)
ANY = st.one_of(SMALL, st.floats(-3, 12), st.none(), st.booleans(), st.text(max_size=3), st.just("same"),
                st.just("valid"), st.tuples(SMALL, SMALL, SMALL), st.lists(SMALL, max_size=4))
SHAPE3 = st.one_of(st.tuples(st.integers(-1, 9), st.integers(-1, 12), st.integers(-1, 12)), ANY)


def build(make):
    try:
        return make()
    except EXPECTED as exc:
        assert str(exc), "an error message names what is wrong"
        return None


@FAST
@given(SHAPE3, ANY, ANY, ANY, st.sampled_from(["untied", "tied", "x"]))
def test_convolutional_takes_or_names_every_argument(input_shape, kernel_size, depth, padding, bias):
    layer = build(lambda: xc.Convolutional(input_shape, kernel_size, depth, padding=padding, bias=bias))
    if layer is not None:
        c, h, w = layer.input_shape
        out = layer.output_shape(layer.input_shape)
        assert out == (layer.depth, h + 2 * layer.padding - layer.kernel_size + 1,
                       w + 2 * layer.padding - layer.kernel_size + 1) and min(out) >= 1


@FAST
@given(ANY, ANY, st.one_of(st.none(), st.integers(-2, 5)))
def test_dense_takes_or_names_every_argument(input_size, output_size, seed):
    layer = build(lambda: xc.Dense(input_size, output_size, seed=seed))
    if layer is not None:
        assert layer.params["weights"].shape == (layer.output_size, layer.input_size)
        assert isinstance(input_size, int) and not isinstance(input_size, bool) and input_size >= 1


@FAST
@given(ANY, st.one_of(st.none(), SHAPE3), ANY, ANY)
def test_pooling_and_reshape_take_or_name_every_argument(pool_size, input_shape, a, b):
    build(lambda: xc.MaxPool2D(pool_size, input_shape=input_shape))
    as_shape = lambda v: v if isinstance(v, (tuple, list)) else (v,)  # noqa: E731
    layer = build(lambda: xc.Reshape(as_shape(a), as_shape(b)))
    if layer is not None:
        assert math.prod(layer.input_shape) == math.prod(layer.output_shape(layer.input_shape))


NETWORK = [
    lambda: xc.Convolutional((2, 7, 6), 3, 2, padding=1), lambda: xc.Sigmoid(),
    lambda: xc.MaxPool2D(2), lambda: xc.Flatten(), lambda: xc.Dense(18, 4), lambda: xc.Softmax(),
]


@FAST
@given(st.lists(st.integers(0, 8), min_size=0, max_size=5), st.integers(0, len(NETWORK) - 1))
def test_a_layer_computes_the_promised_shape_or_names_the_problem(shape, which):
    layer = NETWORK[which]()
    x = np.zeros(shape, np.float32)
    try:
        y = layer.forward(x)
    except xc.ShapeError:
        return
    assert y.shape[0] == x.shape[0] and tuple(y.shape[1:]) == tuple(layer.output_shape(tuple(x.shape[1:])))
    assert layer.backward(np.ones_like(y)).shape == x.shape


@FAST
@given(st.lists(st.integers(0, 8), min_size=0, max_size=5), st.integers(1, 4))
def test_a_model_predicts_the_promised_shape_or_names_the_problem(shape, batch_size):
    model = xc.Sequential([make() for make in NETWORK], seed=0)
    x = np.zeros(shape, np.float32)
    try:
        out = model.predict(x, batch_size=batch_size)
    except xc.ShapeError as exc:
        assert "expected" in str(exc) or "predict" in str(exc)
        return
    assert out.shape == (x.shape[0], 4)
