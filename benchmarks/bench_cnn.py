"""The MNIST CNN on the CPU, tinynet against PyTorch: a training step, a whole epoch, inference
on the 10,000 test images, and the peak memory of the process that did all that.

    python benchmarks/bench_cnn.py                      # every core
    python benchmarks/bench_cnn.py --threads 1

The model is the recipe's ``cnn_model()``: Conv2d(1, 8, 3, padding=1), ReLU, MaxPool2d(2),
Conv2d(8, 16, 3, padding=1), ReLU, MaxPool2d(2), Flatten, Linear(784, 10), trained with
cross-entropy and Adam (lr 1e-3) at batch 60. A step is forward, loss, backward and update, and
reads the loss as a Python number on both sides (tinynet's loss returns one; PyTorch calls
``.item()``). The step time is the median over 5 rounds of the mean of 200 steps, after 50
warm-up steps (which also load or compile the numba kernels). The epoch is one shuffled pass
over the 60,000 training images; inference is one pass over the test images in batches of
``--infer-batch`` (PyTorch under ``torch.no_grad()``, tinynet in eval mode), the best of 3.
Each side runs ``--repeat`` times, alternating with the other, and the medians are shown.

Each library runs in its own subprocess with the same number of threads
(``torch.set_num_threads`` for PyTorch, ``numba.set_num_threads`` for tinynet), so that neither
pays for the other's imports, and the peak resident memory (VmHWM) of each is its own.
tinynet tunes glibc's malloc at its first kernel call (``tinynet.kernels.malloc``); PyTorch runs
both as installed and with the same settings (given through glibc's environment variables).

Real MNIST is read from ``$TINYNET_DATA`` (default ``../shared/data`` beside the checkout) when
it is there; otherwise random images of the same shape are used (the timings do not depend on
the pixel values). Prints times and the ratios tinynet / PyTorch (lower is better for tinynet).
"""
import os
import time
from pathlib import Path

import numpy as np

from common import (median_ms, peak_rss_mb, print_ratios, run_side, run_sides, side_parser, tinynet_train_step,
                    torch_train_step)

BATCH = 60
STEP_REPEATS, STEP_WARMUP = 200, 50
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_mnist():
    """(train_x, train_y, test_x, test_y) as float32 (N, 1, 28, 28) images and int64 labels."""
    from tinynet import datasets

    root = os.environ.get("TINYNET_DATA", str(DEFAULT_DATA))
    if (Path(root) / "MNIST" / "raw").is_dir():
        return (*datasets.mnist(root, train=True, download=False), *datasets.mnist(root, train=False, download=False))
    rng = np.random.default_rng(0)
    return (rng.random((60000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 60000),
            rng.random((10000, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 10000))


def best_of(fn, times=3):
    """The fastest of ``times`` runs of ``fn``, in seconds."""
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# --- one side per subprocess -----------------------------------------------------------
def tinynet_side(infer_batch):
    import tinynet as tn
    from tinynet.recipes import cnn_model
    tn.kernels.warm_up([np.float32])  # before any timing: no step runs on the reference while numba compiles

    train_x, train_y, test_x, test_y = load_mnist()
    tn.manual_seed(0)
    model = cnn_model()
    train_step = tinynet_train_step(model, tn.CrossEntropyLoss(), tn.optim.Adam(model.parameters(), lr=1e-3))

    x, y = train_x[:BATCH], train_y[:BATCH]
    step_ms = median_ms(lambda: train_step(x, y), STEP_REPEATS, warmup=STEP_WARMUP)

    def epoch():
        order = np.random.default_rng(0).permutation(len(train_x))
        for start in range(0, len(order) - BATCH + 1, BATCH):
            batch = order[start:start + BATCH]
            train_step(train_x[batch], train_y[batch])

    epoch_s = best_of(epoch, times=1)

    def inference():
        model.eval()
        return [model(test_x[i:i + infer_batch]).argmax(axis=1) for i in range(0, len(test_x), infer_batch)]

    infer_s = best_of(inference)
    return dict(step_ms=step_ms, epoch_s=epoch_s, infer_s=infer_s, rss_mb=peak_rss_mb(),
                kernels=tn.kernels.get_backend())


def torch_side(infer_batch):
    import torch

    train_x, train_y, test_x, test_y = (torch.from_numpy(a) for a in load_mnist())
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(784, 10),
    )
    train_step = torch_train_step(model, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=1e-3))

    x, y = train_x[:BATCH], train_y[:BATCH]
    step_ms = median_ms(lambda: train_step(x, y), STEP_REPEATS, warmup=STEP_WARMUP)

    def epoch():
        order = torch.from_numpy(np.random.default_rng(0).permutation(len(train_x)))
        for start in range(0, len(order) - BATCH + 1, BATCH):
            batch = order[start:start + BATCH]
            train_step(train_x[batch], train_y[batch])

    epoch_s = best_of(epoch, times=1)

    def inference():
        model.eval()
        with torch.no_grad():
            return [model(test_x[i:i + infer_batch]).argmax(dim=1) for i in range(0, len(test_x), infer_batch)]

    infer_s = best_of(inference)
    return dict(step_ms=step_ms, epoch_s=epoch_s, infer_s=infer_s, rss_mb=peak_rss_mb(),
                version=torch.__version__)


# --- the parent: run both sides, print the comparison -----------------------------------
def main():
    parser = side_parser(__doc__)
    parser.add_argument("--infer-batch", type=int, default=1000, help="batch size for inference (default 1000)")
    args = parser.parse_args()
    if run_side(args, {"tinynet": tinynet_side, "torch": torch_side}, args.infer_batch):
        return

    results = run_sides(__file__, ["--threads", args.threads, "--infer-batch", args.infer_batch], args.repeat)
    ours, theirs, tuned = results["tinynet"], results["torch"], results["torch_tuned_malloc"]
    print(f"MNIST CNN, batch {BATCH}, Adam; {args.threads} thread(s); tinynet kernels: {ours['kernels']}; "
          f"PyTorch {theirs['version']}; "
          f"inference batch {args.infer_batch}; medians of {args.repeat} alternating runs")
    print_ratios([
        (what, ours[key] * scale, theirs[key] * scale, tuned[key] * scale) for what, key, scale in [
            ("training step (ms)", "step_ms", 1), ("epoch of 60,000 images (s)", "epoch_s", 1),
            ("inference, 10,000 images (ms)", "infer_s", 1e3), ("peak RSS of the run (MiB)", "rss_mb", 1),
        ]
    ])


if __name__ == "__main__":
    main()
