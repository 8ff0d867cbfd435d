"""tinynet.optim against torch.optim: the same network trained from the same weights on the
same batches keeps the same parameters after every step, for any hyperparameters.
Also: dtypes never change, None gradients are skipped, bad hyperparameters are refused
with their value, and a state dict (also through .npz) resumes training bit for bit."""
import numpy as np
import pytest
import torch
from helpers import assert_close, load_weights
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.optim import SGD, Adam, AdamW
from tinynet.kernels import axpby
from tinynet.kernels.optim_numba import _axpby_loop

STEPS = 20
# (rtol, atol) for parameters after many steps; each library computes its own gradients.
PARAM_TOLERANCES = {np.float64: (1e-10, 1e-12), np.float32: (1e-4, 1e-5)}
TORCH_CLASSES = {SGD: torch.optim.SGD, Adam: torch.optim.Adam, AdamW: torch.optim.AdamW}


# --- the network, its data and one training step in each library -------------------------
def make_models(dtype, seed=0):
    """A tinynet Linear-Tanh-Linear network and a PyTorch copy with the same weights.

    Smooth on purpose: with ReLU, a pre-activation within rounding of 0 can take the kink on one
    side in one library and on the other in the other, and from that step the two trajectories
    differ by a whole Adam step (lr). Hypothesis found such a case in float32 (lr 0.1, betas
    (0, 0.5): 2e-7 apart after 13 steps, 0.096 after 14); it compares ReLU, not the optimizers."""
    rng = np.random.default_rng(seed)
    model = tn.Sequential(tn.Linear(5, 8, dtype=dtype, rng=rng), tn.Tanh(), tn.Linear(8, 3, dtype=dtype, rng=rng))
    torch_model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    torch_model = load_weights(torch_model.to(getattr(torch, np.dtype(dtype).name)), model)
    return model, torch_model


