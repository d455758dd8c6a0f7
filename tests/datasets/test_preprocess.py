"""Preprocessing (xpcnn/datasets/preprocess.py): class choice, limit, seeded shuffle, scaling, one-hot."""

import numpy as np
import pytest

from xpcnn.datasets import class_counts, hold_out, one_hot, prepare, select_classes, split_per_class, to_inputs
from xpcnn.errors import DataError


def digits():
    labels = np.array([3, 7, 1, 3, 7, 3, 1, 7, 3], dtype=np.uint8)
    images = (np.arange(9, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), dtype=np.uint8)) * 20
    return images, labels


def test_select_takes_the_first_limit_samples_of_each_class_in_file_order():
    _, labels = digits()
    assert select_classes(labels, [3, 7], limit=2).tolist() == [0, 3, 1, 4]
    assert select_classes(labels, [7, 1]).tolist() == [1, 4, 7, 2, 6]


def test_prepare_gives_scaled_float32_images_and_one_hot_labels():
    images, labels = digits()
    x, y, index = prepare(images, labels, classes=[3, 7], limit=None, seed=0)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.float32
    assert y.shape == (7, 2) and y.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    # the image of sample n is its original index * 20 / 255; the label follows its image
    original = np.rint(x[:, 0, 0, 0] * 255 / 20).astype(int)
    assert [{3: 0, 7: 1}[labels[i]] for i in original] == index.tolist()
    np.testing.assert_array_equal(y, np.eye(2, dtype=np.float32)[index])


def test_shuffle_follows_the_seed():
    images, labels = digits()
    a = prepare(images, labels, [3, 7], seed=1)[0]
    b = prepare(images, labels, [3, 7], seed=1)[0]
    c = prepare(images, labels, [3, 7], seed=2)[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert sorted(a[:, 0, 0, 0].tolist()) == sorted(c[:, 0, 0, 0].tolist())


def test_bad_class_choices_are_value_errors():
    _, labels = digits()
    with pytest.raises(ValueError, match="class 5 has no samples"):
        select_classes(labels, [3, 5])
    with pytest.raises(ValueError, match="distinct"):
        select_classes(labels, [3, 3])
    with pytest.raises(ValueError, match="limit must be >= 1"):
        select_classes(labels, [3, 7], limit=0)


def test_helpers_keep_float32():
    assert to_inputs(np.full((2, 4, 4), 255, dtype=np.uint8)).dtype == np.float32
    assert one_hot(np.array([1, 0]), 3).tolist() == [[0, 1, 0], [1, 0, 0]]


def test_split_per_class_gives_disjoint_halves():
    _, labels = digits()
    first, second = split_per_class(labels)
    assert set(first) & set(second) == set()
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(9))
    assert labels[first].tolist().count(3) == 2 and labels[second].tolist().count(3) == 2


def test_pixels_are_scaled_by_exactly_one_255th_in_what_the_cli_trains_on():
    """``prepare`` (the CLI's path from IDX bytes to inputs): 255 -> exactly 1.0, 0 -> 0.0, v -> float32(v) / 255."""
    values = np.array([0, 1, 127, 128, 254, 255], dtype=np.uint8)
    images = np.broadcast_to(values[:, None, None], (6, 2, 3)).copy()
    images[:, 1, 2] = 255 - values  # every image holds its own value and its complement
    x, _, _ = prepare(images, np.array([0, 1, 0, 1, 0, 1], dtype=np.uint8), classes=(0, 1), seed=None)
    assert x.dtype == np.float32 and x.shape == (6, 1, 2, 3)
    assert x.max() == 1.0 and x.min() == 0.0
    got = {int(round(float(v) * 255)): float(v) for v in np.unique(x)}
    assert got == {v: float(np.float32(v) / np.float32(255)) for v in (*values.tolist(), *(255 - values).tolist())}
    expected = images.astype(np.float32) / np.float32(255)  # every pixel, exactly (the order is the shuffle's)
    assert np.array_equal(np.sort(x.ravel()), np.sort(expected.ravel()))


def test_a_limit_of_one_takes_the_first_sample_of_each_class():
    _, labels = digits()
    assert select_classes(labels, [3, 7, 1], limit=1).tolist() == [0, 1, 2]


def test_prepare_takes_the_limit_per_class_and_shuffles_with_seed_0_by_default():
    images, labels = digits()
    x, _, index = prepare(images, labels, classes=[3, 7], limit=2, seed=None)
    # the first two 3s (samples 0, 3) and the first two 7s (samples 1, 4), in some order
    assert sorted(np.rint(x[:, 0, 0, 0] * 255 / 20).astype(int).tolist()) == [0, 1, 3, 4]
    assert sorted(index.tolist()) == [0, 0, 1, 1]
    default, seeded = prepare(images, labels, [3, 7])[0], prepare(images, labels, [3, 7], seed=0)[0]
    np.testing.assert_array_equal(default, seeded)
    chosen = select_classes(labels, [3, 7])  # seed 0's permutation of the selection, drawn here as prepare documents
    expected = chosen[np.random.default_rng(0).permutation(chosen.size)]
    assert np.rint(default[:, 0, 0, 0] * 255 / 20).astype(int).tolist() == expected.tolist()


def test_prepare_reads_the_classes_as_integers_as_select_classes_does():
    images, labels = digits()
    for got, want in zip(prepare(images, labels, classes=(3.0, 7.0)), prepare(images, labels, classes=(3, 7))):
        np.testing.assert_array_equal(got, want)


def test_hold_out_keeps_the_last_round_fraction_n_samples_and_at_least_one():
    x = np.arange(24.0).reshape(8, 3)
    y = np.eye(2)[np.arange(8) % 2]
    (x_train, y_train), (x_val, y_val) = hold_out(x, y, 0.25)  # round(0.25 * 8) = 2 held out
    for got, want in ((x_train, x[:6]), (y_train, y[:6]), (x_val, x[6:]), (y_val, y[6:])):
        np.testing.assert_array_equal(got, want)
    (x_train, y_train), (x_val, y_val) = hold_out(x, y, 0.01)  # round(0.08) = 0: one held out all the same
    assert x_train.tolist() == x[:7].tolist() and y_train.tolist() == y[:7].tolist()
    assert x_val.tolist() == x[7:].tolist() and y_val.tolist() == y[7:].tolist()


def test_hold_out_that_leaves_no_training_sample_is_a_one_line_data_error():
    x, y = np.zeros((4, 3)), np.zeros((4, 2))
    with pytest.raises(DataError, match=r"^a validation split of 1 leaves no training sample out of 4; use a smaller"):
        hold_out(x, y, 1.0)
    with pytest.raises(DataError, match="leaves no training sample out of 2"):
        hold_out(x[:2], y[:2], 0.75)  # round(1.5) = 2 of 2


def test_class_counts_counts_the_samples_of_each_asked_class():
    _, labels = digits()  # 3 x4, 7 x3, 1 x2
    assert class_counts(labels, [3, 7, 5, 1]) == [4, 3, 0, 2]
