"""Instruments that watch a network at work: the first non-finite value, and per-layer norms.

``detect_anomaly()`` checks every module's output in forward and every gradient in backward, and
raises ``NonFiniteError`` at the first NaN or inf, naming the module by its path in the model::

    with tinynet.detect_anomaly():
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())   # NonFiniteError: "3" (Linear) in backward, step 1: ...

``fit(..., detect_anomaly=True)`` does the same for every training step (the error then names the
epoch and step, and comes before the optimizer changes any weight), and
``fit(..., record="grad_norms", record_every=k)`` records, every k steps, the L2 norm of each
parameter's gradient and of each layer's output into the history (``tinynet.plots.gradient_flow``
draws them).

How: while an instrument is on, ``Module.__call__`` and the ``backward`` method of every
``Module`` class are replaced by versions that call the instruments after the original has run;
when the last instrument is off the originals are put back. So when they are off the layers run
exactly the code they run without them (``fit`` adds two ``is not None`` tests per step; the
step's time was measured unchanged: ``benchmarks/instrument_cost.py``). While one is on, the
replacement is process-wide (every model in every thread is watched), and a ``Module`` class
defined inside the ``with`` block is not watched.
"""
import contextlib
import functools
import math

from .backend import get_array_module
from .nn.module import Module, Parameter


class NonFiniteError(FloatingPointError, RuntimeError):
    """A module produced a NaN or an inf: in its output (forward), or in the gradient it returned
    or added to one of its parameters (backward).

    Attributes:
        path: the module's path in the model (``"3"``, ``"features.0"``; ``""`` for the model itself).
        module_type: the module's class name.
        phase: ``"forward"`` or ``"backward"``.
        step: which step: the number of forward passes of the whole model since the detector was
            turned on (1 for the first), or ``fit``'s ``"epoch e/E, step s/S"``.
        bad, total: how many entries are NaN or inf, of how many.
    """

    def __init__(self, message, path, module_type, phase, step, bad, total):
        super().__init__(message)
        self.path, self.module_type, self.phase = path, module_type, phase
        self.step, self.bad, self.total = step, bad, total


# --- replacing Module.__call__ and every backward while an instrument is on ----------------------

_instruments = []  # the observers that are on, in the order they were turned on
_originals = {}  # (class, method name) -> the original function, while replaced
_model = {"depth": 0, "paths": {}}  # paths of the modules of the model of the outermost call


def _module_classes():
    """Module and every subclass of it defined so far."""
    found, stack = [], [Module]
    while stack:
        cls = stack.pop()
        if cls not in found:
            found.append(cls)
            stack.extend(cls.__subclasses__())
    return found


def _watched_call(call):
    @functools.wraps(call)
    def __call__(self, x):
        outermost = _model["depth"] == 0
        if outermost:  # a forward pass of a whole model: learn its modules' names
            _model["paths"] = {id(module): path for path, module in self.named_modules()}
            for instrument in list(_instruments):
                instrument.model_forward_begins(self)
        _model["depth"] += 1
        try:
            y = call(self, x)
        finally:
            _model["depth"] -= 1
        for instrument in list(_instruments):
            instrument.forward_done(self, x, y)
        return y
    return __call__


def _watched_backward(backward):
    @functools.wraps(backward)
    def watched(self, grad_out, *args, **kwargs):
        grad_in = backward(self, grad_out, *args, **kwargs)
        for instrument in list(_instruments):
            instrument.backward_done(self, grad_in)
        return grad_in
    return watched


def _replace_methods():
    _originals[Module, "__call__"] = Module.__call__
    Module.__call__ = _watched_call(Module.__call__)
    for cls in _module_classes():
        if "backward" in vars(cls):
            _originals[cls, "backward"] = vars(cls)["backward"]
            cls.backward = _watched_backward(vars(cls)["backward"])


def _restore_methods():
    for (cls, name), function in _originals.items():
        setattr(cls, name, function)
    _originals.clear()
    _model.update(depth=0, paths={})


