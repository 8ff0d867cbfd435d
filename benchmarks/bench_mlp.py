"""One training step of the MNIST MLP on the CPU, tinynet against PyTorch, at batch 16 and 128.

    python benchmarks/bench_mlp.py                # every core
    python benchmarks/bench_mlp.py --threads 1

The model is the recipe's ``mlp_model()`` (784-512-512-10, ReLU, Dropout(0.2)) trained with
cross-entropy and SGD (lr 0.05), in training mode so that dropout draws its masks. A step is
forward, loss, backward and update, and reads the loss as a Python number on both sides
(tinynet's loss returns one; PyTorch calls ``.item()``). Each batch size's time is the median
over 5 rounds of the mean of ``--steps`` steps, after 50 warm-up steps. The inputs are random
images: a step's cost does not depend on the pixel values. Each library runs in its own
subprocess with the same number of threads, ``--repeat`` times alternating with the other
(see ``common.py``), PyTorch as installed and with tinynet's malloc settings. Prints
milliseconds per step and the ratios tinynet / PyTorch.
"""
import numpy as np

from common import median_ms, print_ratios, run_side, run_sides, side_parser, tinynet_train_step, torch_train_step

BATCHES = (16, 128)
LR = 0.05


def tinynet_side(steps):
    import tinynet as tn
    from tinynet.recipes import mlp_model
    tn.kernels.warm_up([np.float32])  # before any timing: no step runs on the reference while numba compiles

    tn.manual_seed(0)
    model = mlp_model()
    step = tinynet_train_step(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=LR))
    return {f"step_ms_{batch}": median_ms(lambda: step(*random_batch(batch)), steps, warmup=50)
            for batch in BATCHES}


def torch_side(steps):
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(512, 10),
    )
    step = torch_train_step(model, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=LR))
    result = {}
    for batch in BATCHES:
        x, y = (torch.from_numpy(a) for a in random_batch(batch))
        result[f"step_ms_{batch}"] = median_ms(lambda: step(x, y), steps, warmup=50)
    result["version"] = torch.__version__
    return result


_batches = {}


def random_batch(batch):
    """The same random (images, labels) batch of ``batch`` samples on every call."""
    if batch not in _batches:
        rng = np.random.default_rng(batch)
        _batches[batch] = rng.random((batch, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, batch)
    return _batches[batch]


def main():
    parser = side_parser(__doc__)
    parser.add_argument("--steps", type=int, default=200, help="steps per timing round (default 200)")
    args = parser.parse_args()
    if run_side(args, {"tinynet": tinynet_side, "torch": torch_side}, args.steps):
        return

    results = run_sides(__file__, ["--threads", args.threads, "--steps", args.steps], args.repeat)
    ours, theirs, tuned = results["tinynet"], results["torch"], results["torch_tuned_malloc"]
    print(f"MNIST MLP, SGD; {args.threads} thread(s); PyTorch {theirs['version']}; "
          f"medians of {args.repeat} alternating runs")
    print_ratios([(f"training step, batch {batch} (ms)", ours[f"step_ms_{batch}"], theirs[f"step_ms_{batch}"],
                   tuned[f"step_ms_{batch}"]) for batch in BATCHES])


if __name__ == "__main__":
    main()
