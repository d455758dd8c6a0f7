"""One small object per array library: NumPy, CuPy, PyTorch, and the host fallback for any other namespace.

Each object holds what the rest of xpcnn needs from its library, and nothing else:

* ``namespace``: the array-API namespace (``xp``) the layers compute with;
* ``signal``: the 2-D correlation module (``scipy.signal``, ``cupyx.scipy.signal``);
* ``rfft2`` / ``irfft2``: real FFTs over the last two axes (``scipy.fft``, ``cupy.fft``);
* ``to_host`` / ``send``: the explicit moves to and from host memory (never implicit ones);
* ``contiguous`` and ``synchronize``.

:func:`backend_for` picks the object for an array from the table :data:`BACKENDS`, and
remembers the answer for the array's type, as einops' ``_backends.py`` does: CuPy is imported
only when a CuPy array (or ``"cuda"``) shows up, PyTorch only when a tensor (or ``"torch:..."``)
does. An array of any other namespace (``array_api_strict`` in the tests) gets :data:`HOST`,
which computes its correlations on the host, through NumPy, with explicit moves.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import array_api_compat
import numpy as np
import scipy.fft
import scipy.signal
from array_api_compat import array_namespace

from ..errors import ConfigTypeError, DeviceError, DeviceMismatchError

Array = Any


class ArrayBackend:
    """What one array library provides. Subclasses fill in the methods for their library."""

    name = "base"

    def owns(self, x: Array) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def namespace(self, x: Array):
        return array_namespace(x)

    #: The module with ``correlate`` / ``convolve`` (``method`` ``'direct'`` or ``'fft'``).
    signal: Any = None

    def contiguous(self, x: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_host(self, x: Array) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def send(self, x: Array, device) -> Array:  # pragma: no cover - abstract
        """``x`` (a host NumPy array, or this library's own array) on ``device``."""
        raise NotImplementedError

    def rfft2(self, x: Array, shape: tuple) -> Array:  # pragma: no cover - abstract
        """Real FFT over the last two axes, zero-padded (or cropped) to ``shape``."""
        raise NotImplementedError

    def irfft2(self, x: Array, shape: tuple) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, x: Array, who: str) -> None:
        """Refuse, in one line naming ``who``, an array this library holds but xpcnn cannot compute with."""

    def synchronize(self, x: Array) -> None:
        """Wait until the work queued on ``x``'s device is done (timings need it on a GPU)."""

    def random_uniform(self, key: int, shape: tuple, dtype: str, device) -> Array:
        """``U[0, 1)`` of ``shape`` from a generator seeded with ``key``, on ``device``.

        The default draws on the host (NumPy's PCG64) and sends the values: for NumPy that is
        where the data is; other namespaces get an explicit move.
        """
        values = np.random.default_rng(key).random(shape, dtype=np.dtype(dtype))
        return self.send(values, device)

    def signal_call(self, name: str, x: Array, kernel: Array, mode: str, method: str) -> Array:
        """``signal.<name>(x, kernel, mode, method)`` on contiguous copies, in ``x``'s dtype.

        Contiguous, because cupyx's direct path has returned wrong results on negative strides;
        ``method`` is always explicit, because cupyx's ``'auto'`` raises on N-d input.
        """
        x, kernel = self.contiguous(x), self.contiguous(kernel)
        out = getattr(self.signal, name)(x, kernel, mode=mode, method=method)
        return out.astype(x.dtype, copy=False)

    def __repr__(self) -> str:
        return f"<xpcnn backend {self.name}>"


class NumpyBackend(ArrayBackend):
    """NumPy on the host: ``scipy.signal`` and ``scipy.fft`` (multi-threaded FFTs)."""

    name = "numpy"

    def __init__(self) -> None:
        self.signal = scipy.signal
        #: Threads for ``scipy.fft`` (``-1``: one per CPU); ``scripts/bench.py --threads`` sets it.
        self.fft_workers = -1

    def owns(self, x):
        return isinstance(x, (np.ndarray, np.generic))

    def contiguous(self, x):
        return np.ascontiguousarray(x)

    def to_host(self, x):
        return x

    def send(self, x, device):
        return np.asarray(x)

    def rfft2(self, x, shape):
        return scipy.fft.rfft2(x, s=shape, workers=self.fft_workers)

    def irfft2(self, x, shape):
        return scipy.fft.irfft2(x, s=shape, workers=self.fft_workers)


