"""``summary(model, input_shape)``: a table of a model's layers, their shapes, sizes and costs.

    >>> print(tinynet.summary(model, (60, 1, 28, 28)))
    Layer (type)          Output shape       Params   Mult-adds     Output     im2col
    Sequential            (60, 10)          ...

One row per module, in the order of ``model.named_modules()`` (nested modules indented, as
PyTorch's repr nests them): the output shape, the parameters (counting those of children), the
multiply-adds of the forward pass, the bytes of the output, and for convolutions the bytes of
im2col columns (or the padded input rows that take their place in the shifted products of the
numba kernel) the kernels allocate for that batch (``tinynet.kernels.im2col_workspace_bytes``).
The shapes come from one forward pass on zeros, run in the mode the model is in; afterwards every
module's saved state, every mode and every random generator the pass drew from are as before.
"""
import math

import numpy as np

from . import kernels, nn
from .backend import to_device
from .debug import watching
from .rng import default_generator


def _linear_mult_adds(module, x, y):
    """One multiply-add per weight per sample: N * in_features * out_features."""
    return math.prod(y.shape[:-1]) * module.in_features * module.out_features


def _conv_mult_adds(module, x, y):
    """One multiply-add per weight of a group per output value: N*O*OH*OW * C/groups*KH*KW."""
    return y.size * (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]


def _conv_workspace(module, x, y):
    return kernels.im2col_workspace_bytes(x, module.weight.data, module.stride, module.padding, module.dilation,
                                          module.groups, keep_columns=module.training)


#: Multiply-adds of one forward call, by layer type; layers not listed do none
#: (activations, pooling and reshaping compare, add or copy but do not multiply-add).
MULT_ADDS = {nn.Linear: _linear_mult_adds, nn.Conv2d: _conv_mult_adds}
#: Bytes of working memory a forward call allocates besides its output, by layer type.
WORKSPACE = {nn.Conv2d: _conv_workspace}


class _Calls:
    """An instrument (``tinynet.debug.watching``) noting, per module, its last call's shapes and
    the multiply-adds and workspace of all its calls."""

    def __init__(self):
        self.calls = {}

    def model_forward_begins(self, model):
        pass

    def forward_done(self, module, x, y):
        row = self.calls.setdefault(id(module), {"mult_adds": 0, "workspace_bytes": 0})
        row["input_shape"], row["output_shape"] = tuple(x.shape), tuple(y.shape)
        row["output_bytes"] = int(y.nbytes)
        row["mult_adds"] += int(MULT_ADDS.get(type(module), lambda *_: 0)(module, x, y))
        workspace = int(WORKSPACE.get(type(module), lambda *_: 0)(module, x, y))
        row["workspace_bytes"] = max(row["workspace_bytes"], workspace)

    def backward_done(self, module, grad_in):
        pass


def _arrays(value):
    """Every array in a module's saved state (nested tuples, lists and dicts)."""
    if hasattr(value, "nbytes") and hasattr(value, "shape"):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _arrays(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _arrays(item)


def _saved_bytes(model):
    """Bytes of the arrays the modules keep for backward, each buffer once, parameters excluded."""
    parameters = {id(p.data) for p in model.parameters()}
    buffers = {}
    for module in model.modules():
        for array in _arrays(module._cache):
            while getattr(array, "base", None) is not None and hasattr(array.base, "nbytes"):
                array = array.base  # a view holds its whole buffer
            if id(array) not in parameters:
                buffers[id(array)] = int(array.nbytes)
    return sum(buffers.values())


def _generators(model):
    """Every NumPy generator a forward pass may draw from: tinynet's default one, modules' own."""
    found = [default_generator()]
    found += [m.rng for m in model.modules() if isinstance(getattr(m, "rng", None), np.random.Generator)]
    return found


class Summary:
    """What ``summary`` returns: ``rows`` (a list of dicts, one per module) and ``totals`` (a dict);
    ``str()`` of it is the table.

    Each row: ``name`` (the module's path, ``""`` for the model), ``type``, ``depth``,
    ``input_shape`` and ``output_shape`` (of its last call; None if the pass did not call it),
    ``params`` (its parameters' and its children's entries), ``mult_adds`` (its own and its
    children's, over all its calls), ``output_bytes`` and ``workspace_bytes`` (for convolutions,
    the im2col columns).

    ``totals``: ``params`` (entries of all parameters, each counted once), ``param_bytes``,
    ``mult_adds`` (of one forward pass), ``saved_bytes`` (what the forward pass keeps for backward:
    the activation memory of a training step when the model is in training mode, the im2col
    columns included where the kernels keep them: the reference kernels' do),
    ``peak_workspace_bytes`` (the largest workspace of one layer).
    """

    def __init__(self, rows, totals):
        self.rows, self.totals = rows, totals

    def __str__(self):
        header = ("Layer (type)", "Output shape", "Params", "Mult-adds", "Output", "im2col")
        lines = [(
            "  " * row["depth"] + (f"{row['name']} ({row['type']})" if row["name"] else row["type"]),
            "-" if row["output_shape"] is None else str(row["output_shape"]),
            f"{row['params']:,}", f"{row['mult_adds']:,}", _bytes(row["output_bytes"]),
            _bytes(row["workspace_bytes"]) if row["workspace_bytes"] else "",
        ) for row in self.rows]
        widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]

        def format_line(cells):
            return "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths)))
        rule = "-" * len(format_line(header))
        t = self.totals
        return "\n".join([format_line(header), rule] + [format_line(line) for line in lines] + [
            rule,
            f"Parameters: {t['params']:,} ({_bytes(t['param_bytes'])})",
            f"Forward multiply-adds: {t['mult_adds']:,}",
            f"Kept for backward by one forward pass: {_bytes(t['saved_bytes'])}",
            f"Peak im2col workspace: {_bytes(t['peak_workspace_bytes'])}",
        ])

    __repr__ = __str__


