"""Check a layer's backward pass against finite differences (and PyTorch).

``gradcheck(layer, x)`` and ``gradient_report(layer, x)`` are meant for users writing their own
layers as much as for tinynet's tests::

    from tinynet.testing import gradcheck, gradient_report
    gradcheck(MyLayer(3, 4), np.random.randn(2, 3))       # True, or AssertionError naming the gradient
    print(gradient_report(MyLayer(3, 4), np.random.randn(2, 3)))   # analytic vs finite differences vs torch
"""
import copy
from typing import NamedTuple

import numpy as np

from .backend import to_numpy




class _Problem:
    """f = sum(module(x) * r) on float64 CPU copies of ``module`` and ``x``, for a fixed random r of
    the output's shape, and its analytic gradient: ``module.backward(r)`` for the input, the
    parameters' ``.grad`` (None where backward filled none) for the rest."""

    def __init__(self, where, module, x, rng):
        self.module = copy.deepcopy(module).to("cpu").to(np.float64)
        self.x = np.array(to_numpy(x), dtype=np.float64)  # a copy that the finite differences may perturb
        y = self.module(self.x)
        if not np.array_equal(self.module(self.x), y, equal_nan=True):
            raise ValueError(
                f"{where}: {type(module).__name__} gave two different outputs for the same input; "
                "stochastic layers such as Dropout must be checked in eval mode (call module.eval() first)"
            )
        self.projection = rng.standard_normal(y.shape)
        self.module.zero_grad()
        self.module(self.x)  # a fresh forward for backward to use
        self.analytic = {"input": self.module.backward(self.projection)}
        self.analytic.update((name, param.grad) for name, param in self.module.named_parameters())
        self.arrays = {"input": self.x}
        self.arrays.update((name, param.data) for name, param in self.module.named_parameters())

    def f(self):
        return float(np.sum(self.module(self.x) * self.projection))

    def numerical(self, name, indices, eps):
        """Central differences df/da_i at each index i of the array ``name``."""
        values = self.arrays[name]
        return np.array([_central_difference(self.f, values, index, 1.0, eps) for index in indices])

    def torch_gradients(self):
        """df/da for the input and every parameter by PyTorch's autograd on the module converted
        with ``tinynet.interop.to_torch`` (ImportError without torch, TypeError for a layer it lacks)."""
        import torch

        from .interop import to_torch

        torch_module = to_torch(self.module)
        x = torch.tensor(self.x, requires_grad=True)
        (torch_module(x) * torch.from_numpy(self.projection)).sum().backward()
        grads = {"input": x.grad}
        grads.update(torch_module.named_parameters())
        return {name: None if value is None else (value if name == "input" else value.grad).detach().numpy()
                for name, value in grads.items()}


class TensorComparison(NamedTuple):
    """The three gradients of one tensor at the indices checked.

    ``analytic``, ``numerical`` and ``torch`` are 1-D arrays, one value per index of ``indices``
    (``torch`` is None when PyTorch was not compared); ``analytic`` is None when backward
    computed no gradient for the tensor, ``shape_error`` a message when it had the wrong shape.
    """

    name: str
    shape: tuple
    indices: list
    analytic: object
    numerical: np.ndarray
    torch: object
    shape_error: object = None

    def scores(self, atol, rtol):
        """Per index, the error over the allowed error, |a - n| / (atol + rtol * |n|), the larger of
        the comparison with finite differences and with PyTorch; > 1 fails (``gradcheck``'s rule)."""
        if self.analytic is None or self.shape_error is not None:
            return np.full(len(self.indices), np.inf)
        scores = np.abs(self.analytic - self.numerical) / (atol + rtol * np.abs(self.numerical))
        if self.torch is not None:
            scores = np.maximum(scores, np.abs(self.analytic - self.torch) / (atol + rtol * np.abs(self.torch)))
        return np.nan_to_num(scores, nan=np.inf)

    def worst(self, atol, rtol):
        """The position (in ``indices``) of the worst index."""
        return int(np.argmax(self.scores(atol, rtol))) if self.indices else None