def make_batches(dtype, steps=STEPS, seed=1):
    """``steps`` regression batches (inputs (12, 5), targets (12, 3)), a different one per step."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((12, 5)).astype(dtype), rng.standard_normal((12, 3)).astype(dtype)) for _ in range(steps)]


def tn_step(model, optimizer, x, target, frozen=()):
    """One step on the mean squared error, with its gradient written out by hand.
    Parameters named in ``frozen`` get no gradient this step."""
    y = model(x)
    model.backward(2.0 * (y - target) / y.size)
    for name, param in model.named_parameters():
        if name in frozen:
            param.grad = None
    optimizer.step()
    optimizer.zero_grad()


def torch_step(model, optimizer, x, target, frozen=()):
    optimizer.zero_grad()
    loss = ((model(torch.from_numpy(x)) - torch.from_numpy(target)) ** 2).mean()
    loss.backward()
    for name, param in model.named_parameters():
        if name in frozen:
            param.grad = None
    optimizer.step()


def assert_same_parameters(model, torch_model, dtype, step):
    torch_params = dict(torch_model.named_parameters())
    for name, param in model.named_parameters():
        assert_close(param.data, torch_params[name].detach().numpy(), dtype, f"{name} after step {step}", PARAM_TOLERANCES)


def check_against_torch(cls, kwargs, dtype, frozen_on_odd_steps=()):
    model, torch_model = make_models(dtype)
    optimizer = cls(model.parameters(), **kwargs)
    torch_optimizer = TORCH_CLASSES[cls](torch_model.parameters(), **kwargs)
    for step, (x, target) in enumerate(make_batches(dtype), start=1):
        frozen = frozen_on_odd_steps if step % 2 else ()
        tn_step(model, optimizer, x, target, frozen)
        torch_step(torch_model, torch_optimizer, x, target, frozen)
        assert_same_parameters(model, torch_model, dtype, step)


# --- hyperparameter strategies -------------------------------------------------------------
dtypes = st.sampled_from([np.float64, np.float32])


def zero_or(strategy):
    """Zero (which switches a feature off) or a value drawn from ``strategy``."""
    return st.one_of(st.just(0.0), strategy)


@st.composite
def sgd_kwargs(draw):
    nesterov = draw(st.booleans())
    # Nesterov needs momentum > 0 and zero dampening.
    momentum = draw(st.floats(0.05, 0.95) if nesterov else zero_or(st.floats(0.0, 0.95)))
    dampening = 0.0 if nesterov else draw(zero_or(st.floats(0.0, 0.9)))
    return dict(
        lr=draw(st.floats(1e-4, 0.3)), momentum=momentum, dampening=dampening, nesterov=nesterov,
        weight_decay=draw(zero_or(st.floats(0.0, 0.1))),
    )


@st.composite
def adam_kwargs(draw):
    # Keep beta1**2 < beta2: only then is the step m / sqrt(v) bounded (by a geometric series in
    # beta1 / sqrt(beta2)). Otherwise a current gradient near zero (where the two libraries' rounding
    # differs) can make the step arbitrarily large, and no tolerance could compare the results.
    beta2 = draw(st.floats(0.5, 0.9999))
    beta1 = draw(zero_or(st.floats(0.0, min(0.99, 0.95 * beta2**0.5))))
    return dict(
        lr=draw(st.floats(1e-4, 0.1)),
        betas=(beta1, beta2),
        eps=draw(st.floats(1e-10, 1e-2)),
        weight_decay=draw(zero_or(st.floats(0.0, 0.1))),
        amsgrad=draw(st.booleans()),
    )


# --- parity with torch.optim ---------------------------------------------------------------
@settings(max_examples=100)
@given(kwargs=sgd_kwargs(), dtype=dtypes)
def test_sgd_matches_torch(kwargs, dtype):
    check_against_torch(SGD, kwargs, dtype)


@pytest.mark.parametrize("cls", [Adam, AdamW])
@settings(max_examples=100)
@given(kwargs=adam_kwargs(), dtype=dtypes)
@example(kwargs=dict(lr=0.1, betas=(0.0, 0.5), eps=0.0016125118505956216, weight_decay=0.0, amsgrad=False),
         dtype=np.float32)  # diverged through a ReLU kink before make_models became smooth
def test_adam_matches_torch(cls, kwargs, dtype):
    check_against_torch(cls, kwargs, dtype)


CONFIGS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    (SGD, dict(lr=0.05, momentum=0.8, dampening=0.3)),
    (Adam, dict(lr=1e-2, weight_decay=1e-2, amsgrad=True)),
    (AdamW, dict(lr=1e-2)),
]
CONFIG_IDS = [f"{cls.__name__}-{'-'.join(kwargs)}" for cls, kwargs in CONFIGS]


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_none_gradients_are_skipped_like_torch(cls, kwargs):
    """A parameter without a gradient is not updated, and its state (Adam's step count,
    the momentum buffer) does not advance, exactly as in PyTorch."""
    check_against_torch(cls, kwargs, np.float64, frozen_on_odd_steps=("0.weight", "2.bias"))


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_parameter_without_gradient_is_untouched(cls, kwargs):
    model, _ = make_models(np.float32)
    optimizer = cls(model.parameters(), **kwargs)
    (x, target), = make_batches(np.float32, steps=1)
    frozen = model[0].weight
    before = frozen.data
    tn_step(model, optimizer, x, target, frozen=("0.weight",))
    assert frozen.data is before and np.array_equal(frozen.data, make_models(np.float32)[0][0].weight.data)
    assert optimizer.state[0] == {}
    assert not np.array_equal(model[0].bias.data, make_models(np.float32)[0][0].bias.data)


# --- the fused update y = a*x + b*y ------------------------------------------------------
@settings(max_examples=50)
@given(
    dtype=dtypes, shape=st.sampled_from([(7,), (3, 4), (2, 3, 5)]),
    a=st.floats(-10, 10), b=st.floats(-10, 10), seed=st.integers(0, 2**16),
)
def test_axpby_paths_round_exactly_like_numpy(dtype, shape, a, b, seed):
    """The compiled loop (C-contiguous arrays), the reference (TINYNET_KERNELS=numpy, and a strided
    view) and the plain Python loop all give NumPy's rounding of a*x + b*y in the arrays' dtype, bit
    for bit."""
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2,) + shape).astype(dtype)
    expected = dtype(a) * x + dtype(b) * y

    compiled = axpby(a, x, b, y.copy())
    strided = np.empty(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2]  # not C-contiguous: fallback path
    strided[...] = y
    looped = y.copy().reshape(-1)
    _axpby_loop(dtype(a), x.reshape(-1), dtype(b), looped)
    with tn.kernels.use("numpy"):
        reference = axpby(a, x, b, y.copy())

    for got in (compiled, reference, axpby(a, x, b, strided), looped.reshape(shape)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)


def steps_with(kernels, make_optimizer, start, grads):
    """Parameters made of copies of ``start`` after one step per list of ``grads`` of the optimizer
    ``make_optimizer(params)`` on the ``kernels`` implementation, then the optimizer's state arrays."""
    params = [tn.Parameter(p.copy()) for p in start]
    optimizer = make_optimizer(params)
    with tn.kernels.use(kernels):
        for step_grads in grads:
            for param, grad in zip(params, step_grads):
                param.grad = grad
            optimizer.step()
    return [p.data for p in params] + [value for state in optimizer.state for value in state.values()]


