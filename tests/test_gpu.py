"""tinynet on the GPU: every kernel, layer, loss and optimizer gives on CuPy what it gives on NumPy.

These tests need CuPy and an NVIDIA GPU; elsewhere ``conftest.py`` skips them all and says why.
The GPU kernels are compared with the NumPy reference kernels bit for bit; layers, losses and
optimizers, whose matrix products cuBLAS and NumPy's BLAS sum in different orders, within a
tight float64 and a loose float32 tolerance.
"""
import numpy as np
import pytest
from hypothesis import example, given, settings
from layer_registry import DTYPES
from test_kernels import im2col_cases, pool_cases

import tinynet as tn
from tinynet import kernels
from tinynet.backend import is_cupy_array, to_device, to_numpy
from tinynet.kernels import im2col_numpy, pool_numpy
from tinynet.optim import SGD, Adam, AdamW
from tinynet.recipes import cnn_model

pytestmark = pytest.mark.gpu

# float64: only the summation order of matrix products differs; float32: as the PyTorch comparisons.
TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def gpu(array):
    return to_device(array, "cuda")


def assert_same(on_gpu, on_cpu, dtype, what):
    """``on_gpu`` is a CuPy array of ``dtype`` holding ``on_cpu``'s values within the dtype's tolerance."""
    assert is_cupy_array(on_gpu), f"{what} is a {type(on_gpu).__name__}, not a CuPy array"
    assert on_gpu.dtype == dtype, f"{what} has dtype {on_gpu.dtype}, expected {np.dtype(dtype)}"
    np.testing.assert_allclose(to_numpy(on_gpu), on_cpu, err_msg=what, **TOLERANCES[dtype])


# --- kernels: bit for bit against the NumPy reference --------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(case=im2col_cases())
def test_im2col_and_col2im_equal_the_numpy_reference_bit_for_bit(dtype, case):
    x, *geometry = case
    x = x.astype(dtype)
    cols = kernels.im2col(gpu(x), *geometry)  # through the dispatcher, which must pick the CuPy kernels
    assert is_cupy_array(cols) and cols.dtype == dtype
    np.testing.assert_array_equal(to_numpy(cols), im2col_numpy.im2col(x, *geometry))
    grad_cols = np.random.default_rng(1).standard_normal(cols.shape).astype(dtype)
    grad_x = kernels.col2im(gpu(grad_cols), x.shape, *geometry)
    assert is_cupy_array(grad_x) and grad_x.dtype == dtype
    np.testing.assert_array_equal(to_numpy(grad_x), im2col_numpy.col2im(grad_cols, x.shape, *geometry))


# Windows holding NaN, -inf only, ties and padding, the cases where PyTorch's choice is subtle.
SPECIAL_POOL_CASE = (
    np.array([[[[np.nan, 1, -np.inf, -np.inf, 0], [2, np.nan, -np.inf, -np.inf, 0], [0, 0, 3, 3, 0]]]]),
    (2, 2), (1, 2), (1, 1),
)


@pytest.mark.parametrize("dtype", DTYPES)
@settings(max_examples=25)
@given(case=pool_cases())
@example(case=SPECIAL_POOL_CASE)
def test_pooling_equals_the_numpy_reference(dtype, case):
    x, kernel_size, stride, padding = case
    x = x.astype(dtype)
    y, indices = kernels.max_pool2d_forward(gpu(x), kernel_size, stride, padding)
    expected_y, expected_indices = pool_numpy.max_pool2d_forward(x, kernel_size, stride, padding)
    assert y.dtype == dtype and indices.dtype == np.int32
    np.testing.assert_array_equal(to_numpy(y), expected_y)
    np.testing.assert_array_equal(to_numpy(indices), expected_indices)

    grad_y = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    grad_x = to_numpy(kernels.max_pool2d_backward(gpu(grad_y), indices, x.shape))
    expected = pool_numpy.max_pool2d_backward(grad_y, expected_indices, x.shape)
    if all(s >= k for s, k in zip(stride, kernel_size)):  # each pixel gets at most one gradient: exact
        np.testing.assert_array_equal(grad_x, expected)
    else:  # overlapping windows: the GPU's atomic additions may come in another order
        np.testing.assert_allclose(grad_x, expected, rtol=10 * np.finfo(dtype).eps, atol=10 * np.finfo(dtype).eps)

    np.testing.assert_array_equal(
        to_numpy(kernels.avg_pool2d_forward(gpu(x), kernel_size, stride, padding)),
        pool_numpy.avg_pool2d_forward(x, kernel_size, stride, padding),
    )
    np.testing.assert_array_equal(
        to_numpy(kernels.avg_pool2d_backward(gpu(grad_y), x.shape, kernel_size, stride, padding)),
        pool_numpy.avg_pool2d_backward(grad_y, x.shape, kernel_size, stride, padding),
    )


