"""gemm engine: when its copies split over threads, and what biased_forward keeps (mutation tests).

Written for mutmut's survivors in xpcnn/engines/gemm.py. The split is a performance rule, not a value (a
split copy computes the same values, see test_engines.py); these tests pin the rule itself: a copy or sum
splits over the backend's threads exactly when it moves at least ``PARALLEL_VALUES`` values.
"""
import numpy as np
import pytest

from reference import conv_backward, conv_forward
from test_engines import assert_close, operands
from xpcnn import backend
from xpcnn.engines import ENGINES, get_engine
from xpcnn.engines.gemm import batch_major, col2im, im2col

N, C, H, W, K_H, K_W = 2, 3, 7, 6, 3, 2
HO, WO = H - K_H + 1, W - K_W + 1


@pytest.fixture
def pieces(monkeypatch):
    """Two threads; the number of pieces each split copy was cut into, in call order."""
    monkeypatch.setattr(backend.NUMPY, "threads", 2)
    calls = []
    parallel = backend.NUMPY.parallel
    monkeypatch.setattr(backend.NUMPY, "parallel", lambda work, count: (calls.append(count), parallel(work, count)))
    return calls


def _pieces_of(run, monkeypatch, values, calls):
    """``(pieces, result)`` of ``run()`` when ``values`` is the threshold, then when it is one more."""
    out = []
    for threshold in (values, values + 1):
        monkeypatch.setattr(backend.libraries, "PARALLEL_VALUES", threshold)
        start = len(calls)
        result = run()
        out.append((calls[start:], result))
    return out


def test_im2col_splits_when_its_columns_hold_parallel_values_values(monkeypatch, pieces):
    x = np.random.default_rng(1).standard_normal((N, C, H, W))
    values = K_H * K_W * C * N * HO * WO  # the columns' size
    (at, cols), (above, cols_above) = _pieces_of(lambda: im2col(x, K_H, K_W), monkeypatch, values, pieces)
    assert cols.size == values
    assert at == [2] and above == [1]
    np.testing.assert_array_equal(cols, cols_above)


def test_col2im_splits_its_sum_when_the_columns_hold_parallel_values_values(monkeypatch, pieces):
    cols = np.random.default_rng(2).standard_normal((K_H * K_W * C, N * HO * WO))
    shape = (N, C, H, W)
    # two splits: the sum of the windows (cols.size values), then batch_major (N·C·H·W < cols.size)
    (at, x), (above, x_above) = _pieces_of(lambda: col2im(cols, shape, K_H, K_W), monkeypatch, cols.size, pieces)
    assert at == [2, 1] and above == [1, 1]
    np.testing.assert_array_equal(x, x_above)


def test_batch_major_splits_when_the_array_holds_parallel_values_values(monkeypatch, pieces):
    x = np.random.default_rng(3).standard_normal((C, N, H, W))
    (at, y), (above, _) = _pieces_of(lambda: batch_major(x), monkeypatch, x.size, pieces)
    assert at == [2] and above == [1]
    np.testing.assert_array_equal(y, np.transpose(x, (1, 0, 2, 3)))


@pytest.mark.parametrize("shape", [(2, 1, 5, 7, 3, 2), (3, 4, 6, 5, 2, 3)])  # per sample, one product
@pytest.mark.parametrize("name", list(ENGINES))
def test_biased_forward_keeps_nothing_by_default_and_what_the_kernel_gradient_reuses(name, shape):
    x, kernels, dy = operands("float64", *shape)
    d = kernels.shape[0]
    bias = np.arange(1.0, d + 1.0)
    engine = get_engine(name)
    y, kept = engine.biased_forward(x, kernels, bias)
    assert kept is None
    assert_close(y, conv_forward(x, kernels, np.zeros(d)) + bias[:, None, None], "float64")
    _, kept = engine.biased_forward(x, kernels, bias, keep=True)
    dk_ref = conv_backward(x, kernels, dy)[0]
    if name == "signal-direct":  # direct correlations keep nothing
        assert kept is None
        return
    # what was kept is what the kernel gradient computes from: a stand-in changes the result
    assert_close(engine.backward(x, kernels, dy, 1, 2 * kept)[0], 2 * dk_ref, "float64")
