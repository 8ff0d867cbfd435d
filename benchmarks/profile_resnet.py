"""Where a training step of the MNIST ResNet spends its time in tinynet, by kind of layer.

    python benchmarks/profile_resnet.py            # TINYNET_KERNELS=numpy for the reference kernels
    python benchmarks/profile_resnet.py --threads 1

Times the forward and backward of every module of ``examples/mnist_resnet.py``'s ``resnet()`` at
batch 128 on random images, as ``bench_resnet.py``'s step runs them (SGD, Nesterov momentum,
weight decay), over ``--steps`` steps after 10 warm-up steps. Prints, per kind of layer, the mean
milliseconds per step summed over all its layers; a container (``Residual``, ``Sequential``)
counts only its own work, such as the residual sum, not its layers'. The timers add a little to
each entry; ``bench_resnet.py`` is for comparing with PyTorch.
"""
import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numba
import numpy as np

import tinynet as tn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from mnist_resnet import resnet  # noqa: E402

BATCH = 128
WARMUP = 10


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--threads", type=int, default=numba.get_num_threads(), help="numba's threads (default: all)")
    args = parser.parse_args()
    numba.set_num_threads(args.threads)
    tn.kernels.warm_up([np.float32])  # before any timing: no step runs on the reference while numba compiles
    tn.manual_seed(0)
    model, loss_fn = resnet(), tn.CrossEntropyLoss()
    optimizer = tn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    rng = np.random.default_rng(0)
    x, y = rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)

    seconds = defaultdict(float)  # (kind, "forward" or "backward") -> own seconds, over the timed steps
    counting = [False]
    stack = [0.0]  # per open call: the seconds its callees took

    def timed(module, method, phase):
        def call(*arguments, **options):
            stack.append(0.0)
            start = time.perf_counter()
            result = method(*arguments, **options)
            total = time.perf_counter() - start
            callees = stack.pop()
            stack[-1] += total
            if counting[0]:
                seconds[type(module).__name__, phase] += total - callees
            return result
        return call

    for module in model.modules():
        module.forward = timed(module, module.forward, "forward")
        module.backward = timed(module, module.backward, "backward")
        module.backward_parameters = timed(module, module.backward_parameters, "backward")

    def step():
        loss = loss_fn(model(x), y)
        model.backward_parameters(loss_fn.backward())
        return loss

    for index in range(WARMUP + args.steps):
        counting[0] = index >= WARMUP
        start = time.perf_counter()
        step()
        middle = time.perf_counter()
        optimizer.step()
        optimizer.zero_grad()
        if counting[0]:
            seconds["SGD update", "forward"] += time.perf_counter() - middle
            seconds["step (forward, loss, backward)", "total"] += middle - start

    scale = 1e3 / args.steps
    kinds = sorted({kind for kind, _ in seconds if kind != "step (forward, loss, backward)"},
                   key=lambda kind: -(seconds[kind, "forward"] + seconds[kind, "backward"]))
    layers_total = sum(value for (kind, phase), value in seconds.items() if phase != "total"
                       and kind != "SGD update")
    print(f"MNIST ResNet, batch {BATCH}, {args.threads} thread(s), kernels: {tn.kernels.get_backend()}")
    print(f"{'kind':<20} {'forward ms':>10} {'backward ms':>11}")
    for kind in kinds:
        print(f"{kind:<20} {seconds[kind, 'forward'] * scale:>10.2f} {seconds[kind, 'backward'] * scale:>11.2f}")
    step_total = seconds["step (forward, loss, backward)", "total"]
    print(f"{'loss (the rest)':<20} {(step_total - layers_total) * scale:>22.2f}")
    print(f"{'total':<20} {(step_total + seconds['SGD update', 'forward']) * scale:>22.2f}")


if __name__ == "__main__":
    main()
