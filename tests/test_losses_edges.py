"""Losses on every array-API namespace (mutation tests): ``target_problem`` names the first bad sample
of array_api_strict targets too, as the trainer's check before a step does on any device."""

import numpy as np
import pytest

from xpcnn.losses import target_problem

xs = pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("device", ["CPU_DEVICE", "device1"])
def test_target_problem_on_array_api_strict_names_the_first_bad_sample(device):
    cce, bce = "categorical_cross_entropy", "binary_cross_entropy"
    targets = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.0]])
    y = xs.asarray(targets, device=xs.Device(device))
    assert target_problem(cce, y) == (2, f"{cce} needs one-hot targets (one 1 per row)")
    assert target_problem(bce, y) == (3, f"{bce} needs targets in {{0, 1}}")
    assert target_problem(cce, y[:2, ...]) is None
