"""JAX (issue 23, docs/backends.md): a ``jax.Array`` is refused in one line that names why (JAX arrays are
immutable; xpcnn writes into arrays in place). With JAX installed the real one is used; without it, a
stand-in ``jax`` module whose ``Array`` array-api-compat recognises the same way (by module and name)."""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest

import xpcnn as xc
from xpcnn.zoo import build_model


class _StandInArray:
    """Enough of an array to reach the check: a shape, a dtype and an array namespace."""

    shape, ndim, dtype = (2, 1, 28, 28), 4, np.dtype("float32")

    def __array_namespace__(self, api_version=None):
        return np


@pytest.fixture
def jax_array(monkeypatch):
    if importlib.util.find_spec("jax") is not None:
        import jax.numpy as jnp
        return jnp.ones((2, 1, 28, 28), dtype=jnp.float32)
    jax = types.ModuleType("jax")
    jax.Array = type("Array", (), {})
    monkeypatch.setitem(sys.modules, "jax", jax)
    return type("ArrayImpl", (_StandInArray, jax.Array), {})()


def test_a_jax_array_is_refused_in_one_line_naming_immutability_and_in_place_writes(jax_array):
    model, _ = build_model("convnet", (1, 28, 28), 10, seed=0)
    for call in (lambda: model.forward(jax_array), lambda: xc.to_numpy(jax_array),
                 lambda: xc.backend.backend_for(jax_array)):
        with pytest.raises(xc.errors.ConfigTypeError) as info:
            call()
        message = str(info.value)
        assert "JAX arrays are not supported" in message and "immutable" in message and "in place" in message
        assert "\n" not in message


def test_importing_xpcnn_imports_no_jax():
    import subprocess
    code = "import sys, xpcnn; assert 'jax' not in sys.modules, 'jax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
