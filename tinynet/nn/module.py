"""Parameter, Module and Sequential: the bookkeeping every layer shares.

A layer is a ``Module`` with two methods of its own:

* ``forward(x)`` computes the output and keeps whatever ``backward`` will need
  (in ``self._cache``), and
* ``backward(grad_out)`` returns the gradient with respect to the input and adds
  the gradients of the layer's parameters into their ``.grad``.

There is no autograd tape: the chain rule is applied by ``Sequential.backward``
calling each layer's ``backward`` in reverse order.
"""
import enum
from collections import OrderedDict

import numpy as np

from .._checks import loaded_array
from ..backend import check_device, device_of, to_device


class Parameter:
    """A trainable array and its gradient.

    Attributes:
        data: the values, a NumPy (or CuPy) array.
        grad: the accumulated gradient of the loss with respect to ``data``,
            same shape and dtype, or ``None`` after ``zero_grad`` (as in PyTorch,
            where ``zero_grad`` sets gradients to ``None`` by default).
    """

    __slots__ = ("data", "grad")

    def __init__(self, data):
        self.data = data
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def accumulate_grad(self, grad):
        """Add ``grad`` to ``self.grad``; the first call after ``zero_grad`` takes ownership of ``grad``.

        Callers pass a freshly computed array that nothing else refers to,
        so no zero-filled buffer has to be written first.
        """
        if grad.shape != self.data.shape:
            raise ValueError(f"gradient of shape {grad.shape} for a parameter of shape {self.data.shape}")
        if self.grad is None:
            self.grad = grad
        else:
            self.grad += grad

    def __repr__(self):
        return f"Parameter(shape={self.shape}, dtype={self.dtype}, device={device_of(self.data)})"


class _Cache(enum.Enum):
    """The type of ``NO_FORWARD`` (an enum member stays itself through copy, deepcopy and pickle)."""
    NO_FORWARD = "NO_FORWARD"

    def __repr__(self):
        return self.value


#: A layer's cache when no forward has run since its last backward. A sentinel, not None:
#: what a forward saves may itself be None.
NO_FORWARD = _Cache.NO_FORWARD


