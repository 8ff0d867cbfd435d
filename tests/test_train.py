"""fit / evaluate / predict, NaN handling, callbacks, and bit-for-bit resuming from a checkpoint."""
import sys

import numpy as np
import pytest

import tinynet as tn
from tinynet.augment import RandomAffine
from tinynet.callbacks import EarlyStopping, ModelCheckpoint
from tinynet.data import DataLoader
from tinynet.schedules import OneCycleLR, StepLR
from tinynet.train import NonFiniteLossError, TrainingState, evaluate, fit, predict


def blobs(n=240, classes=3, dim=4, seed=0):
    """Gaussian clusters around random centres: easy to fit in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 3
    y = rng.integers(0, classes, n)
    x = (centres[y] + rng.standard_normal((n, dim))).astype(np.float32)
    return x, y.astype(np.int64)


def mlp(dim=4, classes=3, dropout=0.2):
    return tn.Sequential(tn.Linear(dim, 16), tn.ReLU(), tn.Dropout(dropout), tn.Linear(16, classes))


def weights(model):
    return {key: value.copy() for key, value in model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


class ModeSpy(tn.Module):
    """Records the training flag of every forward call."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(self.training)
        self._cache = ()
        return x

    def backward(self, grad):
        self._pop_cache()
        return grad


def test_fit_learns_and_returns_history():
    tn.manual_seed(0)
    x, y = blobs()
    model = mlp()
    optimizer = tn.optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, tn.CrossEntropyLoss(), optimizer, DataLoader(x, y, batch_size=32, shuffle=True, seed=0),
                  val_loader=DataLoader(x, y, batch_size=100), epochs=4, progress=False)
    assert list(history) == ["loss", "accuracy", "val_loss", "val_accuracy", "lr"]
    assert all(len(values) == 4 and all(type(v) is float for v in values) for values in history.values())
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.9
    assert history["lr"] == [0.1] * 4
    assert all(p.grad is None for p in model.parameters())  # gradients are cleared after each step


