"""The training loop: ``fit``, ``evaluate`` and ``predict``, with checkpoints that resume exactly.

    history = fit(model, CrossEntropyLoss(), Adam(model.parameters()), train_loader,
                  val_loader=test_loader, epochs=10)
    history["val_accuracy"][-1]                      # accuracy after the last epoch
    evaluate(model, CrossEntropyLoss(), test_loader) # {"loss": ..., "accuracy": ...}
    predict(model, images)                           # the model's outputs, in batches

One training step is forward, loss, backward, ``optimizer.step()``,
``optimizer.zero_grad()``: the loop adds only the loss (already a Python float)
to a running sum and the number of correct predictions to an on-device
counter, so the only device-to-host copy per step is the loss the loss
function returns anyway. The running accuracy is read when the progress bar
redraws (about ten times a second), and once per epoch.

Accuracy is computed as the caller says (``accuracy="argmax"`` for class scores,
``"threshold"`` for one sigmoid output per sample, ``None`` for neither); see
``tinynet.metrics``.

A checkpoint (``save_checkpoint``, the ``ModelCheckpoint`` callback) holds everything
the rest of the run depends on: weights, optimizer and schedule state, the
history, the number of finished epochs and the state of every random generator
the run draws from (tinynet's default one, the loaders' own ones and any
module's ``rng``, e.g. a ``Dropout`` given one). ``fit(..., resume_from=path)``
therefore continues a run bit for bit as if it had never stopped. (On a GPU, dropout
masks come from CuPy's generator, which checkpoints do not hold: a resumed GPU run
with dropout is a valid continuation, not a bit-for-bit one.)

Data-parallel training over MPI passes ``comm`` (``tinynet.distributed``): ``fit(...,
comm=comm)`` starts every process from rank 0's weights, draws progress bars on rank 0
only, averages buffers after every epoch, sums the metrics over the processes, and writes
checkpoints from rank 0 alone.
"""
import json
import math
from contextlib import contextmanager

import numpy as np

from . import metrics
from .backend import get_array_module
from .debug import RECORD_STEP, StepMonitor, is_step_record
from .distributed import DistributedOptimizer, average_buffers, broadcast_parameters
from .losses import LossNotFiniteError
from .rng import default_generator
from .serialization import load, save


class NonFiniteLossError(FloatingPointError, RuntimeError):
    """The training loss became NaN or inf; raised by ``fit`` before that step changed any weight.

    Attributes:
        epoch: the epoch it happened in (1-based, as printed).
        step: the step within the epoch (1-based).
        history: the history of the epochs completed before it.
    """

    def __init__(self, message, epoch, step, history):
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, history


@contextmanager
def _mode(model, training):
    """Put every module of ``model`` in training (or eval) mode; restore each one's mode afterwards."""
    modules = model.modules()
    before = [module.training for module in modules]
    model.train(training)
    try:
        yield
    finally:
        for module, mode in zip(modules, before):
            module.training = mode


def progress_bar(total, description, enabled, unit="batch"):
    """A tqdm bar over ``total`` ``unit``s (None if unknown), or None when ``enabled`` is False.

    tqdm is an optional dependency, imported here only when a bar is wanted.
    """
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as err:
        raise ImportError(
            "progress bars (progress=True) are drawn with tqdm, which is not installed: "
            "`pip install tinynet[examples]`, or pass progress=False"
        ) from err
    return tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True)


def _split(batch, where):
    """``(x, y)`` from a loader's batch tuple."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        got = f"a tuple of {len(batch)} arrays" if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}"
        raise ValueError(f"{where}: expected the loader to yield (inputs, targets) pairs, got {got}")
    return batch


def _sample_weight(loss_fn, batch_size):
    """The factor turning one batch's loss into its share of a sum over samples."""
    return batch_size if getattr(loss_fn, "reduction", "mean") == "mean" else 1


