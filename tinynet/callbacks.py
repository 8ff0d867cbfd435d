"""Callbacks for ``fit``: early stopping and checkpoints.

A callback is any object with some of these methods; ``fit`` calls those that exist
with its ``TrainingState`` (model, optimizer, history, ``epoch`` = finished epochs,
``stop_training``):

* ``on_train_begin(state)`` and ``on_train_end(state)``,
* ``on_epoch_begin(state)``,
* ``on_epoch_end(state, logs)``, where ``logs`` holds the epoch's ``loss``, ``accuracy``,
  ``val_loss``, ``val_accuracy`` and ``lr`` (those that apply).

There is no per-batch hook: the training step stays free of Python calls it does not need.
"""
import math

from .train import save_checkpoint


def _resolve_mode(where, monitor, mode):
    """``"min"`` or ``"max"``; ``"auto"`` means max for accuracies, min otherwise (losses)."""
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"{where}: mode must be 'min', 'max' or 'auto', got {mode!r}")
    return mode


class _Monitor:
    """Tracks the best value of one entry of the epoch logs."""

    def __init__(self, where, monitor, mode, min_delta):
        if not isinstance(min_delta, (int, float)) or min_delta < 0:
            raise ValueError(f"{where}: min_delta must be a non-negative number, got {min_delta!r}")
        self.where, self.monitor = where, monitor
        self.mode = _resolve_mode(where, monitor, mode)
        self.min_delta = float(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf

    def improved(self, logs):
        """Whether ``logs[monitor]`` beats the best so far by more than ``min_delta`` (and record it)."""
        if self.monitor not in logs:
            hint = " (pass val_loader to fit for val_ entries)" if self.monitor.startswith("val_") else ""
            raise KeyError(
                f"{self.where}: monitor {self.monitor!r} is not in the epoch's logs, "
                f"which hold {sorted(logs)}{hint}"
            )
        value = logs[self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best = value
        return better

    def replay(self, history):
        """Feed the values of earlier epochs (a resumed run's history); return how many epochs
        ago the best one was and its epoch number (1-based), or (0, None) without any."""
        values = history.get(self.monitor, [])
        best_epoch = None
        for epoch, value in enumerate(values, start=1):
            if self.improved({self.monitor: value}):
                best_epoch = epoch
        return (len(values) - best_epoch, best_epoch) if best_epoch else (0, None)


class Callback:
    """Base class with every hook doing nothing; subclasses override what they need."""

    def on_train_begin(self, state):
        pass

    def on_epoch_begin(self, state):
        pass

    def on_epoch_end(self, state, logs):
        pass

    def on_train_end(self, state):
        pass


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: the log entry to watch, e.g. ``"val_loss"`` or ``"val_accuracy"``.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, min for losses).
        patience: stop after this many epochs in a row without improvement (Keras's meaning;
            0 stops at the first epoch that does not improve).
        min_delta: the smallest change that counts as an improvement.
        restore_best_weights: on stopping, put back the weights of the best epoch
            (a copy of them is kept in memory). In a resumed run, epochs before the
            checkpoint count for patience, but their weights cannot be restored; keep the
            best ones on disk with ``ModelCheckpoint(path, monitor=...)``.

    Attributes:
        stopped_epoch: the number of epochs finished when it stopped training (None if it did not).
        best_epoch: the epoch (1-based) with the best value.
    """

    def __init__(self, monitor="val_loss", mode="auto", patience=3, min_delta=0.0, restore_best_weights=True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be a non-negative integer, got {patience!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.patience = patience
        self.restore_best_weights = bool(restore_best_weights)
        self.on_train_begin(None)  # checks the arguments now rather than at the first epoch

    def on_train_begin(self, state):
        self._tracker = _Monitor("EarlyStopping", self.monitor, self.mode, self.min_delta)
        # A resumed run counts its earlier epochs too (but their weights are not in memory).
        self.wait, self.best_epoch = self._tracker.replay(state.history) if state is not None else (0, None)
        self.best_weights = None
        self.stopped_epoch = None

    def on_epoch_end(self, state, logs):
        if self._tracker.improved(logs):
            self.wait = 0
            self.best_epoch = state.epoch
            if self.restore_best_weights:
                self.best_weights = {key: value.copy() for key, value in state.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop_training = True
            self.stopped_epoch = state.epoch

    def on_train_end(self, state):
        if self.stopped_epoch is not None and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the training state to ``path`` (an ``.npz``, written atomically) at the end of epochs.

    With ``monitor=None`` it saves after every epoch, for resuming with
    ``fit(..., resume_from=path)``. With ``monitor`` (e.g. ``"val_accuracy"``) it saves only
    when that value improves, so ``path`` always holds the best model so far (a resumed run
    compares with the best value in its history); load its weights with
    ``model.load_state_dict(tinynet.load(path)["model"])``.

    Args:
        path: the file to write (replaced each time).
        monitor: None, or the log entry whose improvement triggers a save.
        mode, min_delta: as in ``EarlyStopping``.

    Attributes:
        best: the best monitored value so far; ``saved_epochs``: the epochs (1-based) saved.
    """

    def __init__(self, path, monitor=None, mode="auto", min_delta=0.0):
        self.path = path
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.on_train_begin(None)  # checks the arguments now rather than at the first epoch
        self.saved_epochs = []

    def on_train_begin(self, state):
        self._tracker = None if self.monitor is None else _Monitor("ModelCheckpoint", self.monitor, self.mode, self.min_delta)
        if self._tracker is not None and state is not None:
            self._tracker.replay(state.history)  # a resumed run keeps the best of its earlier epochs

    @property
    def best(self):
        return None if self._tracker is None else self._tracker.best

    def on_epoch_end(self, state, logs):
        if self._tracker is None or self._tracker.improved(logs):
            save_checkpoint(self.path, state)
            self.saved_epochs.append(state.epoch)


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]