def _bytes(count):
    for unit in ("B", "KiB", "MiB"):
        if count < 1024 or unit == "MiB":
            return f"{count:,} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024


def summary(model, input_shape, dtype=np.float32):
    """Tabulate ``model``'s layers for a batch of ``input_shape`` (batch axis included, as
    torchinfo's ``input_size``): ``summary(model, (60, 1, 28, 28))``. Returns a ``Summary``;
    print it for the table, read ``.rows`` and ``.totals`` for the numbers.

    Runs one forward pass on zeros of ``dtype`` on the model's device, in the mode the model is
    in (training mode: the costs of a training step). The modules' saved state, their modes and
    the random generators (tinynet's default one and modules' own; not CuPy's) are restored.

    Raises:
        ValueError: ``input_shape`` is not a sequence of non-negative integers.
        TypeError: ``dtype`` is not a floating-point type.
        The layers' own errors if the model does not take that input.
    """
    if (not isinstance(input_shape, (tuple, list)) or not input_shape
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in input_shape)):
        raise ValueError(f"summary: input_shape must be a non-empty tuple of non-negative integers "
                         f"(batch axis first, e.g. (60, 1, 28, 28)), got {input_shape!r}")
    if np.dtype(dtype).kind != "f":
        raise TypeError(f"summary: dtype must be a floating-point type, got {np.dtype(dtype)}")
    x = to_device(np.zeros(tuple(int(d) for d in input_shape), dtype=dtype), model.device)
    modules = model.modules()
    saved = [(module._cache, module._output_shape, module._output_dtype) for module in modules]
    generators = _generators(model)
    states = [g.bit_generator.state for g in generators]
    try:
        with watching(_Calls()) as calls:
            model(x)
        saved_bytes = _saved_bytes(model)
    finally:
        for module, (cache, output_shape, output_dtype) in zip(modules, saved):
            module._cache, module._output_shape, module._output_dtype = cache, output_shape, output_dtype
        for generator, state in zip(generators, states):
            generator.bit_generator.state = state

    rows = []
    for path, module in model.named_modules():
        own = calls.calls.get(id(module), {})
        rows.append({
            "name": path, "type": type(module).__name__, "depth": path.count(".") + 1 if path else 0,
            "input_shape": own.get("input_shape"), "output_shape": own.get("output_shape"),
            "params": sum(p.data.size for p in {id(p): p for p in module.parameters()}.values()),
            "mult_adds": sum(calls.calls.get(id(m), {}).get("mult_adds", 0) for m in _unique(module.modules())),
            "output_bytes": own.get("output_bytes", 0), "workspace_bytes": own.get("workspace_bytes", 0),
        })
    parameters = list({id(p): p for p in model.parameters()}.values())
    totals = {
        "params": sum(p.data.size for p in parameters),
        "param_bytes": sum(p.data.nbytes for p in parameters),
        "mult_adds": rows[0]["mult_adds"],
        "saved_bytes": saved_bytes,
        "peak_workspace_bytes": max(row["workspace_bytes"] for row in rows),
    }
    return Summary(rows, totals)


def _unique(modules):
    return list({id(m): m for m in modules}.values())


__all__ = ["summary", "Summary", "MULT_ADDS", "WORKSPACE"]
