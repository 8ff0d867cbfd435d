"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW`` compute them."""
import numpy as np

from ..backend import get_array_module
from ._axpby import axpby, compiled, loop_applies
from .optimizer import Optimizer, as_bool, as_float, require


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2015), with optional L2 weight decay and AMSGrad.

    For each parameter p with gradient g, step t (counted per parameter, from 1) computes::

        g = g + weight_decay * p                  (if weight_decay != 0)
        m = beta1 * m + (1 - beta1) * g           first moment
        v = beta2 * v + (1 - beta2) * g * g       second moment
        v_max = max(v_max, v)                     (amsgrad; then v_max replaces v below)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    with m and v starting at zero, the bias corrections written as PyTorch writes them.

    Args:
        params: iterable of ``Parameter``, e.g. ``model.parameters()``.
        lr: learning rate (>= 0), default 1e-3.
        betas: ``(beta1, beta2)``, each in [0, 1): decay rates of the moment estimates.
        eps: added to the denominator (>= 0).
        weight_decay: L2 penalty added to the gradient (>= 0).
        amsgrad: normalise by the largest second moment seen so far (Reddi et al., 2018).

    State per parameter: ``step`` (int), ``exp_avg`` (m), ``exp_avg_sq`` (v) and,
    with amsgrad, ``max_exp_avg_sq``; arrays in the parameter's dtype.

    Example::

        optimizer = Adam(model.parameters(), lr=1e-3)
    """

    hyperparameters = ("lr", "betas", "eps", "weight_decay", "amsgrad")
    scalar_state = ("step",)
    #: AdamW sets this: decay the weights directly instead of adding to the gradient.
    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def _check_hyperparameters(self, h):
        where = type(self).__name__
        betas = h["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{where}: betas must be a pair (beta1, beta2), got {betas!r}")
        checked = {name: as_float(where, name, h[name]) for name in ("lr", "eps", "weight_decay")}
        checked["betas"] = (as_float(where, "betas[0]", betas[0]), as_float(where, "betas[1]", betas[1]))
        checked["amsgrad"] = as_bool(where, "amsgrad", h["amsgrad"])
        require(where, 0.0 <= checked["lr"], f"Invalid learning rate: {checked['lr']}")
        require(where, 0.0 <= checked["eps"], f"Invalid epsilon value: {checked['eps']}")
        for index, beta in enumerate(checked["betas"]):
            require(where, 0.0 <= beta < 1.0, f"Invalid beta parameter at index {index}: {beta}")
        require(where, 0.0 <= checked["weight_decay"], f"Invalid weight_decay value: {checked['weight_decay']}")
        return checked

    def _state_names(self, h):
        return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if h["amsgrad"] else ())

    def _update(self, param, state):
        p, g = param.data, param.grad
        xp = get_array_module(p)
        lr = float(self.lr)  # a schedule may have set a NumPy scalar, which would upcast float32 (NEP 50)
        beta1, beta2 = self.betas
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p), exp_avg_sq=xp.zeros_like(p))
        if self.amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = xp.zeros_like(p)
        state["step"] += 1
        step = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        v_max = state.get("max_exp_avg_sq")
        bias_correction1 = 1.0 - beta1**step
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        # AdamW shrinks p by this factor; the final update applies it (p is not read before).
        shrink = 1.0 - lr * self.weight_decay if self.decoupled_weight_decay else 1.0
        decay = 0.0 if self.decoupled_weight_decay else self.weight_decay

        if loop_applies(p, g, m, v, *([v_max] if self.amsgrad else [])):
            # One pass over memory instead of eight array operations: Adam's step on the MNIST MLP's 670k
            # parameters 0.87 -> 0.53 ms (on the CNN's six small ones Python calls dominate:
            # 74 -> 67-71 us).
            scalar = p.dtype.type
            v_max_flat = v_max.reshape(-1) if self.amsgrad else p.reshape(-1)[:0]  # empty: no amsgrad
            compiled(adam_loop)(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), v_max_flat, decay != 0,
                                scalar(decay), scalar(1.0 - beta1), scalar(beta1), scalar(1.0 - beta2),
                                scalar(beta2), scalar(bias_correction2_sqrt), scalar(self.eps),
                                scalar(-lr / bias_correction1), scalar(shrink))
            return

        # `decayed` may hold the decayed gradient (the caller's gradient is never written);
        # `work` holds g * g, then the denominator, then the step.
        decayed, work = self._scratch(param, 2)
        if decay != 0:
            decayed[...] = g
            g = axpby(decay, p, 1.0, decayed)
        axpby(1.0 - beta1, g, beta1, m)  # m = beta1 * m + (1 - beta1) * g
        xp.multiply(g, g, out=work)
        axpby(1.0 - beta2, work, beta2, v)  # v = beta2 * v + (1 - beta2) * g * g
        if self.amsgrad:
            v = xp.maximum(v_max, v, out=v_max)
        # work = sqrt(v) / sqrt(1 - beta2**t) + eps, then p = shrink * p - lr / (1 - beta1**t) * m / work
        xp.sqrt(v, out=work)
        work /= bias_correction2_sqrt
        work += self.eps
        xp.divide(m, work, out=work)
        axpby(-lr / bias_correction1, work, shrink, p)


def adam_loop(p, g, m, v, v_max, decays, decay, one_minus_beta1, beta1, one_minus_beta2, beta2, bias_correction2_sqrt,
              eps, step_size, shrink):
    """The update above as one loop over flat arrays, which numba compiles (``v_max`` is empty
    without amsgrad; ``decays``: whether L2 weight decay applies). The scalars come in the arrays'
    dtype and every operation rounds as the array code's does (no fused multiply-add), so both
    paths give the same bits."""
    for i in range(p.size):
        grad = g[i]
        if decays:
            grad = decay * p[i] + grad
        m[i] = one_minus_beta1 * grad + beta1 * m[i]
        v[i] = one_minus_beta2 * (grad * grad) + beta2 * v[i]
        second = v[i]
        if v_max.size:
            if second > v_max[i] or second != second:  # as np.maximum: a NaN wins
                v_max[i] = second
            second = v_max[i]
        p[i] = step_size * (m[i] / (np.sqrt(second) / bias_correction2_sqrt + eps)) + shrink * p[i]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    Instead of adding ``weight_decay * p`` to the gradient, each step first shrinks
    the weights, ``p = p * (1 - lr * weight_decay)``, then applies the Adam update.
    Arguments and state as ``Adam``; ``weight_decay`` defaults to 1e-2.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
