"""The convolution on the GPU: the reference's composition runs on CuPy arrays as it is, with the
CuPy im2col, col2im and layout kernels and cuBLAS products."""
from .conv_numpy import conv2d_backward, conv2d_forward


def im2col_workspace_bytes(x_shape, kernel_size, out_hw, itemsize, keep_columns):
    """Bytes of im2col columns ``conv2d_forward`` holds: the GPU takes the whole batch at once."""
    return x_shape[0] * x_shape[1] * kernel_size[0] * kernel_size[1] * out_hw[0] * out_hw[1] * itemsize


__all__ = ["conv2d_forward", "conv2d_backward", "im2col_workspace_bytes"]
