"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col and one matrix product.

Forward::

    cols = im2col(x)                       (C*KH*KW, N*OH*OW)
    y    = W.reshape(O, C*KH*KW) @ cols    (O, N*OH*OW) -> transposed to (N, O, OH, OW), plus bias

Backward, with gy the upstream gradient laid out (O, N*OH*OW)::

    grad_W    = gy @ cols.T                (O, C*KH*KW)
    grad_b    = gy summed over N*OH*OW     (O,)
    grad_cols = W.T @ gy                   (C*KH*KW, N*OH*OW) -> col2im -> grad_x (N, C, H, W)

With ``groups=G`` the channels split into G independent convolutions: group g
uses input channels [g*C/G, (g+1)*C/G) and produces output channels
[g*O/G, (g+1)*O/G). In the layout above each group is one contiguous block of
rows of ``cols`` and of W, so the products become one batched (G, ...) matmul.

Putting the batch inside the columns (N*OH*OW) makes each product a single
large GEMM rather than N small ones, and the (O, N, ...) result becomes NCHW by
moving whole OH*OW planes. These steps are written out in ``tinynet.kernels.conv_numpy``
(the reference); ``conv_numba`` runs them on parts of the batch in parallel. All arguments
that come in pairs are (height, width) tuples here; ``tinynet.nn.Conv2d`` checks and
normalises them.
"""
from .. import kernels


def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns=True):
    """Shapes: x (N, C, H, W), weight (O, C/groups, KH, KW), bias (O,) or None -> y (N, O, OH, OW).

    With ``keep_columns`` (training) the cache holds the columns, which backward multiplies by
    the output gradient. Without it (evaluation) the cache holds only x, from which a backward
    pass, if one comes, makes them again.
    """
    y, columns = kernels.conv2d_forward(x, weight, bias, stride, padding, dilation, groups, keep_columns)
    return y, (x, columns, weight, stride, padding, dilation, groups)


def conv2d_backward(grad_y, cache, need_bias_grad=True, need_input_grad=True):
    """Return ``(grad_x, grad_weight, grad_bias)`` for ``grad_y`` of shape (N, O, OH, OW); grad_x is
    None unless ``need_input_grad`` (the product W.T @ gy and col2im are skipped), grad_bias None
    unless ``need_bias_grad``."""
    x, columns, weight, stride, padding, dilation, groups = cache
    return kernels.conv2d_backward(grad_y, x, columns, weight, stride, padding, dilation, groups,
                                   need_bias_grad, need_input_grad)