class CupyBackend(ArrayBackend):
    """CuPy on a GPU: ``cupyx.scipy.signal`` and ``cupy.fft``.

    ``cupy`` and ``signal`` are the modules; by default they are imported on first use. The
    tests pass stand-ins that behave like CuPy (they refuse implicit conversion to NumPy), so
    this class's own logic runs on every machine.
    """

    name = "cupy"

    def __init__(self, cupy=None, signal=None) -> None:
        self._cupy, self._signal = cupy, signal

    @property
    def cupy(self):
        if self._cupy is None:
            self._cupy = import_cupy()
        return self._cupy

    def owns(self, x):
        # Only a CuPy that is already imported can have made x: no import just to ask.
        if self._cupy is None and "cupy" not in sys.modules:
            return False
        return isinstance(x, self.cupy.ndarray)

    @property
    def signal(self):
        if self._signal is None:
            self._signal = importlib.import_module("cupyx.scipy.signal")
        return self._signal

    def contiguous(self, x):
        return self.cupy.ascontiguousarray(x)

    def to_host(self, x):
        return x.get()

    def send(self, x, device):
        with device.native:
            return self.cupy.asarray(x)  # host-to-device, or device-to-device

    def rfft2(self, x, shape):
        return self.cupy.fft.rfft2(x, s=shape, axes=(-2, -1))

    def irfft2(self, x, shape):
        return self.cupy.fft.irfft2(x, s=shape, axes=(-2, -1))

    def synchronize(self, x):
        x.device.synchronize()

    #: ``curandRngType_t`` of the Philox-4x32-10 generator: seeding it is cheap (no state tables).
    PHILOX = 161

    def random_uniform(self, key, shape, dtype, device):
        # One cuRAND generator per GPU, re-seeded with each key: the numbers are drawn on the GPU,
        # on the current stream; only the key travels, as a kernel argument.
        generators = self.__dict__.setdefault("_generators", {})
        with device.native:
            generator = generators.get(device.name)
            if generator is None:
                generator = generators[device.name] = self.cupy.random.RandomState(method=self.PHILOX)
            generator.seed(key)
            return generator.random_sample(shape, dtype=dtype)


class HostBackend(ArrayBackend):
    """Any other array-API namespace: correlations on the host through :data:`NUMPY`.

    The FFTs use the namespace's own ``fft`` extension when it has one, so the spectral engine
    stays on the array's device; the direct correlations make an explicit round trip.
    """

    name = "host"

    def owns(self, x):
        return hasattr(x, "__array_namespace__")

    def contiguous(self, x):
        return x

    def to_host(self, x):
        xp = array_namespace(x)
        host = array_api_compat.to_device(x, xp.__array_namespace_info__().default_device())
        return np.asarray(host)

    def send(self, x, device):
        if isinstance(x, np.ndarray):
            x = device.xp.asarray(np.ascontiguousarray(x))
        return array_api_compat.to_device(x, device.native)

    def signal_call(self, name, x, kernel, mode, method):
        # No signal module for this namespace: an explicit round trip through NumPy's.
        where = array_api_compat.device(x)
        if array_api_compat.device(kernel) != where:
            raise DeviceMismatchError(f"{name}: input on {where} but kernel on {array_api_compat.device(kernel)}; "
                                      f"move one with xpcnn.to_device first")
        out = NUMPY.signal_call(name, self.to_host(x), self.to_host(kernel), mode, method)
        xp = array_namespace(x)
        return array_api_compat.to_device(xp.asarray(out), array_api_compat.device(x))

    def rfft2(self, x, shape):
        return array_namespace(x).fft.rfftn(x, s=shape, axes=(-2, -1))

    def irfft2(self, x, shape):
        return array_namespace(x).fft.irfftn(x, s=shape, axes=(-2, -1))


