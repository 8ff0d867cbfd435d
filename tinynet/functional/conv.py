"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col and one matrix product.

The columns of x (one per output position, each holding the C*KH*KW input pixels under the kernel
there) times the weight reshaped to (O, C*KH*KW) is the convolution; backward multiplies the output
gradient by the columns (the weight gradient) and by the weight, whose product col2im sums back
onto the input (the input gradient). ``tinynet.kernels.conv_numpy`` writes these steps out, shape
by shape (the reference); ``conv_numba`` runs them on parts of the batch in parallel.

With ``groups=G`` the channels split into G independent convolutions: group g uses input channels
[g*C/G, (g+1)*C/G) and produces output channels [g*O/G, (g+1)*O/G). All arguments that come in
pairs are (height, width) tuples here; ``tinynet.nn.Conv2d`` checks and normalises them.
"""
from typing import Any, NamedTuple, Tuple

from .. import kernels


class Conv2dCache(NamedTuple):
    x: Any
    columns: Any  # kernels.Columns made by the forward, or None (evaluation: made again if needed)
    weight: Any
    stride: Tuple[int, int]
    padding: Tuple[int, int]
    dilation: Tuple[int, int]
    groups: int


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns=True):
    """Shapes: x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) or None -> y (N, O, OH, OW).

    With ``keep_columns`` (training) the cache may hold the columns, which backward multiplies by
    the output gradient: the reference kernels keep them; the numba kernel keeps none and makes
    them again in backward, where they stay in the cache (``tinynet.kernels.conv_numba``).
    Without it (evaluation) the cache holds only x, from which a backward pass, if one comes,
    makes them again.
    """
    y, columns = kernels.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns)
    return y, Conv2dCache(x, columns, weight, stride, padding, dilation, groups)


def conv2d_backward(grad_y, cache, need_bias_grad=True, need_input_grad=True):
    """Return ``(grad_x, grad_weight, grad_bias)`` for ``grad_y`` of shape (N, O, OH, OW); grad_x is
    None unless ``need_input_grad`` (the product W.T @ gy and col2im are skipped), grad_bias None
    unless ``need_bias_grad``."""
    return kernels.conv2d_backward(grad_y, *cache, need_bias_grad, need_input_grad)
