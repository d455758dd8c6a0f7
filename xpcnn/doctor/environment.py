"""The machine a report comes from: versions, CPU, BLAS, load, and for CUDA the GPU and its stack."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from typing import Any

from .. import __version__
from ..distributed import world
from ..backend import Device, info

#: Settings that change what the doctor measures, reported when set.
VARIABLES = ("XPCNN_ENGINE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE",
             "CUDA_VISIBLE_DEVICES", "CUPY_CACHE_DIR")


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> "list[float] | None":
    """The 1, 5 and 15-minute load averages (other processes competing for the CPU), where the OS has them."""
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def torch_version() -> "str | None":
    """PyTorch's version without importing it (importing takes seconds), ``None`` when not installed."""
    if importlib.util.find_spec("torch") is None:
        return None
    return info.distribution_version("torch")


def collect(device: Device) -> "dict[str, Any]":
    """Everything about the machine that a report needs, for ``device``."""
    env = {
        "xpcnn": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "load_average": load_average(),
        **info.library_versions(),
        "torch": torch_version(),
        "blas": info.blas(),
        "device": device.name,
        "variables": {k: os.environ[k] for k in VARIABLES if k in os.environ},
        "distributed": world.availability(),
    }
    if env["cupy"] is not None:  # CUDA's libraries as CuPy finds them: a driver-only machine lacks them
        try:
            env["cuda_libraries"] = info.cuda_libraries(device)
        except Exception as exc:  # noqa: BLE001 - a CuPy that does not import: the report says why
            env["cuda_libraries"] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
    if device.name.startswith("cuda"):
        try:
            env["cuda"] = info.cuda(device)
        except Exception as exc:  # noqa: BLE001 - the checks that follow will say more; the report keeps this
            env["cuda"] = {"error": f"{type(exc).__name__}: {exc}"}
    return env


def describe(env: "dict[str, Any]") -> "list[str]":
    """The environment as a few printed lines."""
    blas = env["blas"]
    load = env["load_average"]
    lines = [
        f"xpcnn {env['xpcnn']}, Python {env['python']}, NumPy {env['numpy']}, SciPy {env['scipy']}, "
        f"array-api-compat {env['array_api_compat']}, CuPy {env['cupy'] or 'not installed'}, "
        f"PyTorch {env['torch'] or 'not installed'}",
        f"CPU {env['cpu']}, {env['cores']} cores" + (f", load average {load[0]:.2f}" if load else "")
        + f"; BLAS {blas.get('internal_api') or '?'} {blas.get('version') or ''} "
          f"{blas.get('architecture') or ''}, {blas.get('num_threads') or '?'} threads",
    ]
    dist = env["distributed"]
    lines.append(f"mpi4py {dist.get('mpi4py') or 'not installed'}, NCCL {dist.get('nccl') or 'not available'}"
                 + (f" ({dist['nccl_missing']})" if dist.get("nccl_missing") else ""))
    cuda = env.get("cuda")
    if cuda and "error" in cuda:
        lines.append(f"GPU: could not be queried ({cuda['error']})")
    elif cuda:
        gib = 2 ** 30
        lines.append(f"GPU {cuda['gpu']} ({env['device']}, compute capability {cuda['compute_capability']}, "
                     f"{cuda['memory_total_bytes'] / gib:.1f} GiB, {cuda['memory_free_bytes'] / gib:.1f} free); "
                     f"CUDA runtime {cuda['runtime_version']}, driver {cuda['driver_version']}; CuPy pool "
                     f"{cuda['memory_pool']['total_bytes'] / 2 ** 20:.0f} MiB held")
    libraries = env.get("cuda_libraries")
    if libraries and "error" in libraries:
        lines.append(f"CUDA libraries: CuPy does not import ({libraries['error']})")
    elif libraries:
        lines.append("CUDA libraries: " + ", ".join(
            f"{name} {entry['version'] or (entry['wheel'] or 'system').split()[-1]}" if entry["loaded"]
            else f"{name} MISSING" for name, entry in libraries.items()))
    if env["variables"]:
        lines.append("set: " + ", ".join(f"{k}={v}" for k, v in env["variables"].items()))
    return lines
