"""Every public layer, loss, optimizer, loader, saver and the command line tried as a hostile user would: malformed arguments and
arrays (wrong ndim, shape, dtype, NaN/inf, empty, non-contiguous, read-only, lists, 0-d).

Each call either succeeds, and then matches PyTorch wherever PyTorch accepts the same input, or
raises one of ALLOWED with the public name in its message (never SystemError, AttributeError,
UnboundLocalError or a bare NumPy message) and leaves every parameter and gradient as it was.
TRIED counts the inputs the sweep makes; the closing line of a ``-s`` run prints it."""
import contextlib
import io

import numpy as np
import pytest
import torch
from helpers import assert_close
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import tinynet as tn
from tinynet.nn.module import NO_FORWARD

ALLOWED = (ValueError, TypeError, KeyError, IndexError, MemoryError, FileNotFoundError)
TRIED = []


@pytest.fixture(scope="module", autouse=True)
def report_count():
    yield
    print(f"\ntest_robustness: {len(TRIED)} inputs tried")


def state_of(module):
    """Bytes of every parameter and gradient: a failed call must leave them all as they were."""
    return [(p.data.tobytes(), None if p.grad is None else p.grad.tobytes()) for p in module.parameters()]


def expect_clean(where, call):
    """Run ``call``; return (True, result) or (False, error) for an allowed, well-named error."""
    try:
        return True, call()
    except ALLOWED as err:
        message = err.args[0] if err.args else ""
        assert where in str(message), f"{type(err).__name__} without the public name {where!r}: {message}"
        return False, err


# (name, tinynet layer, torch layer, a valid float32 input shape).
def layers():
    rng = np.random.default_rng(0)
    pairs = [
        ("Linear", tn.Linear(3, 2, rng=rng), torch.nn.Linear(3, 2), (4, 3)),
        ("Conv2d", tn.Conv2d(2, 3, 2, rng=rng), torch.nn.Conv2d(2, 3, 2), (2, 2, 4, 4)),
        ("MaxPool2d", tn.MaxPool2d(2), torch.nn.MaxPool2d(2), (2, 2, 4, 4)),
        ("AvgPool2d", tn.AvgPool2d(2), torch.nn.AvgPool2d(2), (2, 2, 4, 4)),
        ("ReLU", tn.ReLU(), torch.nn.ReLU(), (3, 4)),
        ("LeakyReLU", tn.LeakyReLU(0.1), torch.nn.LeakyReLU(0.1), (3, 4)),
        ("Sigmoid", tn.Sigmoid(), torch.nn.Sigmoid(), (3, 4)),
        ("Tanh", tn.Tanh(), torch.nn.Tanh(), (3, 4)),
        ("Softmax", tn.Softmax(1), torch.nn.Softmax(1), (3, 4)),
        ("Flatten", tn.Flatten(), torch.nn.Flatten(), (2, 3, 2)),
        ("Dropout", tn.Dropout(0.5).eval(), torch.nn.Dropout(0.5).eval(), (3, 4)),
    ]
    for name, ours, theirs, shape in pairs:
        if ours.parameters():
            state = {k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()}
            theirs.load_state_dict(state)
    return pairs


LAYERS = layers()
MUTATIONS = ["valid", "ndim+", "ndim-", "axis1", "int32", "int64", "bool", "complex64", "float16", "float64",
             "nan", "inf", "empty", "non-contiguous", "read-only", "list", "0-d"]


def mutate(shape, mutation, rng):
    """A float32 input of ``shape`` changed by ``mutation``."""
    x = rng.standard_normal(shape).astype(np.float32)
    if mutation == "ndim+":
        return x[None]
    if mutation == "ndim-":
        return x[0]
    if mutation == "axis1":
        return rng.standard_normal((shape[0], shape[1] + 1, *shape[2:])).astype(np.float32)
    if mutation in ("int32", "int64", "bool", "complex64", "float16", "float64"):
        return x.astype(mutation)
    if mutation in ("nan", "inf"):
        x.flat[::3] = np.nan if mutation == "nan" else -np.inf
        return x
    if mutation == "empty":
        return x[:0]
    if mutation == "non-contiguous":
        return np.repeat(x, 2, axis=-1)[..., ::2]
    if mutation == "read-only":
        x.setflags(write=False)
        return x
    if mutation == "list":
        return x.tolist()
    if mutation == "0-d":
        return np.float32(1.5)
    return x