# --- Adam's fused loop ----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    dtype=dtypes, cls=st.sampled_from([Adam, AdamW]), amsgrad=st.booleans(),
    weight_decay=st.sampled_from([0.0, 1e-2, 1e-50]), lr=st.floats(1e-4, 1e-1), seed=st.integers(0, 2**16),
)
def test_adam_loop_and_array_code_give_the_same_bits(dtype, cls, amsgrad, weight_decay, lr, seed):
    """Five steps with the compiled loop and with the reference array code (TINYNET_KERNELS=numpy,
    the code CuPy and strided arrays run) leave the same parameters and state, bit for bit, also
    when gradients hold zeros, NaN and inf, for a 0-d parameter, and for a weight decay that
    rounds to 0 in float32 next to an infinite weight."""
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(shape).astype(dtype) for shape in [(3, 4), (5,), ()]]
    start[1][4] = np.inf
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in start] for _ in range(5)]
    grads[1][0][0, :3] = [0.0, np.nan, np.inf]
    grads[3][1][2] = -np.inf

    def make(params):
        return cls(params, lr=lr, weight_decay=weight_decay, amsgrad=amsgrad)

    # inf / inf and 0 * inf on purpose, in the array code and in the loops run as Python (NUMBA_DISABLE_JIT=1).
    with np.errstate(invalid="ignore", over="ignore"):
        array_code_results, loop_results = (steps_with(kernels, make, start, grads) for kernels in ("numpy", "numba"))
    for looped, array_code in zip(loop_results, array_code_results):
        np.testing.assert_array_equal(looped, array_code)


# --- SGD's fused loop -----------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(dtype=dtypes, kwargs=sgd_kwargs(), seed=st.integers(0, 2**16))
def test_sgd_loop_and_array_code_give_the_same_bits(dtype, kwargs, seed):
    """Five steps with the compiled loop and with the reference array code leave the same
    parameters and momentum buffers, bit for bit, also when gradients hold zeros, NaN and inf,
    and for a 0-d and an empty parameter; the caller's gradients are not written."""
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal(shape).astype(dtype) for shape in [(3, 4), (5,), (), (0,)]]
    grads = [[rng.standard_normal(p.shape).astype(dtype) for p in start] for _ in range(5)]
    grads[1][0][0, :3] = [0.0, np.nan, np.inf]
    grads[3][1][2] = -np.inf
    given_grads = [[g.copy() for g in step] for step in grads]

    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf on purpose
        array_code_results, loop_results = (steps_with(kernels, lambda params: SGD(params, **kwargs), start, grads)
                                            for kernels in ("numpy", "numba"))
    assert len(loop_results) == len(array_code_results) == 4 * (1 + (kwargs.get("momentum", 0) != 0))
    for looped, array_code in zip(loop_results, array_code_results):
        np.testing.assert_array_equal(looped, array_code)
    for step, given in zip(grads, given_grads):
        for grad, copy in zip(step, given):
            np.testing.assert_array_equal(grad, copy)


@pytest.mark.parametrize("cls, kwargs", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1, amsgrad=True))])
def test_float16_parameters_take_the_array_code(cls, kwargs):
    """numba does not compute in float16: the compiled loops must not be offered it."""
    start, grad = np.linspace(-1, 1, 6, dtype=np.float16), np.linspace(0.5, -0.5, 6, dtype=np.float16)
    param = tn.Parameter(start.copy())
    optimizer = cls([param], **kwargs)
    param.grad = grad
    optimizer.step()
    torch_param = torch.nn.Parameter(torch.from_numpy(start.astype(np.float32)))
    torch_optimizer = TORCH_CLASSES[cls]([torch_param], **kwargs)
    torch_param.grad = torch.from_numpy(grad.astype(np.float32))
    torch_optimizer.step()
    assert param.data.dtype == np.float16
    np.testing.assert_allclose(param.data, torch_param.detach().numpy(), rtol=2e-3, atol=2e-3)


