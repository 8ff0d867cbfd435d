"""Classification metrics: accuracy, confusion matrix, per-class precision, recall and F1.

Label metrics take ``(y_true, y_pred)`` in that order, as scikit-learn's do:
two 1-D integer arrays of class indices in ``[0, num_classes)``. ``num_classes``
defaults to one more than the largest label seen in either array. Results are
NumPy values on the host (they are small), whatever device the labels are on.

Turning a model's output into labels is explicit, never guessed from its shape:

* ``"argmax"``: (N, C) class scores (logits or probabilities), C >= 2 -> the index of the largest.
* ``"threshold"``: one score per sample, (N,) or (N, 1), against 0/1 targets ->
  1 where the score is above ``threshold`` (0.5 for sigmoid probabilities,
  0.0 for raw logits fed to ``BCEWithLogitsLoss``).

Zero division. Where a ratio has nothing to count, the result is ``zero_division``
(default 0.0, scikit-learn's value; pass ``float("nan")`` to leave such classes
visibly undefined):

* precision of a class never predicted (tp + fp = 0),
* recall and per-class accuracy of a class absent from ``y_true`` (tp + fn = 0),
* F1 of a class absent from both (tp + fp + fn = 0). F1 is computed as
  2 tp / (2 tp + fp + fn), which equals 2 p r / (p + r) whenever both are defined and
  is 0, not undefined, for a class that is present but never predicted correctly.

Macro averages are plain means over all ``num_classes`` classes.
"""
import numpy as np

from .backend import to_numpy

#: The ways ``count_correct`` and ``predicted_labels`` turn outputs into labels.
ACCURACY_KINDS = ("argmax", "threshold")


def check_accuracy_kind(where, kind):
    """Raise ValueError unless ``kind`` is one of ``ACCURACY_KINDS`` or None."""
    if kind is not None and kind not in ACCURACY_KINDS:
        raise ValueError(f"{where}: accuracy must be one of {ACCURACY_KINDS} or None, got {kind!r}")


def predicted_labels(output, kind="argmax", threshold=0.5):
    """The class each row of ``output`` predicts, as a 1-D integer array on ``output``'s device.

    Args:
        output: model output, (N, C) for ``"argmax"``; (N,) or (N, 1) for ``"threshold"``.
        kind: ``"argmax"`` or ``"threshold"`` (see the module docstring).
        threshold: for ``"threshold"``: scores above it predict 1, the others 0.

    Shape: -> (N,), int64 for ``"argmax"``, int64 0/1 for ``"threshold"``.
    """
    check_accuracy_kind("predicted_labels", kind)
    shape = getattr(output, "shape", None)
    if kind == "argmax":
        if shape is None or len(shape) != 2 or shape[1] < 2:
            raise ValueError(
                f"accuracy='argmax' needs (N, C) class scores with C >= 2, got shape {shape}; "
                "for one sigmoid output per sample use accuracy='threshold', or accuracy=None for regression"
            )
        return output.argmax(axis=1)
    if shape is None or not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(f"accuracy='threshold' needs one score per sample, shape (N,) or (N, 1), got shape {shape}")
    return (output.reshape(-1) > threshold).astype(np.int64)


def count_correct(output, target, kind="argmax", threshold=0.5):
    """How many rows of ``output`` predict their ``target``, as a 0-d integer array on the output's device.

    Nothing is copied to the host, so a training loop can add these up on a GPU
    and read the total once per epoch.

    Args:
        output: model output (see ``predicted_labels``).
        target: (N,) integer class indices for ``"argmax"``; 0/1 values of shape (N,)
            or (N, 1), integer or float, for ``"threshold"``.
        kind, threshold: as in ``predicted_labels``.
    """
    predicted = predicted_labels(output, kind, threshold)
    if target.size != predicted.shape[0]:
        raise ValueError(
            f"count_correct: {predicted.shape[0]} predictions (output shape {output.shape}) "
            f"but target has shape {target.shape}"
        )
    if kind == "threshold":
        # 0/1 targets, possibly float (the MSE and BCE losses want float targets).
        return (predicted == (target.reshape(-1) > 0.5)).sum()
    return (predicted == target.reshape(-1)).sum()