def test_kernels_refuse_other_dtypes_naming_the_kernel():
    x = gpu(np.zeros((1, 1, 4, 4), np.float16))
    with pytest.raises(TypeError, match=r"im2col: the GPU kernels support float32 and float64 arrays, got float16"):
        kernels.im2col(x, (2, 2), (1, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match=r"avg_pool_forward: the GPU kernels support float32 and float64"):
        kernels.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0))


# --- layers: the same module on both devices -------------------------------------------
# name: (make(dtype, rng) -> module, input shape)
LAYERS = {
    "Linear": (lambda dtype, rng: tn.Linear(7, 5, dtype=dtype, rng=rng), (6, 7)),
    "Linear without bias": (lambda dtype, rng: tn.Linear(7, 5, bias=False, dtype=dtype, rng=rng), (6, 7)),
    "ReLU": (lambda dtype, rng: tn.ReLU(), (6, 7)),
    "LeakyReLU": (lambda dtype, rng: tn.LeakyReLU(0.1), (6, 7)),
    "Sigmoid": (lambda dtype, rng: tn.Sigmoid(), (6, 7)),
    "Tanh": (lambda dtype, rng: tn.Tanh(), (6, 7)),
    "Softmax": (lambda dtype, rng: tn.Softmax(dim=1), (6, 7)),
    "Flatten": (lambda dtype, rng: tn.Flatten(), (2, 3, 4, 5)),
    "Dropout in eval mode": (lambda dtype, rng: tn.Dropout(0.5).eval(), (6, 7)),
    "Conv2d, the MNIST CNN's first": (
        lambda dtype, rng: tn.Conv2d(1, 8, 3, padding=1, dtype=dtype, rng=rng), (3, 1, 28, 28)),
    "Conv2d, strided, dilated, no bias": (
        lambda dtype, rng: tn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), bias=False,
                                     dtype=dtype, rng=rng), (2, 2, 7, 6)),
    "Conv2d with groups": (lambda dtype, rng: tn.Conv2d(4, 6, 2, groups=2, dtype=dtype, rng=rng), (2, 4, 5, 5)),
    "MaxPool2d": (lambda dtype, rng: tn.MaxPool2d(2), (2, 3, 8, 8)),
    "MaxPool2d, overlapping and padded": (lambda dtype, rng: tn.MaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
    "AvgPool2d, overlapping and padded": (lambda dtype, rng: tn.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 7)),
    "the MNIST CNN": (lambda dtype, rng: cnn_model().to(dtype), (4, 1, 28, 28)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LAYERS)