# --- dtypes --------------------------------------------------------------------------------
FLOAT64_SCALAR_CONFIGS = [
    (SGD, dict(lr=np.float64(0.1), momentum=np.float64(0.9), dampening=np.float64(0.1), weight_decay=np.float64(1e-2))),
    (SGD, dict(lr=np.float64(0.1), momentum=np.float64(0.9), nesterov=np.True_)),
    (Adam, dict(lr=np.float64(1e-2), betas=(np.float64(0.9), np.float64(0.99)), eps=np.float64(1e-8),
                weight_decay=np.float64(1e-2), amsgrad=True)),
    (AdamW, dict(lr=np.float64(1e-2), weight_decay=np.float64(1e-2))),
]


@pytest.mark.parametrize("cls, kwargs", FLOAT64_SCALAR_CONFIGS, ids=lambda v: getattr(v, "__name__", ""))
def test_float32_stays_float32_with_numpy_float64_hyperparameters(cls, kwargs):
    """NumPy 2 (NEP 50) lets a np.float64 scalar upcast a float32 array; the optimizers must not."""
    model, _ = make_models(np.float32)
    optimizer = cls(model.parameters(), **kwargs)
    batches = make_batches(np.float32, steps=4)
    for step, (x, target) in enumerate(batches):
        optimizer.lr = np.float64(0.01 * (step + 1))  # a schedule setting a NumPy scalar
        tn_step(model, optimizer, x, target)
    for index, param in enumerate(model.parameters()):
        assert param.data.dtype == np.float32
        for name, value in optimizer.state[index].items():
            if name != "step":
                assert value.dtype == np.float32, name


# --- hyperparameter and argument checks ---------------------------------------------------
@pytest.mark.parametrize("cls, kwargs, error, message", [
    (SGD, dict(lr=-0.1), ValueError, r"^SGD: Invalid learning rate: -0\.1$"),
    (SGD, dict(lr=float("nan")), ValueError, r"SGD: Invalid learning rate: nan"),
    (SGD, dict(lr="0.1"), TypeError, r"SGD: lr must be a real number, got '0\.1'"),
    (SGD, dict(lr=0.1, momentum=-0.5), ValueError, r"SGD: Invalid momentum value: -0\.5"),
    (SGD, dict(lr=0.1, weight_decay=-1e-3), ValueError, r"SGD: Invalid weight_decay value: -0\.001"),
    (SGD, dict(lr=0.1, nesterov=True), ValueError,
     r"SGD: Nesterov momentum requires a momentum and zero dampening, got momentum=0\.0 and dampening=0\.0"),
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"dampening=0\.1"),
    (SGD, dict(lr=0.1, nesterov="yes"), TypeError, r"SGD: nesterov must be True or False, got 'yes'"),
    (Adam, dict(lr=-1), ValueError, r"Adam: Invalid learning rate: -1\.0"),
    (Adam, dict(eps=-1e-8), ValueError, r"Adam: Invalid epsilon value: -1e-08"),
    (Adam, dict(betas=(1.0, 0.999)), ValueError, r"Adam: Invalid beta parameter at index 0: 1\.0"),
    (Adam, dict(betas=(0.9, -0.1)), ValueError, r"Adam: Invalid beta parameter at index 1: -0\.1"),
    (Adam, dict(betas=0.9), TypeError, r"Adam: betas must be a pair \(beta1, beta2\), got 0\.9"),
    (Adam, dict(amsgrad=1), TypeError, r"Adam: amsgrad must be True or False, got 1"),
    (AdamW, dict(weight_decay=-0.01), ValueError, r"AdamW: Invalid weight_decay value: -0\.01"),
])
def test_bad_hyperparameters_are_refused_with_their_value(cls, kwargs, error, message):
    model, _ = make_models(np.float32)
    with pytest.raises(error, match=message):
        cls(model.parameters(), **kwargs)


