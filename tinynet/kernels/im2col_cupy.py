"""im2col and col2im on the GPU: CUDA kernels with one thread per element written.

``im2col`` runs one thread per entry of ``cols``: it works out which input
pixel that entry copies (or that it lies in the padding) and copies it.
Consecutive threads write consecutive columns, so the writes are coalesced.

``col2im`` runs one thread per input pixel and *gathers*: it visits the
kernel offsets (i, j) in row-major order, and for each one whose window
position lands on a real output it adds that column entry. Each thread
owns its pixel, so no atomics are needed, and it adds in the same order as
``im2col_numpy.col2im`` (zero, then offsets in row-major order), so the
two agree bit for bit. See ``tinynet.kernels`` for the layout of ``cols``.
"""
from . import output_hw
from ._cupy_common import c_type, compiled, launch
from ..backend import import_cupy

_SOURCE = r"""
// cols (C, KH, KW, N, OH, OW) <- x (N, C, H, W); thread `index` writes cols[index].
template <typename T, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW,
          int H, int W, int OH, int OW>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols, int batch, int channels, int total) {
    int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    int ow = index % OW, rest = index / OW;
    int oh = rest % OH;
    rest /= OH;
    int n = rest % batch, row = rest / batch;       // row = (c*KH + i)*KW + j
    int j = row % KW, i = row / KW % KH, c = row / (KW * KH);
    int h = oh * SH + i * DH - PH, w = ow * SW + j * DW - PW;
    bool inside = 0 <= h && h < H && 0 <= w && w < W;
    cols[index] = inside ? x[((n * channels + c) * H + h) * W + w] : T(0);
}

// x (N, C, H, W) <- the sum of every cols entry copied from each pixel; thread `index` writes x[index].
template <typename T, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW,
          int H, int W, int OH, int OW>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ x, int batch, int channels, int total) {
    int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    int w = index % W, rest = index / W;
    int h = rest % H;
    rest /= H;
    int c = rest % channels, n = rest / channels;
    T sum = T(0);
    #pragma unroll
    for (int i = 0; i < KH; ++i) {
        int top = h + PH - i * DH;                  // = oh * SH for the output that saw (h, w) at offset i
        if (top < 0 || top % SH != 0 || top / SH >= OH) continue;
        int oh = top / SH;
        #pragma unroll
        for (int j = 0; j < KW; ++j) {
            int left = w + PW - j * DW;
            if (left < 0 || left % SW != 0 || left / SW >= OW) continue;
            int row = (c * KH + i) * KW + j;
            sum += cols[((row * batch + n) * OH + oh) * OW + left / SW];
        }
    }
    x[index] = sum;
}
"""


def _kernel(name, dtype, x_shape, kernel_size, stride, padding, dilation):
    out_h, out_w = output_hw(x_shape, kernel_size, stride, padding, dilation)
    geometry = (*kernel_size, *stride, *padding, *dilation, *x_shape[2:], out_h, out_w)
    return compiled(_SOURCE, name, (c_type(name, dtype),) + tuple(int(v) for v in geometry)), out_h, out_w


def im2col(x, kernel_size, stride, padding, dilation):
    cupy = import_cupy()
    n, c, _, _ = x.shape
    kernel, out_h, out_w = _kernel("im2col", x.dtype, x.shape, kernel_size, stride, padding, dilation)
    cols = cupy.empty((c * kernel_size[0] * kernel_size[1], n * out_h * out_w), dtype=x.dtype)
    launch("im2col", kernel, cols.size, cupy.ascontiguousarray(x), cols, cupy.int32(n), cupy.int32(c))
    return cols


def col2im(cols, x_shape, kernel_size, stride, padding, dilation):
    cupy = import_cupy()
    n, c, _, _ = x_shape
    kernel, _, _ = _kernel("col2im", cols.dtype, x_shape, kernel_size, stride, padding, dilation)
    x = cupy.empty(tuple(x_shape), dtype=cols.dtype)
    launch("col2im", kernel, x.size, cupy.ascontiguousarray(cols), x, cupy.int32(n), cupy.int32(c))
    return x


def cnhw_to_nchw(y_t, bias, out=None):
    cupy = import_cupy()
    swapped = y_t.transpose(1, 0, 2, 3)
    y = cupy.empty(swapped.shape, dtype=y_t.dtype) if out is None else out
    if bias is None:
        y[...] = swapped
        return y
    return cupy.add(swapped, bias.reshape(-1, 1, 1), out=y)


def nchw_to_cnhw(grad_y, channel_sums):
    cupy = import_cupy()
    grad_t = cupy.ascontiguousarray(grad_y.transpose(1, 0, 2, 3))
    return grad_t, grad_t.reshape(grad_t.shape[0], -1).sum(axis=1) if channel_sums else None