@settings(max_examples=400)
@given(layer=st.integers(0, len(LAYERS) - 1), mutation=st.sampled_from(MUTATIONS), seed=st.integers(0, 2**16),
       training=st.booleans())
def test_layers_refuse_bad_inputs_cleanly_or_match_pytorch(layer, mutation, seed, training):
    name, ours, theirs, shape = LAYERS[layer]
    if name != "Dropout":  # Dropout stays in eval mode, where both libraries are deterministic
        ours.train(training)
    x = mutate(shape, mutation, np.random.default_rng(seed))
    TRIED.append((name, mutation))
    before = state_of(ours)
    ok, y = expect_clean(name, lambda: ours(x))
    if not ok:
        assert state_of(ours) == before
        return
    try:
        with torch.no_grad():
            theirs_x = torch.from_numpy(np.array(x, dtype=np.asarray(x).dtype))
            expected = theirs.to(theirs_x.dtype)(theirs_x).numpy() if theirs_x.is_floating_point() else None
    except (RuntimeError, ValueError, TypeError, IndexError):
        expected = None  # PyTorch refuses it too; nothing to compare with
    finally:
        theirs.float()
    if expected is not None:
        assert y.shape == expected.shape, f"{name} on {mutation}: {y.shape} against PyTorch's {expected.shape}"
        with np.errstate(invalid="ignore"):
            assert_close(y, expected, y.dtype, f"{name} on {mutation}")

    # Backward: a gradient of the wrong dtype or shape is refused and leaves the cache for a right one.
    bad_dtype = np.float64 if y.dtype != np.float64 else np.float32
    TRIED.append((name, mutation, "backward"))
    ok, _ = expect_clean(f"{name}.backward", lambda: ours.backward(np.ones(y.shape, bad_dtype)))
    assert not ok and state_of(ours) == before
    TRIED.append((name, mutation, "backward shape"))
    ok, _ = expect_clean(f"{name}.backward", lambda: ours.backward(np.ones(y.shape + (1,), y.dtype)))
    assert not ok and state_of(ours) == before
    grad_x = ours.backward(np.ones_like(y))
    assert grad_x.shape == np.shape(x) and grad_x.dtype == y.dtype
    ours.zero_grad()


CONSTRUCTORS = [
    ("Linear", tn.Linear, [dict(in_features=v, out_features=2) for v in (True, 0, -1, 2.0, "3", None)]
     + [dict(in_features=2, out_features=2, dtype=d) for d in (np.int32, np.complex64, "str", object)]),
    ("Conv2d", tn.Conv2d, [dict(in_channels=v, out_channels=2, kernel_size=3) for v in (True, 0, 1.5)]
     + [dict(in_channels=2, out_channels=2, kernel_size=k) for k in (0, (1, 2, 3), (2, 0), 2.0, None)]
     + [dict(in_channels=2, out_channels=2, kernel_size=2, stride=s) for s in (0, -1, (1, True))]
     + [dict(in_channels=2, out_channels=3, kernel_size=2, groups=2)]
     + [dict(in_channels=2, out_channels=2, kernel_size=2, dtype=np.int64)]),
    ("MaxPool2d", tn.MaxPool2d, [dict(kernel_size=k) for k in (0, True, (2,), 1.0)] + [dict(kernel_size=2, padding=2)]),
    ("AvgPool2d", tn.AvgPool2d, [dict(kernel_size=2, stride=0), dict(kernel_size=2, padding=-1)]),
    ("Dropout", tn.Dropout, [dict(p=v) for v in (-0.1, 1.5, float("nan"), "0.5", True, None)]),
    ("LeakyReLU", tn.LeakyReLU, [dict(negative_slope=v) for v in ("0.1", float("inf"), None, True)]),
    ("Softmax", tn.Softmax, [dict(dim=v) for v in ("1", 1.5, None)]),
    ("SGD", lambda **kw: tn.optim.SGD(tn.Linear(2, 2).parameters(), **kw),
     [dict(lr=v) for v in (-1.0, "0.1", None)] + [dict(lr=0.1, momentum=-1), dict(lr=0.1, nesterov=True)]),
    ("Adam", lambda **kw: tn.optim.Adam(tn.Linear(2, 2).parameters(), **kw),
     [dict(lr=-1.0), dict(betas=(0.9,)), dict(betas=(1.0, 0.9)), dict(eps=-1), dict(amsgrad="yes")]),
]