class TorchBackend(ArrayBackend):
    """PyTorch tensors on any of torch's devices (``cpu``, ``cuda:N``, ``mps``).

    The layers compute through array-api-compat's ``torch`` namespace; the FFTs are
    ``torch.fft`` (the array API's fft extension), so the spectral engine stays on the tensor's
    device; torch has no N-d direct correlation, so ``signal-direct`` makes an explicit round trip
    through :data:`NUMPY` (``auto`` never times it on torch). Dropout's numbers come from a
    ``torch.Generator`` on the tensor's GPU, seeded with each key (on ``torch:cpu``, which is the
    host, from NumPy's generator, as for NumPy arrays: the same masks as NumPy). ``torch`` is imported only
    when a tensor or a ``"torch:..."`` device shows up. A tensor that requires grad is refused in
    one line: xpcnn computes its own gradients, and autograd would only record a graph.
    """

    name = "torch"

    def __init__(self, torch=None) -> None:
        self._torch = torch

    @property
    def torch(self):
        if self._torch is None:
            self._torch = import_torch()
        return self._torch

    def owns(self, x):
        # Only a torch that is already imported can have made x: no import just to ask.
        if self._torch is None and "torch" not in sys.modules:
            return False
        return isinstance(x, self.torch.Tensor)

    def check(self, x, who: str) -> None:
        if x.requires_grad:
            raise ConfigTypeError(f"{who}: expected a tensor without autograd, got one with requires_grad=True; "
                                  f"pass x.detach() (xpcnn computes its own gradients)")

    def contiguous(self, x):
        return x.contiguous()

    def to_host(self, x):
        self.check(x, "to_numpy")
        return x.cpu().numpy()  # a device-to-host copy; on torch's CPU, NumPy's view of the same memory

    def send(self, x, device):
        if isinstance(x, np.ndarray):
            if not x.flags.writeable or not x.flags.c_contiguous:
                x = np.array(x, order="C")
            return self.torch.from_numpy(x).to(device.native)  # host-to-device (none for torch:cpu)
        self.check(x, "to_device")
        return x.to(device.native)  # device to device, within torch

    def rfft2(self, x, shape):
        return self.torch.fft.rfftn(x, s=shape, dim=(-2, -1))

    def irfft2(self, x, shape):
        return self.torch.fft.irfftn(x, s=shape, dim=(-2, -1))

    def signal_call(self, name, x, kernel, mode, method):
        # torch has no N-d direct correlation: an explicit round trip through SciPy's
        if x.device != kernel.device:
            raise DeviceMismatchError(f"{name}: input on {x.device} but kernel on {kernel.device}; "
                                      f"move one with xpcnn.to_device first")
        out = NUMPY.signal_call(name, self.to_host(x), self.to_host(kernel), mode, method)
        return self.torch.from_numpy(np.ascontiguousarray(out)).to(x.device)

    def synchronize(self, x):
        kind = x.device.type
        if kind == "cuda":
            self.torch.cuda.synchronize(x.device)
        elif kind == "mps":  # pragma: no cover - needs an Apple GPU
            self.torch.mps.synchronize()

    def random_uniform(self, key, shape, dtype, device):
        if device.native.type == "cpu":
            # torch's CPU is the host: NumPy's PCG64 draws there and torch shares its memory, so
            # torch:cpu drops exactly the values NumPy drops (the parity tests train convnet-bn on both)
            return super().random_uniform(key, shape, dtype, device)
        return self.generated(key, shape, dtype, device)

    def generated(self, key, shape, dtype, device):
        """``U[0, 1)`` from ``torch.rand`` with a ``torch.Generator`` on ``device``, seeded with ``key``
        (what a GPU draws; on ``torch:cpu`` only the tests call it)."""
        # One generator per device, re-seeded with each key: the numbers are drawn where the data is.
        generators = self.__dict__.setdefault("_generators", {})
        generator = generators.get(device.name)
        if generator is None:
            generator = generators[device.name] = self.torch.Generator(device=device.native)
        generator.manual_seed(key)
        return self.torch.rand(shape, generator=generator, dtype=getattr(self.torch, dtype), device=device.native)


def check_array(x: Array, who: object) -> None:
    """Refuse, in one line naming ``who``, an array xpcnn cannot compute with (a tensor that requires grad).

    ``who`` is formatted only in the error (a layer passes itself: its ``repr`` is not built on every call)."""
    backend_for(x).check(x, who)


def float_errors_ignored():
    """A context in which NumPy prints no RuntimeWarning for overflow, 0/0 and the like.

    ``fit`` trains inside it and checks every step's loss itself (a non-finite one stops training
    with a :class:`~xpcnn.errors.TrainingError`), so NumPy's warnings would only repeat that, late
    and four lines long. Other namespaces never warn: for them this does nothing.
    """
    return np.errstate(all="ignore")