class RecordingLoss(tn.CrossEntropyLoss):
    """Cross-entropy that records (loss, batch size, correct predictions, training) of every call."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction=reduction)
        self.calls = []

    def forward(self, output, target):
        value = super().forward(output, target)
        self.calls.append((value, len(output), int((output.argmax(axis=1) == target).sum()), self.training_call))
        return value

    training_call = True


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_history_is_the_sample_weighted_mean_over_the_batches(reduction):
    """Batches of 10, 10 and 5 samples: each epoch's loss is the mean over samples (a "mean"
    batch loss counts by its size, a "sum" one as it is), its accuracy the fraction correct; the
    same for the validation pass (batches of 7, 7, 7 and 4)."""
    tn.manual_seed(0)
    x, y = blobs(25)
    loss_fn = RecordingLoss(reduction)
    weight = (lambda value, size: value * size) if reduction == "mean" else (lambda value, size: value)

    class Validation:  # marks the validation calls in the record
        def __iter__(self):
            loss_fn.training_call = False
            yield from DataLoader(x, y, batch_size=7)
            loss_fn.training_call = True

    model = mlp(dropout=0.0)
    history = fit(model, loss_fn, tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=10),
                  Validation(), epochs=2, progress=False)
    for epoch in range(2):
        calls = loss_fn.calls[epoch * 7:(epoch + 1) * 7]
        for prefix, training in (("", True), ("val_", False)):
            batches = [call for call in calls if call[3] == training]
            assert [size for _, size, _, _ in batches] == ([10, 10, 5] if training else [7, 7, 7, 4])
            samples = sum(size for _, size, _, _ in batches)
            loss = sum(weight(value, size) for value, size, _, _ in batches) / samples
            accuracy = sum(correct for _, _, correct, _ in batches) / samples
            assert history[prefix + "loss"][epoch] == pytest.approx(loss, rel=1e-12)
            assert history[prefix + "accuracy"][epoch] == accuracy


def test_modes_are_switched_and_restored():
    spy = ModeSpy()
    model = tn.Sequential(spy, tn.Linear(4, 3))
    model[1].training = False  # a module deliberately left in eval mode keeps it
    x, y = blobs(20)
    fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=10),
        val_loader=DataLoader(x, y, batch_size=20), epochs=1, progress=False)
    assert spy.seen == [True, True, False]  # two training batches, then validation in eval mode
    assert model.training and spy.training and not model[1].training
    spy.seen.clear()
    predict(model, x), evaluate(model, tn.CrossEntropyLoss(), DataLoader(x, y, batch_size=20))
    assert spy.seen == [False, False] and model.training


def test_evaluate_weighs_batches_by_size():
    tn.manual_seed(1)
    x, y = blobs(50)
    model = mlp()
    result = evaluate(model, tn.CrossEntropyLoss(), DataLoader(x, y, batch_size=16))  # 16, 16, 16, 2
    model.eval()
    logits = model(x)
    assert result["loss"] == pytest.approx(tn.CrossEntropyLoss()(logits, y), rel=1e-6)
    assert result["accuracy"] == np.mean(logits.argmax(1) == y)
    summed = evaluate(model, tn.CrossEntropyLoss(reduction="sum"), DataLoader(x, y, batch_size=16), accuracy=None)
    assert summed == {"loss": pytest.approx(result["loss"], rel=1e-6)}


def test_predict_batches_equal_one_pass():
    tn.manual_seed(2)
    x, y = blobs(37)
    model = mlp()
    model.eval()
    full = model(x)
    model.train()
    np.testing.assert_allclose(predict(model, x, batch_size=8), full, rtol=1e-6)
    np.testing.assert_allclose(predict(model, DataLoader(x, y, batch_size=10)), full, rtol=1e-6)
    with pytest.raises(ValueError, match=r"predict: batch_size must be a positive integer, got 0"):
        predict(model, x, batch_size=0)


def test_threshold_accuracy_for_one_sigmoid_output():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 2)).astype(np.float32)
    y = (x[:, :1] > 0).astype(np.float32)  # (N, 1) 0/1 targets, as MSELoss wants
    tn.manual_seed(0)
    model = tn.Sequential(tn.Linear(2, 1), tn.Sigmoid())
    history = fit(model, tn.MSELoss(), tn.optim.SGD(model.parameters(), lr=1.0), DataLoader(x, y, batch_size=20),
                  epochs=5, accuracy="threshold", progress=False)
    assert history["accuracy"][-1] > 0.9
    assert evaluate(model, tn.MSELoss(), DataLoader(x, y, batch_size=50), accuracy="threshold")["accuracy"] > 0.9
    with pytest.raises(ValueError, match=r"accuracy='argmax' needs \(N, C\) class scores with C >= 2, got shape \(20, 1\)"):
        fit(model, tn.MSELoss(), tn.optim.SGD(model.parameters(), lr=1.0), DataLoader(x, y, batch_size=20), progress=False)
    history = fit(model, tn.MSELoss(), tn.optim.SGD(model.parameters(), lr=1.0), DataLoader(x, y, batch_size=20),
                  accuracy=None, progress=False)
    assert list(history) == ["loss", "lr"]


class SnapshotSGD(tn.optim.SGD):
    """SGD that keeps a copy of the weights after every step."""

    def step(self):
        super().step()
        self.snapshot = [p.data.copy() for p in self.params]


class NaNOnCall(tn.CrossEntropyLoss):
    """Cross-entropy that reports NaN on its ``bad_call``-th call, as a user loss might."""

    def __init__(self, bad_call):
        super().__init__()
        self.calls, self.bad_call = 0, bad_call

    def forward(self, output, target):
        self.calls += 1
        loss = super().forward(output, target)
        return float("nan") if self.calls == self.bad_call else loss

    __call__ = forward


def test_non_finite_loss_stops_before_the_step_and_names_it():
    tn.manual_seed(0)
    x, y = blobs(40)
    model = mlp()
    optimizer = SnapshotSGD(model.parameters(), lr=0.1)
    loader = DataLoader(x, y, batch_size=10)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2/3, step 3/4 \(the loss is nan\).*weights of the last good step") as info:
        fit(model, NaNOnCall(bad_call=7), optimizer, loader, epochs=3, progress=False)
    assert (info.value.epoch, info.value.step) == (2, 3)
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, RuntimeError)
    assert len(info.value.history["loss"]) == 1
    for param, kept in zip(model.parameters(), optimizer.snapshot):  # the weights after step 2 of epoch 2
        np.testing.assert_array_equal(param.data, kept)


def test_nan_input_reaching_a_tinynet_loss():
    tn.manual_seed(0)
    x, y = blobs(40)
    x[15, 0] = np.nan  # in the second batch
    model = mlp()
    before = weights(model)
    optimizer = SnapshotSGD(model.parameters(), lr=0.1)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1/1, step 2/4 \(CrossEntropyLoss: the loss is nan because the input holds") as info:
        fit(model, tn.CrossEntropyLoss(), optimizer, DataLoader(x, y, batch_size=10), progress=False)
    assert isinstance(info.value.__cause__, ValueError)
    assert not all(np.array_equal(before[k], v) for k, v in weights(model).items())  # step 1 did happen
    for param, kept in zip(model.parameters(), optimizer.snapshot):
        np.testing.assert_array_equal(param.data, kept)


def test_input_errors_are_not_mistaken_for_nan():
    x, y = blobs(20)
    model = mlp()
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
            DataLoader(x, np.full(20, 7), batch_size=10), progress=False)
    with pytest.raises(ValueError, match=r"fit: expected the loader to yield \(inputs, targets\) pairs, got a tuple of 1 arrays"):
        fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, batch_size=10), progress=False)
    with pytest.raises(ValueError, match=r"fit: epochs must be a non-negative integer, got -1"):
        fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y), epochs=-1)
    with pytest.raises(ValueError, match=r"fit: accuracy must be one of \('argmax', 'threshold'\) or None, got 'top1'"):
        fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y), accuracy="top1")


def image_run(tmp_path, epochs, resume=False, checkpoint=True):
    """A run that draws from every kind of generator: shuffling and augmentation (the loader's
    own), dropout (tinynet's default), and a per-step schedule on Adam."""
    rng = np.random.default_rng(5)
    images = rng.random((64, 1, 6, 6), dtype=np.float32)
    labels = rng.integers(0, 3, 64)
    model = tn.Sequential(tn.Flatten(), tn.Linear(36, 12), tn.ReLU(), tn.Dropout(0.3), tn.Linear(12, 3))
    optimizer = tn.optim.Adam(model.parameters(), lr=1e-2)
    train_loader = DataLoader(images, labels, batch_size=10, shuffle=True, seed=11,
                              transform=RandomAffine(degrees=10, translate=1))
    val_loader = DataLoader(images, labels, batch_size=32)
    scheduler = OneCycleLR(optimizer, max_lr=0.05, total_steps=4 * len(train_loader))
    path = tmp_path / "run.npz"
    callbacks = [ModelCheckpoint(path)] if checkpoint else []
    history = fit(model, tn.CrossEntropyLoss(), optimizer, train_loader, val_loader, epochs=epochs,
                  callbacks=callbacks, scheduler=scheduler, resume_from=path if resume else None, progress=False)
    return model, optimizer, history


def test_resume_from_checkpoint_is_bit_for_bit(tmp_path):
    tn.manual_seed(0)
    straight_model, straight_optimizer, straight_history = image_run(tmp_path, epochs=4, checkpoint=False)

    tn.manual_seed(0)
    image_run(tmp_path, epochs=2)
    tn.manual_seed(123)  # a different initialisation and generator state: the checkpoint must restore all of it
    model, optimizer, history = image_run(tmp_path, epochs=4, resume=True)

    assert history == straight_history
    assert_same_weights(weights(model), weights(straight_model))
    for a, b in zip(optimizer.state, straight_optimizer.state):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    assert optimizer.lr == straight_optimizer.lr and optimizer.step_count == straight_optimizer.step_count == 28


def test_checkpoint_without_a_scheduler_entry_is_refused(tmp_path):
    x, y = blobs(20)
    model = mlp()
    optimizer = tn.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "plain.npz"
    fit(model, tn.CrossEntropyLoss(), optimizer, DataLoader(x, y, batch_size=10), callbacks=[ModelCheckpoint(path)],
        progress=False)
    assert tn.load(path)["epoch"] == 1
    with pytest.raises(KeyError, match=r"the checkpoint lacks \['scheduler'\]"):
        fit(model, tn.CrossEntropyLoss(), optimizer, DataLoader(x, y, batch_size=10), epochs=2,
            scheduler=StepLR(optimizer, 1), resume_from=path, progress=False)


def test_early_stopping_restores_the_best_weights_which_checkpoint_saved(tmp_path):
    """The training loss falls every epoch, so in mode "max" only epoch 1 is ever the best:
    with patience 1, training stops after epoch 2 and epoch 1's weights come back."""
    tn.manual_seed(0)
    x, y = blobs(60)
    model = mlp(dropout=0.0)
    path = tmp_path / "best.npz"
    stopper = EarlyStopping(monitor="loss", mode="max", patience=1)
    best = ModelCheckpoint(path, monitor="loss", mode="max")
    history = fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1),
                  DataLoader(x, y, batch_size=10), epochs=10, callbacks=[best, stopper], progress=False)
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    assert stopper.stopped_epoch == 2 and stopper.best_epoch == 1 and best.saved_epochs == [1]
    assert_same_weights(weights(model), tn.load(path)["model"])


