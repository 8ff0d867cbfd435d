"""detect_anomaly (the first non-finite value, by layer), fit's detect_anomaly and record, and the
gradient-flow figure."""
import re

import numpy as np
import pytest

import tinynet as tn
from tinynet.data import DataLoader
from tinynet.debug import NonFiniteError
from tinynet.plots import gradient_flow
from tinynet.train import NonFiniteLossError, fit


class Log(tn.Module):
    """y = log(x): a user's layer, -inf at 0."""

    def forward(self, x):
        self._cache = x
        with np.errstate(divide="ignore"):
            return np.log(x)

    def backward(self, grad_out):
        return grad_out / self._pop_cache(grad_out)


class Sqrt(tn.Module):
    """y = sqrt(x): finite at 0, its derivative is not."""

    def forward(self, x):
        y = np.sqrt(x)
        self._cache = y
        return y

    def backward(self, grad_out):
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad_out / (2 * self._pop_cache(grad_out))


class NaNGradient(tn.Module):
    """The identity, whose ``nth`` backward call returns NaN in one entry: a planted bug."""

    def __init__(self, nth):
        super().__init__()
        self.nth, self.calls = nth, 0

    def forward(self, x):
        self._cache = True
        return x

    def backward(self, grad_out):
        self._pop_cache(grad_out)
        self.calls += 1
        grad = grad_out.copy()
        if self.calls == self.nth:
            grad[0, 0] = np.nan
        return grad


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def originals():
    return tn.nn.Module.__call__, tn.Linear.backward, tn.ReLU.backward, Log.backward


def test_a_nan_weight_is_named_in_forward_with_the_parameter():
    model = tn.Sequential(tn.Linear(4, 8), tn.ReLU(), tn.Linear(8, 8), tn.ReLU(), tn.Linear(8, 3))
    model[2].weight.data[1, 2] = np.nan
    with pytest.raises(NonFiniteError) as caught:
        with tn.detect_anomaly():
            model(randn(5, 4))
    assert str(caught.value) == (
        '"2" (Linear) in forward, step 1: the output (shape (5, 8)) holds 5 NaN and 0 inf of 40 entries; '
        'its parameter "2.weight" holds 1 NaN and 0 inf')
    error = caught.value
    assert (error.path, error.module_type, error.phase, error.step, error.bad, error.total) == (
        "2", "Linear", "forward", 1, 5, 40)


def test_an_overflowing_input_is_named_where_it_overflows():
    layer = tn.Linear(4, 2)
    layer.weight.data[:] = 1
    model = tn.Sequential(tn.Sequential(tn.ReLU(), layer), tn.ReLU())
    x = randn(3, 4)
    x[1] = 3e38  # finite in float32; the sum of four of them is not
    with tn.detect_anomaly():
        model(randn(3, 4))  # a finite pass first: the step count goes on
        with pytest.raises(NonFiniteError, match=re.escape(
                '"0.1" (Linear) in forward, step 2: the output (shape (3, 2)) holds 0 NaN and 2 inf of 6 entries; '
                'its input was finite')):
            model(x)


def test_a_log_of_zero_is_named_by_the_users_layer():
    model = tn.Sequential(tn.Linear(4, 6), tn.ReLU(), Log(), tn.Linear(6, 2))
    x = randn(5, 4)
    zeros = int(np.sum(model[1](model[0](x)) == 0))
    assert zeros > 0
    with pytest.raises(NonFiniteError, match=re.escape(
            f'"2" (Log) in forward, step 1: the output (shape (5, 6)) holds 0 NaN and {zeros} inf of 30 entries')):
        with tn.detect_anomaly():
            model(x)


