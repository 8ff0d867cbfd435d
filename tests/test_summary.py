"""tinynet.summary: parameter counts and multiply-adds against closed forms and PyTorch, the im2col
workspace against what the kernels allocate, and a model left exactly as it was."""
import re
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import tinynet as tn
from tinynet.nn.module import NO_FORWARD
from tinynet import kernels
from tinynet.interop import to_torch
from tinynet.kernels import conv_numba

from helpers import tolerance


def cnn():
    return tn.Sequential(
        tn.Conv2d(1, 8, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
        tn.Sequential(tn.Conv2d(8, 12, (3, 2), stride=(2, 1), dilation=(1, 2), groups=4, bias=False), tn.Tanh()),
        tn.Flatten(), tn.Dropout(0.5), tn.Linear(12 * 6 * 12, 10),
    )


def out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def test_rows_follow_named_modules_with_the_shapes_of_a_real_forward_pass():
    model = cnn()
    report = tn.summary(model, (5, 1, 28, 28))
    assert [(r["name"], r["type"], r["depth"]) for r in report.rows] == [
        (path, type(m).__name__, 0 if not path else path.count(".") + 1) for path, m in model.named_modules()
    ]
    x = np.zeros((5, 1, 28, 28), np.float32)
    for row, (_, module) in zip(report.rows[1:], list(model.named_modules())[1:]):
        if not module.children():
            y = module(x)
            assert row["input_shape"] == x.shape and row["output_shape"] == y.shape, row["name"]
            assert row["output_bytes"] == y.nbytes
            x = y
    assert report.rows[0]["output_shape"] == (5, 10)
    table = str(report)
    assert re.search(r"^    3\.0 \(Conv2d\)\s+\(5, 12, 6, 12\)\s+144\s+51,840\s+16\.9 KiB\s+67\.5 KiB$", table, re.M), table
    assert "Parameters: 8,874 (34.7 KiB)" in table


def test_parameter_counts_equal_the_arrays_and_pytorch():
    model = cnn()
    totals = tn.summary(model, (2, 1, 28, 28)).totals
    assert totals["params"] == sum(p.data.size for p in model.parameters())
    assert totals["params"] == sum(p.numel() for p in to_torch(model).parameters())
    assert totals["param_bytes"] == 4 * totals["params"]
    rows = {r["name"]: r for r in tn.summary(model, (2, 1, 28, 28)).rows}
    assert rows["3"]["params"] == rows["3.0"]["params"] == 8 // 4 * 12 * 3 * 2  # no bias
    assert rows[""]["params"] == totals["params"]


def test_multiply_adds_equal_pytorchs_flop_count_halved():
    model = cnn()
    totals = tn.summary(model, (3, 1, 28, 28)).totals
    with FlopCounterMode(display=False) as counter:
        to_torch(model).eval()(torch.zeros(3, 1, 28, 28))
    assert totals["mult_adds"] == counter.get_total_flops() // 2


@settings(max_examples=40)
@given(n=st.integers(0, 3), groups=st.sampled_from([1, 2, 3]), per_group=st.integers(1, 3), out_per_group=st.integers(1, 3),
       kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       size=st.tuples(st.integers(5, 9), st.integers(5, 9)))
def test_conv_multiply_adds_equal_the_closed_form(n, groups, per_group, out_per_group, kernel, stride, padding, dilation, size):
    c, o = groups * per_group, groups * out_per_group
    conv = tn.Conv2d(c, o, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    row = tn.summary(conv, (n, c) + size).rows[0]
    oh, ow = (out_size(size[a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    assert row["output_shape"] == (n, o, oh, ow)
    assert row["mult_adds"] == n * o * oh * ow * per_group * kernel[0] * kernel[1]
    assert row["params"] == o * per_group * kernel[0] * kernel[1] + o


@given(n=st.integers(0, 5), fan_in=st.integers(1, 9), fan_out=st.integers(1, 9))
def test_linear_multiply_adds_equal_the_closed_form(n, fan_in, fan_out):
    assert tn.summary(tn.Linear(fan_in, fan_out), (n, fan_in)).rows[0]["mult_adds"] == n * fan_in * fan_out


# --- the im2col workspace: predicted vs allocated ---------------------------------------------

CONVS = [  # (conv, input shape)
    (lambda: tn.Conv2d(1, 8, 3, padding=1), (60, 1, 28, 28)),
    (lambda: tn.Conv2d(8, 16, 3, padding=1), (60, 8, 14, 14)),
    (lambda: tn.Conv2d(16, 32, 3, stride=2, padding=1), (60, 16, 14, 14)),  # numba: channels-last patches
    (lambda: tn.Conv2d(16, 16, 3, padding=(1, 2), bias=False), (33, 16, 14, 12)),  # numba: shifted products
    (lambda: tn.Conv2d(6, 4, (3, 2), stride=2, dilation=(1, 2), groups=2, bias=False), (7, 6, 11, 9)),
    (lambda: tn.Conv2d(1, 8, 3, padding=1, dtype=np.float64), (1, 1, 28, 28)),
]


def kept_allocations(conv, x):
    """Sizes of the blocks the kernels allocated during conv(x) that are still alive afterwards."""
    tracemalloc.start()
    try:
        y = conv(x)
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*tinynet/kernels/*")])
    finally:
        tracemalloc.stop()
    return y, sorted(trace.size for trace in snapshot.traces)


@pytest.mark.parametrize("make, shape", CONVS)
def test_training_workspace_of_the_numpy_reference_is_the_columns_it_keeps(make, shape):
    conv = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(conv.weight.dtype)
    with kernels.use("numpy"):
        predicted = tn.summary(conv, shape, dtype=conv.weight.dtype).rows[0]["workspace_bytes"]
        y, sizes = kept_allocations(conv, x)
    # Alive after the call: the output, the columns kept for backward, and small objects.
    assert sizes[-2:] == sorted([y.nbytes, predicted])
    assert sum(sizes) - y.nbytes - predicted < 4096


@pytest.mark.parametrize("make, shape", CONVS)
def test_the_numba_kernel_keeps_no_columns_in_training(make, shape):
    conv = make()
    x = np.random.default_rng(0).standard_normal(shape).astype(conv.weight.dtype)
    with kernels.use("numba"):
        conv(x)  # compile first: numba's compiler allocates too
        y, sizes = kept_allocations(conv, x)
    assert sizes[-1] == y.nbytes and sum(sizes) - y.nbytes < 4096  # the output and small objects
    assert conv._cache.columns is None


def test_eval_workspace_of_the_numpy_reference_is_its_largest_chunk(monkeypatch):
    columns = []
    im2col = kernels.im2col

    def counting_im2col(*args):
        cols = im2col(*args)
        columns.append(cols.nbytes)
        return cols

    monkeypatch.setattr(kernels, "im2col", counting_im2col)
    for make, shape in CONVS:
        conv = make().eval()
        with kernels.use("numpy"):
            predicted = tn.summary(conv, shape, dtype=conv.weight.dtype).rows[0]["workspace_bytes"]
            columns.clear()
            conv(np.zeros(shape, conv.weight.dtype))
        assert predicted == max(columns), shape


@pytest.fixture
def numba_kernels():
    """The numba kernels, whatever TINYNET_KERNELS says (these tests measure them)."""
    with tn.kernels.use("numba"):
        yield


@pytest.mark.parametrize("training", [True, False])
def test_workspace_of_the_numba_kernel_is_its_largest_parts_one_per_thread(monkeypatch, numba_kernels, training):
    """Runs the kernel's loop as plain Python (numba's prange is then range) and notes the columns
    each part makes; the threads run as many parts at once, in training as in evaluation."""
    import numba

    columns, layouts = [], set()

    def counting(convolve_part):
        def counting_convolve_part(x, weight, bias, y, cols, *geometry):
            columns.append(cols.nbytes)
            convolve_part(x, weight, bias, y, cols, *geometry)
        return counting_convolve_part

    def counting_padded_rows(x, *geometry):  # what shifted products make in the columns' place
        padded = padded_rows(x, *geometry)
        columns.append(padded.nbytes)
        return padded

    def noting(layout):
        def noted_layout(*shapes):
            layouts.add(layout(*shapes))
            return layout(*shapes)
        return noted_layout

    for part in ("_convolve_part", "_convolve_part_patches"):
        monkeypatch.setattr(conv_numba, part, counting(getattr(conv_numba, part)))
    padded_rows = conv_numba._padded_rows
    monkeypatch.setattr(conv_numba, "_padded_rows", counting_padded_rows)
    monkeypatch.setattr(conv_numba, "_convolve_part_shifted", conv_numba._convolve_part_shifted.py_func)
    monkeypatch.setattr(conv_numba, "layout", noting(conv_numba.layout))
    monkeypatch.setattr(conv_numba, "_forward_jit", conv_numba._forward_loops)
    for make, shape in CONVS:
        conv = make().train(training)
        x = np.random.default_rng(0).standard_normal(shape).astype(conv.weight.dtype)
        predicted = tn.summary(conv, shape, dtype=conv.weight.dtype).rows[0]["workspace_bytes"]
        columns.clear()
        y = conv(x)
        parts = len(columns)
        assert parts == conv_numba._parts(x, conv.kernel_size, y.shape[2:])
        assert predicted == sum(sorted(columns)[-min(parts, numba.get_num_threads()):]), shape
        with kernels.use("numpy"):
            np.testing.assert_allclose(y, conv(x), *tolerance(x.dtype))  # the loop computed the convolution
    assert layouts == {conv_numba.ROWS_OF_TAPS, conv_numba.PATCHES, conv_numba.SHIFTED}  # CONVS take all three


def test_peak_workspace_is_the_largest_layers():
    with kernels.use("numpy"):  # which keeps the whole batch's columns in training
        report = tn.summary(cnn(), (60, 1, 28, 28))
    assert report.totals["peak_workspace_bytes"] == max(r["workspace_bytes"] for r in report.rows) == 60 * 9 * 784 * 4


# --- leaving the model as it was ---------------------------------------------------------------

def test_summary_leaves_caches_modes_and_generators_as_they_were():
    model = cnn()
    model[5].rng = np.random.default_rng(7)  # Dropout with its own generator
    model[3].eval()                            # a mix of modes
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    grad = np.random.default_rng(2).standard_normal((4, 10)).astype(np.float32)

    def state():
        return ([m.training for m in model.modules()], tn.rng.default_generator().bit_generator.state,
                model[5].rng.bit_generator.state)

    model(x)
    before = state()
    tn.summary(model, (60, 1, 28, 28))
    assert state() == before
    grad_x = model.backward(grad)  # the caches of the call before summary
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}

    model.zero_grad()
    model[5].rng = np.random.default_rng(7)
    tn.rng.default_generator().bit_generator.state = before[1]
    model(x)
    np.testing.assert_array_equal(model.backward(grad), grad_x)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[name])


def test_summary_of_a_model_that_was_never_called_leaves_no_cache():
    model = cnn()
    tn.summary(model, (2, 1, 28, 28))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        model.backward(np.zeros((2, 10), np.float32))


def test_bad_arguments_are_refused_and_a_failing_pass_changes_nothing():
    model = cnn()
    with pytest.raises(ValueError, match=re.escape("summary: input_shape must be a non-empty tuple of non-negative "
                                                   "integers (batch axis first, e.g. (60, 1, 28, 28)), got 28")):
        tn.summary(model, 28)
    with pytest.raises(TypeError, match="summary: dtype must be a floating-point type, got int32"):
        tn.summary(model, (1, 1, 28, 28), dtype=np.int32)
    with pytest.raises(ValueError, match="expected input.* to have 1 channels, but got 3 channels instead"):
        tn.summary(model, (1, 3, 28, 28))
    assert all(m._cache is NO_FORWARD for m in model.modules())
    assert not hasattr(tn.nn.Module.__call__, "__wrapped__")  # the instruments are off again
