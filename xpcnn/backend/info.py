"""What the array libraries say about themselves: versions, the BLAS, the GPU (``xpcnn-doctor``).

The one place, with the rest of :mod:`xpcnn.backend`, that asks NumPy, SciPy and CuPy about the
machine. Every function returns plain ``dict``s of ``str``/numbers, ready for JSON, and never
raises for a missing library: it says what is missing instead.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
from typing import Any

import numpy as np
import scipy

from .devices import Device
from .libraries import CUDA_LIBRARIES, missing_cuda_libraries


def distribution_version(distribution: str) -> "str | None":
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def library_versions() -> "dict[str, str | None]":
    """NumPy, SciPy, array-api-compat, CuPy (``None`` when not installed; no import of CuPy)."""
    wheels = ("cupy", "cupy-cuda12x", "cupy-cuda13x", "cupy-cuda11x")
    cupy = next((v for v in map(distribution_version, wheels) if v), None)
    return {"numpy": np.__version__, "scipy": scipy.__version__,
            "array_api_compat": distribution_version("array-api-compat"), "cupy": cupy}


def blas() -> "dict[str, Any]":
    """NumPy's BLAS and its thread count: threadpoolctl when installed, else NumPy's build config."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        threadpool_info = None
    if threadpool_info is not None:
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                info = {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                                 "threading_layer")}
                return {**info, "source": "threadpoolctl"}
    info: "dict[str, Any]" = {"source": "numpy.show_config", "num_threads": None}
    try:
        config = np.show_config(mode="dicts")
        lib = config.get("Build Dependencies", {}).get("blas", {})
        info.update({"internal_api": lib.get("name"), "version": lib.get("version")})
    except Exception as exc:  # pragma: no cover - depends on the NumPy build
        info["note"] = f"numpy.show_config failed: {exc}"
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            info["num_threads"] = int(os.environ[var])
            break
    return info


def cuda(device: Device) -> "dict[str, Any]":
    """For a ``cuda:N`` device: CUDA runtime and driver versions, the GPU's name, compute capability,
    memory (total and free) and CuPy's memory pool. Empty for any other device."""
    if not device.name.startswith("cuda"):
        return {}
    cp = importlib.import_module("cupy")
    rt = cp.cuda.runtime
    index = device.native.id
    props = rt.getDeviceProperties(index)
    name = props["name"]
    name = name.decode() if isinstance(name, bytes) else str(name)
    with device.native:
        free, total = rt.memGetInfo()
        pool = cp.get_default_memory_pool()
        pinned = cp.get_default_pinned_memory_pool()
        return {
            "runtime_version": _cuda_version(rt.runtimeGetVersion()),
            "driver_version": _cuda_version(rt.driverGetVersion()),
            "gpu": name,
            "device_index": index,
            "device_count": rt.getDeviceCount(),
            "compute_capability": f"{props['major']}.{props['minor']}",
            "multiprocessors": props.get("multiProcessorCount"),
            "memory_total_bytes": int(total),
            "memory_free_bytes": int(free),
            "memory_pool": {"used_bytes": int(pool.used_bytes()), "total_bytes": int(pool.total_bytes()),
                            "limit_bytes": int(pool.get_limit()), "pinned_free_blocks": int(pinned.n_free_blocks())},
            "cupy_cache_dir": os.environ.get("CUPY_CACHE_DIR", os.path.expanduser("~/.cupy/kernel_cache")),
        }


#: The pip wheels of CUDA's libraries (CuPy's ``[ctk]`` extra, or ``nccl12``), by library.
WHEELS = {"cuBLAS": "nvidia-cublas", "cuFFT": "nvidia-cufft", "cuRAND": "nvidia-curand", "NVRTC": "nvidia-cuda-nvrtc"}


def cuda_libraries(device: "Device | None" = None) -> "dict[str, dict[str, Any]]":
    """CUDA's libraries xpcnn needs (:data:`~xpcnn.backend.libraries.CUDA_LIBRARIES`), as CuPy finds
    them: ``{name: {"loaded", "version", "wheel", "error"}}``. ``version`` is the library's own
    (cuBLAS's needs a GPU, ``device``), ``wheel`` the pip wheel that brought it (``None`` for a
    system CUDA). Empty when CuPy is not installed; nothing here needs a GPU."""
    if importlib.util.find_spec("cupy") is None:
        return {}
    cp = importlib.import_module("cupy")
    missing = missing_cuda_libraries(cp)
    out = {}
    for name, attribute in CUDA_LIBRARIES.items():
        wheel = next((f"{d} {v}" for d in (f"{WHEELS[name]}-cu12", f"{WHEELS[name]}-cu13")
                      if (v := distribution_version(d))), None)
        entry: "dict[str, Any]" = {"loaded": name not in missing, "version": None, "wheel": wheel,
                                   "error": missing.get(name)}
        if entry["loaded"]:
            entry["version"] = _library_version(cp, attribute, device)
        out[name] = entry
    return out


def _library_version(cp, attribute: str, device: "Device | None") -> "str | None":
    try:
        module = getattr(cp.cuda, attribute)
        if attribute == "cublas":
            if device is None or not device.name.startswith("cuda"):
                return None
            with device.native:
                return str(module.getVersion(cp.cuda.device.get_cublas_handle()))
        version = module.getVersion()
        return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)
    except Exception:  # noqa: BLE001 - a version that cannot be read is reported as unknown
        return None


def _cuda_version(code: int) -> str:
    """``12090`` -> ``"12.9"`` (CUDA's encoding: 1000 × major + 10 × minor)."""
    return f"{code // 1000}.{code % 1000 // 10}"


def host_to_device_rate(device: Device, megabytes: int = 64, repeats: int = 5) -> "dict[str, float]":
    """Best GB/s of one host-to-device copy of ``megabytes`` MB, from pageable and from pinned memory."""
    import time

    cp = importlib.import_module("cupy")
    nbytes = megabytes * 2 ** 20
    host = np.ones(nbytes, dtype=np.uint8)
    out: "dict[str, float]" = {"megabytes": megabytes}
    with device.native:
        target = cp.empty(nbytes, dtype=cp.uint8)
        pinned_mem = cp.cuda.alloc_pinned_memory(nbytes)
        pinned = np.frombuffer(pinned_mem, dtype=np.uint8, count=nbytes)
        pinned[:] = 1
        for label, source in (("pageable_gb_per_s", host), ("pinned_gb_per_s", pinned)):
            best = 0.0
            for _ in range(repeats):
                device.native.synchronize()
                start = time.perf_counter()
                target.set(source)
                device.native.synchronize()
                best = max(best, nbytes / (time.perf_counter() - start) / 1e9)
            out[label] = best
        del target
    return out
