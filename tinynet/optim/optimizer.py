"""The base class of tinynet's optimizers.

It keeps what every optimizer shares: the list of parameters, hyperparameters
checked once in ``__init__``, per-parameter state that follows its parameter
to another device or dtype, a scratch buffer that spares the update rules
from allocating temporaries, and flat state dicts for checkpoints.
A subclass writes only its checks (``_check_hyperparameters``) and its
update rule (``_update``).
"""
import numbers

import numpy as np

from .._checks import loaded_array
from ..backend import check_device, device_of, get_array_module, to_device
from ..nn.module import Module, Parameter


def as_float(where, name, value):
    """Return ``value`` as a Python float, or raise a TypeError naming ``where`` and ``name``.

    Hyperparameters are kept as Python floats because NumPy 2 (NEP 50) lets a
    ``np.float64`` scalar upcast a float32 array, while a Python float does not.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    return float(value)


def as_bool(where, name, value):
    """Return ``value`` as a Python bool, or raise a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r}")
    return bool(value)


def require(where, condition, message):
    """Raise ``ValueError("where: message")`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{where}: {message}")


def _python_value(value):
    """A saved scalar (Python, NumPy scalar or 0-d array, as ``np.load`` returns it) or
    sequence as a Python value: float, int, bool or list."""
    return np.asarray(value).tolist()


class Optimizer:
    """Updates a list of parameters from their gradients.

    Args:
        params: an iterable of ``tinynet.nn.Parameter``, e.g. ``model.parameters()``.
        hyperparameters: the subclass's hyperparameters by name. After the checks
            they are plain attributes (``optimizer.lr``), which a learning-rate
            schedule may set between steps.

    Attributes:
        params: the list of parameters, in the order given.
        state: one dict per parameter (same order) holding its optimizer state,
            e.g. ``{"momentum_buffer": array}``; empty until the parameter's first update.
        step_count: how many times ``step()`` has run.

    State arrays have their parameter's shape, dtype and device.
    """

    #: Names of the hyperparameters, in the order ``__repr__`` and ``state_dict`` list them.
    hyperparameters = ("lr",)
    #: Names of per-parameter state entries that are Python ints rather than arrays.
    scalar_state = ()

    def __init__(self, params, **hyperparameters):
        where = type(self).__name__
        if isinstance(params, (Parameter, Module)) or not hasattr(params, "__iter__"):
            raise TypeError(
                f"{where}: params must be an iterable of Parameters such as model.parameters(), "
                f"got a {type(params).__name__}"
            )
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{where}: got an empty parameter list; pass model.parameters() of a model that has parameters")
        for index, param in enumerate(self.params):
            if not isinstance(param, Parameter):
                raise TypeError(f"{where}: params[{index}] is a {type(param).__name__}, not a tinynet Parameter")
        if len({id(param) for param in self.params}) != len(self.params):
            raise ValueError(f"{where}: some parameters appear more than once in params; each would be updated twice per step")
        for name, value in self._check_hyperparameters(hyperparameters).items():
            setattr(self, name, value)
        self.step_count = 0
        self.state = [{} for _ in self.params]
        self._workspace = {}

    # --- what subclasses provide ---------------------------------------------
    def _check_hyperparameters(self, hyperparameters):
        """Return the hyperparameters converted to Python values, or raise TypeError/ValueError."""
        raise NotImplementedError

    def _state_names(self, hyperparameters):
        """The names of the per-parameter state these hyperparameters need."""
        raise NotImplementedError

    def _update(self, param, state):
        """Update ``param.data`` in place from ``param.grad`` (not None) and ``state``."""
        raise NotImplementedError

    # --- training ------------------------------------------------------------
    def step(self):
        """Update every parameter whose ``.grad`` is not None; the others are left untouched.

        Raises ValueError (shape) or TypeError (dtype, device) naming the parameter's index when
        a gradient does not match its parameter, before any parameter is updated."""
        where = f"{type(self).__name__}.step"
        for index, param in enumerate(self.params):
            grad = param.grad
            if grad is None:
                continue
            if getattr(grad, "shape", None) != param.shape:
                got = getattr(grad, "shape", type(grad).__name__)
                raise ValueError(f"{where}: the gradient of params[{index}] has shape {got}, the parameter {param.shape}")
            if grad.dtype != param.dtype or type(grad) is not type(param.data):
                raise TypeError(f"{where}: the gradient of params[{index}] is a {grad.dtype} {type(grad).__name__}, "
                                f"the parameter a {param.dtype} {type(param.data).__name__}")
        for param, state in zip(self.params, self.state):
            if param.grad is not None:
                self._update(param, self._follow(param, state))
        self.step_count += 1

    def zero_grad(self):
        """Set every parameter's gradient to None (the next backward pass then writes it afresh)."""
        for param in self.params:
            param.grad = None

    def _scratch(self, param, count):
        """Return ``count`` scratch arrays shaped like ``param``.

        They are views of one buffer per device and dtype, reused by every
        parameter and every step, so an update rule needs no temporaries.
        Their contents are garbage until written.
        """
        data = param.data
        key = (device_of(data), data.dtype)
        size = data.size
        buffer = self._workspace.get(key)
        if buffer is None or buffer.size < count * size:
            buffer = self._workspace[key] = get_array_module(data).empty(count * size, dtype=data.dtype)
        return [buffer[k * size:(k + 1) * size].reshape(data.shape) for k in range(count)]

    def _follow(self, param, state):
        """Move ``state``'s arrays to ``param``'s device and dtype if the parameter moved
        (``model.to("cuda")`` or ``model.to(np.float64)`` after some steps); return ``state``."""
        data = param.data
        for name, value in state.items():
            if name not in self.scalar_state and (type(value) is not type(data) or value.dtype != data.dtype):
                state[name] = to_device(value, device_of(data)).astype(data.dtype, copy=False)
        return state

    def to(self, device):
        """Move the optimizer state to ``device`` ('cpu' or 'cuda'); returns self.

        Call it after ``model.to(device)``. ``step()`` also moves the state of a
        parameter that changed device, so forgetting this costs one copy, not an error.
        """
        device = check_device(device)
        for state in self.state:
            for name, value in state.items():
                if name not in self.scalar_state:
                    state[name] = to_device(value, device)
        self._workspace.clear()
        return self

    # --- checkpoints ---------------------------------------------------------
    def state_dict(self):
        """Return a snapshot of the optimizer as a flat ``{str: array or Python scalar}`` dict.

        Keys: ``"step"`` (the step count), each hyperparameter by name (``"lr"``,
        ``"momentum"``, ``"betas"`` as an array of two, ...), and ``"state.<i>.<name>"`` for
        the state of parameter ``i`` (``"state.0.momentum_buffer"``, ``"state.3.exp_avg"``).
        Arrays are copies on the parameters' device, so later steps do not change the
        snapshot. ``tinynet.save`` writes the dict to ``.npz`` as it is.
        """
        result = {"step": self.step_count}
        for name in self.hyperparameters:
            value = getattr(self, name)
            # A pair such as Adam's betas becomes a float64 array (exact), which .npz can hold.
            result[name] = np.array(value) if isinstance(value, tuple) else value
        for index, state in enumerate(self.state):
            for name, value in state.items():
                result[f"state.{index}.{name}"] = value if name in self.scalar_state else value.copy()
        return result

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` (also after a trip through ``.npz``), exactly.

        Hyperparameters are checked as in ``__init__``; arrays are copied onto each
        parameter's device and dtype. Raises KeyError listing missing and unexpected
        keys, ValueError naming the key and both shapes when a shape differs, and
        TypeError naming the key of an array that holds no real numbers.
        Nothing changes unless everything matches. Returns self.
        """
        return self._load_checked(self._checked_state_dict(state_dict))

    def _checked_state_dict(self, state_dict):
        """Check a ``state_dict()`` and return ``(hyperparameters, step_count, state)`` converted
        for this optimizer, changing nothing; ``_load_checked`` then installs them."""
        where = type(self).__name__
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"Error loading state_dict into {where}: expected a dict, got a {type(state_dict).__name__}")
        required = ("step",) + self.hyperparameters
        missing = [key for key in required if key not in state_dict]
        if missing:
            raise KeyError(f"Error loading state_dict into {where}: missing keys {missing}")
        hyperparameters = self._check_hyperparameters(
            {name: _python_value(state_dict[name]) for name in self.hyperparameters}
        )
        step_count = self._as_count("step", state_dict["step"])

        # Group "state.<i>.<name>" keys by parameter; anything else is unexpected.
        names = self._state_names(hyperparameters)
        loaded = {}
        unexpected = []
        for key, value in state_dict.items():
            if key in required:
                continue
            parts = key.split(".")
            if (
                len(parts) == 3 and parts[0] == "state" and parts[1].isdigit()
                and int(parts[1]) < len(self.params) and parts[2] in names
            ):
                loaded.setdefault(int(parts[1]), {})[parts[2]] = value
            else:
                unexpected.append(key)
        # A parameter's state is all there or absent (it is created on the first update).
        missing = [f"state.{i}.{name}" for i, state in sorted(loaded.items()) for name in names if name not in state]
        if missing or unexpected:
            raise KeyError(
                f"Error loading state_dict into {where}: missing keys {missing}, unexpected keys {unexpected}"
            )
        state = [{} for _ in self.params]
        for index, entries in sorted(loaded.items()):
            for name in names:  # in the order the update rule creates them, as state_dict() lists them
                key = f"state.{index}.{name}"
                state[index][name] = (
                    self._as_count(key, entries[name]) if name in self.scalar_state
                    else loaded_array(f"Error loading state_dict into {where}", key, entries[name], self.params[index].data)
                )
        return hyperparameters, step_count, state

    def _load_checked(self, checked):
        """Install what ``_checked_state_dict`` returned; returns self."""
        hyperparameters, self.step_count, self.state = checked
        for name, value in hyperparameters.items():
            setattr(self, name, value)
        self._workspace.clear()
        return self

    def _as_count(self, key, value):
        """A saved step count as a Python int, or a ValueError naming the key."""
        count = _python_value(value)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"Error loading state_dict into {type(self).__name__}: {key} must be a non-negative integer, got {value!r}")
        return count

    def __repr__(self):
        settings = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.hyperparameters)
        return f"{type(self).__name__}({settings})"
