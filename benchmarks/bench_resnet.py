"""The small MNIST ResNet of ``examples/mnist_resnet.py`` on the CPU, tinynet against PyTorch: a
training step at batch 128, and the peak memory of the process that ran it.

    python benchmarks/bench_resnet.py                 # every core
    python benchmarks/bench_resnet.py --threads 1

The model: Conv2d(1, 16, 3) - BatchNorm2d - ReLU - MaxPool2d(2), residual blocks 16 -> 16,
16 -> 32 (stride 2) and 32 -> 64 (stride 2) of conv3x3-BN-ReLU-conv3x3-BN plus an identity or
1x1-conv-BN shortcut, then ReLU; AdaptiveAvgPool2d(1), Flatten, Linear(64, 10). A step is
forward, cross-entropy, backward and an SGD update (Nesterov momentum 0.9, weight decay 5e-4),
reading the loss as a Python number on both sides. The step time is the median over 5 rounds of
the mean of ``--steps`` steps, after the numba kernels are compiled or loaded (``warm_up``) and
10 warm-up steps; random images (the timings do not depend on the pixel values). Each library
runs in its own subprocess with the same number of threads, ``--repeat`` times alternating with the
other, and the medians are shown with the ratios tinynet / PyTorch (lower is better for tinynet).
"""
import sys
from pathlib import Path

import numpy as np

from common import (median_ms, peak_rss_mb, print_ratios, run_side, run_sides, side_parser, tinynet_train_step,
                    torch_train_step)

BATCH = 128
WARMUP = 10


def batch():
    rng = np.random.default_rng(0)
    return rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)


def tinynet_side(steps):
    import tinynet as tn

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from mnist_resnet import resnet

    tn.kernels.warm_up([np.float32])  # before any timing: no step runs on the reference while numba compiles
    tn.manual_seed(0)
    model = resnet()
    optimizer = tn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    train_step = tinynet_train_step(model, tn.CrossEntropyLoss(), optimizer)
    x, y = batch()
    step_ms = median_ms(lambda: train_step(x, y), steps, warmup=WARMUP)
    return dict(step_ms=step_ms, rss_mb=peak_rss_mb(), kernels=tn.kernels.get_backend())


def torch_side(steps):
    import torch

    nn = torch.nn
    torch.manual_seed(0)

    class Residual(nn.Module):
        def __init__(self, block, shortcut=None):
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x):
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    def residual_block(cin, cout, stride=1):
        block = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                              nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        shortcut = None
        if stride != 1 or cin != cout:
            shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return nn.Sequential(Residual(block, shortcut), nn.ReLU())

    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        residual_block(16, 16), residual_block(16, 32, 2), residual_block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    train_step = torch_train_step(model, nn.CrossEntropyLoss(), optimizer)
    x, y = (torch.from_numpy(a) for a in batch())
    step_ms = median_ms(lambda: train_step(x, y), steps, warmup=WARMUP)
    return dict(step_ms=step_ms, rss_mb=peak_rss_mb(), version=torch.__version__)


def main():
    parser = side_parser(__doc__)
    parser.add_argument("--steps", type=int, default=50, help="steps per timing round (default 50)")
    args = parser.parse_args()
    if run_side(args, {"tinynet": tinynet_side, "torch": torch_side}, args.steps):
        return
    results = run_sides(__file__, ["--threads", args.threads, "--steps", args.steps], args.repeat)
    ours, theirs, tuned = results["tinynet"], results["torch"], results["torch_tuned_malloc"]
    print(f"MNIST ResNet, batch {BATCH}, SGD; {args.threads} thread(s); tinynet kernels: {ours['kernels']}; "
          f"PyTorch {theirs['version']}; medians of {args.repeat} alternating runs")
    print_ratios([(what, ours[key], theirs[key], tuned[key])
                  for what, key in [("training step (ms)", "step_ms"), ("peak RSS of the run (MiB)", "rss_mb")]])


if __name__ == "__main__":
    main()