@pytest.mark.parametrize("name, make, arguments", CONSTRUCTORS, ids=[c[0] for c in CONSTRUCTORS])
def test_constructors_refuse_bad_arguments_by_name(name, make, arguments):
    for kwargs in arguments:
        TRIED.append((name, repr(kwargs)))
        ok, result = expect_clean(name, lambda: make(**kwargs))
        assert not ok, f"{name}({kwargs}) was accepted"


def test_dropout_checks_p_when_called():
    dropout = tn.Dropout(0.5)
    dropout.p = 2.0
    with pytest.raises(ValueError, match=r"Dropout: dropout probability has to be between 0 and 1, but got 2.0"):
        dropout(np.ones((2, 3), np.float32))


LOSSES = [
    ("MSELoss", tn.MSELoss(), torch.nn.MSELoss(), lambda rng: rng.standard_normal((4, 3))),
    ("BCELoss", tn.BCELoss(), torch.nn.BCELoss(), lambda rng: rng.random((4, 3))),
    ("BCEWithLogitsLoss", tn.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), lambda rng: rng.random((4, 3))),
    ("CrossEntropyLoss", tn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), lambda rng: rng.integers(0, 3, 4)),
]


@settings(max_examples=300)
@given(loss=st.integers(0, len(LOSSES) - 1), output_mutation=st.sampled_from(MUTATIONS),
       target_mutation=st.sampled_from(["valid", "ndim+", "empty", "float64", "int64", "nan", "list", "out of range"]),
       seed=st.integers(0, 2**16))
def test_losses_refuse_bad_inputs_cleanly_or_match_pytorch(loss, output_mutation, target_mutation, seed):
    name, ours, theirs, make_target = LOSSES[loss]
    rng = np.random.default_rng(seed)
    output = mutate((4, 3), output_mutation, rng)
    if name == "BCELoss" and isinstance(output, np.ndarray) and output.dtype.kind == "f":
        output = 1 / (1 + np.exp(-output))  # probabilities (NaN stays NaN)
    target = make_target(rng)
    if target_mutation == "out of range":
        target = target + 5
    elif target_mutation == "nan" and target.dtype.kind == "f":
        target.flat[0] = np.nan
    elif target_mutation == "list":
        target = target.tolist()
    elif target_mutation != "nan":
        target = mutate(target.shape, target_mutation, rng) if target_mutation != "valid" else target
        if target_mutation in ("float64", "int64"):
            target = make_target(rng).astype(target_mutation)
    TRIED.append((name, output_mutation, target_mutation))
    ok, value = expect_clean(name, lambda: ours(output, target))
    if not ok:
        return
    try:
        output_t = torch.from_numpy(np.array(output))
        expected = theirs(output_t, torch.from_numpy(np.array(target)).to(
            output_t.dtype if name != "CrossEntropyLoss" else torch.int64)).item()
    except (RuntimeError, ValueError, TypeError, IndexError):
        return  # PyTorch refuses it; tinynet's acceptance is checked by the loss suite
    dtype = np.asarray(output).dtype
    assert_close(value, expected, dtype if dtype.kind == "f" else np.float32, f"{name} on {output_mutation}/{target_mutation}")
    ours.backward()