def test_early_stopping_counts_patience_like_keras():
    stopper = EarlyStopping(monitor="val_loss", patience=2, min_delta=0.05, restore_best_weights=False)
    state = TrainingState(mlp(), None, None, None, None, None, epochs=10)
    stopper.on_train_begin(state)
    for value in [1.0, 0.8, 0.78, 0.9, 0.7]:  # 0.78 is within min_delta of 0.8: no improvement
        state.epoch += 1
        stopper.on_epoch_end(state, {"val_loss": value})
        if state.stop_training:
            break
    assert state.epoch == 4 and stopper.best_epoch == 2
    with pytest.raises(KeyError, match=r"EarlyStopping: monitor 'val_loss' is not in the epoch's logs, which hold \['loss', 'lr'\] \(pass val_loader"):
        stopper.on_epoch_end(state, {"loss": 1.0, "lr": 0.1})
    with pytest.raises(ValueError, match=r"EarlyStopping: mode must be 'min', 'max' or 'auto', got 'up'"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"ModelCheckpoint: min_delta must be a non-negative number, got -1"):
        ModelCheckpoint("x.npz", monitor="val_loss", min_delta=-1)


def test_best_model_checkpoint_holds_the_best_val_accuracy(tmp_path):
    tn.manual_seed(3)
    x, y = blobs(120)
    path = tmp_path / "best.npz"
    best = ModelCheckpoint(path, monitor="val_accuracy")
    model = mlp()
    val_loader = DataLoader(x[:60], y[:60], batch_size=60)
    history = fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.05),
                  DataLoader(x[60:], y[60:], batch_size=10), val_loader, epochs=4, callbacks=[best], progress=False)
    assert best.best == max(history["val_accuracy"])
    fresh = mlp()
    fresh.load_state_dict(tn.load(path)["model"])
    assert evaluate(fresh, tn.CrossEntropyLoss(), val_loader)["accuracy"] == best.best


def test_progress_bar_shows_running_and_final_values(capsys, monkeypatch):
    x, y = blobs(40)
    model = mlp()
    fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=10),
        DataLoader(x, y, batch_size=40), epochs=2)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "4/4" in err
    assert "loss=" in err and "acc=" in err and "val_acc=" in err

    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # as if tqdm were not installed
    with pytest.raises(ImportError, match=r"pip install tinynet\[examples\]`, or pass progress=False"):
        fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y, batch_size=10))


def test_callbacks_of_a_resumed_run_replay_its_history(tmp_path):
    state = TrainingState(mlp(), None, None, None, None, None, epochs=10)
    state.history = {"val_loss": [1.0, 0.5, 0.7], "lr": [0.1] * 3}
    state.epoch = 3
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    stopper.on_train_begin(state)
    assert (stopper.wait, stopper.best_epoch) == (1, 2)
    state.epoch = 4
    stopper.on_epoch_end(state, {"val_loss": 0.6})  # a second epoch without improvement: stop
    assert state.stop_training and stopper.stopped_epoch == 4
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss")
    best.on_train_begin(state)
    assert best.best == 0.5