def _labels(where, name, labels):
    labels = to_numpy(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise TypeError(
            f"{where}: {name} must be a 1-D array of integer class indices, "
            f"got shape {labels.shape} and dtype {labels.dtype}"
        )
    return labels


def _check_pair(where, y_true, y_pred, num_classes):
    """Return ``(y_true, y_pred, num_classes)`` as NumPy arrays and an int, checked."""
    y_true = _labels(where, "y_true", y_true)
    y_pred = _labels(where, "y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{where}: y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]}")
    if y_true.size == 0:
        raise ValueError(f"{where}: got no labels; metrics need at least one sample")
    low = min(int(y_true.min()), int(y_pred.min()))
    high = max(int(y_true.max()), int(y_pred.max()))
    if num_classes is None:
        num_classes = high + 1
    elif not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"{where}: num_classes must be a positive integer, got {num_classes!r}")
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{where}: labels must be in [0, {num_classes - 1}] for {num_classes} classes, "
            f"got a label {low if low < 0 else high}"
        )
    return y_true, y_pred, int(num_classes)


def accuracy(y_true, y_pred):
    """The fraction of labels predicted correctly, a float in [0, 1].

    Example::

        accuracy(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2]))   # 0.75
    """
    y_true, y_pred, _ = _check_pair("accuracy", y_true, y_pred, None)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Count of each (true class, predicted class) pair.

    Shape: -> (num_classes, num_classes) int64; row i is the true class, column j the
    predicted one (scikit-learn's layout), so the diagonal holds the correct predictions,
    row sums are the class sizes and column sums how often each class was predicted.
    """
    y_true, y_pred, k = _check_pair("confusion_matrix", y_true, y_pred, num_classes)
    # One bincount over the pair's flat index true * k + pred.
    return np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k).astype(np.int64)


def _ratio(numerator, denominator, zero_division):
    """numerator / denominator element-wise, ``zero_division`` where the denominator is 0."""
    numerator = numerator.astype(np.float64)
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, float(zero_division), numerator / safe)


def per_class_accuracy(y_true, y_pred, num_classes=None, zero_division=0.0):
    """For each class, the fraction of its samples predicted correctly (its recall).

    Shape: -> (num_classes,) float64; a class absent from ``y_true`` gets ``zero_division``.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return _ratio(np.diag(cm), cm.sum(axis=1), zero_division)


def precision_recall_f1(y_true, y_pred, num_classes=None, average=None, zero_division=0.0):
    """Precision tp / (tp + fp), recall tp / (tp + fn) and F1 2 tp / (2 tp + fp + fn) per class.

    Args:
        y_true, y_pred: 1-D integer labels.
        num_classes: the number of classes (default: largest label + 1).
        average: None for per-class arrays, ``"macro"`` for their unweighted means.
        zero_division: the value of a ratio with nothing to count (see the module docstring).

    Returns:
        ``(precision, recall, f1)``: three (num_classes,) float64 arrays, or three floats
        with ``average="macro"``.
    """
    if average not in (None, "macro"):
        raise ValueError(f"precision_recall_f1: average must be None or 'macro', got {average!r}")
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)  # tp + fp, tp + fn
    precision = _ratio(tp, predicted, zero_division)
    recall = _ratio(tp, actual, zero_division)
    f1 = _ratio(2 * tp, predicted + actual, zero_division)
    if average == "macro":
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    return precision, recall, f1


def classification_report(y_true, y_pred, num_classes=None, class_names=None, zero_division=0.0):
    """A text table of precision, recall, F1 and support per class, with macro averages and accuracy."""
    y_true, y_pred, k = _check_pair("classification_report", y_true, y_pred, num_classes)
    names = [str(c) for c in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"classification_report: {len(names)} class names for {k} classes")
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, k, zero_division=zero_division)
    support = np.bincount(y_true, minlength=k)
    width = max(12, *(len(name) for name in names))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"]
    for row in zip(names, precision, recall, f1, support):
        lines.append(f"{row[0]:>{width}} {row[1]:>9.4f} {row[2]:>9.4f} {row[3]:>9.4f} {row[4]:>9d}")
    lines.append(
        f"{'macro avg':>{width}} {precision.mean():>9.4f} {recall.mean():>9.4f} {f1.mean():>9.4f} {y_true.size:>9d}"
    )
    lines.append(f"{'accuracy':>{width}} {float(np.mean(y_true == y_pred)):>29.4f} {y_true.size:>9d}")
    return "\n".join(lines)


__all__ = [
    "ACCURACY_KINDS", "predicted_labels", "count_correct", "accuracy", "confusion_matrix",
    "per_class_accuracy", "precision_recall_f1", "classification_report",
]