class Module:
    """Base class of layers and models.

    Sub-classes set their parameters and sub-modules as attributes in
    ``__init__`` (after calling ``super().__init__()``); ``named_parameters``
    finds them in the order they were assigned, which gives state-dict keys
    such as ``"0.weight"`` exactly as PyTorch names them.
    """

    def __init__(self):
        self.training = True
        self._cache = NO_FORWARD
        self._output_shape = self._output_dtype = None  # of the last call, to check the gradient backward is given
        self._buffer_names = []  # of register_buffer, in the order registered

    # --- computation -----------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def backward_parameters(self, grad_out):
        """``backward(grad_out)`` for the parameters' sake: accumulate their gradients and return None.

        For a caller with no use for the gradient with respect to the input, such as a training
        step, whose input is the data. Layers that can skip computing it override this
        (``Conv2d`` skips a matrix product and col2im, ``Linear`` a matrix product), and
        ``Sequential`` passes it on to its first layer; any other layer runs ``backward``.
        """
        self.backward(grad_out)

    def __call__(self, x):
        y = self.forward(x)
        self._output_shape, self._output_dtype = getattr(y, "shape", None), getattr(y, "dtype", None)
        return y

    def _pop_cache(self, grad_out=None):
        """Return what ``forward`` saved and forget it, so memory is freed after ``backward``.

        Given ``grad_out``, first check that it has the shape and dtype of the output of the last
        call (``layer(x)``), so that a wrong gradient is refused by name rather than broadcast or
        stored in another dtype; a refused gradient leaves the cache in place.
        """
        cache = self._cache
        if cache is NO_FORWARD:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward "
                "(or twice for one forward): call the layer on an input first"
            )
        expected, got = self._output_shape, getattr(grad_out, "shape", None)
        if grad_out is not None and expected is not None and got != expected:
            raise ValueError(
                f"{type(self).__name__}.backward: expected a gradient of the output's shape {expected}, got {got}"
            )
        expected, got = self._output_dtype, getattr(grad_out, "dtype", None)
        if grad_out is not None and expected is not None and got != expected:
            raise TypeError(
                f"{type(self).__name__}.backward: expected a gradient of the output's dtype {expected}, got {got}"
            )
        self._cache = NO_FORWARD
        return cache

    # --- structure -------------------------------------------------------
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value

    def children(self):
        return [child for _, child in self.named_children()]

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return [module for _, module in self.named_modules()]

    def named_parameters(self, prefix=""):
        for name, value in vars(self).items():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(value, Parameter):
                yield full, value
            elif isinstance(value, Module):
                yield from value.named_parameters(full)

    def parameters(self):
        return [param for _, param in self.named_parameters()]

    def register_buffer(self, name, array):
        """Keep ``array`` as state that is saved and moved with the module but is not trained.

        As in PyTorch: the array becomes the attribute ``self.<name>`` (assign to it to replace
        it), is saved by ``state_dict`` under the same key a parameter would have, loaded by
        ``load_state_dict`` and moved by ``to()``, and is never seen by an optimizer, which only
        gets ``parameters()``. ``None`` registers an empty slot, left out of the state dict
        (``BatchNorm2d(track_running_stats=False)``'s ``running_mean``).
        """
        where = f"{type(self).__name__}.register_buffer"
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: buffer name must be a Python identifier, got {name!r}")
        if name in self._buffer_names:
            raise KeyError(f"{where}: buffer {name!r} already exists")
        if hasattr(self, name):
            raise KeyError(f"{where}: attribute {name!r} already exists")
        if array is not None and not (hasattr(array, "shape") and hasattr(array, "dtype")):
            raise TypeError(f"{where}: buffer {name!r} must be an array or None, got a {type(array).__name__}")
        setattr(self, name, array)
        self._buffer_names.append(name)

    def named_buffers(self, prefix=""):
        """``(key, array)`` of every buffer of this module and its sub-modules (``"0.running_mean"``)."""
        for path, module in self.named_modules(prefix):
            for name in module._buffer_names:
                array = getattr(module, name)
                if array is not None:
                    yield f"{path}.{name}" if path else name, array

    def buffers(self):
        return [array for _, array in self.named_buffers()]

    def _state_slots(self):
        """``(key, module, attribute)`` of every parameter and buffer, in PyTorch's state-dict
        order: module by module, its own parameters, then its own buffers."""
        for path, module in self.named_modules():
            prefix = f"{path}." if path else ""
            for name, value in vars(module).items():
                if isinstance(value, Parameter):
                    yield prefix + name, module, name
            for name in module._buffer_names:
                if getattr(module, name) is not None:
                    yield prefix + name, module, name

    # --- modes, gradients, devices ----------------------------------------
    def train(self, mode=True):
        for module in self.modules():
            module.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for param in self.parameters():
            param.grad = None

    def to(self, target):
        """Move every parameter and buffer to a device ('cpu' or 'cuda') or cast it to a float dtype; returns self.

        ``model.to("cuda")`` moves the model to the GPU; ``model.to(np.float64)``
        (or ``"float64"``) casts it, as ``Module.to`` does in PyTorch: floating-point
        buffers are cast too, integer ones (``num_batches_tracked``) keep their dtype.
        Gradients are dropped and saved activations forgotten.
        """
        if isinstance(target, str) and target.split(":")[0].lower() in ("cpu", "cuda"):
            device, dtype = check_device(target), None
        else:
            try:
                device, dtype = None, np.dtype(target)
            except TypeError:
                raise TypeError(
                    f"Module.to: expected a device ('cpu' or 'cuda') or a float dtype, got {target!r}"
                ) from None
            if dtype.kind != "f":
                raise TypeError(f"Module.to: parameters must be floating point, got dtype {dtype}")
        for module in self.modules():
            module._cache, module._output_shape, module._output_dtype = NO_FORWARD, None, None
        for param in self.parameters():
            if device is not None:
                param.data = to_device(param.data, device)
            else:
                param.data = param.data.astype(dtype, copy=False)
            param.grad = None
        for module in self.modules():
            for name in module._buffer_names:
                array = getattr(module, name)
                if array is None:
                    continue
                if device is not None:
                    setattr(module, name, to_device(array, device))
                elif array.dtype.kind == "f":
                    setattr(module, name, array.astype(dtype, copy=False))
        return self

    @property
    def device(self):
        """The device of the first parameter ('cpu' for a module without parameters)."""
        for param in self.parameters():
            return device_of(param.data)
        return "cpu"

    # --- state ------------------------------------------------------------
    def state_dict(self):
        """Return an ordered ``{name: array}`` of the parameters and buffers (the arrays themselves, not copies)."""
        return OrderedDict((key, _state_array(module, name)) for key, module, name in self._state_slots())

    def load_state_dict(self, state_dict):
        """Copy ``state_dict``'s arrays into the parameters and buffers, keeping their dtype and device.

        Raises KeyError listing missing and unexpected keys, ValueError naming the key and both
        shapes when a shape differs, and TypeError naming the key when its values are not real
        numbers. Nothing is changed unless every entry is right.
        """
        return self._load_checked(self._checked_state_dict(state_dict))

    def _checked_state_dict(self, state_dict):
        """Check ``state_dict`` against ``self.state_dict()`` and return its entries converted to
        the current entries' dtype and device (new arrays), changing nothing; ``_load_checked``
        then writes them. ``fit(resume_from=...)`` checks a whole checkpoint this way first."""
        where = f"Error loading state_dict into {type(self).__name__}"
        current = self.state_dict()
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(f"{where}: expected a dict of arrays, got a {type(state_dict).__name__}")
        missing = [key for key in current if key not in state_dict]
        unexpected = [key for key in state_dict if key not in current]
        if missing or unexpected:
            raise KeyError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        return OrderedDict((key, loaded_array(where, key, state_dict[key], like)) for key, like in current.items())

    def _load_checked(self, arrays):
        """Write what ``_checked_state_dict`` returned (parameters' data, buffers themselves); returns self."""
        for key, module, name in self._state_slots():
            slot = getattr(module, name)
            if isinstance(slot, Parameter):
                slot.data = arrays[key]
            else:
                setattr(module, name, arrays[key])
        return self

    # --- printing ---------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


def _state_array(module, name):
    """The array a state-dict entry holds: a parameter's data, or the buffer itself."""
    value = getattr(module, name)
    return value.data if isinstance(value, Parameter) else value


class Sequential(Module):
    """Layers applied one after another; ``backward`` runs them in reverse.

    Example::

        model = Sequential(Linear(784, 512), ReLU(), Linear(512, 10))
        logits = model(x)                    # (N, 784) -> (N, 10)
        grad_x = model.backward(grad_logits) # (N, 10) -> (N, 784)
        model.backward_parameters(grad_logits)  # the same parameter gradients, no grad_x
    """

    def __init__(self, *layers):
        super().__init__()
        for index, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {index} is a {type(layer).__name__}, not a tinynet Module")
            setattr(self, str(index), layer)

    @property
    def layers(self):
        return self.children()

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, index):
        layers = self.layers
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad_out):
        for layer in reversed(self.layers):
            grad_out = layer.backward(grad_out)
        return grad_out

    def backward_parameters(self, grad_out):
        layers = self.layers
        for layer in reversed(layers[1:]):
            grad_out = layer.backward(grad_out)
        if layers:
            layers[0].backward_parameters(grad_out)