#: CUDA's libraries that xpcnn's work needs from CuPy, by the ``cupy.cuda`` attribute that loads
#: each: cuBLAS (every product), cuFFT (the signal engine), cuRAND (Dropout's masks) and NVRTC
#: (CuPy compiles its element-wise kernels at run time). CuPy loads them when first asked, so a
#: machine with a GPU driver but without them would pass the device check and fail at the first
#: product; :func:`missing_cuda_libraries` asks up front.
CUDA_LIBRARIES = {"cuBLAS": "cublas", "cuFFT": "cufft", "cuRAND": "curand", "NVRTC": "nvrtc"}

#: What installs CuPy with CUDA's libraries as wheels (its ``[ctk]`` extra).
CUPY_EXTRA = "pip install 'xpcnn[cuda12]' (or 'xpcnn[cuda13]' for CUDA 13)"


def missing_cuda_libraries(cp) -> "dict[str, str]":
    """``{library: why}`` for each of :data:`CUDA_LIBRARIES` that the CuPy module ``cp`` cannot load
    here (empty when all of them load). Needs no GPU: it loads the libraries, it runs nothing."""
    missing = {}
    for name, attribute in CUDA_LIBRARIES.items():
        try:
            getattr(cp.cuda, attribute)
        except (ImportError, OSError) as exc:  # CuPy: 'Failure finding "libcublasLt.so.12"', or dlopen's error
            missing[name] = " ".join(str(exc).split()) or type(exc).__name__
    return missing


#: What installs PyTorch (its own wheels choose CPU or CUDA: https://pytorch.org/get-started/locally/).
TORCH_EXTRA = "pip install 'xpcnn[torch]' (or torch from https://pytorch.org/get-started/locally/)"


def import_torch():
    """Import PyTorch lazily; a missing torch names what installs it."""
    try:
        return importlib.import_module("torch")
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(f"a 'torch:...' device needs PyTorch, which is not installed: {TORCH_EXTRA}") from exc


def import_cupy():
    """Import CuPy lazily; a missing CuPy names the extra that installs it."""
    try:
        return importlib.import_module("cupy")
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise DeviceError(f"device 'cuda' needs CuPy, which is not installed: {CUPY_EXTRA}") from exc


NUMPY = NumpyBackend()
CUPY = CupyBackend()
HOST = HostBackend()
TORCH = TorchBackend()

#: The dispatch table, in the order asked: the first backend that owns an array serves it.
BACKENDS: "list[ArrayBackend]" = [NUMPY, CUPY, TORCH]


#: ``type(x) -> backend``: what :func:`backend_for` found for each array type so far, valid while
#: :data:`BACKENDS` is the same table (tests put stand-ins in front by replacing it).
_owners: "dict[type, ArrayBackend]" = {}
_owners_table: "list[ArrayBackend] | None" = None


def backend_for(x: Array) -> ArrayBackend:
    """The backend of ``x``'s array library (:data:`HOST` for a namespace not in the table).

    The table is scanned once per array type; later arrays of that type get the same answer
    from a dictionary (the layers ask on every pass).
    """
    global _owners_table
    if _owners_table is not BACKENDS:
        _owners.clear()
        _owners_table = BACKENDS
    found = _owners.get(type(x))
    if found is None:
        found = _owners[type(x)] = _owner(x)
    return found


#: Why a ``jax.Array`` is refused (docs/backends.md, "JAX"): one line, naming the in-place writes.
JAX_REFUSED = ("JAX arrays are not supported: they are immutable, and xpcnn's engines and layers write into "
               "arrays in place (padding, im2col, pooling gradients); pass numpy.asarray(x), or a PyTorch tensor")


def _owner(x: Array) -> ArrayBackend:
    for candidate in BACKENDS:
        if candidate.owns(x):
            return candidate
    if array_api_compat.is_jax_array(x):  # looks in sys.modules only: no import of jax just to ask
        raise ConfigTypeError(f"expected a NumPy, CuPy or PyTorch array, got {type(x).__name__}: {JAX_REFUSED}")
    if HOST.owns(x):
        return HOST
    raise ConfigTypeError(f"expected an array (NumPy, CuPy, a PyTorch tensor or another array-API namespace), "
                          f"got {type(x).__name__}")
