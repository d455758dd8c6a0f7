"""train.py --export-onnx / --export-safetensors, end to end: the default run's model, classified by
onnxruntime, and the flags' errors, each one line before any training."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from test_train_cli import assert_one_line_error, offline_env, train  # noqa: F401  (offline_env: a fixture)

import xpcnn as xc
from xpcnn import zoo
from xpcnn.io.checkpoint import load_checkpoint
from xpcnn.datasets import load_dataset, prepare
from xpcnn.io.export import EXPORT_HINT, from_safetensors

ort = pytest.importorskip("onnxruntime")
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def held_out_digits():
    """The 200 test digits of the default run (the sample's 0s and 1s, 100 each, as train.py picks them)."""
    data = load_dataset("sample")
    x, _, labels = prepare(data.test.images, data.test.labels, (0, 1), 100, 0)
    return x, labels


def test_the_default_run_exports_a_model_onnxruntime_classifies_as_xpcnn_does(tmp_path, offline_env):  # noqa: F811
    result = train(offline_env, "--export-onnx", "seed.onnx", "--save", "seed.npz", "--metrics-json", "m.json",
                   cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote seed.onnx (ONNX opset 17, float32, input (N, 1, 28, 28))" in result.stdout
    x, labels = held_out_digits()
    assert x.shape == (200, 1, 28, 28) and x.dtype == np.float32
    session = ort.InferenceSession(str(tmp_path / "seed.onnx"), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {"input": x})[0]
    ours = xc.to_numpy(load_checkpoint(tmp_path / "seed.npz").predict(x))
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    assert np.array_equal(theirs.argmax(1), ours.argmax(1))
    accuracy = float(np.mean(theirs.argmax(1) == labels))
    final = json.loads((tmp_path / "m.json").read_text())["final"]
    assert accuracy == final["test_accuracy"] >= 0.95


def test_a_checkpoint_exports_with_epochs_0_and_the_weights_file_loads_back(tmp_path, offline_env):  # noqa: F811
    common = ["--dataset", "sample", "--limit", "20", "--quiet"]
    assert train(offline_env, *common, "--epochs", "1", "--save", tmp_path / "ck.npz").returncode == 0
    result = train(offline_env, *common, "--resume", tmp_path / "ck.npz", "--epochs", "0",
                   "--export-onnx", tmp_path / "m.onnx", "--export-safetensors", tmp_path / "m.safetensors")
    assert result.returncode == 0, result.stderr
    model = load_checkpoint(tmp_path / "ck.npz")
    assert model.epoch == 1  # --epochs 0 trained nothing
    x, _ = held_out_digits()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], xc.to_numpy(model.predict(x)), rtol=1e-5,
                               atol=1e-6)
    other = zoo.build_model("seed", (1, 28, 28), 2, seed=9)[0]
    from_safetensors(other, tmp_path / "m.safetensors")
    np.testing.assert_array_equal(xc.to_numpy(other.predict(x)), xc.to_numpy(model.predict(x)))


def test_an_export_path_in_a_missing_folder_fails_in_one_line_before_training(tmp_path, offline_env):  # noqa: F811
    for flag in ("--export-onnx", "--export-safetensors"):
        result = train(offline_env, "--dataset", "sample", "--limit", "5", flag, tmp_path / "no" / "m")
        assert_one_line_error(result, flag, "does not exist")
        assert "epoch" not in result.stdout
    result = train(offline_env, "--export-onnx", tmp_path / "m", "--plot", tmp_path / "m")
    assert_one_line_error(result, "--plot and --export-onnx name the same file", code=2)


def test_without_the_export_extra_the_flag_fails_in_one_line_naming_it_before_training(tmp_path, offline_env):  # noqa
    fake = tmp_path / "site" / "onnx"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no onnx here')\n")
    env = {**offline_env, "PYTHONPATH": f"{tmp_path / 'site'}:{offline_env['PYTHONPATH']}"}
    result = train(env, "--dataset", "sample", "--limit", "5", "--export-onnx", tmp_path / "m.onnx")
    assert_one_line_error(result, "--export-onnx needs the onnx package", "pip install 'xpcnn[export]'")
    assert "epoch" not in result.stdout and list(tmp_path.iterdir()) == [tmp_path / "site"]


def test_the_readme_export_commands_and_snippets_run_as_printed(tmp_path, offline_env):  # noqa: F811
    """The README's two commands (shortened by --limit/--epochs, added last), then its onnxruntime and
    PyTorch lines on the files they wrote."""
    pytest.importorskip("torch")
    section = README.split("## Export\n", 1)[1].split("\n## ", 1)[0]
    commands = [line.split("#")[0].split()[2:] for line in re.search(r"```bash\n(.*?)```", section, re.S)
                .group(1).splitlines() if line.startswith("python scripts/train.py")]
    assert [c[-1] for c in commands] == ["seed.onnx", "convnet.safetensors"]
    for args in commands:
        result = train(offline_env, *args, "--limit", "10", "--epochs", "1", "--quiet", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    snippets = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(snippets) == 2
    namespace: dict = {}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for code in snippets:
            exec(compile(code, "README.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert namespace["probabilities"].shape == (7, 2)
    model = zoo.build_model("convnet", (1, 28, 28), 10, seed=4)[0]
    from_safetensors(model, tmp_path / "convnet.safetensors")
    x, _ = held_out_digits()
    torch = namespace["torch"]
    with torch.no_grad():
        theirs = namespace["net"](torch.tensor(x[:20])).numpy()
    np.testing.assert_allclose(theirs, xc.to_numpy(model.predict(x[:20])), rtol=1e-5, atol=1e-6)


def test_the_missing_extra_hint_is_the_one_the_readme_gives():
    for spelling in re.findall(r"pip install (?:-e )?'([^']+)'", EXPORT_HINT):
        assert spelling in README, spelling