def test_an_infinite_gradient_is_named_in_backward_before_it_reaches_a_weight():
    model = tn.Sequential(tn.Linear(4, 6), tn.ReLU(), Sqrt(), tn.Linear(6, 2))
    x, grad = randn(5, 4), randn(5, 2, seed=1)
    hidden = model[1](model[0](x))  # what Sqrt sees
    with np.errstate(divide="ignore", invalid="ignore"):
        bad = int(np.sum(~np.isfinite((grad @ model[3].weight.data) / (2 * np.sqrt(hidden)))))
    with tn.detect_anomaly():
        model(x)
        with pytest.raises(NonFiniteError, match=re.escape(
                f'"2" (Sqrt) in backward, step 1: the gradient it returns (shape (5, 6)) holds 0 NaN and {bad} inf '
                'of 30 entries; the gradient it was given was finite')) as caught:
            model.backward(grad)
    assert bad > 0 and caught.value.phase == "backward"
    assert model[0].weight.grad is None  # the first layer's backward never ran


def test_a_nan_parameter_gradient_is_named_even_when_no_gradient_is_returned():
    model = tn.Sequential(tn.Linear(4, 3), NaNGradient(nth=1), tn.Linear(3, 2))
    with pytest.raises(NonFiniteError, match=re.escape(
            '"1" (NaNGradient) in backward, step 1: the gradient it returns (shape (5, 3)) holds 1 NaN and 0 inf')):
        with tn.detect_anomaly():
            model(randn(5, 4))
            model.backward_parameters(randn(5, 2))
    # backward_parameters returns no gradient from the first layer: its weight's gradient is checked
    model = tn.Sequential(tn.Linear(4, 3))
    model[0].weight.data[:] = 1e-3
    with pytest.raises(NonFiniteError, match=re.escape(
            '"0" (Linear) in backward, step 1: the gradient of its parameter "0.weight" holds 0 NaN and 12 inf '
            'of 12 entries')):
        with tn.detect_anomaly():
            model(np.full((5, 4), 3e38, np.float32))  # 1.2e36: finite
            model.backward_parameters(np.ones((5, 3), np.float32))  # 5 * 3e38 per weight: not


def test_the_instruments_cost_nothing_when_off():
    before = originals()
    with tn.detect_anomaly():
        assert originals()[0] is not before[0] and originals()[1] is not before[1]
        with tn.detect_anomaly():  # nested: still on after the inner block
            pass
        assert originals()[1] is not before[1]
    assert originals() == before
    with pytest.raises(NonFiniteError):
        with tn.detect_anomaly():
            Log()(np.zeros(2))
    assert originals() == before  # restored after an error too


# --- fit ---------------------------------------------------------------------------------------

def blobs(n=40, dim=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, dim)).astype(np.float32), rng.integers(0, classes, n)


class SnapshotSGD(tn.optim.SGD):
    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.snapshots = []

    def step(self):
        super().step()
        self.snapshots.append([p.data.copy() for p in self.params])


def test_fit_detect_anomaly_stops_before_the_optimizer_and_names_the_step():
    x, y = blobs()
    tn.manual_seed(0)
    model = tn.Sequential(tn.Linear(4, 8), NaNGradient(nth=3), tn.ReLU(), tn.Linear(8, 3))
    optimizer = SnapshotSGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteError, match=re.escape(
            '"1" (NaNGradient) in backward, epoch 1/2, step 3/4: the gradient it returns (shape (10, 8)) holds 1 NaN')):
        fit(model, tn.CrossEntropyLoss(), optimizer, DataLoader(x, y, batch_size=10), epochs=2,
            detect_anomaly=True, progress=False)
    assert len(optimizer.snapshots) == 2
    for param, snapshot in zip(model.parameters(), optimizer.snapshots[-1]):
        np.testing.assert_array_equal(param.data, snapshot)
    assert tn.Linear.backward is originals()[1]
    # Without the detector the NaN reaches the weights and the loss of the next step.
    model[1].calls = 0
    with pytest.raises(NonFiniteLossError, match="step 4/4"):
        fit(model, tn.CrossEntropyLoss(), SnapshotSGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=10),
            epochs=1, progress=False)


def l2(array):
    return float(np.sqrt(np.sum(np.asarray(array, np.float64) ** 2)))


