#!/usr/bin/env python
"""What a functional path for JAX would cost (docs/backends.md, "JAX"): im2col's window writes, the
convnet's second layer at batch 128, written in place with NumPy, through a one-call backend
indirection with NumPy (what every NumPy user would pay), and as ``x.at[...].set`` with eager JAX.

    PYTHONPATH=. python benchmarks/jax_functional_path.py      # needs jax (pip install jax)

Each variant's best of 7 rounds, in seconds. One process; a shared, noisy machine gives noisy numbers.
"""

from __future__ import annotations

import time

import numpy as np

N, C, H, W, K = 128, 32, 14, 14, 3


def best(fn, rounds=7):
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def windows(x):
    return [(slice(p * C, (p + 1) * C), x[:, :, p // K:p // K + H - 2, p % K:p % K + W - 2]) for p in range(K * K)]


def numpy_in_place(xt):
    cols = np.empty((K * K * C, N, H - 2, W - 2), xt.dtype)
    for rows, window in windows(xt):
        cols[rows, ...] = window
    return cols


class Numpy:
    def at_set(self, x, index, value):
        x[index] = value
        return x


TABLE = {np.ndarray: Numpy()}


def at_set(x, index, value):  # the indirection: a dictionary lookup by type, then a method call
    return TABLE[type(x)].at_set(x, index, value)


def numpy_indirect(xt):
    cols = np.empty((K * K * C, N, H - 2, W - 2), xt.dtype)
    for rows, window in windows(xt):
        cols = at_set(cols, (rows, Ellipsis), window)
    return cols


def main():
    x = np.random.default_rng(0).random((C, N, H, W), dtype=np.float32)
    print(f"im2col of ({C}, {N}, {H}, {W}), {K}x{K}: {K * K} window writes")
    t_in, t_ind = best(lambda: numpy_in_place(x)), best(lambda: numpy_indirect(x))
    print(f"  numpy in place      {t_in * 1e3:8.3f} ms")
    print(f"  numpy indirection   {t_ind * 1e3:8.3f} ms  ({(t_ind - t_in) / (K * K) * 1e6:+.2f} us per write)")
    calls = 10 ** 5
    start = time.perf_counter()
    small = np.zeros(4, np.float32)
    for _ in range(calls):
        at_set(small, 0, 1.0)
    per_call = (time.perf_counter() - start) / calls
    start = time.perf_counter()
    for _ in range(calls):
        small[0] = 1.0
    per_call -= (time.perf_counter() - start) / calls
    print(f"  the indirection alone: {per_call * 1e6:.2f} us per call")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("  jax: not installed")
        return
    xj = jnp.asarray(x)

    def jax_functional():
        cols = jnp.empty((K * K * C, N, H - 2, W - 2), jnp.float32)
        for rows, window in windows(xj):
            cols = cols.at[rows, ...].set(window)
        return cols.block_until_ready()

    def jax_stack():  # what JAX would rather do: one stack, no writes
        return jnp.concatenate([w for _, w in windows(xj)], axis=0).block_until_ready()

    np.testing.assert_array_equal(np.asarray(jax_functional()), numpy_in_place(x))
    t_jax, t_stack = best(jax_functional), best(jax_stack)
    print(f"  jax {jax.__version__} eager .at[].set  {t_jax * 1e3:8.3f} ms  ({t_jax / t_in:.1f}x numpy in place)")
    print(f"  jax eager concatenate   {t_stack * 1e3:8.3f} ms  ({t_stack / t_in:.1f}x)")
    f = jax.jit(lambda a: jnp.concatenate([w for _, w in windows(a)], axis=0))
    f(xj).block_until_ready()
    t_jit = best(lambda: f(xj).block_until_ready())
    print(f"  jax jit concatenate     {t_jit * 1e3:8.3f} ms  ({t_jit / t_in:.1f}x)")


if __name__ == "__main__":
    main()
