"""The 2-D convolution layer."""
import numpy as np

from .. import init
from .._checks import check_float, check_ndim, float_dtype, int_pair, positive_int
from ..backend import check_same_device
from ..functional.conv import conv2d_backward, conv2d_forward
from ..kernels import column_count, output_hw
from .module import Parameter
from .weighted import WeightedLayer


class Conv2d(WeightedLayer):
    """2-D cross-correlation over an (N, C, H, W) batch, computed as im2col and one matrix product.

    ``y[n, o] = bias[o] + sum over c in o's group, i, j of
    weight[o, c, i, j] * x_padded[n, c, stride*h + dilation*i, stride*w + dilation*j]``.

    Args:
        in_channels: C, channels of the input.
        out_channels: O, channels of the output.
        kernel_size: KH, KW (an int for both, or a pair).
        stride: step between windows (int or pair, default 1); may exceed the kernel.
        padding: zeros added on both sides of each spatial axis (int or pair, default 0).
        dilation: spacing between kernel taps (int or pair, default 1).
        groups: split the channels into this many independent convolutions (default 1);
            in_channels and out_channels must both be divisible by it.
        bias: learn an additive per-channel bias (default True); without it ``self.bias`` is None.
        dtype: parameter dtype, float32 by default (float64 works end to end).
        rng: ``numpy.random.Generator`` for the initial weights (default: tinynet's).

    Shape:
        input (N, C, H, W) -> output (N, O, OH, OW) with
        ``OH = floor((H + 2*padding[0] - dilation[0]*(KH - 1) - 1) / stride[0]) + 1``
        (OW likewise). ``weight`` is (O, C/groups, KH, KW) and ``bias`` (O,), as in
        PyTorch, so weights load both ways. Initialised as PyTorch does
        (``tinynet.init.default_layer_init_``).

    The numba kernels keep only the input for backward, which makes the im2col columns again,
    a few samples at a time, as the forward made them, so that they stay in the cache
    (``tinynet.kernels.conv_numba``). The NumPy reference keeps its columns in training mode;
    in eval mode it keeps only the input and convolves a large batch a few samples at a time
    (``tinynet.kernels.conv_numpy``).

    Example::

        conv = Conv2d(1, 8, 3, padding=1)
        y = conv(np.zeros((60, 1, 28, 28), np.float32))   # (60, 8, 28, 28)
    """

    _functional_backward = staticmethod(conv2d_backward)  # used by WeightedLayer.backward

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, dtype=np.float32, rng=None):
        super().__init__()
        in_channels, out_channels, groups = (positive_int("Conv2d", name, value) for name, value in (
            ("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)))
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value % groups:
                raise ValueError(f"Conv2d: {name} must be divisible by groups, got {name}={value} and groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = int_pair("Conv2d", "kernel_size", kernel_size, 1, "non-positive")
        self.stride = int_pair("Conv2d", "stride", stride, 1, "non-positive")
        self.padding = int_pair("Conv2d", "padding", padding, 0, "negative")
        self.dilation = int_pair("Conv2d", "dilation", dilation, 1, "non-positive")
        dtype = float_dtype("Conv2d", dtype)
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, *self.kernel_size), dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        init.default_layer_init_(self.weight, self.bias, rng)

    def _check_input(self, x):
        check_ndim("Conv2d", x, 4, "(N, C, H, W)")
        check_float("Conv2d", x, self.weight.dtype)
        check_same_device("Conv2d", input=x, weight=self.weight.data)
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d: Given groups={self.groups}, weight of size {list(self.weight.shape)}, expected "
                f"input{list(x.shape)} to have {self.in_channels} channels, but got {x.shape[1]} channels instead"
            )
        padded = [size + 2 * pad for size, pad in zip(x.shape[2:], self.padding)]
        kernel = [d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation)]  # dilated extent
        if padded[0] < kernel[0] or padded[1] < kernel[1]:
            raise ValueError(
                f"Conv2d: Calculated padded input size per channel: ({padded[0]} x {padded[1]}). "
                f"Kernel size: ({kernel[0]} x {kernel[1]}). Kernel size can't be greater than actual input size"
            )

    def forward(self, x):
        self._check_input(x)
        try:
            y, self._cache = conv2d_forward(
                x, self.weight.data, None if self.bias is None else self.bias.data,
                self.stride, self.padding, self.dilation, self.groups, keep_columns=self.training,
            )
        except (MemoryError, SystemError) as err:
            # A compiled kernel's failed allocation reaches Python as a SystemError caused by it.
            cause = err if isinstance(err, MemoryError) else err.__cause__ or err.__context__
            if not isinstance(cause, MemoryError):
                raise
            raise MemoryError(
                f"Conv2d: cannot allocate the im2col columns for an input of shape {x.shape}: they take "
                f"{self._column_bytes(x):,} bytes per sample ({cause})"
            ) from err
        return y

    def _column_bytes(self, x):
        """Bytes of one sample's im2col columns: (C*KH*KW) rows by (OH*OW) output positions."""
        out_h, out_w = output_hw(x.shape, self.kernel_size, self.stride, self.padding, self.dilation)
        return column_count((1, *x.shape[1:]), self.kernel_size, (out_h, out_w)) * x.itemsize

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        return text