def test_recorded_norms_equal_a_hand_computation():
    x, y = blobs(n=50)
    tn.manual_seed(0)
    model = tn.Sequential(tn.Linear(4, 8), tn.Sigmoid(), tn.Sequential(tn.Linear(8, 8), tn.ReLU()), tn.Linear(8, 3))
    hand = tn.Sequential(tn.Linear(4, 8), tn.Sigmoid(), tn.Sequential(tn.Linear(8, 8), tn.ReLU()), tn.Linear(8, 3))
    hand.load_state_dict(model.state_dict())
    history = fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.5),
                  DataLoader(x, y, batch_size=10), epochs=2, record="grad_norms", record_every=3, progress=False)

    loss_fn, optimizer = tn.CrossEntropyLoss(), tn.optim.SGD(hand.parameters(), lr=0.5)
    expected, step = {}, 0
    leaves = [(path, m) for path, m in hand.named_modules() if not m.children()]
    for _ in range(2):
        for start in range(0, 50, 10):
            step += 1
            xb, yb = x[start:start + 10], y[start:start + 10]
            loss_fn(hand(xb), yb)
            hand.backward(loss_fn.backward())
            if (step - 1) % 3 == 0:
                expected.setdefault("record_step", []).append(step)
                for name, p in hand.named_parameters():
                    expected.setdefault(f"grad_norm:{name}", []).append(l2(p.grad))
                h = xb
                for path, module in leaves:
                    h = module(h)
                    expected.setdefault(f"output_norm:{path}", []).append(l2(h))
            optimizer.step()
            optimizer.zero_grad()
    assert expected["record_step"] == [1, 4, 7, 10]
    recorded = {key: value for key, value in history.items() if key.startswith(("grad_norm:", "output_norm:", "record_"))}
    assert sorted(recorded) == sorted(expected)
    for key, values in expected.items():
        np.testing.assert_allclose(recorded[key], values, rtol=1e-6, err_msg=key)
    assert len(history["loss"]) == 2


def test_record_arguments_are_checked():
    x, y = blobs()
    model = tn.Sequential(tn.Linear(4, 3))
    args = (model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=10))
    with pytest.raises(ValueError, match=re.escape("fit: record must be None or one of ('grad_norms',), got 'norms'")):
        fit(*args, record="norms", progress=False)
    with pytest.raises(ValueError, match="fit: record_every must be a positive integer, got 0"):
        fit(*args, record="grad_norms", record_every=0, progress=False)


def test_gradient_flow_draws_every_parameter_and_layer_on_a_log_scale(tmp_path):
    x, y = blobs()
    model = tn.Sequential(tn.Linear(4, 8), tn.Sigmoid(), tn.Linear(8, 3))
    history = fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
                  DataLoader(x, y, batch_size=10), epochs=2, record="grad_norms", progress=False)
    path = tmp_path / "flow.png"
    figure = gradient_flow(history, path=path, title="tiny")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gradients, outputs = figure.axes[:2]
    assert [line.get_label() for line in gradients.get_lines()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [line.get_label() for line in outputs.get_lines()] == ["0", "1", "2"]
    assert gradients.get_yscale() == "log"
    np.testing.assert_array_equal(gradients.get_lines()[0].get_xdata(), history["record_step"])
    with pytest.raises(ValueError, match=r"gradient_flow: the history holds no recorded norms; .*record='grad_norms'"):
        gradient_flow({"loss": [1.0]})


def test_recorded_norms_survive_a_checkpoint_and_a_resumed_run_continues_them(tmp_path):
    from tinynet.callbacks import ModelCheckpoint

    x, y = blobs(n=30)

    def run(epochs, resume=False, checkpoint=True):
        tn.manual_seed(0)
        model = tn.Sequential(tn.Linear(4, 8), tn.Tanh(), tn.Linear(8, 3))
        path = tmp_path / "run.npz"
        return fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
                   DataLoader(x, y, batch_size=10), epochs=epochs, record="grad_norms", record_every=2,
                   callbacks=[ModelCheckpoint(path)] if checkpoint else [], resume_from=path if resume else None,
                   progress=False)

    straight = run(3, checkpoint=False)
    run(1)
    resumed = run(3, resume=True)
    assert resumed["record_step"] == straight["record_step"] == [1, 3, 5, 7, 9]
    assert resumed == straight