def test_bad_parameter_lists_are_refused():
    model, _ = make_models(np.float32)
    with pytest.raises(ValueError, match="SGD: got an empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"Adam: params must be an iterable of Parameters .*got a Sequential"):
        Adam(model)
    with pytest.raises(TypeError, match=r"Adam: params\[1\] is a ndarray, not a tinynet Parameter"):
        Adam([model[0].weight, np.zeros(3)])
    with pytest.raises(ValueError, match="AdamW: some parameters appear more than once"):
        AdamW(model.parameters() + [model[0].weight])


def test_a_generator_of_parameters_is_accepted():
    model, _ = make_models(np.float32)
    optimizer = SGD((param for _, param in model.named_parameters()), lr=0.1)
    assert optimizer.params == model.parameters()
    assert repr(optimizer) == "SGD(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0)"


# --- state dicts ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_state_dict_through_tinynet_save_resumes_bit_for_bit(cls, kwargs, tmp_path):
    """Train 5 steps and save; (a) train 5 more; (b) load into a fresh optimizer built with other
    hyperparameters and a copy of the model, train the same 5 -> identical arrays."""
    batches = make_batches(np.float32, steps=10)
    model, _ = make_models(np.float32)
    optimizer = cls(model.parameters(), **kwargs)
    for x, target in batches[:5]:
        tn_step(model, optimizer, x, target, frozen=("2.bias",))  # one parameter without state yet
    optimizer.lr = 0.5 * optimizer.lr  # as a learning-rate schedule would
    weights = {name: array.copy() for name, array in model.state_dict().items()}
    tn.save(optimizer.state_dict(), tmp_path / "optimizer.npz")
    for x, target in batches[5:]:
        tn_step(model, optimizer, x, target)

    resumed_model, _ = make_models(np.float32, seed=7)
    resumed_model.load_state_dict(weights)
    resumed = cls(resumed_model.parameters(), lr=0.123)
    resumed.load_state_dict(tn.load(tmp_path / "optimizer.npz"))
    for x, target in batches[5:]:
        tn_step(resumed_model, resumed, x, target)

    for (name, ours), theirs in zip(model.state_dict().items(), resumed_model.state_dict().values()):
        np.testing.assert_array_equal(ours, theirs, err_msg=name)
    expected, got = optimizer.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        assert type(got[key]) is type(expected[key]), key


def trained_adam(steps=2, **kwargs):
    model, _ = make_models(np.float32)
    optimizer = Adam(model.parameters(), **kwargs)
    for x, target in make_batches(np.float32, steps=steps):
        tn_step(model, optimizer, x, target)
    return model, optimizer


def test_state_dict_is_a_flat_snapshot():
    model, optimizer = trained_adam(amsgrad=True)
    state = optimizer.state_dict()
    per_param = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    assert set(state) == {"step", "lr", "betas", "eps", "weight_decay", "amsgrad"} | {
        f"state.{i}.{name}" for i in range(4) for name in per_param
    }
    assert state["step"] == 2 and state["state.3.step"] == 2 and state["lr"] == 1e-3 and state["amsgrad"] is True
    np.testing.assert_array_equal(state["betas"], [0.9, 0.999])
    assert state["state.0.exp_avg"].shape == (8, 5) and state["state.0.exp_avg"].dtype == np.float32
    snapshot = state["state.0.exp_avg"].copy()
    (x, target), = make_batches(np.float32, steps=1, seed=5)
    tn_step(model, optimizer, x, target)
    np.testing.assert_array_equal(state["state.0.exp_avg"], snapshot)  # later steps leave it alone


def test_load_state_dict_accepts_what_np_load_returns(tmp_path):
    """np.load gives every scalar back as a 0-d array; loading turns them into Python values."""
    _, optimizer = trained_adam(amsgrad=True)
    np.savez(tmp_path / "plain.npz", **optimizer.state_dict())
    _, fresh = trained_adam(steps=1, lr=0.5)
    with np.load(tmp_path / "plain.npz") as saved:
        fresh.load_state_dict(dict(saved))
    expected, got = optimizer.state_dict(), fresh.state_dict()
    assert fresh.lr == 1e-3 and fresh.betas == (0.9, 0.999) and fresh.amsgrad is True
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
        assert type(got[key]) is type(expected[key]), key


@pytest.mark.parametrize("edit, error, message", [
    (lambda s: s.pop("lr"), KeyError, r"Error loading state_dict into Adam: missing keys \['lr'\]"),
    (lambda s: s.pop("state.1.exp_avg_sq"), KeyError, r"missing keys \['state.1.exp_avg_sq'\], unexpected keys \[\]"),
    (lambda s: s.update({"state.9.exp_avg": np.zeros(3)}), KeyError, r"unexpected keys \['state.9.exp_avg'\]"),
    (lambda s: s.update({"state.0.momentum_buffer": np.zeros(3)}), KeyError,
     r"unexpected keys \['state.0.momentum_buffer'\]"),
    (lambda s: s.update({"state.0.exp_avg": np.zeros((5, 8), np.float32)}), ValueError,
     r"size mismatch for state.0.exp_avg: copying an array of shape \(5, 8\) into one of shape \(8, 5\)"),
    (lambda s: s.update({"lr": -1.0}), ValueError, r"Adam: Invalid learning rate: -1\.0"),
    (lambda s: s.update({"state.2.step": -3}), ValueError, r"state.2.step must be a non-negative integer, got -3"),
])
def test_load_state_dict_refuses_mismatches_and_changes_nothing(edit, error, message):
    _, optimizer = trained_adam()
    state = optimizer.state_dict()
    edit(state)
    _, fresh = trained_adam(steps=1, lr=0.5)
    before = fresh.state_dict()
    with pytest.raises(error, match=message):
        fresh.load_state_dict(state)
    after = fresh.state_dict()
    assert after.keys() == before.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)