class _Running:
    """Sums of the loss and of correct predictions over the samples seen so far in one pass."""

    def __init__(self, loss_fn, accuracy, threshold):
        self.loss_fn, self.accuracy, self.threshold = loss_fn, accuracy, threshold
        self.samples, self.loss_sum, self.correct = 0, 0.0, 0

    def add(self, loss, output, target):
        batch_size = len(output)
        self.samples += batch_size
        self.loss_sum += loss * _sample_weight(self.loss_fn, batch_size)
        if self.accuracy is not None:
            # An on-device 0-d count: adding it up does not wait for the device.
            self.correct = self.correct + metrics.count_correct(output, target, self.accuracy, self.threshold)

    def results(self, where, comm=None):
        """``{"loss": mean loss, "accuracy": fraction correct}`` (reads the count from the device);
        given ``comm``, over the samples of all processes (their sums are added, then divided)."""
        samples, loss_sum, correct = self.samples, self.loss_sum, int(self.correct)
        if comm is not None:
            samples, loss_sum, correct = comm.sum([samples, loss_sum, correct])
        if samples == 0:
            raise ValueError(f"{where}: the loader yielded no batches")
        result = {"loss": loss_sum / samples}
        if self.accuracy is not None:
            result["accuracy"] = correct / samples
        return result


def _postfix(logs):
    """Short names for the progress bar: loss=0.1234, acc=0.9876, val_loss=..., val_acc=..."""
    return {key.replace("accuracy", "acc"): f"{value:.4f}" for key, value in logs.items() if key != "lr"}


def evaluate(model, loss_fn, loader, accuracy="argmax", threshold=0.5, comm=None):
    """Mean loss (and accuracy) of ``model`` over ``loader``, in eval mode.

    Args:
        model: the model; its modules' train/eval modes are restored afterwards.
        loss_fn: a tinynet loss (``reduction="mean"`` or ``"sum"``).
        loader: an iterable of ``(inputs, targets)`` batches, e.g. a ``DataLoader``.
        accuracy, threshold: how outputs become labels (``tinynet.metrics``); ``None``: no accuracy.
        comm: a ``tinynet.distributed`` communicator: the processes share the work, each taking
            every ``comm.size``-th batch of the same loader (or all batches of a loader built with
            ``shard``, which are its own already), and return the results over all samples.

    Returns:
        ``{"loss": float, "accuracy": float}`` (no ``"accuracy"`` when ``accuracy=None``): the
        loss averaged over samples, so batches of different sizes count by their size.
    """
    metrics.check_accuracy_kind("evaluate", accuracy)
    running = _Running(loss_fn, accuracy, threshold)
    share = comm is not None and getattr(loader, "shard", None) is None
    with _mode(model, training=False):
        for index, batch in enumerate(loader):
            if share and index % comm.size != comm.rank:
                continue
            x, y = _split(batch, "evaluate")
            output = model(x)
            running.add(loss_fn(output, y), output, y)
    return running.results("evaluate", comm)


def predict(model, data, batch_size=256):
    """The model's outputs for ``data``, computed in eval mode in batches and concatenated.

    Args:
        model: the model; its modules' modes are restored afterwards.
        data: an input array (N, ...), or an iterable of batches (e.g. a ``DataLoader``),
            of which the first array of each batch is the input.
        batch_size: samples per forward pass when ``data`` is an array.

    Returns:
        The outputs (N, ...) on the model's device (e.g. (N, 10) logits).
    """
    if hasattr(data, "shape"):
        if len(data.shape) == 0:
            raise ValueError("predict: expected an input array with a batch axis, got a 0-D array")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"predict: batch_size must be a positive integer, got {batch_size!r}")
        batches = (data[start:start + batch_size] for start in range(0, len(data), batch_size))
    else:
        batches = (batch[0] if isinstance(batch, (tuple, list)) else batch for batch in data)
    with _mode(model, training=False):
        outputs = [model(x) for x in batches]
    if not outputs:
        raise ValueError("predict: got no inputs")
    return get_array_module(outputs[0]).concatenate(outputs)


