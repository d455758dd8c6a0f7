"""The backend layer: the only code that knows NumPy, SciPy and CuPy.

Everything above it sees only ``xp = array_namespace(...)`` and these functions:

* :mod:`.libraries`: one small object per array library (NumPy, CuPy, and the host fallback
  for any other array-API namespace), holding its namespace, signal module, FFT functions and
  the explicit moves to and from the host; :func:`backend_for` picks one from a table;
* :mod:`.devices`: ``"cpu"`` is NumPy, ``"cuda"`` / ``"cuda:N"`` is CuPy, ``"torch:cpu"``,
  ``"torch:cuda:N"``, ``"torch:mps"`` are PyTorch tensors (both imported lazily);
  explicit moves between devices (:func:`to_device`, :func:`to_numpy`, and :func:`host_buffer`, a
  fresh host copy for code that handles raw memory: MPI, file formats), never implicit ones;
* :mod:`.correlation`: the correlation dispatch (:func:`correlate`, :func:`convolve`, :func:`rfft2`,
  :func:`irfft2`): ``scipy.signal`` / ``scipy.fft`` for NumPy arrays, ``cupyx.scipy.signal`` /
  ``cupy.fft`` for CuPy arrays, ``torch.fft`` (and a host round trip for direct correlations) for tensors;
* :mod:`.namespaces`: :func:`array_namespace`, array-api-compat's, remembered per array type (the
  layers ask on every pass);
* :mod:`.random`: seeded initial weights, drawn by NumPy on the host so a seed gives the same
  weights on every device; dropout masks drawn on the data's device from a host key.
"""

from ..errors import DeviceError
from .devices import (CPU, Array, Device, as_dtype, device_of, dtype_name, get_device, host_buffer, namespace_of,
                      to_device, to_numpy)
from .correlation import choose_method, contiguous, convolve, correlate, irfft2, rfft2, synchronize
from .libraries import (BACKENDS, CUPY, HOST, NUMPY, TORCH, ArrayBackend, CupyBackend, TorchBackend, backend_for,
                        check_array, float_errors_ignored)
from .namespaces import array_namespace
from .random import new_rng, permutation, random_key, rng_state, set_rng_state, uniform, uniform_from_key, zeros

__all__ = [
    "array_namespace", "Array", "Device", "DeviceError", "CPU", "get_device", "device_of", "namespace_of",
    "to_device", "to_numpy", "host_buffer",
    "as_dtype", "dtype_name", "float_errors_ignored", "ArrayBackend", "CupyBackend", "TorchBackend", "BACKENDS",
    "NUMPY", "CUPY", "TORCH", "HOST",
    "backend_for", "check_array", "correlate", "convolve", "choose_method", "rfft2", "irfft2", "contiguous",
    "synchronize",
    "new_rng", "rng_state", "set_rng_state", "uniform", "zeros", "permutation", "random_key", "uniform_from_key",
]
