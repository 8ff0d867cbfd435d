"""The first minute of a fresh install: time from ``import`` to the end of the first training step,
and the first epoch, with numba's cache empty (cold) and filled (warm); PyTorch's first step beside.

    python benchmarks/cold_start.py              # first steps of the CNN and the MLP, cold and warm
    python benchmarks/cold_start.py --epoch      # also a CNN epoch (1,000 steps), cold and warm
    python benchmarks/cold_start.py --model cnn  # only the CNN

Each figure is a new ``python`` process running a fresh copy of the ``tinynet`` package (copied to
a temporary folder: no bytecode or numba cache of the checkout is used) with ``NUMBA_CACHE_DIR``
pointed at a new, empty folder; the warm figures run a second process on that same cache. The
models: the MNIST CNN (batch 60, Adam) and the MNIST MLP (784-512-512-10, batch 16, SGD), on random
images; PyTorch runs the same CNN and MLP. Cold, tinynet's first steps run on the NumPy reference
kernels while numba compiles its own in the background (see ``tinynet.kernels.compiling``).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FIRST_STEP = """
import json, os, sys, time
start = time.perf_counter()
import numpy as np
library, model_name, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
batch = 60 if model_name == "cnn" else 16
rng = np.random.default_rng(0)
x, y = rng.random((batch, 1, 28, 28), dtype=np.float32), np.arange(batch) % 10
if library == "tinynet":
    import tinynet as nn
    optim = nn.optim
else:
    import torch
    from torch import nn, optim
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    x, y = torch.from_numpy(x), torch.from_numpy(y)
imported = time.perf_counter()
# The same names in both libraries:
if model_name == "cnn":
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
else:
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
                          nn.Linear(512, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10))
    optimizer = optim.SGD(model.parameters(), lr=0.05)
loss_fn = nn.CrossEntropyLoss()


def step():
    loss = loss_fn(model(x), y)
    if library == "tinynet":
        model.backward_parameters(loss_fn.backward())
    else:
        loss.backward()
    optimizer.step()
    optimizer.zero_grad()


step()
first = time.perf_counter()
for _ in range(steps - 1):
    step()
end = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_step_s": first - start, "steps_s": end - first}))
"""


def run(package_parent, cache_dir, library, model, steps=1):
    """One new process: ``{"import_s", "first_step_s" (from before the import), "steps_s" (the
    ``steps - 1`` steps after the first)}``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, "PYTHONPATH": package_parent, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", FIRST_STEP, library, model, str(steps)], capture_output=True,
                          text=True, check=True, env=env, cwd=package_parent)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["cnn", "mlp"], action="append", help="only this model (default: both)")
    parser.add_argument("--epoch", action="store_true", help="also time a CNN epoch of 1,000 steps, cold and warm")
    args = parser.parse_args(argv)
    source = Path(__file__).resolve().parents[1] / "tinynet"
    print("seconds from before the import to the end of the step (new process each; tinynet with an empty / filled "
          "numba cache)")
    print(f"{'':<30} {'tinynet cold':>12} {'tinynet warm':>12} {'PyTorch':>8}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copytree(source, Path(scratch, "tinynet"), ignore=shutil.ignore_patterns("__pycache__"))
        for model in args.model or ["cnn", "mlp"]:
            cache = tempfile.mkdtemp(dir=scratch)
            first_steps = [run(scratch, cache, library, model)["first_step_s"]
                           for library in ("tinynet", "tinynet", "torch")]
            print(f"{model.upper() + ' first step':<30} {first_steps[0]:>12.2f} {first_steps[1]:>12.2f} "
                  f"{first_steps[2]:>8.2f}", flush=True)
        if args.epoch:
            cache = tempfile.mkdtemp(dir=scratch)
            runs = [run(scratch, cache, library, "cnn", steps=1000) for library in ("tinynet", "tinynet", "torch")]
            epochs = [result["first_step_s"] + result["steps_s"] for result in runs]
            print(f"{'CNN first epoch (1,000 steps)':<30} {epochs[0]:>12.2f} {epochs[1]:>12.2f} {epochs[2]:>8.2f}")


if __name__ == "__main__":
    main()