@contextlib.contextmanager
def watching(instrument):
    """Call ``instrument``'s ``model_forward_begins(model)``, ``forward_done(module, x, y)`` and
    ``backward_done(module, grad_input)`` for every module while the block runs."""
    if not _instruments:
        _replace_methods()
    _instruments.append(instrument)
    try:
        yield instrument
    finally:
        _instruments.remove(instrument)
        if not _instruments:
            _restore_methods()


def module_path(module):
    """The path of ``module`` in the model of the last outermost forward call, or None."""
    return _model["paths"].get(id(module))


def describe(module):
    """``"3" (Linear)``, or ``the model (Sequential)`` for the model itself."""
    path = module_path(module)
    if path == "":
        return f"the model ({type(module).__name__})"
    name = "?" if path is None else f'"{path}"'
    return f"{name} ({type(module).__name__})"


# --- the first non-finite value -------------------------------------------------------------------

def count_non_finite(array):
    """``(NaN count, inf count)`` of a floating-point array; ``(0, 0)`` for anything else."""
    if getattr(array, "dtype", None) is None or array.dtype.kind not in "fc":
        return 0, 0
    xp = get_array_module(array)
    if bool(xp.isfinite(array).all()):
        return 0, 0
    return int(xp.isnan(array).sum()), int(xp.isinf(array).sum())


def own_parameters(module):
    """``[(full name, Parameter)]`` of the parameters ``module`` holds itself (not its children's)."""
    path = module_path(module)
    prefix = f"{path}." if path else ""
    return [(prefix + name, value) for name, value in vars(module).items() if isinstance(value, Parameter)]


class AnomalyDetector:
    """The instrument behind ``detect_anomaly``: raises ``NonFiniteError`` at the first NaN or inf.

    ``where``, if set (``fit`` sets it to ``"epoch e/E, step s/S"``), names the step in messages;
    otherwise the step is the number of forward passes of a whole model since the detector was on.
    """

    def __init__(self):
        self.forward_passes = 0
        self.where = None

    def step(self):
        return self.where if self.where is not None else self.forward_passes

    def model_forward_begins(self, model):
        self.forward_passes += 1

    def forward_done(self, module, x, y):
        nan, inf = count_non_finite(y)
        if nan or inf:
            causes = [f'its parameter "{name}" holds {_counts(*count_non_finite(p.data))}'
                      for name, p in own_parameters(module) if any(count_non_finite(p.data))]
            hint = "; ".join(causes) if causes else "its input was finite (an overflow, a log or division of zero?)"
            self._raise(module, "forward", f"the output (shape {tuple(y.shape)}) holds {_counts(nan, inf)}",
                        nan + inf, y.size, hint)

    def backward_done(self, module, grad_in):
        nan, inf = count_non_finite(grad_in)
        if nan or inf:
            self._raise(module, "backward",
                        f"the gradient it returns (shape {tuple(grad_in.shape)}) holds {_counts(nan, inf)}",
                        nan + inf, grad_in.size, "the gradient it was given was finite")
        for name, param in own_parameters(module):
            nan, inf = count_non_finite(param.grad)
            if nan or inf:
                self._raise(module, "backward", f'the gradient of its parameter "{name}" holds {_counts(nan, inf)}',
                            nan + inf, param.grad.size, "the gradient it was given was finite")

    def _raise(self, module, phase, what, bad, total, hint):
        step = self.step()
        where = step if isinstance(step, str) else f"step {step}"
        raise NonFiniteError(f"{describe(module)} in {phase}, {where}: {what} of {total} entries; {hint}",
                             path=module_path(module), module_type=type(module).__name__, phase=phase,
                             step=step, bad=bad, total=total)


def _counts(nan, inf):
    return f"{nan} NaN and {inf} inf"


