"""The convolution on the GPU: the reference's composition runs on CuPy arrays as it is, with the
CuPy im2col, col2im and layout kernels and cuBLAS products."""
from .. import kernels
from .conv_numpy import conv2d_backward, conv2d_forward


def im2col_workspace_bytes(x_shape, weight_shape, stride, padding, dilation, groups, itemsize, keep_columns):
    """Bytes of im2col columns ``conv2d_forward`` holds: the GPU takes the whole batch at once."""
    kernel_size = weight_shape[2:]
    out_hw = kernels.output_hw(x_shape, kernel_size, stride, padding, dilation)
    return kernels.column_count(x_shape, kernel_size, out_hw) * itemsize


__all__ = ["conv2d_forward", "conv2d_backward", "im2col_workspace_bytes"]
