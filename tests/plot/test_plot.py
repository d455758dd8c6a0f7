"""xpcnn.plot: every picture is written, read back as a PNG of the expected size, and is not blank."""

from __future__ import annotations

import numpy as np
import pytest

import xpcnn as xc
from xpcnn import plot

pytest.importorskip("matplotlib")
import matplotlib.image  # noqa: E402


def read_back(path, dpi=100):
    """The PNG's pixels (H, W, channels); asserts a real PNG that is not one flat colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50
    rgb = pixels[..., :3]
    assert float(rgb.std()) > 0.02, "blank picture"  # a white page is std 0
    dark = (rgb.mean(axis=2) < 0.5).mean()
    assert 0.001 < dark < 0.9, dark
    return pixels


def size_of(fig, dpi=100):
    w, h = fig.get_size_inches()
    return round(h * dpi), round(w * dpi)


def small_model():
    return xc.Sequential([
        xc.Convolutional((1, 8, 8), kernel_size=3, depth=3), xc.ReLU(), xc.Reshape((3, 6, 6), (108,)),
        xc.Dense(108, 3), xc.Softmax(),
    ], seed=0)


def digits(n=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, 8, 8), dtype=np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, n)]
    return x, y


def test_history_png_has_the_figure_size_and_curves(tmp_path):
    hist = {"loss": [1.0, 0.5, 0.3], "accuracy": [0.4, 0.7, 0.9], "val_loss": [1.1, 0.6, 0.5],
            "val_accuracy": [0.3, 0.6, 0.8]}
    fig = plot.history(hist)
    expected = size_of(fig)
    plot.save(fig, tmp_path / "h.png")
    assert read_back(tmp_path / "h.png").shape[:2] == expected == (400, 1000)


def test_one_epoch_history_has_integer_ticks_only(tmp_path):
    """Issue 25: a one-epoch run's plot had ticks at 0.945, 0.960, ... (MaxNLocator's fallback)."""
    fig = plot.history([{"epoch": 1, "loss": 0.7, "accuracy": 0.5, "val_loss": 0.8, "val_accuracy": 0.4}])
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = list(ax.get_xticks())
        assert ticks == [1.0], ticks
    plot.save(fig, tmp_path / "one.png")
    read_back(tmp_path / "one.png")


def test_history_refuses_what_is_not_a_history():
    with pytest.raises(xc.ConfigError, match="history: expected model.history"):
        plot.history("loss")
    with pytest.raises(xc.ConfigError, match="at least one finished epoch"):
        plot.history({})


def test_kernels_draws_one_panel_per_output_and_input_channel(tmp_path):
    layer = xc.Convolutional((2, 8, 8), kernel_size=3, depth=5)
    fig = plot.kernels(layer)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 5 * 2 and len(fig.axes) == 5 * 2 + 1  # ten kernels and the colour bar
    expected = size_of(fig)
    plot.save(fig, tmp_path / "k.png")
    assert read_back(tmp_path / "k.png").shape[:2] == expected
    with pytest.raises(xc.ConfigError, match="expected a Convolutional layer"):
        plot.kernels(xc.ReLU())


def test_kernels_shows_the_layers_own_values():
    layer = xc.Convolutional((1, 8, 8), kernel_size=3, depth=2)
    fig = plot.kernels(layer)
    shown = np.array(fig.axes[1].images[0].get_array())
    np.testing.assert_array_equal(shown, xc.to_numpy(layer.params["kernels"])[1, 0])


def test_feature_maps_are_the_first_convolutions_outputs(tmp_path):
    model, (x, _) = small_model(), digits()
    fig = plot.feature_maps(model, x[3])
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 1 + 3  # the input and three channels
    expected = model.layers[0].forward(x[3:4], training=False)
    np.testing.assert_allclose(np.array(panels[2].images[0].get_array()), xc.to_numpy(expected)[0, 1], rtol=1e-6)
    plot.save(fig, tmp_path / "f.png")
    read_back(tmp_path / "f.png")
    after_relu = plot.feature_maps(model, x[:2], layer=1)
    assert "ReLU" in after_relu._suptitle.get_text()
    with pytest.raises(xc.ShapeError, match=r"layer 3 \(Dense\) gives shape \(1, 3\), not images"):
        plot.feature_maps(model, x, layer=3)
    with pytest.raises(xc.ShapeError, match=r"expected one image \(C, H, W\)"):
        plot.feature_maps(model, x[0, 0])
    with pytest.raises(xc.ConfigError, match=r"layer must index model.layers \(0..4\), got 9"):
        plot.feature_maps(model, x, layer=9)


def test_confusion_matrix_counts_true_rows_and_predicted_columns(tmp_path):
    true = np.array([0, 0, 1, 2, 2, 2])
    pred = np.eye(3)[[0, 1, 1, 2, 2, 0]]  # rows, as model.predict gives
    fig = plot.confusion_matrix(true, pred, names=["a", "b", "c"])
    ax = fig.axes[0]
    counts = np.array(ax.images[0].get_array())
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert "accuracy 66.67% on 6 samples" in ax.get_title()
    expected = size_of(fig)
    plot.save(fig, tmp_path / "c.png")
    assert read_back(tmp_path / "c.png").shape[:2] == expected
    with pytest.raises(xc.ShapeError, match="3 true labels but 2 predictions"):
        plot.confusion_matrix([0, 1, 2], [0, 1])


def test_misclassified_shows_only_wrong_samples_with_their_classes(tmp_path):
    model, (x, y) = small_model(), digits(20)
    pred = xc.to_numpy(model.predict(x)).argmax(1)
    wrong = np.flatnonzero(pred != y.argmax(1))
    assert len(wrong) >= 2  # an untrained model
    fig = plot.misclassified(model, x, y, count=4)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == [f"{y[i].argmax()} -> {pred[i]}" for i in wrong[:4]]
    plot.save(fig, tmp_path / "m.png")
    read_back(tmp_path / "m.png")
    right = np.eye(3, dtype=np.float32)[pred]
    none = plot.misclassified(model, x, right)
    assert "0 of 20 misclassified" in none._suptitle.get_text()
    with pytest.raises(xc.ConfigError, match="count must be an integer >= 1, got 0"):
        plot.misclassified(model, x, y, count=0)


def test_path_writes_the_file_and_returns_none_and_a_bad_suffix_is_one_line(tmp_path):
    assert plot.history({"loss": [1.0, 0.5]}, path=tmp_path / "h") is None
    read_back(tmp_path / "h")  # no suffix: PNG, at exactly that path
    with pytest.raises(xc.OutputError, match=r"matplotlib cannot write \.xyz files"):
        plot.history({"loss": [1.0]}, path=tmp_path / "h.xyz")
    assert not (tmp_path / "h.xyz").exists()


def test_plots_draw_arrays_of_another_namespace():
    xs = pytest.importorskip("array_api_strict")
    model = small_model()
    x, y = digits()
    fig = plot.confusion_matrix(xs.asarray(y.argmax(1)), xs.asarray(y))
    assert "accuracy 100.00%" in fig.axes[0].get_title()
    plot.feature_maps(model, xs.asarray(x))
