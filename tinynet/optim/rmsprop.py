"""RMSprop and Adagrad, as ``torch.optim.RMSprop`` and ``torch.optim.Adagrad`` compute them."""
from ..backend import get_array_module
from ..kernels import axpby
from .optimizer import Optimizer, as_bool, as_float, require


def _check_common(where, h, names):
    """The hyperparameters ``names`` as Python floats, with lr, eps and weight_decay checked."""
    checked = {name: as_float(where, name, h[name]) for name in names}
    require(where, 0.0 <= checked["lr"], f"Invalid learning rate: {checked['lr']}")
    require(where, 0.0 <= checked["eps"], f"Invalid epsilon value: {checked['eps']}")
    require(where, 0.0 <= checked["weight_decay"], f"Invalid weight_decay value: {checked['weight_decay']}")
    return checked


class RMSprop(Optimizer):
    """RMSprop (Hinton, 2012): divide the gradient by a running root mean square of its recent values.

    For each parameter p with gradient g, one step computes (PyTorch's rule)::

        g = g + weight_decay * p                           (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g                mean square, from 0
        m = alpha * m + (1 - alpha) * g                    (centered: mean, from 0)
        d = sqrt(v - m * m) + eps if centered, else sqrt(v) + eps
        b = momentum * b + g / d; p = p - lr * b           (if momentum > 0, b from 0)
        p = p - lr * g / d                                 (otherwise)

    Args:
        params: iterable of ``Parameter``.
        lr: learning rate (>= 0), default 1e-2.
        alpha: smoothing constant of the averages, in [0, 1).
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        momentum: momentum factor (>= 0).
        centered: normalise by the estimated variance rather than the mean square.

    State per parameter: ``step`` (int), ``square_avg``, and ``momentum_buffer`` (momentum > 0)
    and ``grad_avg`` (centered).
    """

    hyperparameters = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
    scalar_state = ("step",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=centered)

    def _check_hyperparameters(self, h):
        where = type(self).__name__
        checked = _check_common(where, h, ("lr", "alpha", "eps", "weight_decay", "momentum"))
        checked["centered"] = as_bool(where, "centered", h["centered"])
        require(where, 0.0 <= checked["alpha"] < 1.0, f"Invalid alpha value: {checked['alpha']}")
        require(where, 0.0 <= checked["momentum"], f"Invalid momentum value: {checked['momentum']}")
        return checked

    def _state_names(self, h):
        return (("step", "square_avg") + (("momentum_buffer",) if h["momentum"] > 0 else ())
                + (("grad_avg",) if h["centered"] else ()))

    def _update(self, param, state):
        p, g = param.data, param.grad
        xp = get_array_module(p)
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p))
            if self.momentum > 0:
                state["momentum_buffer"] = xp.zeros_like(p)
            if self.centered:
                state["grad_avg"] = xp.zeros_like(p)
        state["step"] += 1
        decayed, work = self._scratch(param, 2)  # the decayed gradient; g * g, then the denominator
        if self.weight_decay != 0:
            decayed[...] = g
            g = axpby(self.weight_decay, p, 1.0, decayed)
        square_avg = state["square_avg"]
        xp.multiply(g, g, out=work)
        axpby(1.0 - self.alpha, work, self.alpha, square_avg)
        if self.centered:
            grad_avg = axpby(1.0 - self.alpha, g, self.alpha, state["grad_avg"])
            xp.multiply(grad_avg, grad_avg, out=work)
            xp.subtract(square_avg, work, out=work)
            xp.sqrt(work, out=work)
        else:
            xp.sqrt(square_avg, out=work)
        work += self.eps
        xp.divide(g, work, out=work)
        lr = float(self.lr)  # a schedule may have set a NumPy scalar, which would upcast float32 (NEP 50)
        if self.momentum > 0:
            buf = axpby(1.0, work, self.momentum, state["momentum_buffer"])
            axpby(-lr, buf, 1.0, p)
        else:
            axpby(-lr, work, 1.0, p)


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011): divide by the root of the sum of all squared gradients so far.

    For each parameter p with gradient g, step t (from 1) computes (PyTorch's rule)::

        g = g + weight_decay * p                          (if weight_decay != 0)
        s = s + g * g                                     from initial_accumulator_value
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Args:
        params: iterable of ``Parameter``.
        lr: learning rate (>= 0), default 1e-2.
        lr_decay: learning-rate decay per step (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        initial_accumulator_value: the sum's starting value (>= 0).
        eps: added to the denominator (>= 0).

    State per parameter: ``step`` (int) and ``sum``.
    """

    hyperparameters = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
    scalar_state = ("step",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    def _check_hyperparameters(self, h):
        where = type(self).__name__
        checked = _check_common(where, h, self.hyperparameters)
        require(where, 0.0 <= checked["lr_decay"], f"Invalid lr_decay value: {checked['lr_decay']}")
        require(where, 0.0 <= checked["initial_accumulator_value"],
                f"Invalid initial_accumulator_value value: {checked['initial_accumulator_value']}")
        return checked

    def _state_names(self, h):
        return ("step", "sum")

    def _update(self, param, state):
        p, g = param.data, param.grad
        xp = get_array_module(p)
        if not state:
            state.update(step=0, sum=xp.full_like(p, self.initial_accumulator_value))
        state["step"] += 1
        decayed, work = self._scratch(param, 2)
        if self.weight_decay != 0:
            decayed[...] = g
            g = axpby(self.weight_decay, p, 1.0, decayed)
        xp.multiply(g, g, out=work)
        state_sum = axpby(1.0, work, 1.0, state["sum"])
        xp.sqrt(state_sum, out=work)
        work += self.eps
        xp.divide(g, work, out=work)
        clr = float(self.lr) / (1 + (state["step"] - 1) * self.lr_decay)
        axpby(-clr, work, 1.0, p)