class TrainingState:
    """What ``fit`` is working with, as callbacks see it, and the checkpoint of it.

    Attributes:
        model, loss_fn, optimizer, scheduler, train_loader, val_loader: as passed to ``fit``.
        epochs: the epoch count ``fit`` was asked to reach.
        epoch: how many epochs are finished.
        history: ``{name: [one value per finished epoch]}``.
        stop_training: set it to True (as ``EarlyStopping`` does) to end ``fit`` after this epoch.
        comm: the ``tinynet.distributed`` communicator of a data-parallel run, else None.
    """

    def __init__(self, model, loss_fn, optimizer, scheduler, train_loader, val_loader, epochs, comm=None):
        self.model, self.loss_fn, self.optimizer, self.scheduler = model, loss_fn, optimizer, scheduler
        self.train_loader, self.val_loader, self.epochs, self.comm = train_loader, val_loader, epochs, comm
        self.epoch = 0
        self.history = {}
        self.stop_training = False

    def generators(self):
        """``{name: numpy.random.Generator}`` for every generator the run draws from."""
        found = {"default": default_generator()}
        for name, loader in (("train_loader", self.train_loader), ("val_loader", self.val_loader)):
            # A DataLoader built with seed= or rng= draws from its own generator (else the default one).
            rng = getattr(loader, "_rng", None)
            if isinstance(rng, np.random.Generator):
                found[name] = rng
        for name, module in self.model.named_modules():
            rng = getattr(module, "rng", None)
            if isinstance(rng, np.random.Generator):
                found[f"model.{name}" if name else "model"] = rng
        return found

    def checkpoint(self):
        """The state as a nested ``{str: array | scalar | dict}`` that ``tinynet.save`` writes.

        In a data-parallel run every process must call it: ``"rng"`` holds rank 0's generators and
        ``"rng_by_rank"`` those of the other processes (gathered on rank 0; elsewhere it is empty).
        """
        checkpoint = {
            "model": dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "history": {key: np.asarray(values, dtype=np.float64) for key, values in self.history.items()},
            # The bit generator state holds 128-bit integers: stored as JSON text in a 0-d string array.
            "rng": {name: np.array(json.dumps(rng.bit_generator.state)) for name, rng in self.generators().items()},
        }
        checkpoint["classes"] = {"optimizer": np.array(_class_name(self.optimizer))}
        if self.scheduler is not None:
            checkpoint["scheduler"] = self.scheduler.state_dict()
            checkpoint["classes"]["scheduler"] = np.array(_class_name(self.scheduler))
        if self.comm is not None and self.comm.size > 1:
            streams = self.comm.gather(checkpoint["rng"]) or []
            checkpoint["rng_by_rank"] = {str(rank): rng for rank, rng in enumerate(streams) if rank > 0}
        return checkpoint

    def restore(self, checkpoint, where="load_checkpoint"):
        """Load a ``checkpoint()`` (as ``tinynet.load`` returns it) into the model, optimizer,
        schedule and generators. Generators present in both are restored.

        Everything is checked before anything is written: a checkpoint that does not fit this
        set-up raises KeyError, ValueError or TypeError starting with ``where`` and leaves the
        model, optimizer, schedule, generators and ``self`` as they were."""
        missing = [key for key in ("model", "optimizer", "epoch", "history", "rng") if key not in checkpoint]
        if missing:
            raise KeyError(f"{where}: the checkpoint lacks {missing}; it was not written by tinynet's save_checkpoint")
        if self.scheduler is not None and "scheduler" not in checkpoint:
            raise KeyError(f"{where}: the checkpoint lacks ['scheduler']: it was saved without one, and fit was given one")
        if self.scheduler is None and "scheduler" in checkpoint:
            raise ValueError(f"{where}: the checkpoint was saved with a scheduler and fit was given none; pass the same one")
        for part, owner in (("optimizer", self.optimizer), ("scheduler", self.scheduler)):
            saved_class = checkpoint.get("classes", {}).get(part)  # absent in checkpoints of earlier versions
            if owner is not None and saved_class is not None and str(saved_class) != _class_name(owner):
                raise TypeError(f"{where}: the checkpoint's {part} is a {saved_class}, fit was given a {_class_name(owner)}")
        checked = [(part, owner, _checked_part(where, part, owner, checkpoint[part]))
                   for part, owner in (("model", self.model), ("optimizer", self.optimizer),
                                       ("scheduler", self.scheduler)) if owner is not None]
        epoch = np.asarray(checkpoint["epoch"]).tolist()
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= self.epochs:
            raise ValueError(f"{where}: epoch must be an integer from 0 to epochs={self.epochs}, got {epoch!r}")
        history = _checked_history(where, checkpoint["history"], epoch)
        streams = checkpoint["rng"]
        rank, processes = (self.comm.rank, self.comm.size) if self.comm is not None else (0, 1)
        if processes > 1:
            saved = 1 + len(checkpoint.get("rng_by_rank", {}))
            if processes > saved:  # every process sees the same file and size: all raise
                raise ValueError(f"{where}: the checkpoint holds the random streams of {saved} process(es), "
                                 f"not of {processes}; resume it with at most {saved}")
            streams = checkpoint["rng_by_rank"][str(rank)] if rank > 0 else streams
        generators = self.generators()
        states = {name: _checked_rng_state(where, name, saved, generators[name])
                  for name, saved in streams.items() if name in generators}

        for part, owner, value in checked:
            owner._load_checked(value)
        self.epoch, self.history = epoch, history
        for name, rng_state in states.items():
            generators[name].bit_generator.state = rng_state
        return self


