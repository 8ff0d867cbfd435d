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

from ..backend import check_device, device_of, get_array_module, to_device


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
        self._output_shape = None  # of the last call, to check the gradient backward is given
        self._output_dtype = None

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
        silently cast.
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
        """Move every parameter to a device ('cpu' or 'cuda') or cast it to a float dtype; returns self.

        ``model.to("cuda")`` moves the model to the GPU; ``model.to(np.float64)``
        (or ``"float64"``) casts it, as ``Module.to`` does in PyTorch.
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
            module._cache, module._output_shape = NO_FORWARD, None
        for param in self.parameters():
            if device is not None:
                param.data = to_device(param.data, device)
            else:
                param.data = param.data.astype(dtype, copy=False)
            param.grad = None
        return self

    @property
    def device(self):
        """The device of the first parameter ('cpu' for a module without parameters)."""
        for param in self.parameters():
            return device_of(param.data)
        return "cpu"

    # --- state ------------------------------------------------------------
    def state_dict(self):
        """Return an ordered ``{name: array}`` of the parameters (the arrays themselves, not copies)."""
        return OrderedDict((name, param.data) for name, param in self.named_parameters())

    def load_state_dict(self, state_dict):
        """Copy ``state_dict``'s arrays into the parameters, keeping their dtype and device.

        Raises KeyError listing missing and unexpected keys, and ValueError
        naming the key and both shapes when a shape differs. Nothing is changed
        unless every key and shape matches.
        """
        params = OrderedDict(self.named_parameters())
        missing = [key for key in params if key not in state_dict]
        unexpected = [key for key in state_dict if key not in params]
        if missing or unexpected:
            raise KeyError(
                f"Error loading state_dict into {type(self).__name__}: "
                f"missing keys {missing}, unexpected keys {unexpected}"
            )
        for key, param in params.items():
            shape = tuple(np.shape(state_dict[key]))
            if shape != param.shape:
                raise ValueError(
                    f"Error loading state_dict into {type(self).__name__}: size mismatch for {key}: "
                    f"copying a parameter of shape {shape}, the parameter in the model has shape {param.shape}"
                )
        for key, param in params.items():
            value = to_device(state_dict[key], device_of(param.data))
            xp = get_array_module(param.data)
            param.data = xp.array(value, dtype=param.dtype, copy=True)
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
