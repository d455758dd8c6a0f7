"""What ``fit``, ``evaluate`` and ``predict`` check before any work (xpcnn/train/data_checks.py).

Data with NaN or infinity, naming the first bad sample; targets that do not suit the loss; zero
samples; bad batch sizes and epochs; and the smallest batch a layer can train on (BatchNorm's two
values per channel), counted for the short last batch and for each rank's share of it.
"""

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import backend
from xpcnn.distributed import shard
from xpcnn.train.data_checks import batch_bounds, check_batch_sizes, smallest_batch


def small(seed=0, dtype="float64"):
    return xc.Sequential([xc.Convolutional((1, 6, 6), 3, 2), xc.Sigmoid(), xc.Flatten(),
                          xc.Dense(2 * 4 * 4, 3), xc.Softmax()], seed=seed, dtype=dtype)


def data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 6, 6)), np.eye(3)[rng.integers(0, 3, n)]


@pytest.mark.parametrize("where, fill, fragment", [
    ("x", np.inf, "fit: input of sample 3 holds NaN or infinity"),
    ("y", np.nan, "fit: label of sample 3 holds NaN or infinity"),
    ("val_x", -np.inf, r"fit \(validation_data\): input of sample 3 holds NaN"),
])
def test_non_finite_data_is_refused_before_training_naming_the_first_bad_sample(device, where, fill, fragment):
    x, y = data()
    vx, vy = x.copy(), y.copy()
    target = {"x": x, "y": y, "val_x": vx}[where]
    target[3, 0] = fill
    target[7, 0] = fill
    dev = lambda a: xc.to_device(a, device)  # noqa: E731
    model = small().to(device)
    with pytest.raises(xc.DataError, match=fragment):
        model.fit(dev(x), dev(y), loss="categorical_cross_entropy", validation_data=(dev(vx), dev(vy)))
    assert model.epoch == 0 and model.optimizer is None


@pytest.mark.parametrize("loss, labels, fragment", [
    ("categorical_cross_entropy", [[1, 0, 0], [0.5, 0.5, 0]], "sample 1 .*needs targets in \\{0, 1\\}"),
    ("categorical_cross_entropy", [[1, 0, 0], [1, 1, 0]], "sample 1 .*needs one-hot targets"),
    ("categorical_cross_entropy", [[0, 0, 0], [1, 0, 0]], "sample 0 .*needs one-hot targets"),
    ("binary_cross_entropy", [[1, 0, 0], [0, 2, 0]], "sample 1 .*binary_cross_entropy needs targets in"),
])
def test_labels_that_do_not_suit_the_loss_are_refused(loss, labels, fragment):
    x, _ = data(2)
    with pytest.raises(xc.DataError, match=fragment):
        small().fit(x, np.array(labels, dtype=float), loss=loss)


def test_any_finite_targets_train_with_mse_and_multi_hot_ones_with_bce():
    x, _ = data(2)
    small().fit(x, np.array([[0.5, 0.2, 3.0], [1, 0, 0]]), loss="mse")
    small().fit(x, np.array([[1.0, 1, 0], [0, 0, 0]]), loss="binary_cross_entropy")


def test_predict_on_zero_samples_is_an_empty_result(device):
    model = small().to(device)
    empty = xc.to_device(np.zeros((0, 1, 6, 6)), device)
    out = model.predict(empty)
    assert tuple(out.shape) == (0, 3) and backend.Device.of(out) == device
    assert tuple(xc.predict_classes(model, empty).shape) == (0,)


@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_fit_and_evaluate_on_zero_samples_say_so(call):
    model = small().compile("categorical_cross_entropy")
    with pytest.raises(xc.ShapeError, match=f"{call}: got 0 samples; needs at least one"):
        getattr(model, call)(np.zeros((0, 1, 6, 6)), np.zeros((0, 3)))


@pytest.mark.parametrize("call, kwargs", [
    ("predict", {"batch_size": 0}), ("evaluate", {"batch_size": 0}), ("fit", {"batch_size": 0}),
    ("fit", {"batch_size": 2.5}), ("fit", {"epochs": -1}), ("fit", {"epochs": 1.0}),
])
def test_bad_batch_sizes_and_epochs_name_the_argument(call, kwargs):
    x, y = data(4)
    model = small().compile("categorical_cross_entropy")
    args = (x,) if call == "predict" else (x, y)
    name = next(iter(kwargs))
    with pytest.raises(xc.ConfigError, match=f"{call}: {name} must be an integer >= "):
        getattr(model, call)(*args, **kwargs)


def test_inputs_that_are_not_arrays_are_shape_errors():
    with pytest.raises(xc.ShapeError, match=r"predict: input must be an array of shape \(N, ...\), got list"):
        small().predict([[1.0]])
    with pytest.raises(xc.ShapeError, match="expected a batch"):
        xc.Sigmoid().forward(np.float64(1.0))


def test_smallest_batch_counts_the_short_last_batch_and_each_ranks_share():
    for n in range(1, 30):
        for batch_size in range(1, 12):
            for ranks in (1, 2, 3, 4):
                shares = [b - a for lo, hi in batch_bounds(n, batch_size) for a, b in
                          (shard(lo, hi, r, ranks) for r in range(ranks)) if b > a]
                assert smallest_batch(n, batch_size, ranks) == min(shares), (n, batch_size, ranks)


def test_in_data_parallel_training_a_ranks_share_of_one_sample_is_refused_too():
    model = xc.Sequential([xc.Dense(4, 3), xc.BatchNorm1D(3), xc.ReLU(), xc.Dense(3, 2), xc.Softmax()], seed=0)
    x = np.random.default_rng(0).random((10, 4), dtype=np.float32)
    check_batch_sizes(model, x, 8, "fit", ranks=1)  # batches of 8 and 2: fine in one process
    with pytest.raises(xc.ConfigError, match=r"but 10 samples in batches of 8 over 4 processes give a batch of 1; "):
        check_batch_sizes(model, x, 8, "fit", ranks=4)  # the last batch of 2 leaves two ranks one sample each
    check_batch_sizes(model, x[:8], 8, "fit", ranks=4)  # 2 per rank