def test_layer_computes_the_same_on_both_devices(name, dtype):
    make, shape = LAYERS[name]
    tn.manual_seed(0)  # for layers that draw their weights from tinynet's generator
    on_cpu = make(dtype, np.random.default_rng(0))
    tn.manual_seed(0)
    on_gpu = make(dtype, np.random.default_rng(0)).to("cuda")
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    y = on_cpu(x)
    y_gpu = on_gpu(gpu(x))
    assert_same(y_gpu, y, dtype, "forward output")
    grad_y = rng.standard_normal(y.shape).astype(dtype)
    assert_same(on_gpu.backward(gpu(grad_y)), on_cpu.backward(grad_y), dtype, "input gradient")
    for (key, param), (_, param_gpu) in zip(on_cpu.named_parameters(), on_gpu.named_parameters()):
        assert_same(param_gpu.grad, param.grad, dtype, f"gradient of {key}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_on_the_gpu_masks_scales_and_repeats_with_the_seed(dtype):
    layer = tn.Dropout(0.3)
    x = gpu(np.ones((400, 250), dtype))
    tn.manual_seed(5)
    y = layer(x)
    assert is_cupy_array(y) and y.dtype == dtype
    values = to_numpy(y)
    scale = dtype(1 / 0.7)
    assert set(np.unique(values)) <= {dtype(0), scale}
    assert abs((values == 0).mean() - 0.3) < 0.01  # 100,000 draws: the standard deviation is 0.0015
    grad_y = np.random.default_rng(0).standard_normal(x.shape).astype(dtype)
    np.testing.assert_array_equal(to_numpy(layer.backward(gpu(grad_y))), grad_y * values)
    tn.manual_seed(5)
    np.testing.assert_array_equal(to_numpy(layer(x)), values)  # the same seed, the same mask


# --- losses ----------------------------------------------------------------------------
def loss_inputs(name, dtype, rng):
    """(output, target) as each loss expects them."""
    if name == "CrossEntropyLoss":
        return rng.standard_normal((6, 4)).astype(dtype), rng.integers(0, 4, 6)
    if name == "BCELoss":
        return rng.uniform(0.01, 0.99, (6, 3)).astype(dtype), rng.random((6, 3)).astype(dtype)
    return rng.standard_normal((6, 3)).astype(dtype), rng.random((6, 3)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("name", ["MSELoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss"])
def test_loss_computes_the_same_on_both_devices(name, reduction, dtype):
    output, target = loss_inputs(name, dtype, np.random.default_rng(0))
    on_cpu, on_gpu = getattr(tn, name)(reduction), getattr(tn, name)(reduction)
    value, value_gpu = on_cpu(output, target), on_gpu(gpu(output), gpu(target))
    assert isinstance(value_gpu, float)
    np.testing.assert_allclose(value_gpu, value, **TOLERANCES[dtype])
    assert_same(on_gpu.backward(), on_cpu.backward(), dtype, "gradient")


def test_cross_entropy_checks_targets_on_the_gpu_too():
    # CuPy's indexing wraps out-of-range indices around, so only the explicit check can catch them.
    with pytest.raises(IndexError, match=r"CrossEntropyLoss: Target 5 is out of bounds"):
        tn.CrossEntropyLoss()(gpu(np.zeros((2, 5), np.float32)), gpu(np.array([1, 5])))


# --- devices: moving, mixing, saving ------------------------------------------------------
def test_model_to_moves_parameters_both_ways_unchanged():
    model = cnn_model()
    before = {key: value.copy() for key, value in model.state_dict().items()}
    assert model.to("cuda") is model and model.device == "cuda"
    for key, value in model.state_dict().items():
        assert is_cupy_array(value) and value.dtype == np.float32
        np.testing.assert_array_equal(to_numpy(value), before[key])
    model.to("cpu")
    assert model.device == "cpu"
    for key, value in model.state_dict().items():
        assert type(value) is np.ndarray
        np.testing.assert_array_equal(value, before[key])


def test_mixing_devices_is_a_clear_error():
    x = np.zeros((2, 1, 28, 28), np.float32)
    with pytest.raises(RuntimeError, match=r"Conv2d: expected all arrays on the same device, got input on cpu, "
                                           r"weight on cuda; move the model with model.to\(device\)"):
        cnn_model().to("cuda")(x)
    with pytest.raises(RuntimeError, match=r"Linear: expected all arrays on the same device, got input on cuda"):
        tn.Linear(3, 2)(gpu(np.zeros((2, 3), np.float32)))
    with pytest.raises(RuntimeError, match=r"CrossEntropyLoss: expected all arrays on the same device, "
                                           r"got input on cuda, target on cpu"):
        tn.CrossEntropyLoss()(gpu(np.zeros((2, 3), np.float32)), np.array([0, 1]))
    with pytest.raises(RuntimeError, match=r"DataLoader: expected all arrays on the same device"):
        tn.data.DataLoader(gpu(x), np.array([0, 1]))


def test_data_loader_gives_the_same_batches_on_both_devices():
    x = np.arange(50, dtype=np.float32).reshape(25, 2)
    y = np.arange(25)
    on_cpu = list(tn.data.DataLoader(x, y, batch_size=7, shuffle=True, seed=3))
    on_gpu = list(tn.data.DataLoader(gpu(x), gpu(y), batch_size=7, shuffle=True, seed=3))
    assert len(on_gpu) == len(on_cpu) == 4
    for (xb, yb), (xb_gpu, yb_gpu) in zip(on_cpu, on_gpu):
        assert is_cupy_array(xb_gpu) and is_cupy_array(yb_gpu)
        np.testing.assert_array_equal(to_numpy(xb_gpu), xb)
        np.testing.assert_array_equal(to_numpy(yb_gpu), yb)


# --- optimizers: the same training on both devices ------------------------------------------
OPTIMIZERS = [
    (SGD, dict(lr=0.1)),
    (SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
]


def small_network(dtype):
    rng = np.random.default_rng(0)
    return tn.Sequential(tn.Linear(5, 8, dtype=dtype, rng=rng), tn.Tanh(), tn.Linear(8, 3, dtype=dtype, rng=rng))


def train(model, optimizer, batches):
    loss_fn = tn.MSELoss()
    xp = tn.get_array_module(model.parameters()[0].data)
    for x, target in batches:
        loss_fn(model(xp.asarray(x)), xp.asarray(target))
        model.backward(loss_fn.backward())
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls, hyperparameters", OPTIMIZERS,
                         ids=[f"{cls.__name__}({', '.join(f'{k}={v}' for k, v in h.items())})" for cls, h in OPTIMIZERS])
def test_optimizer_trains_the_same_on_both_devices_and_its_state_follows_the_model(cls, hyperparameters, dtype):
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((12, 5)).astype(dtype), rng.standard_normal((12, 3)).astype(dtype))
               for _ in range(8)]
    model = small_network(dtype)
    optimizer = cls(model.parameters(), **hyperparameters)
    train(model, optimizer, batches)

    # The same run, starting on the CPU, moved to the GPU half-way and back to the CPU for its last step.
    moved = small_network(dtype)
    moved_optimizer = cls(moved.parameters(), **hyperparameters)
    train(moved, moved_optimizer, batches[:4])
    moved.to("cuda"), moved_optimizer.to("cuda")
    train(moved, moved_optimizer, batches[4:7])
    for state in moved_optimizer.state:
        for name, value in state.items():
            if name not in cls.scalar_state:
                assert is_cupy_array(value) and value.dtype == dtype, f"state {name} did not follow the model"
    moved.to("cpu")  # no optimizer.to: step() moves the state of a parameter that moved
    train(moved, moved_optimizer, batches[7:])
    for (key, param), (_, moved_param) in zip(model.named_parameters(), moved.named_parameters()):
        assert type(moved_param.data) is np.ndarray
        np.testing.assert_allclose(moved_param.data, param.data, err_msg=key, **TOLERANCES[dtype])


