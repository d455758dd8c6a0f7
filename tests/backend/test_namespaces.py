"""``xpcnn.backend.array_namespace``: array-api-compat's answer, looked up once per array type."""

import array_api_compat
import array_api_strict
import numpy as np
import pytest

from xpcnn.backend import namespaces
from xpcnn.backend.namespaces import array_namespace


@pytest.fixture
def counted(monkeypatch):
    """array-api-compat's lookups, counted; the cache starts empty."""
    calls = []
    compat = namespaces._compat_namespace
    monkeypatch.setattr(namespaces, "_BY_TYPE", {})
    monkeypatch.setattr(namespaces, "_compat_namespace", lambda *xs: calls.append(len(xs)) or compat(*xs))
    return calls


def _examples():
    yield np.ones((2, 3), dtype=np.float32)
    yield np.float32(1.5)  # a NumPy scalar: a type of its own
    yield array_api_strict.asarray([1.0, 2.0])
    yield array_api_strict.asarray([1.0], device=array_api_strict.Device("device1"))


def test_it_answers_what_array_api_compat_answers(counted):
    for x in _examples():
        assert array_namespace(x) is array_api_compat.array_namespace(x)
        assert array_namespace(x) is array_api_compat.array_namespace(x)  # and again, from the dictionary


def test_torch_tensors_get_array_api_compats_torch_namespace(counted):
    torch = pytest.importorskip("torch")
    t = torch.ones(3)
    assert array_namespace(t) is array_api_compat.array_namespace(t)
    assert array_namespace(torch.zeros(2, dtype=torch.float64)) is array_api_compat.array_namespace(t)


def test_one_lookup_per_array_type(counted):
    for _ in range(3):
        array_namespace(np.zeros(2))
        array_namespace(np.ones((4, 4), dtype=np.float32))
        array_namespace(array_api_strict.asarray([1.0]))
    assert counted == [1, 1]  # NumPy once, array_api_strict once


def test_a_non_array_gets_array_api_compats_error_and_is_not_remembered(counted):
    for _ in range(2):
        with pytest.raises(TypeError):
            array_namespace([1.0, 2.0])
    assert counted == [1, 1] and list not in namespaces._BY_TYPE


def test_several_arrays_are_always_checked_together(counted):
    a, b = np.zeros(2), array_api_strict.asarray([1.0])
    assert array_namespace(a, a) is array_api_compat.array_namespace(a)
    with pytest.raises(TypeError, match="[Mm]ultiple namespaces"):
        array_namespace(a, b)
    assert counted == [2, 2]
