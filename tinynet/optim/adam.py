"""Adam and AdamW, as ``torch.optim.Adam`` and ``torch.optim.AdamW`` compute them."""
from ..backend import get_array_module
from ..kernels import adam_step
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
        v_max = state["max_exp_avg_sq"] if self.amsgrad else None
        bias_correction1 = 1.0 - beta1**step
        bias_correction2_sqrt = (1.0 - beta2**step) ** 0.5
        # AdamW shrinks p by this factor; the final update applies it (p is not read before).
        shrink = 1.0 - lr * self.weight_decay if self.decoupled_weight_decay else 1.0
        decay = 0.0 if self.decoupled_weight_decay else self.weight_decay
        adam_step(p, g, m, v, v_max, decay, beta1, beta2, self.eps, -lr / bias_correction1, bias_correction2_sqrt,
                  shrink)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019).

    Instead of adding ``weight_decay * p`` to the gradient, each step first shrinks
    the weights, ``p = p * (1 - lr * weight_decay)``, then applies the Adam update.
    Arguments and state as ``Adam``; ``weight_decay`` defaults to 1e-2.
    """

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