def test_optimizer_refuses_a_hand_set_gradient_of_another_shape_or_dtype():
    model = tn.Linear(4, 3, rng=np.random.default_rng(0))
    for cls in (tn.optim.SGD, tn.optim.Adam):
        optimizer = cls(model.parameters(), lr=0.1)
        before = state_of(model)
        for grad, error, message in [
            (np.ones((3, 1), np.float32), ValueError,
             r"step: the gradient of params\[0\] has shape \(3, 1\), the parameter \(3, 4\)"),
            (np.ones((3, 4), np.float64), TypeError,
             r"step: the gradient of params\[0\] is a float64 ndarray, the parameter a float32 ndarray"),
        ]:
            model.weight.grad, model.bias.grad = np.ones(3, np.float32), None
            model.weight.grad = grad
            TRIED.append((cls.__name__, "grad", grad.shape, grad.dtype))
            with pytest.raises(error, match=f"{cls.__name__}.{message}"):
                optimizer.step()
            assert [data for data, _ in state_of(model)] == [data for data, _ in before]
            assert optimizer.step_count == 0 and all(not state for state in optimizer.state)


def test_fit_refuses_an_optimizer_of_another_model_and_reports_a_non_finite_mse():
    from tinynet.data import DataLoader
    from tinynet.train import NonFiniteLossError

    model = tn.Sequential(tn.Linear(2, 1, rng=np.random.default_rng(0)))
    x, y = np.full((4, 2), 1e20, np.float32), np.zeros((4, 1), np.float32)
    stale = tn.optim.SGD(tn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"fit: the optimizer holds parameters that are not the model's \(params \[0, 1\]\)"):
        tn.fit(model, tn.MSELoss(), stale, DataLoader(x, y, batch_size=2), accuracy=None, progress=False)
    before = state_of(model)
    with np.errstate(over="ignore"), pytest.raises(NonFiniteLossError, match=r"at epoch 1/1, step 1/2 \(MSELoss: the loss is inf"):
        tn.fit(model, tn.MSELoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=2),
               accuracy=None, progress=False)
    assert [data for data, _ in state_of(model)] == [data for data, _ in before]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("backend", tn.kernels.CPU_BACKENDS)
def test_conv2d_that_cannot_allocate_its_columns_raises_memory_error(backend, training):
    """A 2000x2000 kernel over a 4000x4000 image: 64 TB of columns, refused at once by malloc."""
    conv = tn.Conv2d(1, 1, 2000, rng=np.random.default_rng(0)).train(training)
    x = np.zeros((1, 1, 4000, 4000), np.float32)
    TRIED.append(("Conv2d", "huge", backend, training))
    with tn.kernels.use(backend), pytest.raises(
            MemoryError, match=r"Conv2d: cannot allocate the im2col columns for an input of shape \(1, 1, 4000, 4000\): "
                               r"they take 64,064,016,000,000 bytes per sample"):
        conv(x)
    assert conv._cache is NO_FORWARD


@settings(max_examples=150)
@given(cut=st.integers(0, 2000), position=st.integers(0, 2000), byte=st.integers(0, 255), truncate=st.booleans())
@example(cut=0, position=1057, byte=1, truncate=False)  # the first entry's comment length: zipfile listed one entry
@example(cut=0, position=1030, byte=128, truncate=False)  # "made by" zip version 12.8: zipfile's NotImplementedError
def test_load_refuses_any_damaged_file_by_name(tmp_path_factory, cut, position, byte, truncate):
    """A checkpoint cut short or with one byte changed either loads exactly what was saved (the
    byte was not changed after all) or raises ValueError naming the file, never anything else."""
    folder = tmp_path_factory.mktemp("damaged")
    saved = {"model": {"0.weight": np.arange(12.0, dtype=np.float32).reshape(3, 4)}, "epoch": 3}
    tn.save(saved, folder / "run.npz")
    data = bytearray((folder / "run.npz").read_bytes())
    if truncate:
        data = data[:cut % len(data)]
    else:
        data[position % len(data)] = byte
    path = folder / "damaged.npz"
    path.write_bytes(bytes(data))
    TRIED.append(("load", truncate, cut, position, byte))
    try:
        loaded = tn.load(path)
    except ValueError as err:
        assert str(err).startswith(f"tinynet.load: {path} ")
        return
    assert loaded["epoch"] == 3 and list(loaded) == ["model", "epoch"]
    np.testing.assert_array_equal(loaded["model"]["0.weight"], saved["model"]["0.weight"])