def _class_name(owner):
    """The class a checkpoint records for an optimizer or schedule: a ``DistributedOptimizer``'s
    wrapped optimizer's, so a checkpoint resumes with or without MPI."""
    return type(owner.optimizer if isinstance(owner, DistributedOptimizer) else owner).__name__


def _checked_part(where, part, owner, state_dict):
    """``owner._checked_state_dict(state_dict)``, its error prefixed with ``where`` and ``part``."""
    try:
        return owner._checked_state_dict(state_dict)
    except (KeyError, ValueError, TypeError) as err:
        message = err.args[0] if err.args else repr(err)
        raise type(err)(f"{where}: {part}: {message}") from None


def _checked_history(where, history, epochs):
    """The saved history as ``{name: [float]}``, or a ValueError: each list ``epochs`` long, except the
    step records of ``fit(record=...)``, each as long as ``record_step``."""
    recorded = np.shape(history.get(RECORD_STEP, ()))
    checked = {}
    for key, values in history.items():
        values = np.asarray(values)
        shape = recorded if is_step_record(key) else (epochs,)
        if values.shape != shape or values.dtype.kind not in "iuf":
            raise ValueError(f"{where}: history[{key!r}] must hold {shape[0] if shape else 0} numbers, "
                             f"got {values.dtype} of shape {values.shape}")
        checked[key] = [float(v) for v in values]
    return checked