def relative_error(a, b):
    """|a - b| / max(|a|, |b|): 0 when equal, 1 when one is 0, 2 when the signs are opposite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.abs(a), np.abs(b))
    return np.divide(np.abs(a - b), scale, out=np.zeros_like(scale), where=scale > 0)


class GradientReport:
    """What ``gradient_report`` returns: one ``TensorComparison`` per tensor in ``comparisons``
    (the input first, then the parameters by name), the ``worst`` of them, whether all ``passed``,
    and, printed, a table of each tensor's worst index and its three values.

    Attributes:
        comparisons: ``{name: TensorComparison}``.
        atol, rtol: the tolerances of the pass rule (``TensorComparison.scores``).
        torch_note: None when PyTorch's gradients were compared, else why not.
    """

    def __init__(self, comparisons, atol, rtol, torch_note):
        self.comparisons, self.atol, self.rtol, self.torch_note = comparisons, atol, rtol, torch_note

    def _score(self, comparison):
        scores = comparison.scores(self.atol, self.rtol)
        return float(scores.max()) if len(scores) else 0.0

    @property
    def worst(self):
        """The ``TensorComparison`` with the largest error relative to its tolerance."""
        return max(self.comparisons.values(), key=self._score)

    @property
    def passed(self):
        return all(self._score(c) <= 1 for c in self.comparisons.values())

    def failed(self):
        """Names of the tensors whose gradient fails the rule."""
        return [name for name, c in self.comparisons.items() if self._score(c) > 1]

    def at_worst(self, comparison=None):
        """``{"index", "analytic", "numerical", "torch", "relative_error_numerical",
        "relative_error_torch"}`` at the worst index of ``comparison`` (default: the worst tensor)."""
        c = self.worst if comparison is None else comparison
        i = c.worst(self.atol, self.rtol)
        if i is None or c.analytic is None or c.shape_error is not None:
            return None
        analytic, numerical = float(c.analytic[i]), float(c.numerical[i])
        torch = None if c.torch is None else float(c.torch[i])
        return {"index": c.indices[i], "analytic": analytic, "numerical": numerical, "torch": torch,
                "relative_error_numerical": float(relative_error(analytic, numerical)),
                "relative_error_torch": None if torch is None else float(relative_error(analytic, torch))}

    def __str__(self):
        header = ("tensor", "shape", "checked", "worst index", "analytic", "finite diff", "torch", "rel err fd",
                  "rel err torch", "")
        lines = []
        for name, c in self.comparisons.items():
            at = self.at_worst(c)
            if at is None:
                what = c.shape_error or "not computed by backward"
                lines.append((name, str(c.shape), str(len(c.indices)), what, "", "", "", "", "", "FAIL"))
                continue
            lines.append((name, str(c.shape), str(len(c.indices)), str(tuple(int(i) for i in at["index"])),
                          f"{at['analytic']:.6g}", f"{at['numerical']:.6g}",
                          "-" if at["torch"] is None else f"{at['torch']:.6g}",
                          f"{at['relative_error_numerical']:.2g}",
                          "-" if at["relative_error_torch"] is None else f"{at['relative_error_torch']:.2g}",
                          "FAIL" if self._score(c) > 1 else "ok"))
        widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
        text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + lines]
        worst = self.worst
        if self._score(worst) > 1:
            text.append(f"worst: {worst.name}" + ("" if self.at_worst() is None else
                                                  f" at index {tuple(int(i) for i in self.at_worst()['index'])}"))
        if self.torch_note is not None:
            text.append(f"(PyTorch not compared: {self.torch_note})")
        return "\n".join(text)

    __repr__ = __str__


def gradient_report(module, x, eps=1e-6, atol=1e-5, rtol=1e-3, rng=None, max_elements=512, compare_torch=None):
    """Compare three gradients of f = sum(module(x) * r) (r a fixed random array of the output's
    shape) for the input and every parameter: the analytic one (``module.backward``), central
    finite differences in float64, and PyTorch's autograd on the module converted by
    ``tinynet.interop.to_torch``.

    Every element of a tensor of at most ``max_elements`` entries is checked, otherwise
    ``max_elements`` random ones. The check runs on float64 CPU copies; the caller's module and
    array are untouched. ``print(report)`` shows, per tensor, the worst index, the three values
    there and the relative errors (``relative_error``); ``report.worst``, ``report.at_worst()``
    and ``report.passed`` give the same as data.

    Args:
        module, x, eps, rng, max_elements: as for ``gradcheck``.
        atol, rtol: what counts as wrong, to pick the worst index: |a - n| > atol + rtol * |n|.
        compare_torch: True to require PyTorch, False to skip it, None (default) to compare it
            when torch is installed and every layer converts.

    Returns:
        A ``GradientReport``.

    Raises:
        ValueError: the module's output is not deterministic (check Dropout in eval mode).
        ImportError, TypeError: with ``compare_torch=True``, PyTorch missing or a layer it lacks.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    problem = _Problem("gradient_report", module, x, rng)
    torch_grads, torch_note = {}, "compare_torch=False"
    if compare_torch or compare_torch is None:
        try:
            torch_grads, torch_note = problem.torch_gradients(), None
        except (ImportError, TypeError) as error:
            if compare_torch:
                raise
            torch_note = str(error)
    comparisons = {name: _compare(problem, name, eps, rng, max_elements, torch_grads.get(name))
                   for name in problem.arrays}
    return GradientReport(comparisons, atol, rtol, torch_note)


def _compare(problem, name, eps, rng, max_elements, torch_grad):
    values, grad = problem.arrays[name], problem.analytic[name]
    shape = values.shape
    if values.size <= max_elements:
        indices = list(np.ndindex(shape))
    else:
        flat = np.sort(rng.choice(values.size, size=max_elements, replace=False))
        indices = [tuple(int(i) for i in np.unravel_index(k, shape)) for k in flat]
    numerical = problem.numerical(name, indices, eps)
    shape_error = None
    if grad is not None and np.shape(grad) != shape:
        shape_error = f"gradient of shape {np.shape(grad)}, expected {shape}"
    analytic = None if grad is None or shape_error else np.array([np.asarray(grad)[i] for i in indices])
    torch = None if torch_grad is None else np.array([torch_grad[i] for i in indices])
    return TensorComparison(name, shape, indices, analytic, numerical, torch, shape_error)


