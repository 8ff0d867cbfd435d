"""Where a training step of the MNIST CNN spends its time in tinynet, layer by layer.

    python benchmarks/profile_cnn.py            # TINYNET_KERNELS=numpy for the reference kernels

Times each layer's forward and backward, the loss and the Adam update of the recipe's
``cnn_model()`` at batch 60 on random images, over ``--steps`` steps after 30 warm-up steps,
and prints the mean of each in milliseconds. The first layer runs ``backward_parameters``, as
in ``fit``. The timers themselves add a little to each entry; the total is for comparing parts,
``bench_cnn.py`` is for comparing with PyTorch.
"""
import argparse
import time

import numpy as np

import tinynet as tn
from tinynet.recipes import cnn_model

WARMUP = 30


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps (default 300)")
    args = parser.parse_args()
    tn.kernels.warm_up([np.float32])  # before any timing: no step runs on the reference while numba compiles
    tn.manual_seed(0)
    model, loss_fn = cnn_model(), tn.CrossEntropyLoss()
    optimizer = tn.optim.Adam(model.parameters(), lr=1e-3)
    x, y = np.random.default_rng(0).random((60, 1, 28, 28), dtype=np.float32), np.arange(60) % 10
    layers = list(model)
    forward, backward = np.zeros(len(layers)), np.zeros(len(layers))
    rest = 0.0

    def timed(fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        return result, time.perf_counter() - start

    for step in range(WARMUP + args.steps):
        keep = step >= WARMUP
        h = x
        for i, layer in enumerate(layers):
            h, seconds = timed(layer, h)
            forward[i] += keep * seconds
        grad, seconds_loss = timed(lambda: (loss_fn(h, y), loss_fn.backward())[1])
        for i in reversed(range(len(layers))):
            grad, seconds = timed(layers[i].backward_parameters if i == 0 else layers[i].backward, grad)
            backward[i] += keep * seconds
        _, seconds_update = timed(lambda: (optimizer.step(), optimizer.zero_grad()))
        rest += keep * (seconds_loss + seconds_update)

    scale = 1e3 / args.steps
    print(f"{'layer':<16} {'forward ms':>10} {'backward ms':>11}")
    for i, (layer, f, b) in enumerate(zip(layers, forward * scale, backward * scale)):
        print(f"{f'{i} {type(layer).__name__}':<16} {f:>10.3f} {b:>11.3f}")
    print(f"{'loss and Adam':<16} {rest * scale:>22.3f}")
    print(f"{'total':<16} {(forward.sum() + backward.sum() + rest) * scale:>22.3f}")


if __name__ == "__main__":
    main()
