"""Learning-rate schedules: the lr sequence step by step against torch.optim.lr_scheduler."""
import numpy as np
import pytest
import torch

import tinynet as tn
from tinynet.schedules import CosineAnnealingLR, OneCycleLR, StepLR


def tinynet_optimizer(lr):
    return tn.optim.SGD(tn.Linear(2, 1).parameters(), lr=lr)


def torch_optimizer(lr):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def lr_sequence(schedule, optimizer, read_lr, steps):
    """The lr in force at each of ``steps`` optimizer steps (no gradients: the steps change nothing)."""
    lrs = []
    for _ in range(steps):
        lrs.append(read_lr())
        optimizer.step()
        schedule.step()
    return lrs


CASES = [
    ("step", lambda opt: StepLR(opt, step_size=3, gamma=0.5),
     lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), 20),
    ("cosine", lambda opt: CosineAnnealingLR(opt, T_max=7, eta_min=0.01),
     lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=7, eta_min=0.01), 20),  # past T_max too
    ("one-cycle", lambda opt: OneCycleLR(opt, max_lr=0.4, total_steps=37),
     lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.4, total_steps=37, cycle_momentum=False), 37),
    ("one-cycle linear, three phases", lambda opt: OneCycleLR(
        opt, max_lr=1.0, epochs=4, steps_per_epoch=9, pct_start=0.25, anneal_strategy="linear", div_factor=10,
        final_div_factor=100, three_phase=True),
     lambda opt: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=1.0, epochs=4, steps_per_epoch=9, pct_start=0.25, anneal_strategy="linear", div_factor=10,
        final_div_factor=100, three_phase=True, cycle_momentum=False), 36),
]


@pytest.mark.parametrize("make_ours, make_theirs, steps", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_lr_sequence_matches_torch(make_ours, make_theirs, steps):
    ours_opt, theirs_opt = tinynet_optimizer(0.1), torch_optimizer(0.1)
    ours, theirs = make_ours(ours_opt), make_theirs(theirs_opt)
    ours_lrs = lr_sequence(ours, ours_opt, lambda: ours_opt.lr, steps)
    theirs_lrs = lr_sequence(theirs, theirs_opt, lambda: theirs_opt.param_groups[0]["lr"], steps)
    # PyTorch's StepLR and CosineAnnealingLR update recursively; ours are closed-form: equal to rounding.
    np.testing.assert_allclose(ours_lrs, theirs_lrs, rtol=1e-12, atol=1e-15)
    assert all(type(lr) is float for lr in ours_lrs)  # Python floats never upcast float32 parameters


def test_state_dict_resumes_mid_schedule():
    optimizer = tinynet_optimizer(0.1)
    schedule = CosineAnnealingLR(optimizer, T_max=10)
    for _ in range(4):
        schedule.step()
    saved = schedule.state_dict()
    assert saved == {"last_epoch": 4, "base_lr": 0.1}

    fresh_optimizer = tinynet_optimizer(0.1)
    fresh = CosineAnnealingLR(fresh_optimizer, T_max=10).load_state_dict({k: np.asarray(v) for k, v in saved.items()})
    assert fresh_optimizer.lr == optimizer.lr == fresh.lr
    schedule.step(), fresh.step()
    assert fresh_optimizer.lr == optimizer.lr


def test_bad_arguments_are_named():
    optimizer = tinynet_optimizer(0.1)
    with pytest.raises(ValueError, match=r"StepLR: step_size must be an integer >= 1, got 0"):
        StepLR(optimizer, step_size=0)
    with pytest.raises(ValueError, match=r"CosineAnnealingLR: eta_min must be >= 0.0, got -1.0"):
        CosineAnnealingLR(optimizer, T_max=3, eta_min=-1)
    with pytest.raises(ValueError, match=r"OneCycleLR: give total_steps, or both epochs and steps_per_epoch"):
        OneCycleLR(optimizer, max_lr=0.1, epochs=3)
    with pytest.raises(ValueError, match=r"OneCycleLR: pct_start must be in \[0.0, 1.0\], got 1.5"):
        OneCycleLR(optimizer, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match=r"anneal_strategy must be 'cos' or 'linear', got 'exp'"):
        OneCycleLR(optimizer, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(TypeError, match=r"StepLR: expected an optimizer with an lr attribute, got list"):
        StepLR([], step_size=1)
    schedule = OneCycleLR(optimizer, max_lr=0.1, total_steps=3)
    for _ in range(3):
        schedule.step()
    with pytest.raises(ValueError, match=r"OneCycleLR: tried to step 4 times; the cycle has total_steps=3"):
        schedule.step()