def gradcheck(module, x, eps=1e-6, atol=1e-5, rtol=1e-3, rng=None, max_elements=512, n_directions=3):
    """Compare ``module.backward`` with central differences of a random projection of its output.

    The scalar checked is f = sum(module(x) * r) for a fixed random r of the
    output's shape, so ``module.backward(r)`` must return df/dx and fill
    df/dp into every parameter's ``.grad``. The check runs on a float64 deep
    copy of the module and of ``x`` (on the CPU); the caller's module and
    array are left untouched.

    A tensor with at most ``max_elements`` elements is checked element by
    element: df/da_i ~ (f(a_i + eps) - f(a_i - eps)) / (2 eps). A larger one is
    checked along ``n_directions`` random unit directions d, comparing
    sum(grad * d) with (f(a + eps d) - f(a - eps d)) / (2 eps), as Chainer's
    ``check_backward`` does: two forward passes per direction instead of two per element.
    An analytic value a passes against a numerical value n when
    |a - n| <= atol + rtol * |n| (``torch.autograd.gradcheck``'s rule and defaults).

    The module must compute the same output on every call. Check stochastic
    layers (``Dropout`` in training mode) after ``module.eval()``; if the
    output changes between two calls this raises ValueError instead.
    Avoid inputs at kinks (ReLU at exactly 0), where the derivative is one-sided.

    Args:
        module: a ``tinynet.Module`` (or anything with ``forward``, ``backward``,
            ``named_parameters``, ``zero_grad`` and ``to``).
        x: the input array; converted to float64.
        eps: finite-difference step.
        atol, rtol: tolerances, as above.
        rng: ``numpy.random.Generator`` for r and the directions (default: seeded with 0, so reruns agree).
        max_elements: tensors larger than this are checked along random directions.
        n_directions: how many random directions for a large tensor.

    Returns:
        True when every gradient agrees.

    Raises:
        AssertionError: naming the gradient that disagrees ("input" or a
            parameter name such as "0.weight") and the largest error, followed by
            the table of ``gradient_report`` (finite differences only): every
            tensor's worst index and the values there.
        ValueError: if the module's output is not deterministic.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    problem = _Problem("gradcheck", module, x, rng)
    for name, values in problem.arrays.items():
        grad = problem.analytic[name]
        if grad is None:
            raise AssertionError(f"gradcheck: the gradient of {name} was not computed by backward")
        if np.shape(grad) != values.shape:
            raise AssertionError(f"gradcheck: the gradient of {name} has shape {np.shape(grad)}, expected {values.shape}")
        if values.size <= max_elements:
            failure = _check_elementwise(_compare(problem, name, eps, rng, max_elements, None), atol, rtol)
        else:
            failure = _check_directions(name, problem.f, values, np.asarray(grad), eps, atol, rtol, rng, n_directions)
        if failure is not None:
            report = GradientReport({n: _compare(problem, n, eps, rng, max_elements, None) for n in problem.arrays},
                                    atol, rtol, "gradcheck compares finite differences only")
            raise AssertionError(f"{failure}\n{report}")
    return True


def _central_difference(f, values, where, step, eps):
    """(f(a + eps * step) - f(a - eps * step)) / (2 eps) with a = values[where]; restores values[where]."""
    original = values[where].copy()
    values[where] = original + eps * step
    f_plus = f()
    values[where] = original - eps * step
    f_minus = f()
    values[where] = original
    return (f_plus - f_minus) / (2 * eps)


def _check_elementwise(comparison, atol, rtol):
    """None if every checked element agrees with finite differences, else what disagrees."""
    grad, numerical = comparison.analytic, comparison.numerical
    error = np.abs(grad - numerical)
    bad = error > atol + rtol * np.abs(numerical)
    if not bad.any():
        return None
    worst = comparison.worst(atol, rtol)
    return (
        f"gradcheck: the gradient of {comparison.name} does not match finite differences in {int(bad.sum())} of "
        f"{len(bad)} elements; max error {error.max():.3g} (atol={atol}, rtol={rtol}); "
        f"at index {comparison.indices[worst]}: backward gave {grad[worst]:.6g}, "
        f"finite differences gave {numerical[worst]:.6g}"
    )


def _check_directions(name, f, values, grad, eps, atol, rtol, rng, n_directions):
    """None if the gradient agrees with finite differences along ``n_directions`` random unit
    directions, else what disagrees."""
    for _ in range(n_directions):
        direction = rng.standard_normal(values.shape)
        direction /= np.linalg.norm(direction)
        numerical = _central_difference(f, values, Ellipsis, direction, eps)
        analytic = float(np.sum(grad * direction))
        error = abs(analytic - numerical)
        if error > atol + rtol * abs(numerical):
            return (
                f"gradcheck: the gradient of {name} does not match finite differences along a random direction; "
                f"error {error:.3g} (atol={atol}, rtol={rtol}): backward gave {analytic:.6g}, "
                f"finite differences gave {numerical:.6g}"
            )
    return None
