"""Stochastic gradient descent with momentum, as ``torch.optim.SGD`` computes it."""
from ..backend import get_array_module
from ..kernels import sgd_step
from .optimizer import Optimizer, as_bool, as_float, require


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and weight decay.

    For each parameter p with gradient g, one step computes (PyTorch's rule)::

        g = g + weight_decay * p                        (if weight_decay != 0)
        b = g on the first step, else momentum * b + (1 - dampening) * g
        g = g + momentum * b if nesterov else b         (if momentum != 0)
        p = p - lr * g

    Args:
        params: iterable of ``Parameter``, e.g. ``model.parameters()``.
        lr: learning rate (>= 0).
        momentum: momentum factor (>= 0); 0 is plain SGD.
        dampening: dampening of the momentum (applied from the second step on).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
        weight_decay: L2 penalty added to the gradient (>= 0).

    State per parameter: ``momentum_buffer`` (when momentum != 0).

    Example::

        optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.backward(loss_fn.backward())
        optimizer.step()
        optimizer.zero_grad()
    """

    hyperparameters = ("lr", "momentum", "dampening", "nesterov", "weight_decay")

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(
            params, lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay
        )

    def _check_hyperparameters(self, h):
        where = type(self).__name__
        checked = {name: as_float(where, name, h[name]) for name in ("lr", "momentum", "dampening", "weight_decay")}
        checked["nesterov"] = as_bool(where, "nesterov", h["nesterov"])
        # `not 0.0 <= x` (rather than `x < 0.0`) also rejects NaN.
        require(where, 0.0 <= checked["lr"], f"Invalid learning rate: {checked['lr']}")
        require(where, 0.0 <= checked["momentum"], f"Invalid momentum value: {checked['momentum']}")
        require(where, 0.0 <= checked["weight_decay"], f"Invalid weight_decay value: {checked['weight_decay']}")
        require(
            where,
            not checked["nesterov"] or (checked["momentum"] > 0 and checked["dampening"] == 0),
            "Nesterov momentum requires a momentum and zero dampening, "
            f"got momentum={checked['momentum']} and dampening={checked['dampening']}",
        )
        return checked

    def _state_names(self, h):
        return ("momentum_buffer",) if h["momentum"] != 0 else ()

    def _update(self, param, state):
        buf, first = None, False
        if self.momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = get_array_module(param.data).empty_like(param.data)
                first = True
        (scratch,) = self._scratch(param, 1)  # for the decayed or Nesterov gradient, in the array code
        # float(): a schedule may have set lr to a NumPy scalar, which would upcast float32 (NEP 50).
        sgd_step(param.data, param.grad, buf, scratch, self.weight_decay, self.momentum, self.dampening,
                 self.nesterov, float(self.lr), first)
