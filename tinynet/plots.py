"""Figures for training runs: learning curves, predictions, the confusion matrix, conv filters,
the gradient flow recorded by ``fit(..., record="grad_norms")``.

Each function returns a ``matplotlib.figure.Figure`` and, given ``path``, saves it as a
PNG. Figures are built with the object-oriented API and drawn by the Agg renderer,
without ``pyplot``: nothing here changes matplotlib's global backend or keeps figures
alive in a global registry, so the functions work on machines with no display.

matplotlib is an optional dependency (``pip install tinynet[examples]``), imported
when a function is first called.
"""
import numpy as np

from .backend import to_numpy
from .debug import GRAD_NORM, OUTPUT_NORM, RECORD_STEP

#: Title colours of ``plot_predictions``.
CORRECT_COLOR, WRONG_COLOR = "tab:green", "tab:red"


def _figure(width, height):
    """A new Agg-backed Figure of ``width`` x ``height`` inches."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "tinynet.plots needs matplotlib, which is not installed: `pip install tinynet[examples]`"
        ) from err
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _finish(figure, path):
    if path is not None:
        figure.savefig(path, format="png", dpi=100)
    return figure


def plot_history(history, path=None):
    """Loss and accuracy per epoch, training and validation, from the history ``fit`` returns.

    Args:
        history: ``{"loss": [...], "val_loss": [...], "accuracy": [...], "val_accuracy": [...]}``;
            the entries that are absent are skipped (no accuracy panel without accuracies).
        path: where to save the PNG (optional).
    """
    if not history.get("loss"):
        raise ValueError(f"plot_history: the history has no 'loss' entries (keys: {sorted(history)})")
    panels = [("loss", "loss")] + ([("accuracy", "accuracy")] if "accuracy" in history else [])
    figure = _figure(5 * len(panels), 3.6)
    for ax, (key, label) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for name, style in ((key, "o-"), (f"val_{key}", "s--")):
            if name in history:
                values = history[name]
                ax.plot(range(1, len(values) + 1), values, style, label="validation" if name.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _finish(figure, path)


def _as_images(where, images):
    """(N, H, W) or (N, 1, H, W) -> (N, H, W) NumPy; (N, 3, H, W) -> (N, H, W, 3)."""
    images = to_numpy(images)
    if images.ndim == 4 and images.shape[1] == 1:
        return images[:, 0]
    if images.ndim == 4 and images.shape[1] == 3:
        return images.transpose(0, 2, 3, 1)
    if images.ndim == 3:
        return images
    raise ValueError(f"{where}: expected images of shape (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {images.shape}")


def plot_predictions(images, predicted, true, path=None, ncols=8, class_names=None):
    """A grid of images, each titled "predicted (true)": green when right, red when wrong.

    Args:
        images: (N, 1, H, W), (N, H, W) or (N, 3, H, W) images.
        predicted, true: (N,) integer labels.
        path: where to save the PNG (optional).
        ncols: images per row.
        class_names: optional names to print instead of the label numbers.
    """
    images = _as_images("plot_predictions", images)
    predicted, true = to_numpy(predicted).reshape(-1), to_numpy(true).reshape(-1)
    if not len(images) == len(predicted) == len(true) or len(images) == 0:
        raise ValueError(
            f"plot_predictions: expected as many predicted and true labels as images (at least one), "
            f"got {len(images)} images, {len(predicted)} predicted and {len(true)} true labels"
        )
    name = (lambda c: str(class_names[c])) if class_names is not None else str
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    figure = _figure(1.3 * ncols, 1.5 * nrows)
    axes = figure.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax, image, p, t in zip(axes, images, predicted, true):
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        ax.set_title(f"{name(int(p))} ({name(int(t))})", color=CORRECT_COLOR if p == t else WRONG_COLOR, fontsize=10)
    for ax in axes:
        ax.axis("off")
    return _finish(figure, path)


def plot_confusion_matrix(cm, path=None, class_names=None, normalize=False):
    """The confusion matrix (rows: true class, columns: predicted) as a heat map with its counts.

    Args:
        cm: (K, K) counts, e.g. from ``tinynet.metrics.confusion_matrix``.
        path: where to save the PNG (optional).
        class_names: K tick labels (default 0..K-1).
        normalize: colour and print each row as fractions of the class (its recall on the diagonal).
    """
    cm = to_numpy(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"plot_confusion_matrix: expected a square (K, K) matrix, got shape {cm.shape}")
    k = cm.shape[0]
    names = [str(c) for c in (range(k) if class_names is None else class_names)]
    if len(names) != k:
        raise ValueError(f"plot_confusion_matrix: {len(names)} class names for {k} classes")
    values = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1) if normalize else cm
    size = max(4.0, 0.5 * k + 1.5)
    figure = _figure(size + 1, size)
    ax = figure.subplots()
    image = ax.imshow(values, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046)
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalize else ""))
    # Dark text on light cells and light text on dark ones.
    middle = (values.max() + values.min()) / 2
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{values[i, j]:.2f}" if normalize else f"{values[i, j]:g}", ha="center", va="center",
                    fontsize=8, color="white" if values[i, j] > middle else "black")
    return _finish(figure, path)


def first_conv_weight(model):
    """The weight (O, C, KH, KW) of the first module of ``model`` holding a 4-D ``weight`` (its first conv)."""
    for _, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is not None and len(weight.shape) == 4:
            return weight.data
    raise ValueError(f"first_conv_weight: {type(model).__name__} has no layer with a 4-D weight (no Conv2d)")


def plot_filters(weights, path=None):
    """Each kernel of a conv layer as a small image: row o is output channel o, column c input channel c.

    Args:
        weights: a (O, C, KH, KW) weight array, or a model (its first conv layer is shown).
        path: where to save the PNG (optional).

    Colours are shared by all kernels and centred on zero (blue negative, red positive),
    so kernels can be compared with each other. With one input channel the O kernels are
    laid out in a near-square grid instead.
    """
    if not hasattr(weights, "shape"):
        weights = first_conv_weight(weights)
    weights = to_numpy(weights)
    if weights.ndim != 4:
        raise ValueError(f"plot_filters: expected a conv weight of shape (O, C, KH, KW), got shape {weights.shape}")
    out_channels, in_channels = weights.shape[:2]
    if in_channels == 1:
        ncols = int(np.ceil(np.sqrt(out_channels)))
        nrows = -(-out_channels // ncols)
        kernels = [(weights[o, 0], f"{o}") for o in range(out_channels)]
    else:
        nrows, ncols = out_channels, in_channels
        kernels = [(weights[o, c], f"{o},{c}") for o in range(out_channels) for c in range(in_channels)]
    limit = float(np.abs(weights).max()) or 1.0
    figure = _figure(max(3.0, 0.9 * ncols), max(2.0, 0.9 * nrows + 0.5))
    axes = figure.subplots(nrows, ncols, squeeze=False).reshape(-1)
    for ax, (kernel, label) in zip(axes, kernels):
        image = ax.imshow(kernel, cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(label, fontsize=8)
    for ax in axes:
        ax.axis("off")
    figure.colorbar(image, ax=axes.tolist(), fraction=0.03)
    figure.suptitle(f"conv filters {tuple(weights.shape)}")
    return _finish(figure, path)


def gradient_flow(history, path=None, title=None):
    """The norms ``fit(..., record="grad_norms")`` recorded, per layer over the steps, on a log scale.

    Left: the L2 norm of each parameter's gradient; right: of each layer's output. Lines are
    coloured from the first layer (dark) to the last (light), so gradients that vanish towards
    the input show as dark lines far below light ones.

    Args:
        history: what ``fit`` returned, with ``record_step``, ``grad_norm:<parameter>`` and
            ``output_norm:<layer>`` entries.
        path: where to save the PNG (optional).
        title: a title for the figure (optional).
    """
    steps = history.get(RECORD_STEP)
    if not steps:
        raise ValueError("gradient_flow: the history holds no recorded norms; train with "
                         f"fit(..., record='grad_norms') (keys: {sorted(history)})")
    panels = [(GRAD_NORM, "gradient norm per parameter"), (OUTPUT_NORM, "output norm per layer")]
    figure = _figure(10, 3.8)
    for ax, (prefix, label) in zip(figure.subplots(1, 2, squeeze=False)[0], panels):
        names = [key for key in history if key.startswith(prefix)]
        colors = _colormap("viridis")(np.linspace(0, 0.9, max(len(names), 1)))
        for name, color in zip(names, colors):
            ax.plot(steps, history[name], "-", color=color, label=name[len(prefix):])
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2 if len(names) > 8 else 1)
    if title is not None:
        figure.suptitle(title)
    return _finish(figure, path)


def _colormap(name):
    from matplotlib import colormaps

    return colormaps[name]


__all__ = ["plot_history", "gradient_flow", "plot_predictions", "plot_confusion_matrix", "plot_filters", "first_conv_weight",
           "CORRECT_COLOR", "WRONG_COLOR"]
