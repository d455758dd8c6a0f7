"""tests/support/ci_policy.py: in CI only gpu and mpi tests may skip; the test data is found from the checkout."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import ci_policy

TESTS = Path(__file__).resolve().parents[1]

SAMPLE = '''
import pytest

def test_runs():
    pass

def test_skips_in_its_body():
    pytest.skip("torch is missing")

@pytest.mark.skipif(True, reason="data not here")
def test_skips_by_marker():
    pass

@pytest.mark.gpu
def test_gpu_skips():
    pytest.skip("no CUDA GPU")

@pytest.mark.mpi
def test_mpi_skips():
    pytest.skip("mpiexec not installed")
'''


def run_sample(tmp_path, ci: str):
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(TESTS / 'support')!r})\n"
        "from ci_policy import pytest_runtest_makereport  # noqa: F401\n"
        "def pytest_configure(config):\n"
        "    config.addinivalue_line('markers', 'gpu: x')\n"
        "    config.addinivalue_line('markers', 'mpi: x')\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {"PATH": "/usr/bin:/bin", "CI": ci}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)


def test_in_ci_only_gpu_and_mpi_tests_may_skip_the_others_fail_with_their_reason(tmp_path):
    result = run_sample(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    last = result.stdout.strip().splitlines()[-1]
    assert "1 failed" in last and "1 passed" in last and "2 skipped" in last and "1 error" in last, last
    assert "test_skips_in_its_body skipped: torch is missing" in result.stdout
    assert "test_skips_by_marker skipped: data not here" in result.stdout
    assert "no CUDA GPU" in result.stdout and "mpiexec not installed" in result.stdout  # -rs gives the reasons


def test_outside_ci_a_skip_is_a_skip(tmp_path):
    result = run_sample(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 4 skipped" in result.stdout


def test_mnist_test_data_is_found_beside_the_checkout_or_through_xpcnn_test_data(monkeypatch, tmp_path):
    monkeypatch.delenv("XPCNN_TEST_DATA", raising=False)
    checkout = TESTS.parent
    assert ci_policy.mnist_test_dir() == checkout.parent / "shared" / "data" / "mnist"
    monkeypatch.setenv("XPCNN_TEST_DATA", str(tmp_path))
    assert ci_policy.mnist_test_dir() == tmp_path
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: real MNIST test files"):
        ci_policy.require_mnist_test_dir()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="XPCNN_TEST_DATA"):
        ci_policy.require_mnist_test_dir()


def test_no_absolute_path_to_test_data_is_left_in_the_code():
    """Only Debian's system folder (where its package installs Fashion-MNIST) may be named absolutely."""
    root = TESTS.parent
    literal = re.compile(r"""["'](/[^"'\s]*)["']""")
    allowed = {"/usr/share/datasets/fashion-mnist"}
    offenders = [f"{path.relative_to(root)}:{n}: {found}" for folder in ("tests", "xpcnn", "scripts")
                 for path in sorted((root / folder).rglob("*.py")) if path != Path(__file__).resolve()
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 for found in literal.findall(line)
                 if found not in allowed and any(word in found for word in ("data", "mnist", "shared", "/work"))]
    assert offenders == []


def test_ci_installs_what_the_readme_test_command_installs_pytorch_and_matplotlib_included():
    import tomllib

    root = TESTS.parent
    readme = re.search(r"pip install -e '(\.\[[^\]]+\])' && python -m pytest", (root / "README.md").read_text())
    ci = re.search(r"pip install -q -e '(\.\[[^\]]+\])'", (root / ".ci" / "run").read_text())
    assert readme and ci and readme.group(1) == ci.group(1)
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = [req for name in readme.group(1)[2:-1].split(",") for req in extras[name]]
    assert "torch==2.13.0" in installed  # exactly: the local CPU build, never PyPI's CUDA one
    assert any(req.startswith("matplotlib") for req in installed)
    assert not any(req.startswith("torch") for req in extras["test"])  # the Docker image installs [test]
