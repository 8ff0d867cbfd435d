"""Loading is all or nothing: Module.load_state_dict, Optimizer.load_state_dict, a schedule's
load_state_dict and fit(resume_from=...) each either load everything or raise one clear error
and leave every parameter, optimizer state, schedule and generator bit-identical."""
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.callbacks import ModelCheckpoint
from tinynet.data import DataLoader
from tinynet.rng import default_generator
from tinynet.schedules import StepLR
from tinynet.train import fit


def snapshot(model=None, optimizer=None, scheduler=None, generators=()):
    """Everything a load could change, as bytes and Python values (bit-exact comparison)."""
    state = {}
    if model is not None:
        state["model"] = {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in model.state_dict().items()}
    if optimizer is not None:
        state["optimizer"] = {k: (np.asarray(v).dtype.str, np.asarray(v).tobytes())
                              for k, v in optimizer.state_dict().items()}
        state["optimizer_state"] = [sorted(s) for s in optimizer.state]
    if scheduler is not None:
        state["scheduler"] = (scheduler.state_dict(), optimizer.lr if optimizer is not None else None)
    state["rng"] = [json.dumps(g.bit_generator.state) for g in generators]
    return state


def small_model():
    rng = np.random.default_rng(0)
    return tn.Sequential(tn.Linear(4, 5, rng=rng), tn.ReLU(), tn.Linear(5, 3, rng=rng))


# One corruption of one entry: (name, edit(state, key) -> None, error type, message pattern with {key}).
MODULE_CORRUPTIONS = [
    ("missing", lambda s, k: s.pop(k), KeyError, r"missing keys \['{key}'\], unexpected keys \[\]"),
    ("renamed", lambda s, k: s.update({k + "_": s.pop(k)}), KeyError,
     r"missing keys \['{key}'\], unexpected keys \['{key}_'\]"),
    ("extra", lambda s, k: s.update({"9." + k: s[k]}), KeyError, r"missing keys \[\], unexpected keys \['9.{key}'\]"),
    ("shape", lambda s, k: s.update({k: np.zeros(s[k].shape + (1,), np.float32)}), ValueError,
     r"size mismatch for {key}: copying an array of shape \(.*\) into one of shape \(.*\)"),
    ("transposed", lambda s, k: s.update({k: np.zeros(s[k].shape[::-1] + (2,), np.float32)}), ValueError,
     r"size mismatch for {key}"),
    ("strings", lambda s, k: s.update({k: np.full(s[k].shape, "x")}), TypeError,
     r"{key} has dtype <U1, which cannot be converted to float32"),
    ("objects", lambda s, k: s.update({k: np.full(s[k].shape, None)}), TypeError,
     r"{key} has dtype object, which cannot be converted to float32"),
    ("complex", lambda s, k: s.update({k: s[k].astype(np.complex64)}), TypeError,
     r"{key} has dtype complex64, which cannot be converted to float32"),
]


@settings(max_examples=60)
@given(corruption=st.sampled_from(MODULE_CORRUPTIONS), index=st.integers(0, 3), later_valid=st.booleans())
def test_module_load_state_dict_is_all_or_nothing(corruption, index, later_valid):
    name, edit, error, pattern = corruption
    model = small_model()
    source = small_model()
    for param in source.parameters():
        param.data = param.data + 1.0  # differs from model's: a partial load would show
    state = dict(source.state_dict())
    key = list(state)[index]
    edit(state, key)
    before = snapshot(model)
    with pytest.raises(error, match="Error loading state_dict into Sequential: " + pattern.format(key=re.escape(key))):
        model.load_state_dict(state)
    assert snapshot(model) == before, name


def test_module_load_state_dict_converts_real_values_and_copies():
    model = small_model()
    state = {k: v.astype(np.float64).tolist() if k.endswith("bias") else v.astype(np.int64)
             for k, v in small_model().state_dict().items()}
    model.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, np.asarray(state[key], dtype=np.float32), err_msg=key)
    with pytest.raises(TypeError, match=r"Error loading state_dict into Sequential: expected a dict of arrays, got a list"):
        model.load_state_dict(list(state.values()))


def trained_adam(lr=1e-2):
    model = small_model()
    optimizer = tn.optim.Adam(model.parameters(), lr=lr, amsgrad=True)
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
    for _ in range(2):
        model.backward(np.ones((6, 3), np.float32) * model(x))
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