BAD_SIZES = st.sampled_from([0, -1, 2.5, True, "4", None, np.float64(3.0)])


@settings(max_examples=60)
@given(argument=st.sampled_from(["batch_size", "targets", "seed", "transform"]), bad=BAD_SIZES,
       rows=st.integers(0, 5))
def test_data_loader_refuses_bad_arguments_by_name(argument, bad, rows):
    x, y = np.zeros((6, 2), np.float32), np.arange(6)
    kwargs = {"batch_size": 2}
    arrays = (x, y)
    if argument == "batch_size":
        kwargs["batch_size"] = bad
    elif argument == "targets":
        arrays = (x, y[:rows])  # one array shorter than the other
    elif argument == "seed":
        kwargs.update(shuffle=True, seed=bad)
    else:
        kwargs["transform"] = bad
    TRIED.append(("DataLoader", argument, repr(bad), rows))
    before = (x.tobytes(), y.tobytes())
    ok, result = expect_clean("DataLoader", lambda: [batch for batch in tn.data.DataLoader(*arrays, **kwargs)])
    if ok:  # only values that are valid as they stand may pass: an int batch size, matching lengths
        assert argument in ("seed", "transform") and (bad is None or argument == "seed")
        assert sum(len(bx) for bx, _ in result) == 6
    assert (x.tobytes(), y.tobytes()) == before


@settings(max_examples=60)
@given(value=st.sampled_from([np.array(["a", "b"]), np.array([object(), 1], dtype=object), object(), "text",
                              [1, [2, 3]], {3: np.zeros(2)}, 2**70, np.zeros(2, np.complex64)]),
       nested=st.booleans())
def test_save_refuses_what_it_cannot_store_by_key_and_keeps_the_old_file(tmp_path_factory, value, nested):
    path = tmp_path_factory.mktemp("save") / "state.npz"
    tn.save({"kept": np.arange(3.0)}, path)
    before = path.read_bytes()
    state = {"good": np.ones(2), "outer": {"bad": value}} if nested else {"good": np.ones(2), "bad": value}
    TRIED.append(("save", type(value).__name__, nested))
    ok, _ = expect_clean("tinynet.save", lambda: tn.save(state, path))
    if not ok:
        assert path.read_bytes() == before, "a refused save must leave the old file"
    else:  # what it accepted, it reads back
        loaded = tn.load(path)
        assert np.array_equal(loaded["good"], np.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["state.npz"], "no temporary file is left behind"


@settings(max_examples=40)
@given(recipe=st.sampled_from(["perceptron", "three-vs-seven", "mlp", "cnn"]),
       option=st.sampled_from(["--epochs", "--lr", "--batch-size", "--train-samples", "--test-samples"]),
       value=st.sampled_from(["0", "-1", "-3", "nan", "inf", "-0.5"]))
def test_command_line_refuses_bad_numbers_in_one_line_before_reading_data(recipe, option, value):
    from tinynet import cli

    assume(recipe != "perceptron" or option in ("--epochs", "--lr"))  # it has no data options
    data = [] if recipe == "perceptron" else ["--data-root", "/nonexistent"]
    TRIED.append(("cli", recipe, option, value))
    with contextlib.redirect_stderr(io.StringIO()) as stderr:
        try:
            status = cli.main(["train", recipe, option, value, "--no-progress", *data])
        except SystemExit as exit:  # argparse refuses what is not a number of the option's type
            status = exit.code
    err = stderr.getvalue()
    last = err.strip().splitlines()[-1]
    assert status == 2 and "Traceback" not in err, err
    assert last.startswith("tinynet") and "error:" in last, err
    assert option.strip("-").replace("-", "_") in last.replace("-", "_"), last  # names the option, not the data
