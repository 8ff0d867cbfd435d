"""Metrics against hand-computed cases and against per-class loops written from the definitions."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinynet import metrics

# A hand-worked case with 4 classes; class 3 appears in neither array.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 0, 1, 2, 2, 2, 1])
CM = np.array([[2, 1, 0, 0], [0, 1, 1, 0], [0, 1, 2, 0], [0, 0, 0, 0]])


def test_confusion_matrix_by_hand():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)
    np.testing.assert_array_equal(metrics.confusion_matrix(Y_TRUE, Y_PRED), CM[:3, :3])  # inferred: 3 classes


def test_accuracy_and_per_class_accuracy_by_hand():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == 5 / 8
    np.testing.assert_allclose(metrics.per_class_accuracy(Y_TRUE, Y_PRED, 4), [2 / 3, 1 / 2, 2 / 3, 0.0])
    assert np.isnan(metrics.per_class_accuracy(Y_TRUE, Y_PRED, 4, zero_division=float("nan"))[3])


def test_precision_recall_f1_by_hand():
    precision, recall, f1 = metrics.precision_recall_f1(Y_TRUE, Y_PRED, num_classes=4)
    np.testing.assert_allclose(precision, [1, 1 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recall, [2 / 3, 1 / 2, 2 / 3, 0])
    np.testing.assert_allclose(f1, [4 / 5, 2 / 5, 2 / 3, 0])
    macro = metrics.precision_recall_f1(Y_TRUE, Y_PRED, num_classes=4, average="macro")
    np.testing.assert_allclose(macro, [(1 + 1 / 3 + 2 / 3) / 4, (2 / 3 + 1 / 2 + 2 / 3) / 4, (4 / 5 + 2 / 5 + 2 / 3) / 4])
    assert all(isinstance(value, float) for value in macro)


def test_zero_division_cases():
    # Class 1 is present but never predicted: precision undefined, recall 0, F1 0.
    # Class 2 is predicted but absent: precision 0, recall undefined, F1 0.
    y_true, y_pred = np.array([0, 1, 0]), np.array([0, 2, 0])
    precision, recall, f1 = metrics.precision_recall_f1(y_true, y_pred, zero_division=1.0)
    np.testing.assert_array_equal(precision, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(recall, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(f1, [1.0, 0.0, 0.0])
    precision, recall, f1 = metrics.precision_recall_f1(y_true, y_pred, num_classes=4, zero_division=float("nan"))
    assert np.isnan(precision[1]) and np.isnan(recall[2]) and np.isnan(f1[3]) and f1[1] == 0.0


@settings(max_examples=50)
@given(st.integers(1, 5).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=40))))
def test_against_definitions(case):
    """Each count and ratio from a Python loop over samples, one class at a time."""
    k, pairs = case
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    cm = metrics.confusion_matrix(y_true, y_pred, num_classes=k)
    precision, recall, f1 = metrics.precision_recall_f1(y_true, y_pred, num_classes=k)
    for c in range(k):
        for d in range(k):
            assert cm[c, d] == sum(1 for t, p in pairs if t == c and p == d)
        tp = sum(1 for t, p in pairs if t == c and p == c)
        fp = sum(1 for t, p in pairs if t != c and p == c)
        fn = sum(1 for t, p in pairs if t == c and p != c)
        p_c = tp / (tp + fp) if tp + fp else 0.0
        r_c = tp / (tp + fn) if tp + fn else 0.0
        f_c = 2 * p_c * r_c / (p_c + r_c) if p_c + r_c else 0.0  # the harmonic-mean definition
        assert precision[c] == pytest.approx(p_c)
        assert recall[c] == pytest.approx(r_c)
        assert f1[c] == pytest.approx(f_c)
    assert metrics.accuracy(y_true, y_pred) == pytest.approx(sum(t == p for t, p in pairs) / len(pairs))
    assert metrics.precision_recall_f1(y_true, y_pred, k, average="macro")[2] == pytest.approx(np.mean(f1))


def test_predicted_labels_and_count_correct():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 5.0]], np.float32)
    np.testing.assert_array_equal(metrics.predicted_labels(logits), [1, 0, 2])
    assert int(metrics.count_correct(logits, np.array([1, 0, 0]))) == 2

    probs = np.array([[0.9], [0.2], [0.6], [0.4]], np.float32)
    targets = np.array([[1.0], [0.0], [0.0], [0.0]], np.float32)
    np.testing.assert_array_equal(metrics.predicted_labels(probs, "threshold"), [1, 0, 1, 0])
    assert int(metrics.count_correct(probs, targets, "threshold")) == 3
    assert int(metrics.count_correct(probs, np.array([1, 0, 0, 0]), "threshold")) == 3
    # Logits for BCEWithLogitsLoss: threshold 0.
    assert int(metrics.count_correct(probs - 0.5, targets, "threshold", threshold=0.0)) == 3


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"accuracy='argmax' needs \(N, C\) class scores with C >= 2, got shape \(4, 1\).*'threshold'"):
        metrics.count_correct(np.zeros((4, 1), np.float32), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"accuracy='threshold' needs one score per sample.*got shape \(4, 3\)"):
        metrics.predicted_labels(np.zeros((4, 3)), "threshold")
    with pytest.raises(ValueError, match=r"accuracy must be one of \('argmax', 'threshold'\) or None, got 'top5'"):
        metrics.predicted_labels(np.zeros((4, 3)), "top5")
    with pytest.raises(ValueError, match=r"count_correct: 4 predictions \(output shape \(4, 3\)\) but target has shape \(3,\)"):
        metrics.count_correct(np.zeros((4, 3)), np.zeros(3, np.int64))
    with pytest.raises(TypeError, match=r"confusion_matrix: y_pred must be a 1-D array of integer class indices, got shape \(2,\) and dtype float64"):
        metrics.confusion_matrix(np.array([0, 1]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"accuracy: y_true has 2 labels but y_pred has 3"):
        metrics.accuracy(np.array([0, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\] for 3 classes, got a label 5"):
        metrics.precision_recall_f1(np.array([0, 5]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match=r"got a label -1"):
        metrics.confusion_matrix(np.array([0, -1]), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"average must be None or 'macro', got 'micro'"):
        metrics.precision_recall_f1(Y_TRUE, Y_PRED, average="micro")
    with pytest.raises(ValueError, match="got no labels"):
        metrics.accuracy(np.array([], np.int64), np.array([], np.int64))


def test_classification_report_lists_every_class():
    report = metrics.classification_report(Y_TRUE, Y_PRED, num_classes=4, class_names=["a", "b", "c", "d"])
    lines = report.splitlines()
    assert lines[0].split() == ["precision", "recall", "f1", "support"]
    assert lines[1].split() == ["a", "1.0000", "0.6667", "0.8000", "3"]
    assert lines[4].split() == ["d", "0.0000", "0.0000", "0.0000", "0"]
    assert lines[-1].split() == ["accuracy", "0.6250", "8"]
