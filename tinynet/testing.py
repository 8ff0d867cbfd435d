"""Check a layer's backward pass against finite differences.

``gradcheck(layer, x)`` is meant for users writing their own layers as much as
for tinynet's tests::

    from tinynet.testing import gradcheck
    gradcheck(MyLayer(3, 4), np.random.randn(2, 3))   # True, or AssertionError naming the gradient
"""
import copy

import numpy as np

from .backend import to_numpy


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
            parameter name such as "0.weight") and the largest error.
        ValueError: if the module's output is not deterministic.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    module = copy.deepcopy(module).to("cpu").to(np.float64)
    x = np.array(to_numpy(x), dtype=np.float64)  # a copy that the finite differences may perturb

    y = module(x)
    if not np.array_equal(module(x), y, equal_nan=True):
        raise ValueError(
            f"gradcheck: {type(module).__name__} gave two different outputs for the same input; "
            "stochastic layers such as Dropout must be checked in eval mode (call module.eval() first)"
        )
    projection = rng.standard_normal(y.shape)

    def f():
        return float(np.sum(module(x) * projection))

    module.zero_grad()
    module(x)  # a fresh forward for backward to use
    analytic = {"input": module.backward(projection)}
    analytic.update((name, param.grad) for name, param in module.named_parameters())
    arrays = {"input": x}
    arrays.update((name, param.data) for name, param in module.named_parameters())

    for name, values in arrays.items():
        grad = analytic[name]
        if grad is None:
            raise AssertionError(f"gradcheck: the gradient of {name} was not computed by backward")
        if np.shape(grad) != values.shape:
            raise AssertionError(f"gradcheck: the gradient of {name} has shape {np.shape(grad)}, expected {values.shape}")
        if values.size <= max_elements:
            _check_elementwise(name, f, values, np.asarray(grad), eps, atol, rtol)
        else:
            _check_directions(name, f, values, np.asarray(grad), eps, atol, rtol, rng, n_directions)
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


def _check_elementwise(name, f, values, grad, eps, atol, rtol):
    numerical = np.empty_like(values)
    for index in np.ndindex(values.shape):
        numerical[index] = _central_difference(f, values, index, 1.0, eps)
    error = np.abs(grad - numerical)
    bad = error > atol + rtol * np.abs(numerical)
    if bad.any():
        worst = np.unravel_index(np.argmax(np.where(bad, error, -1.0)), values.shape)
        raise AssertionError(
            f"gradcheck: the gradient of {name} does not match finite differences in {int(bad.sum())} of "
            f"{values.size} elements; max error {error.max():.3g} (atol={atol}, rtol={rtol}); "
            f"at index {tuple(int(i) for i in worst)}: backward gave {grad[worst]:.6g}, "
            f"finite differences gave {numerical[worst]:.6g}"
        )


def _check_directions(name, f, values, grad, eps, atol, rtol, rng, n_directions):
    for _ in range(n_directions):
        direction = rng.standard_normal(values.shape)
        direction /= np.linalg.norm(direction)
        numerical = _central_difference(f, values, Ellipsis, direction, eps)
        analytic = float(np.sum(grad * direction))
        error = abs(analytic - numerical)
        if error > atol + rtol * abs(numerical):
            raise AssertionError(
                f"gradcheck: the gradient of {name} does not match finite differences along a random direction; "
                f"error {error:.3g} (atol={atol}, rtol={rtol}): backward gave {analytic:.6g}, "
                f"finite differences gave {numerical:.6g}"
            )
