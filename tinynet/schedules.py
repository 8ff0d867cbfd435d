"""Learning-rate schedules with the formulas of ``torch.optim.lr_scheduler``.

A schedule sets ``optimizer.lr`` (a plain attribute on every tinynet optimizer)
and is advanced by calling ``step()``, as in PyTorch::

    optimizer = tinynet.optim.SGD(model.parameters(), lr=0.1)
    schedule = StepLR(optimizer, step_size=3, gamma=0.1)   # sets lr for epoch 0
    for epoch in range(epochs):
        ...                                                # train one epoch
        schedule.step()                                    # lr for the next epoch

``interval`` says how often ``fit`` calls ``step()``: once per epoch (``StepLR``,
``CosineAnnealingLR``) or once per optimizer step (``OneCycleLR``).

Each learning rate is computed from a closed-form expression of the step count
``last_epoch`` (PyTorch's name, whatever the interval), not by updating the
previous value, so ``load_state_dict`` can jump straight to any point of a run.
PyTorch's ``StepLR`` and ``CosineAnnealingLR`` update recursively; the two agree
to rounding (the tests compare them).
"""
import math
import numbers

import numpy as np

EPOCH, STEP = "epoch", "step"


def _number(where, name, value, low=None, low_inclusive=True, high=None):
    """``value`` as a Python float, or a ValueError naming ``where``, ``name`` and the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    if too_low or (high is not None and value > high):
        bounds = f"{'>=' if low_inclusive else '>'} {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{where}: {name} must be {bounds}, got {value}")
    return value


def _count(where, name, value, low=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{where}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class LRScheduler:
    """Base class: owns the step count and writes ``lr_at(step)`` into ``optimizer.lr``.

    Subclasses implement ``lr_at(step)``. The constructor sets the learning rate of
    step 0 (as PyTorch's schedulers do), so training can start right away.

    Attributes:
        optimizer: the optimizer whose ``lr`` is set.
        base_lr: the learning rate the schedule scales (the optimizer's at construction).
        last_epoch: how many times ``step()`` has been called.
        interval: ``"epoch"`` or ``"step"``: when ``fit`` calls ``step()``.
    """

    interval = EPOCH

    def __init__(self, optimizer, base_lr=None):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"{type(self).__name__}: expected an optimizer with an lr attribute, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr if base_lr is None else base_lr)
        self.last_epoch = 0
        self._apply()

    def lr_at(self, step):
        """The learning rate after ``step`` calls of ``step()``."""
        raise NotImplementedError

    @property
    def lr(self):
        """The current learning rate (the one last written to the optimizer)."""
        return self.lr_at(self.last_epoch)

    def step(self):
        """Advance the schedule by one epoch (or one optimizer step) and set the new learning rate."""
        self.last_epoch += 1
        self._apply()

    def _apply(self):
        self.optimizer.lr = self.lr_at(self.last_epoch)

    def state_dict(self):
        """``{"last_epoch": int, "base_lr": float}``: enough to resume (the rest is constructor arguments)."""
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` (also after a trip through ``.npz``) and set the optimizer's lr.
        Nothing changes unless every entry is right."""
        return self._load_checked(self._checked_state_dict(state_dict))

    def _checked_state_dict(self, state_dict):
        """``(last_epoch, base_lr)`` from a ``state_dict()``, checked (including that the schedule
        has a learning rate at that step), changing nothing."""
        where = f"Error loading state_dict into {type(self).__name__}"
        keys = ("last_epoch", "base_lr")
        missing = [key for key in keys if key not in state_dict]
        unexpected = [key for key in state_dict if key not in keys]
        if missing or unexpected:
            raise KeyError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        last_epoch = _count(where, "last_epoch", np.asarray(state_dict["last_epoch"]).tolist(), low=0)
        base_lr = _number(where, "base_lr", np.asarray(state_dict["base_lr"]).tolist())
        self.lr_at(last_epoch)  # raises for a step past the end of a finite schedule
        return last_epoch, base_lr

    def _load_checked(self, checked):
        """Install what ``_checked_state_dict`` returned and set the optimizer's lr; returns self."""
        self.last_epoch, self.base_lr = checked
        self._apply()
        return self

    def __repr__(self):
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.lr!r})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs (``torch.optim.lr_scheduler.StepLR``).

        lr(t) = base_lr * gamma ** (t // step_size)
    """

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _count("StepLR", "step_size", step_size)
        self.gamma = _number("StepLR", "gamma", gamma, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from the base learning rate down to ``eta_min`` over ``T_max`` epochs
    (``torch.optim.lr_scheduler.CosineAnnealingLR``, without restarts).

        lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2

    Past ``T_max`` the cosine carries on (rising again), as in PyTorch.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _count("CosineAnnealingLR", "T_max", T_max)
        self.eta_min = _number("CosineAnnealingLR", "eta_min", eta_min, low=0.0)
        super().__init__(optimizer)

    def lr_at(self, step):
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * step / self.T_max)) / 2


class OneCycleLR(LRScheduler):
    """The one-cycle policy (``torch.optim.lr_scheduler.OneCycleLR``), stepped after every batch.

    The learning rate rises from ``max_lr / div_factor`` to ``max_lr`` over the first
    ``pct_start`` of ``total_steps``, then falls to ``max_lr / div_factor / final_div_factor``
    (with ``three_phase``: back to the initial value first, then to the minimum), along half
    cosines (``anneal_strategy="cos"``) or straight lines (``"linear"``). Phase k runs from
    step ``s_k`` to ``e_k`` (PyTorch's boundaries: ``e = pct_start * total_steps - 1``, then
    ``2 * pct_start * total_steps - 2`` with ``three_phase``, and ``total_steps - 1``), and
    with p = (t - s_k) / (e_k - s_k)::

        cos:    lr = end + (start - end) * (1 + cos(pi * p)) / 2
        linear: lr = start + (end - start) * p

    Unlike PyTorch's default, momentum is not cycled (PyTorch's ``cycle_momentum=False``).

    Args:
        optimizer: its ``lr`` is overwritten from the first step on.
        max_lr: the peak learning rate.
        total_steps: the number of ``step()`` calls in the cycle; or give ``epochs``
            and ``steps_per_epoch`` (their product).
        pct_start: fraction of the cycle spent rising, in (0, 1).
        anneal_strategy: ``"cos"`` or ``"linear"``.
        div_factor: initial lr = max_lr / div_factor.
        final_div_factor: final lr = initial lr / final_div_factor.
        three_phase: go back down to the initial lr before annealing to the final one.
    """

    interval = STEP

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4, three_phase=False):
        where = "OneCycleLR"
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError(f"{where}: give total_steps, or both epochs and steps_per_epoch")
            total_steps = _count(where, "epochs", epochs) * _count(where, "steps_per_epoch", steps_per_epoch)
        self.total_steps = _count(where, "total_steps", total_steps)
        self.max_lr = _number(where, "max_lr", max_lr, low=0.0)
        pct_start = _number(where, "pct_start", pct_start, low=0.0, high=1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"{where}: anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy
        initial_lr = self.max_lr / _number(where, "div_factor", div_factor, low=0.0, low_inclusive=False)
        min_lr = initial_lr / _number(where, "final_div_factor", final_div_factor, low=0.0, low_inclusive=False)
        rise_end = pct_start * self.total_steps - 1
        if three_phase:
            self.phases = [(rise_end, initial_lr, self.max_lr),
                           (2 * pct_start * self.total_steps - 2, self.max_lr, initial_lr),
                           (self.total_steps - 1, initial_lr, min_lr)]
        else:
            self.phases = [(rise_end, initial_lr, self.max_lr), (self.total_steps - 1, self.max_lr, min_lr)]
        super().__init__(optimizer, base_lr=initial_lr)

    def lr_at(self, step):
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR: tried to step {step} times; the cycle has total_steps={self.total_steps} "
                "(make total_steps, or epochs * steps_per_epoch, cover the whole run)"
            )
        # The first phase that has not ended yet, else the last one.
        phase_start = 0.0
        *leading, (phase_end, start, end) = self.phases
        for leading_end, leading_start, leading_stop in leading:
            if step <= leading_end:
                phase_end, start, end = leading_end, leading_start, leading_stop
                break
            phase_start = leading_end
        pct = (step - phase_start) / (phase_end - phase_start)
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start


__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "OneCycleLR"]