OPTIMIZER_CORRUPTIONS = [
    ("missing", lambda s, k: s.pop(k), KeyError, r"missing keys \['{key}'\], unexpected keys \[\]"),
    ("extra", lambda s, k: s.update({k + "x": s[k]}), KeyError, r"missing keys \[\], unexpected keys \['{key}x'\]"),
    ("shape", lambda s, k: s.update({k: np.zeros((7, 2), np.float32)}), ValueError,
     r"size mismatch for {key}: copying an array of shape \(7, 2\) into one of shape"),
    ("strings", lambda s, k: s.update({k: np.full(np.shape(s[k]), "x")}), TypeError,
     r"{key} has dtype <U1, which cannot be converted to float32"),
    ("complex", lambda s, k: s.update({k: np.asarray(s[k]).astype(np.complex64)}), TypeError,
     r"{key} has dtype complex64"),
]


@settings(max_examples=80)
@given(corruption=st.sampled_from(OPTIMIZER_CORRUPTIONS), param=st.integers(0, 3),
       entry=st.sampled_from(["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]))
def test_optimizer_load_state_dict_is_all_or_nothing(corruption, param, entry):
    name, edit, error, pattern = corruption
    _, source = trained_adam(lr=0.5)
    state = source.state_dict()
    key = f"state.{param}.{entry}"
    edit(state, key)
    model, optimizer = trained_adam()
    optimizer.step_count = 1  # differs from the source's 2
    before = snapshot(model, optimizer)
    with pytest.raises(error, match="Error loading state_dict into Adam: " + pattern.format(key=re.escape(key))):
        optimizer.load_state_dict(state)
    assert snapshot(model, optimizer) == before, name
    optimizer.step()  # still usable: every state entry is there


@pytest.mark.parametrize("key, value, error, message", [
    ("step", -1, ValueError, r"step must be a non-negative integer, got -1"),
    ("step", 1.5, ValueError, r"step must be a non-negative integer, got 1.5"),
    ("state.3.step", np.array("2"), ValueError, r"state.3.step must be a non-negative integer"),
    ("lr", np.array("fast"), TypeError, r"Adam: lr must be a real number, got 'fast'"),
    ("lr", -0.1, ValueError, r"Adam: Invalid learning rate: -0.1"),
    ("betas", np.array([0.9, 0.99, 0.5]), TypeError, r"Adam: betas must be a pair"),
    ("amsgrad", 2, TypeError, r"Adam: amsgrad must be True or False, got 2"),
])
def test_optimizer_refuses_bad_values_and_changes_nothing(key, value, error, message):
    _, source = trained_adam(lr=0.5)
    state = dict(source.state_dict(), **{key: value})
    model, optimizer = trained_adam()
    before = snapshot(model, optimizer)
    with pytest.raises(error, match=message):
        optimizer.load_state_dict(state)
    assert snapshot(model, optimizer) == before


@pytest.mark.parametrize("edit, error, message", [
    (lambda s: s.pop("base_lr"), KeyError, r"StepLR: missing keys \['base_lr'\], unexpected keys \[\]"),
    (lambda s: s.update(extra=1), KeyError, r"unexpected keys \['extra'\]"),
    (lambda s: s.update(last_epoch=-2), ValueError, r"StepLR: last_epoch must be an integer >= 0, got -2"),
    (lambda s: s.update(last_epoch=np.array(1.5)), ValueError, r"last_epoch must be an integer >= 0, got 1.5"),
    (lambda s: s.update(base_lr=np.array("x")), TypeError, r"StepLR: base_lr must be a real number, got 'x'"),
])
def test_schedule_load_state_dict_is_all_or_nothing(edit, error, message):
    optimizer = tn.optim.SGD(small_model().parameters(), lr=0.1)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.5)
    scheduler.step()
    state = StepLR(tn.optim.SGD(small_model().parameters(), lr=0.3), step_size=1).state_dict()
    edit(state)
    before = snapshot(optimizer=optimizer, scheduler=scheduler)
    with pytest.raises(error, match=message):
        scheduler.load_state_dict(state)
    assert snapshot(optimizer=optimizer, scheduler=scheduler) == before


# --- fit(resume_from=...) -------------------------------------------------------------------
def run(tmp_path):
    """One epoch of Adam with a StepLR schedule and a shuffling loader, checkpointed to run.npz."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    model = small_model()
    optimizer = tn.optim.Adam(model.parameters(), lr=0.05)
    fit(model, tn.CrossEntropyLoss(), optimizer, DataLoader(x, y, batch_size=10, shuffle=True, seed=3),
        scheduler=StepLR(optimizer, step_size=1, gamma=0.9), callbacks=[ModelCheckpoint(tmp_path / "run.npz")],
        progress=False)


def nested_set(checkpoint, path, value):
    *parents, last = path
    for part in parents:
        checkpoint = checkpoint[part]
    if value is DELETE:
        del checkpoint[last]
    else:
        checkpoint[last] = value


DELETE = object()
CHECKPOINT_CORRUPTIONS = [
    (("model", "2.weight"), np.zeros((3, 4), np.float32), ValueError, r"model: .*size mismatch for 2.weight"),
    (("model", "0.bias"), np.array(["a"] * 5), TypeError, r"model: .*0.bias has dtype <U1"),
    (("model", "0.bias"), DELETE, KeyError, r"model: .*missing keys \['0.bias'\]"),
    (("optimizer", "state.1.exp_avg"), np.zeros(2, np.float32), ValueError, r"optimizer: .*size mismatch for state.1.exp_avg"),
    (("optimizer", "state.3.exp_avg"), np.array(["x"] * 3), TypeError, r"optimizer: .*state.3.exp_avg has dtype <U1"),
    (("optimizer", "lr"), -1.0, ValueError, r"optimizer: Adam: Invalid learning rate"),
    (("optimizer", "step"), DELETE, KeyError, r"optimizer: .*missing keys \['step'\]"),
    (("scheduler", "last_epoch"), -1, ValueError, r"scheduler: .*last_epoch must be an integer >= 0"),
    (("scheduler",), DELETE, KeyError, r"the checkpoint lacks \['scheduler'\]"),
    (("epoch",), -1, ValueError, r"epoch must be an integer from 0 to epochs=3, got -1"),
    (("epoch",), 1.5, ValueError, r"epoch must be an integer from 0 to epochs=3, got 1.5"),
    (("epoch",), 4, ValueError, r"epoch must be an integer from 0 to epochs=3, got 4"),
    (("history", "loss"), np.array([1.0, 2.0]), ValueError, r"history\['loss'\] must hold 1 numbers"),
    (("rng", "default"), np.array("{not json"), ValueError, r"rng\['default'\] is not a saved state of a PCG64"),
    (("rng", "train_loader"), np.array('{"bit_generator": "PCG64"}'), ValueError, r"rng\['train_loader'\] is not a saved state"),
    (("classes", "optimizer"), np.array("SGD"), TypeError, r"the checkpoint's optimizer is a SGD, fit was given a Adam"),
]


@settings(max_examples=40)
@given(corruption=st.sampled_from(CHECKPOINT_CORRUPTIONS))
def test_fit_resume_checks_the_whole_checkpoint_first(tmp_path_factory, corruption):
    path_in_checkpoint, value, error, message = corruption
    tmp_path = tmp_path_factory.mktemp("resume")
    tn.manual_seed(0)
    run(tmp_path)
    checkpoint = tn.load(tmp_path / "run.npz")
    nested_set(checkpoint, path_in_checkpoint, value)
    bad = tmp_path / "bad.npz"
    tn.save(checkpoint, bad)

    tn.manual_seed(1)
    model = small_model()
    optimizer = tn.optim.Adam(model.parameters(), lr=0.05)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.9)
    loader = DataLoader(np.zeros((30, 4), np.float32), np.zeros(30, np.int64), batch_size=10, shuffle=True, seed=4)
    generators = [default_generator(), loader._rng]
    before = snapshot(model, optimizer, scheduler, generators)
    with pytest.raises(error, match=re.escape(f"load_checkpoint({bad!r}): ") + message):
        fit(model, tn.CrossEntropyLoss(), optimizer, loader, epochs=3, scheduler=scheduler, resume_from=bad,
            progress=False)
    assert snapshot(model, optimizer, scheduler, generators) == before


def test_resuming_with_another_optimizer_or_without_the_scheduler_is_refused(tmp_path):
    tn.manual_seed(0)
    run(tmp_path)
    path = tmp_path / "run.npz"
    model = small_model()
    sgd = tn.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model, sgd)
    x, y = np.zeros((10, 4), np.float32), np.zeros(10, np.int64)
    with pytest.raises(TypeError, match=r"the checkpoint's optimizer is a Adam, fit was given a SGD"):
        fit(model, tn.CrossEntropyLoss(), sgd, DataLoader(x, y), epochs=2, scheduler=StepLR(sgd, 1), resume_from=path,
            progress=False)
    with pytest.raises(ValueError, match=r"the checkpoint was saved with a scheduler and fit was given none"):
        fit(model, tn.CrossEntropyLoss(), sgd, DataLoader(x, y), epochs=2, resume_from=path, progress=False)
    assert snapshot(model, sgd) == before
