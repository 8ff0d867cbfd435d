"""Plots: valid PNG files, the right content in the matplotlib objects, clear errors."""
import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
from matplotlib.colors import to_rgba

import tinynet as tn
from tinynet import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, figure):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path)
    width, height = figure.get_size_inches() * 100  # saved at 100 dpi
    assert pixels.shape[:2] == (round(height), round(width))
    assert pixels.std() > 0  # something was drawn


def test_history_curves(tmp_path):
    history = {"loss": [1.0, 0.5, 0.3], "accuracy": [0.6, 0.8, 0.9], "val_loss": [0.9, 0.6, 0.4],
               "val_accuracy": [0.7, 0.8, 0.85], "lr": [0.1] * 3}
    figure = plots.plot_history(history, tmp_path / "history.png")
    assert_png(tmp_path / "history.png", figure)
    loss_ax, accuracy_ax = figure.axes
    assert [line.get_label() for line in loss_ax.lines] == ["training", "validation"]
    np.testing.assert_array_equal(accuracy_ax.lines[1].get_xydata(), [[1, 0.7], [2, 0.8], [3, 0.85]])
    assert len(plots.plot_history({"loss": [1.0, 0.5]}).axes) == 1  # no accuracy: one panel
    with pytest.raises(ValueError, match=r"plot_history: the history has no 'loss' entries \(keys: \['lr'\]\)"):
        plots.plot_history({"lr": [0.1]})


def test_prediction_grid_titles_and_colours(tmp_path):
    images = np.random.default_rng(0).random((10, 1, 28, 28), dtype=np.float32)
    predicted = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3])
    true = np.array([3, 1, 4, 7, 5, 9, 2, 6, 8, 3])
    figure = plots.plot_predictions(images, predicted, true, tmp_path / "predictions.png", ncols=4)
    assert_png(tmp_path / "predictions.png", figure)
    titled = [ax for ax in figure.axes if ax.get_title()]
    assert len(figure.axes) == 12 and len(titled) == 10  # a 3 x 4 grid, two cells empty
    for ax, p, t in zip(titled, predicted, true):
        assert ax.get_title() == f"{p} ({t})"
        expected = plots.CORRECT_COLOR if p == t else plots.WRONG_COLOR
        assert to_rgba(ax.title.get_color()) == to_rgba(expected)
    named = plots.plot_predictions(images[:2, 0], predicted[:2], true[:2], class_names=list("abcdefghij"))
    assert [ax.get_title() for ax in named.axes] == ["d (d)", "b (b)"]
    with pytest.raises(ValueError, match=r"got 10 images, 3 predicted and 10 true labels"):
        plots.plot_predictions(images, predicted[:3], true)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, H, W\), \(N, 1, H, W\) or \(N, 3, H, W\), got \(10, 2, 28, 28\)"):
        plots.plot_predictions(np.zeros((10, 2, 28, 28)), predicted, true)


def test_confusion_matrix_plot(tmp_path):
    cm = np.array([[5, 1, 0], [2, 7, 1], [0, 0, 4]])
    figure = plots.plot_confusion_matrix(cm, tmp_path / "cm.png", class_names=["a", "b", "c"])
    assert_png(tmp_path / "cm.png", figure)
    ax = figure.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), cm)
    assert [text.get_text() for text in ax.texts] == [str(v) for v in cm.reshape(-1)]
    assert [label.get_text() for label in ax.get_xticklabels()] == ["a", "b", "c"]
    normalised = plots.plot_confusion_matrix(cm, normalize=True).axes[0]
    np.testing.assert_allclose(normalised.images[0].get_array().sum(axis=1), 1.0)
    assert normalised.texts[0].get_text() == "0.83"
    with pytest.raises(ValueError, match=r"expected a square \(K, K\) matrix, got shape \(2, 3\)"):
        plots.plot_confusion_matrix(np.zeros((2, 3), np.int64))


def test_conv_filters(tmp_path):
    tn.manual_seed(0)
    model = tn.Sequential(tn.Conv2d(1, 8, 3, padding=1), tn.ReLU(), tn.Conv2d(8, 4, 3))
    figure = plots.plot_filters(model, tmp_path / "filters.png")
    assert_png(tmp_path / "filters.png", figure)
    kernels = [ax.images[0].get_array() for ax in figure.axes if ax.images]
    assert len(kernels) == 8  # the first conv: 8 filters of one input channel, in a 3 x 3 grid
    np.testing.assert_array_equal(kernels[5], model[0].weight.data[5, 0])
    limit = np.abs(model[0].weight.data).max()
    assert figure.axes[0].images[0].get_clim() == (-limit, limit)  # shared colours, centred on zero
    several = plots.plot_filters(model[2].weight.data)  # 4 x 8 kernels: rows outputs, columns inputs
    assert sum(1 for ax in several.axes if ax.images) == 32
    with pytest.raises(ValueError, match=r"first_conv_weight: Sequential has no layer with a 4-D weight \(no Conv2d\)"):
        plots.plot_filters(tn.Sequential(tn.Linear(2, 2)))


def test_tinynet_imports_without_plotting_or_torch(monkeypatch):
    code = ("import sys, tinynet, tinynet.plots, tinynet.train, tinynet.interop, tinynet.cli; "
            "print(sorted(m for m in ('matplotlib', 'tqdm', 'torch', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    with pytest.raises(ImportError, match=r"tinynet.plots needs matplotlib, which is not installed: `pip install tinynet\[examples\]`"):
        plots.plot_history({"loss": [1.0]})