# --- state follows its parameter -----------------------------------------------------------
def test_state_follows_a_parameter_cast_to_another_dtype():
    """model.to(np.float64) after some steps: step() casts the state lazily, giving what a fresh
    float64 optimizer loaded from the float32 state dict gives."""
    model, optimizer = trained_adam(steps=3, amsgrad=True)
    saved = optimizer.state_dict()
    twin = tn.Sequential(tn.Linear(5, 8), tn.Tanh(), tn.Linear(8, 3)).to(np.float64)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = Adam(twin.parameters()).load_state_dict(saved)
    model.to(np.float64)
    for x, target in make_batches(np.float64, steps=2, seed=3):
        tn_step(model, optimizer, x, target)
        tn_step(twin, twin_optimizer, x, target)
    for index, param in enumerate(model.parameters()):
        assert param.data.dtype == np.float64
        assert all(optimizer.state[index][name].dtype == np.float64 for name in ("exp_avg", "max_exp_avg_sq"))
    for ours, theirs in zip(model.state_dict().values(), twin.state_dict().values()):
        np.testing.assert_array_equal(ours, theirs)


def test_to_cpu_keeps_the_state():
    _, optimizer = trained_adam()
    before = optimizer.state_dict()
    assert optimizer.to("cpu") is optimizer
    for key, value in optimizer.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
    with pytest.raises(ValueError, match="device must be one of"):
        optimizer.to("tpu")


@pytest.mark.gpu
@pytest.mark.parametrize("explicit", [True, False], ids=["optimizer.to", "lazily"])
@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_state_follows_the_model_to_the_gpu(cls, kwargs, explicit, tmp_path):
    """Train 3 steps on the CPU, move the model (and the optimizer, or not) to the GPU, train 3 more:
    the state is on the GPU and the result matches training on the CPU throughout."""
    import cupy

    batches = make_batches(np.float64, steps=6)
    reference, _ = make_models(np.float64)
    reference_optimizer = cls(reference.parameters(), **kwargs)
    for x, target in batches:
        tn_step(reference, reference_optimizer, x, target)

    model, _ = make_models(np.float64)
    optimizer = cls(model.parameters(), **kwargs)
    for x, target in batches[:3]:
        tn_step(model, optimizer, x, target)
    model.to("cuda")
    if explicit:
        optimizer.to("cuda")
    for x, target in batches[3:]:
        tn_step(model, optimizer, cupy.asarray(x), cupy.asarray(target))
    for state in optimizer.state:
        assert all(isinstance(value, cupy.ndarray) for name, value in state.items() if name != "step")
    for (name, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values()):
        np.testing.assert_allclose(cupy.asnumpy(ours), theirs, rtol=1e-10, atol=1e-12, err_msg=name)

    # A CPU checkpoint loads onto the GPU model's device, and a GPU one saves like any other.
    restored = cls(model.parameters(), lr=0.5).load_state_dict(reference_optimizer.state_dict())
    gpu_state = restored.state_dict()
    tn.save(gpu_state, tmp_path / "gpu.npz")
    for key, value in tn.load(tmp_path / "gpu.npz").items():
        if key.startswith("state.") and not key.endswith(".step"):
            assert isinstance(gpu_state[key], cupy.ndarray), key
        np.testing.assert_array_equal(value, reference_optimizer.state_dict()[key], err_msg=key)