@contextlib.contextmanager
def detect_anomaly():
    """Check every module's output and gradients while the block runs; raise ``NonFiniteError``
    (naming the module's path, the phase, the step and how many entries are bad) at the first
    NaN or inf. Costs nothing once the block is left. Yields the ``AnomalyDetector``.

    Example::

        with tinynet.detect_anomaly():
            loss = loss_fn(model(x), y)
            model.backward(loss_fn.backward())
    """
    with watching(AnomalyDetector()) as detector:
        yield detector


# --- norms per layer --------------------------------------------------------------------------------

def l2_norm(array):
    """sqrt(sum(array**2)), summed in float64, as a Python float."""
    xp = get_array_module(array)
    return math.sqrt(float(xp.sum(xp.square(array, dtype=xp.float64))))


class OutputNorms:
    """An instrument that records the L2 norm of the output of every module without children,
    ``{path: norm}``, over the forward passes it watches (the last one wins)."""

    def __init__(self):
        self.norms = {}

    def model_forward_begins(self, model):
        pass

    def forward_done(self, module, x, y):
        path = module_path(module)
        if path is not None and not any(True for _ in module.named_children()):
            self.norms[path] = l2_norm(y)

    def backward_done(self, module, grad_in):
        pass


#: The statistics ``fit(record=...)`` can record.
RECORDS = ("grad_norms",)
#: History keys of a recording run: the recorded steps, and the prefixes of the per-tensor norms.
RECORD_STEP, GRAD_NORM, OUTPUT_NORM = "record_step", "grad_norm:", "output_norm:"


def is_step_record(key):
    """True for the history keys ``StepMonitor.end_step`` writes: one value per recorded step, not per epoch."""
    return key == RECORD_STEP or key.startswith((GRAD_NORM, OUTPUT_NORM))


class StepMonitor:
    """What ``fit`` runs around a training step when ``detect_anomaly`` or ``record`` is asked for.

    ``start_step`` comes before the forward pass, ``end_step`` after backward and before the
    optimizer's step (while the gradients are there), ``close`` when training ends or fails.
    On a recorded step (steps 1, 1 + every, 1 + 2*every, ... counted over all epochs),
    ``end_step`` appends to the history ``record_step`` (the step), ``grad_norm:<parameter>``
    for every parameter and ``output_norm:<layer>`` for every layer without children.
    """

    def __init__(self, detect_anomaly=False, record=None, record_every=1):
        if record is not None and record not in RECORDS:
            raise ValueError(f"fit: record must be None or one of {RECORDS}, got {record!r}")
        if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every <= 0:
            raise ValueError(f"fit: record_every must be a positive integer, got {record_every!r}")
        self.detect_anomaly, self.record, self.record_every = bool(detect_anomaly), record, record_every
        self.steps = None
        self._stack = contextlib.ExitStack()
        self._norms = None

    def start_step(self, state, step):
        if self.steps is None:  # steps of earlier epochs (of a resumed run) count too
            total = len(state.train_loader) if hasattr(state.train_loader, "__len__") else 0
            self.steps = state.epoch * total
        self.steps += 1
        if self.detect_anomaly:
            detector = self._stack.enter_context(detect_anomaly())
            total = len(state.train_loader) if hasattr(state.train_loader, "__len__") else None
            detector.where = f"epoch {state.epoch + 1}/{state.epochs}, step {step}" + (f"/{total}" if total else "")
        if self.record is not None and (self.steps - 1) % self.record_every == 0:
            self._norms = self._stack.enter_context(watching(OutputNorms()))

    def end_step(self, state):
        self._stack.close()
        if self._norms is not None:
            history = state.history
            history.setdefault(RECORD_STEP, []).append(float(self.steps))
            for name, param in state.model.named_parameters():
                norm = math.nan if param.grad is None else l2_norm(param.grad)
                history.setdefault(GRAD_NORM + name, []).append(norm)
            for path, norm in self._norms.norms.items():
                history.setdefault(OUTPUT_NORM + path, []).append(norm)
            self._norms = None

    def close(self):
        self._stack.close()
        self._norms = None


__all__ = ["NonFiniteError", "detect_anomaly", "AnomalyDetector", "StepMonitor", "watching", "l2_norm"]
