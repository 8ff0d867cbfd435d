"""One training step of the MNIST CNN and the MNIST MLP on an NVIDIA GPU, in tinynet (CuPy) and in
PyTorch (CUDA), in the same run, at batch 60 and batch 1024.

    python benchmarks/bench_gpu.py

Needs CuPy, a CUDA build of PyTorch and a GPU. The models are the recipes' (``cnn_model``,
trained with Adam; ``mlp_model``, trained with SGD lr 0.05), and PyTorch gets the same layers
and weights through ``tinynet.interop.to_torch``. A step is forward, loss, backward, update, and
reading the loss as a Python number (tinynet's loss returns one; PyTorch calls ``.item()``), so
each step ends in a synchronisation on both sides and wall-clock time is what a training loop
sees. PyTorch runs with its defaults (cuDNN picks the convolution algorithm).

Prints milliseconds per step (median of 5 rounds) and the ratio tinynet/PyTorch (lower is better).
Random inputs: the step's cost does not depend on the pixel values.
"""
import numpy as np
import torch

import tinynet as tn
from tinynet.backend import import_cupy
from tinynet.interop import to_torch
from tinynet.recipes import cnn_model, mlp_model

from common import median_ms, tinynet_train_step, torch_train_step

cupy = import_cupy()

# name: (model builder, input shape of one sample, tinynet optimizer, PyTorch optimizer)
MODELS = {
    "CNN": (cnn_model, (1, 28, 28), lambda p: tn.optim.Adam(p, lr=1e-3), lambda p: torch.optim.Adam(p, lr=1e-3)),
    "MLP": (mlp_model, (784,), lambda p: tn.optim.SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
}
BATCHES = (60, 1024)


def tinynet_step(model, make_optimizer, x, y):
    """A no-argument training step of ``model`` on the GPU, on ``x``, ``y`` copied there once."""
    model.to("cuda")
    step = tinynet_train_step(model, tn.CrossEntropyLoss(), make_optimizer(model.parameters()))
    x, y = cupy.asarray(x), cupy.asarray(y)
    return lambda: step(x, y)


def torch_step(model, make_optimizer, x, y):
    """The same for PyTorch CUDA."""
    model = model.cuda()
    step = torch_train_step(model, torch.nn.CrossEntropyLoss(), make_optimizer(model.parameters()))
    x, y = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()
    return lambda: step(x, y)


def main():
    rng = np.random.default_rng(0)
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode()}, CuPy {cupy.__version__}, "
          f"PyTorch {torch.__version__}")
    print(f"{'training step':<28} {'tinynet ms':>11} {'torch ms':>10} {'ratio':>7}")
    for name, (build, sample_shape, tn_optimizer, torch_optimizer) in MODELS.items():
        for batch in BATCHES:
            tn.manual_seed(0)
            ours = build()
            theirs = to_torch(ours)  # the same layers and weights
            x = rng.random((batch,) + sample_shape, dtype=np.float32)
            y = rng.integers(0, 10, batch)
            repeats = 200 if batch == 60 else 50
            ours_ms = median_ms(tinynet_step(ours, tn_optimizer, x, y), repeats, synchronize=cupy.cuda.Device().synchronize)
            theirs_ms = median_ms(torch_step(theirs, torch_optimizer, x, y), repeats, synchronize=torch.cuda.synchronize)
            print(f"{name + ', batch ' + str(batch):<28} {ours_ms:>11.3f} {theirs_ms:>10.3f} {ours_ms / theirs_ms:>7.2f}")


if __name__ == "__main__":
    main()