def test_save_and_load_work_from_and_to_either_device(tmp_path):
    batches = [(np.ones((4, 5), np.float32), np.zeros((4, 3), np.float32))]
    model = small_network(np.float32).to("cuda")
    optimizer = Adam(model.parameters(), lr=0.01)
    train(model, optimizer, batches)
    tn.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "gpu.npz")

    checkpoint = tn.load(tmp_path / "gpu.npz")
    on_cpu = small_network(np.float32)
    cpu_optimizer = Adam(on_cpu.parameters(), lr=0.5).load_state_dict(checkpoint["optimizer"])
    on_cpu.load_state_dict(checkpoint["model"])
    for (key, param), (_, loaded) in zip(model.named_parameters(), on_cpu.named_parameters()):
        assert type(loaded.data) is np.ndarray
        np.testing.assert_array_equal(loaded.data, to_numpy(param.data), err_msg=key)
    assert cpu_optimizer.lr == 0.01 and type(cpu_optimizer.state[0]["exp_avg"]) is np.ndarray

    tn.save({"model": on_cpu.state_dict()}, tmp_path / "cpu.npz")
    back_on_gpu = small_network(np.float32).to("cuda")
    back_on_gpu.load_state_dict(tn.load(tmp_path / "cpu.npz")["model"])
    for (key, param), (_, loaded) in zip(model.named_parameters(), back_on_gpu.named_parameters()):
        assert is_cupy_array(loaded.data) and loaded.dtype == np.float32
        np.testing.assert_array_equal(to_numpy(loaded.data), to_numpy(param.data), err_msg=key)
