"""What a CI run may skip, and where the shared test data lies.

With ``CI=true`` (as ``.ci/run`` runs), a skipped test fails unless it carries one of the
markers in :data:`MAY_SKIP_IN_CI`: a CI machine has no GPU, and MPI only where it is installed.
Everything else (PyTorch, matplotlib, the real MNIST files) is installed or found there, so a
skip would hide a test that never ran.

The real MNIST test files are looked for in ``$XPCNN_TEST_DATA`` (the folder holding
``t10k-images-idx3-ubyte.gz`` ...) or else in ``shared/data/mnist`` beside the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: Markers of tests that may skip in CI, each for a reason it gives itself.
MAY_SKIP_IN_CI = ("gpu", "mpi")
MNIST_TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def mnist_test_dir() -> Path:
    """``$XPCNN_TEST_DATA``, or ``../shared/data/mnist`` relative to the repository."""
    env = os.environ.get("XPCNN_TEST_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "mnist"


def require_mnist_test_dir() -> Path:
    """The folder with the real MNIST test files; a skip without them, a failure in CI."""
    folder = mnist_test_dir()
    missing = [name for name in MNIST_TEST_FILES if not (folder / name).is_file()]
    if missing:
        message = (f"real MNIST test files {missing} are not in {folder} "
                   f"(set XPCNN_TEST_DATA to the folder that holds them)")
        if in_ci():
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return folder


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI, turn the skip of a test not marked gpu or mpi into a failure that gives the reason."""
    report = yield
    if (in_ci() and report.skipped and not hasattr(report, "wasxfail")
            and not any(item.get_closest_marker(name) for name in MAY_SKIP_IN_CI)):
        report.outcome = "failed"
        report.longrepr = (f"CI=true: only tests marked {' or '.join(MAY_SKIP_IN_CI)} may skip in CI, "
                           f"and {item.nodeid} skipped: {_skip_reason(report)}")
    return report
