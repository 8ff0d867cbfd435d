"""2-D max and average pooling layers."""
from .._checks import check_float, check_ndim, int_pair
from ..functional import pooling as F
from ..kernels import output_shape
from .module import Module


class _Pool2d(Module):
    """What both pools share: argument checks, input checks and the printed form."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        where = type(self).__name__
        self.kernel_size = int_pair(where, "kernel_size", kernel_size, 1, "non-positive")
        self.stride = self.kernel_size if stride is None else int_pair(where, "stride", stride, 1, "non-positive")
        self.padding = int_pair(where, "padding", padding, 0, "negative")
        if any(pad > k // 2 for pad, k in zip(self.padding, self.kernel_size)):
            # A window could then lie entirely in the padding (PyTorch refuses this too).
            raise ValueError(
                f"{where}: pad should be at most half of effective kernel size, "
                f"but got padding={self.padding} and kernel_size={self.kernel_size}"
            )

    def _check_input(self, x):
        where = type(self).__name__
        check_ndim(where, x, 4, "(N, C, H, W)")
        check_float(where, x)
        _, c, h, w = x.shape
        _, _, out_h, out_w = output_shape(x.shape, self.kernel_size, self.stride, self.padding)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"{where}: Given input size: ({c}x{h}x{w}). Calculated output size: ({c}x{out_h}x{out_w}). "
                "Output size is too small"
            )

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """The maximum of each KH x KW window, per channel.

    Args:
        kernel_size: window size (int or (KH, KW) pair).
        stride: step between windows (int or pair); defaults to ``kernel_size``.
        padding: implicit -inf padding on both sides (int or pair), at most half the kernel.

    Shape:
        input (N, C, H, W) -> output (N, C, OH, OW) with
        ``OH = floor((H + 2*padding[0] - KH) / stride[0]) + 1`` (OW likewise).

    Backward sends each output's gradient to the single input that was its
    maximum; on ties (common after ReLU, where whole windows are 0) that is the
    first maximum in row-major order, exactly as in PyTorch. In training mode
    forward records which input that is; in evaluation mode it skips that
    (about a third faster) and backward, if called, works it out again.

    Example::

        pool = MaxPool2d(2)
        y = pool(np.zeros((60, 8, 28, 28), np.float32))   # (60, 8, 14, 14)
    """

    def forward(self, x):
        self._check_input(x)
        y, self._cache = F.max_pool2d_forward(x, self.kernel_size, self.stride, self.padding, save_indices=self.training)
        return y

    def backward(self, grad_out):
        return F.max_pool2d_backward(grad_out, self._pop_cache(grad_out))


class AvgPool2d(_Pool2d):
    """The mean of each KH x KW window, per channel, counting zero padding (PyTorch's default
    ``count_include_pad=True``), so every window divides by KH*KW.

    Args:
        kernel_size: window size (int or (KH, KW) pair).
        stride: step between windows (int or pair); defaults to ``kernel_size``.
        padding: implicit zero padding on both sides (int or pair), at most half the kernel.

    Shape:
        input (N, C, H, W) -> output (N, C, OH, OW) with
        ``OH = floor((H + 2*padding[0] - KH) / stride[0]) + 1`` (OW likewise).

    Example::

        pool = AvgPool2d(2)
        y = pool(np.zeros((60, 8, 28, 28), np.float32))   # (60, 8, 14, 14)
    """

    def forward(self, x):
        self._check_input(x)
        y, self._cache = F.avg_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        return y

    def backward(self, grad_out):
        return F.avg_pool2d_backward(grad_out, self._pop_cache(grad_out))


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size, whatever the input size: output (i, j) is the mean of
    input rows floor(i*H/OH) to ceil((i+1)*H/OH) - 1 and the columns likewise (PyTorch's windows).

    ``AdaptiveAvgPool2d(1)`` is the global average pool that ends a ResNet.

    Args:
        output_size: (OH, OW), or an int for both.

    Shape: input (N, C, H, W) -> output (N, C, OH, OW).

    Example::

        pool = AdaptiveAvgPool2d(1)
        y = pool(np.zeros((60, 64, 7, 7), np.float32))   # (60, 64, 1, 1)
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = int_pair("AdaptiveAvgPool2d", "output_size", output_size, 1, "non-positive")

    def forward(self, x):
        check_ndim("AdaptiveAvgPool2d", x, 4, "(N, C, H, W)")
        check_float("AdaptiveAvgPool2d", x)
        if x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"AdaptiveAvgPool2d: expected an input with non-empty H and W, got shape {x.shape}")
        y, self._cache = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return y

    def backward(self, grad_out):
        return F.adaptive_avg_pool2d_backward(grad_out, self._pop_cache(grad_out))

    def extra_repr(self):
        return f"output_size={self.output_size}"