def _checked_rng_state(where, name, saved, generator):
    """The saved state of generator ``name`` (JSON text), checked by loading it into a fresh bit generator."""
    try:
        state = json.loads(str(np.asarray(saved)))
        type(generator.bit_generator)().state = state
    except (TypeError, ValueError, KeyError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{where}: rng[{name!r}] is not a saved state of a {type(generator.bit_generator).__name__}: {err}") from None
    return state


def save_checkpoint(path, state):
    """Write ``state.checkpoint()`` (a ``TrainingState``) to ``path`` atomically with ``tinynet.save``.

    Load just the weights with ``model.load_state_dict(tinynet.load(path)["model"])``. In a
    data-parallel run every process calls it, rank 0 writes, and all wait until the file is there.
    """
    checkpoint = state.checkpoint()
    if state.comm is None or state.comm.is_main:
        save(checkpoint, path)
    if state.comm is not None:
        state.comm.barrier()


def load_checkpoint(path, state):
    """Restore a checkpoint written by ``save_checkpoint`` into ``state``; returns ``state``."""
    return state.restore(load(path), where=f"load_checkpoint({path!r})")


def _train_epoch(state, accuracy, threshold, bar, monitor=None):
    """One pass over the training loader; returns ``{"loss": ..., "accuracy": ...}``.
    ``monitor``: a ``tinynet.debug.StepMonitor`` to run around each step, or None."""
    model, loss_fn, optimizer, scheduler = state.model, state.loss_fn, state.optimizer, state.scheduler
    step_schedule = scheduler is not None and scheduler.interval == "step"
    running = _Running(loss_fn, accuracy, threshold)
    for step, batch in enumerate(state.train_loader, start=1):
        x, y = _split(batch, "fit")
        if monitor is not None:
            monitor.start_step(state, step)
        output = model(x)
        loss = _checked_loss(state, output, y, step)
        model.backward_parameters(loss_fn.backward())
        if monitor is not None:
            monitor.end_step(state)  # before the optimizer's step, while the gradients are there
        optimizer.step()
        optimizer.zero_grad()
        if step_schedule:
            scheduler.step()
        running.add(loss, output, y)
        if bar is not None and bar.update(1):
            # The bar just redrew: show the running values at its next redraw.
            bar.set_postfix(_postfix(running.results("fit")), refresh=False)
    return running.results("fit", state.comm)


def _checked_loss(state, output, target, step):
    """The batch loss, or NonFiniteLossError naming the epoch and step if it is NaN or inf.

    Runs before backward and the optimizer step, so the weights stay those of the last good step.
    tinynet's losses raise LossNotFiniteError on a non-finite loss (or ValueError on a NaN in a
    range-checked input); other callables may return one.
    """
    try:
        loss = float(state.loss_fn(output, target))
        cause = None
    except LossNotFiniteError as err:
        loss, cause = float("nan"), err
    except ValueError as err:
        if not _holds_non_finite(output) and not _holds_non_finite(target):
            raise  # a genuine input error (shape, dtype, label range): let it through unchanged
        loss, cause = float("nan"), err
    if math.isfinite(loss):
        return loss
    where = f"epoch {state.epoch + 1}/{state.epochs}, step {step}"
    total = len(state.train_loader) if hasattr(state.train_loader, "__len__") else None
    if total is not None:
        where += f"/{total}"
    detail = f" ({cause})" if cause is not None else f" (the loss is {loss})"
    raise NonFiniteLossError(
        f"fit: the training loss is not finite at {where}{detail}. Training stopped before this step "
        "changed any weight, so the model keeps the weights of the last good step; a diverging model "
        "usually needs a smaller learning rate.",
        epoch=state.epoch + 1, step=step, history=state.history,
    ) from cause


def _holds_non_finite(array):
    """True for a floating-point array holding a NaN or an inf (scans it: for error paths only)."""
    if getattr(array, "dtype", None) is None or array.dtype.kind != "f":
        return False
    return not bool(get_array_module(array).isfinite(array).all())


def fit(model, loss_fn, optimizer, train_loader, val_loader=None, epochs=1, callbacks=(), accuracy="argmax",
        threshold=0.5, scheduler=None, resume_from=None, progress=True, detect_anomaly=False, record=None,
        record_every=1, comm=None):
    """Train ``model`` for ``epochs`` epochs and return the per-epoch history.

    Args:
        model: a tinynet ``Module``; in training mode while it trains, in eval mode while it is
            validated; every module's mode is restored at the end.
        loss_fn: a tinynet loss; ``loss_fn(output, target)`` returns a float and
            ``loss_fn.backward()`` the gradient with respect to ``output``.
        optimizer: a tinynet optimizer over ``model.parameters()``.
        train_loader: an iterable of ``(inputs, targets)`` batches, e.g. a ``DataLoader``.
        val_loader: optional loader evaluated after every epoch (``val_loss``, ``val_accuracy``).
        epochs: the total number of epochs, counting those of a resumed checkpoint.
        callbacks: objects with any of ``on_train_begin(state)``, ``on_epoch_begin(state)``,
            ``on_epoch_end(state, logs)`` and ``on_train_end(state)`` (see ``tinynet.callbacks``);
            ``state`` is the ``TrainingState``.
        accuracy: ``"argmax"`` (class scores vs integer labels), ``"threshold"`` (one score per
            sample vs 0/1 targets) or ``None`` (no accuracy, e.g. for regression).
        threshold: the decision threshold for ``"threshold"`` (0.5 for sigmoid outputs, 0.0 for logits).
        scheduler: an optional learning-rate schedule (``tinynet.schedules``), stepped after every
            epoch or after every optimizer step, as its ``interval`` says.
        resume_from: path of a checkpoint written by ``ModelCheckpoint``/``save_checkpoint`` for
            this same set-up: training continues after its last finished epoch, bit for bit.
        progress: draw a tqdm progress bar per epoch with the running loss and accuracy.
        detect_anomaly: check every module's output and gradients in every training step, and raise
            ``tinynet.NonFiniteError`` naming the module, the epoch and the step at the first NaN
            or inf, before the optimizer changes any weight (``tinynet.detect_anomaly``).
        record: ``"grad_norms"`` to record, every ``record_every`` steps (counted over all epochs,
            from the first), the L2 norm of each parameter's gradient and of each layer's output
            into the history (``tinynet.debug.StepMonitor``; ``tinynet.plots.gradient_flow`` draws them).
        comm: a ``tinynet.distributed`` communicator for data-parallel training: every process
            calls ``fit`` alike, with a ``DistributedOptimizer`` and its own shard of the data
            (``DataLoader(..., shard=comm)``). ``fit`` first gives every process rank 0's weights
            (after ``resume_from``, which every process loads) and averages the floating-point
            buffers after every epoch (``average_buffers``); bars show on rank 0 only; the
            logs, summed over all processes, are the same everywhere; validation splits
            ``val_loader``'s batches among the processes (see ``evaluate``); checkpoints are
            written by rank 0.

    Returns:
        The history, ``{name: [one float per epoch]}`` with names ``loss``, ``accuracy``,
        ``val_loss``, ``val_accuracy`` (those that apply) and ``lr`` (the learning rate at the
        start of the epoch); with ``record``, also ``{name: [one float per recorded step]}`` for
        ``record_step``, ``grad_norm:<parameter>`` and ``output_norm:<layer>``.

    Raises:
        NonFiniteLossError: the loss became NaN or inf; the message names the epoch and step,
            and the weights are those from before that step.
        NonFiniteError: with ``detect_anomaly``, the first module whose output or gradient holds a
            NaN or an inf; the weights are those from before that step.
    """
    metrics.check_accuracy_kind("fit", accuracy)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"fit: epochs must be a non-negative integer, got {epochs!r}")
    model_params = {id(param) for param in model.parameters()}
    foreign = [index for index, param in enumerate(getattr(optimizer, "params", ())) if id(param) not in model_params]
    if foreign:
        raise ValueError(
            f"fit: the optimizer holds parameters that are not the model's (params {foreign}); "
            "build it from model.parameters() of this model"
        )
    if scheduler is not None and scheduler.optimizer not in (optimizer, getattr(optimizer, "optimizer", None)):
        raise ValueError("fit: the scheduler was built for a different optimizer than the one passed to fit")
    if comm is not None and comm.size > 1 and not (isinstance(optimizer, DistributedOptimizer) and optimizer.comm is comm):
        raise ValueError("fit: with comm, pass the optimizer as tinynet.distributed.DistributedOptimizer(optimizer, comm), "
                         f"or the processes' weights drift apart; got {type(optimizer).__name__}")
    monitor = StepMonitor(detect_anomaly, record, record_every) if detect_anomaly or record is not None else None
    state = TrainingState(model, loss_fn, optimizer, scheduler, train_loader, val_loader, int(epochs), comm)
    if resume_from is not None:
        load_checkpoint(resume_from, state)
    if comm is not None:
        broadcast_parameters(model, comm)
        progress = progress and comm.is_main

    def notify(hook, *args):
        for callback in callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(state, *args)

    notify("on_train_begin")
    with _mode(model, training=True):
        while state.epoch < state.epochs and not state.stop_training:
            notify("on_epoch_begin")
            lr = float(optimizer.lr)
            total = len(train_loader) if hasattr(train_loader, "__len__") else None
            bar = progress_bar(total, f"epoch {state.epoch + 1}/{state.epochs}", progress)
            try:
                logs = _train_epoch(state, accuracy, threshold, bar, monitor)
                if comm is not None:
                    average_buffers(model, comm)
                if val_loader is not None:
                    logs.update({f"val_{key}": value for key, value in
                                 evaluate(model, loss_fn, val_loader, accuracy, threshold, comm).items()})
                if bar is not None:
                    bar.set_postfix(_postfix(logs))
            finally:
                if monitor is not None:
                    monitor.close()
                if bar is not None:
                    bar.close()
            logs["lr"] = lr
            for key, value in logs.items():
                state.history.setdefault(key, []).append(value)
            if scheduler is not None and scheduler.interval == "epoch":
                scheduler.step()
            state.epoch += 1
            notify("on_epoch_end", logs)
    notify("on_train_end")
    return state.history


__all__ = [
    "fit", "evaluate", "predict", "NonFiniteLossError", "TrainingState", "save_checkpoint", "load_checkpoint",
]
