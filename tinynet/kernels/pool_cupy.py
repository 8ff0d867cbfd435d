"""Max and average pooling on the GPU: CUDA kernels with one thread per element written.

The forward kernels run one thread per output and scan its window in
row-major order, as ``pool_numpy`` does, so they agree with it bit for bit.

Average-pool backward runs one thread per input pixel and *gathers* from the
outputs whose windows contain it (visiting kernel offsets (i, j), so a pixel
checks at most KH*KW outputs); it owns its pixel, needs no atomics, and adds
in the reference's order, so it too agrees bit for bit.

Max-pool backward is given only the saved indices and the input shape (not
the window geometry), so it *scatters*: one thread per output adds its
gradient to the pixel its index names, with an atomic add. Without overlapping
windows (stride >= kernel, as in every usual CNN) each pixel receives at most
one gradient and the result is exact; with overlap, the order of the atomic
additions, and so the last bits of a sum, may vary from run to run.
"""
from . import output_hw
from ._cupy_common import c_type, compiled, launch
from ..backend import import_cupy

_SOURCE = r"""
// Thread `index` is output (plane, oh, ow) of y (N*C, OH, OW), reading plane `plane` of x (N*C, H, W).
#define OUTPUT_COORDINATES                                      \
    int index = blockIdx.x * blockDim.x + threadIdx.x;           \
    if (index >= total) return;                                  \
    int ow = index % OW, rest = index / OW;                      \
    int oh = rest % OH, plane = rest / OH;                       \
    int top = oh * SH - PH, left = ow * SW - PW;                 \
    const T* src = x + plane * (H * W);

// The output row (column) whose window has the pixel at offset i (j), or -1 if there is none.
template <int STRIDE, int PAD, int OUT>
__device__ __forceinline__ int window_at(int position) {
    int start = position + PAD;  // = out * STRIDE for the window that covers `position` at this offset
    return (start >= 0 && start % STRIDE == 0 && start / STRIDE < OUT) ? start / STRIDE : -1;
}

template <typename T, int KH, int KW, int SH, int SW, int PH, int PW, int H, int W, int OH, int OW>
__global__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ indices, int total) {
    OUTPUT_COORDINATES
    // Start from the window's first real pixel, as PyTorch does: it stays the answer when nothing
    // beats it (a window of -inf). Strictly greater keeps the first maximum; a NaN always takes over.
    int best_index = (top > 0 ? top : 0) * W + (left > 0 ? left : 0);
    T best = src[best_index];
    #pragma unroll
    for (int i = 0; i < KH; ++i) {
        int h = top + i;
        if (h < 0 || h >= H) continue;
        #pragma unroll
        for (int j = 0; j < KW; ++j) {
            int w = left + j;
            if (w < 0 || w >= W) continue;
            T value = src[h * W + w];
            if (value > best || value != value) {  // value != value: value is NaN
                best = value;
                best_index = h * W + w;
            }
        }
    }
    y[index] = best;
    indices[index] = best_index;
}

// grad_x (N*C, H*W) must start at zero; thread `index` adds grad_y[index] to the pixel indices[index] names.
template <typename T, int OUT_PLANE, int IN_PLANE>
__global__ void max_pool_backward(const T* __restrict__ grad_y, const int* __restrict__ indices,
                                  T* __restrict__ grad_x, int total) {
    int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    int plane = index / OUT_PLANE;
    atomicAdd(grad_x + plane * IN_PLANE + indices[index], grad_y[index]);
}

// y = (sum of the window's real pixels) / (KH*KW): padding counts as zeros (count_include_pad).
template <typename T, int KH, int KW, int SH, int SW, int PH, int PW, int H, int W, int OH, int OW>
__global__ void avg_pool_forward(const T* __restrict__ x, T* __restrict__ y, int total) {
    OUTPUT_COORDINATES
    T sum = T(0);
    #pragma unroll
    for (int i = 0; i < KH; ++i) {
        int h = top + i;
        if (h < 0 || h >= H) continue;
        #pragma unroll
        for (int j = 0; j < KW; ++j) {
            int w = left + j;
            if (w >= 0 && w < W) sum += src[h * W + w];
        }
    }
    y[index] = sum / T(KH * KW);
}

// grad_x[pixel] = sum over the windows holding it of grad_y / (KH*KW), offsets in row-major order.
template <typename T, int KH, int KW, int SH, int SW, int PH, int PW, int H, int W, int OH, int OW>
__global__ void avg_pool_backward(const T* __restrict__ grad_y, T* __restrict__ grad_x, int total) {
    int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    int w = index % W, rest = index / W;
    int h = rest % H, plane = rest / H;
    const int offset = plane * (OH * OW);
    T sum = T(0);
    #pragma unroll
    for (int i = 0; i < KH; ++i) {
        int oh = window_at<SH, PH, OH>(h - i);
        if (oh < 0) continue;
        #pragma unroll
        for (int j = 0; j < KW; ++j) {
            int ow = window_at<SW, PW, OW>(w - j);
            if (ow >= 0) sum += grad_y[offset + oh * OW + ow] / T(KH * KW);
        }
    }
    grad_x[index] = sum;
}
"""


def _kernel(name, dtype, x_shape, kernel_size, stride, padding):
    out_h, out_w = output_hw(x_shape, kernel_size, stride, padding)
    geometry = (*kernel_size, *stride, *padding, *x_shape[2:], out_h, out_w)
    return compiled(_SOURCE, name, (c_type(name, dtype),) + tuple(int(v) for v in geometry)), out_h, out_w


def max_pool2d_forward(x, kernel_size, stride, padding):
    cupy = import_cupy()
    kernel, out_h, out_w = _kernel("max_pool_forward", x.dtype, x.shape, kernel_size, stride, padding)
    y = cupy.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
    indices = cupy.empty(y.shape, dtype=cupy.int32)
    launch("max_pool2d_forward", kernel, y.size, cupy.ascontiguousarray(x), y, indices)
    return y, indices


def max_pool2d_values(x, kernel_size, stride, padding):
    return max_pool2d_forward(x, kernel_size, stride, padding)[0]


def max_pool2d_backward(grad_y, indices, x_shape):
    cupy = import_cupy()
    planes = (grad_y.shape[2] * grad_y.shape[3], x_shape[2] * x_shape[3])
    kernel = compiled(_SOURCE, "max_pool_backward", (c_type("max_pool2d_backward", grad_y.dtype),) + planes)
    grad_x = cupy.zeros(tuple(x_shape), dtype=grad_y.dtype)
    launch("max_pool2d_backward", kernel, grad_y.size, cupy.ascontiguousarray(grad_y),
           cupy.ascontiguousarray(indices), grad_x)
    return grad_x


def avg_pool2d_forward(x, kernel_size, stride, padding):
    cupy = import_cupy()
    kernel, out_h, out_w = _kernel("avg_pool_forward", x.dtype, x.shape, kernel_size, stride, padding)
    y = cupy.empty(x.shape[:2] + (out_h, out_w), dtype=x.dtype)
    launch("avg_pool2d_forward", kernel, y.size, cupy.ascontiguousarray(x), y)
    return y


def avg_pool2d_backward(grad_y, x_shape, kernel_size, stride, padding):
    cupy = import_cupy()
    kernel, _, _ = _kernel("avg_pool_backward", grad_y.dtype, x_shape, kernel_size, stride, padding)
    grad_x = cupy.empty(tuple(x_shape), dtype=grad_y.dtype)
    launch("avg_pool2d_backward", kernel, grad_x.size, cupy.ascontiguousarray(grad_y), grad_x)
    return grad_x
