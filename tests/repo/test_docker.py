"""The Docker image's recipe, checked without a Docker engine (hadolint lints it in .ci/run).

What can go wrong without a build noticing until someone runs the image: the entry point
dropping the ``--device cuda`` default, a ``COPY`` of a file that is not there, and a
``.dockerignore`` that leaves out what the image needs (the embedded MNIST sample) or lets in
what it must not (caches, virtual environments, data, checkpoints).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _entrypoint():
    spec = importlib.util.spec_from_file_location("xpcnn_docker_entrypoint", ROOT / "docker" / "entrypoint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("args,expected", [
    ([], ["--device", "cuda"]),
    (["--epochs", "5", "--save", "/runs/model.npz"],
     ["--device", "cuda", "--epochs", "5", "--save", "/runs/model.npz"]),
    (["--device", "cpu", "--epochs", "1"], ["--device", "cpu", "--epochs", "1"]),
    (["--epochs", "1", "--device=cuda:1"], ["--epochs", "1", "--device=cuda:1"]),
])
def test_entrypoint_runs_train_py_on_cuda_unless_a_device_is_named(args, expected):
    entry = _entrypoint()
    assert entry.command(args) == [sys.executable, "/opt/xpcnn/scripts/train.py", *expected]


@pytest.mark.parametrize("args,expected", [
    (["doctor"], ["--device", "cuda"]),
    (["doctor", "--json", "/runs/doctor.json"], ["--device", "cuda", "--json", "/runs/doctor.json"]),
    (["doctor", "--device", "cpu", "--quick"], ["--device", "cpu", "--quick"]),
])
def test_entrypoint_maps_doctor_to_xpcnn_doctor_on_cuda_unless_a_device_is_named(args, expected):
    assert _entrypoint().command(args) == [sys.executable, "-m", "xpcnn.doctor", *expected]


def test_entrypoint_runs_a_command_given_instead_of_options_as_is():
    entry = _entrypoint()
    assert entry.command(["python", "-m", "pytest", "-m", "gpu"]) == ["python", "-m", "pytest", "-m", "gpu"]


def test_entrypoint_and_default_command_are_the_ones_documented():
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["python", "/opt/xpcnn/docker/entrypoint.py"]' in text
    assert 'CMD ["--device", "cuda"]' in text
    assert re.search(r"^FROM nvidia/cuda:12\.\d+\.\d+-runtime-ubuntu\d\d\.04$", text, re.M)
    assert '"cupy-cuda12x[ctk]==14.*"' in text


def test_every_copy_source_exists():
    sources = []
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def _ignored(path: str, patterns: "list[str]") -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any parent of it."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", lambda m: "[" + m.group(1).replace("\\", "") + "]", regex)
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_what_the_image_needs_and_nothing_else():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    needed = ["pyproject.toml", "README.md", "xpcnn/__init__.py", "xpcnn/datasets/sample/sample-images-idx3-ubyte.gz",
              "xpcnn/datasets/sample/sample-labels-idx1-ubyte.gz", "scripts/train.py", "docker/entrypoint.py",
              "tests/conftest.py", "tests/support/fake_cupy.py", "tests/support/ci_policy.py",
              "tests/backend/test_gpu.py", "tests/layers/test_conv.py", "tests/datasets/test_idx.py"]
    unwanted = [".git/HEAD", ".venv/bin/python", ".ci-venv/bin/python", "xpcnn/__pycache__/model.cpython-311.pyc",
                "xpcnn.egg-info/PKG-INFO", ".pytest_cache/README.md", "data/mnist/train-images-idx3-ubyte.gz",
                "runs/model.npz", "model.npz", "tests/layers/__pycache__/test_conv.cpython-312-pytest-8.4.2.pyc"]
    assert [p for p in needed if _ignored(p, patterns)] == []
    assert [p for p in unwanted if not _ignored(p, patterns)] == []


def test_image_carries_mpi_and_nccl_so_mpiexec_runs_one_rank_per_gpu():
    text = DOCKERFILE.read_text()
    assert '"nvidia-nccl-cu12>=2.18.1,<3"' in text  # CuPy loads NCCL from this wheel
    assert '"./[test,mpi]"' in text  # mpi4py and the MPICH wheel with mpiexec
    command = ["mpiexec", "-n", "2", "python", "/opt/xpcnn/scripts/train.py", "--distributed", "--device", "cuda"]
    assert _entrypoint().command(command) == command
