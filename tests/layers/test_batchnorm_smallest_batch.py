"""BatchNorm's smallest training batch: two values per channel, whatever the image's shape."""

import pytest

import xpcnn as xc


@pytest.mark.parametrize("sample, smallest", [
    ((3, 1, 1), 2),   # one value per sample: two samples
    ((3, 2, 1), 1),   # a column of two: one sample already has two values per channel
    ((3, 1, 2), 1),
    ((3, 5, 7), 1),
])
def test_batchnorm2d_needs_two_values_per_channel_from_all_of_h_and_w(sample, smallest):
    assert xc.BatchNorm2D(3).min_training_batch(sample) == smallest


def test_batchnorm1d_needs_two_samples():
    assert xc.BatchNorm1D(4).min_training_batch((4,)) == 2
