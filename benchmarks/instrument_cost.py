"""What the instruments of ``tinynet.debug`` cost in ``fit``: the MNIST CNN's training step (batch 60,
Adam) with fit as it was before them (loaded from git), with them off, with ``detect_anomaly=True``
and with ``record="grad_norms"`` on every step, alternating the four in one process.

    python benchmarks/instrument_cost.py [--rounds 8] [--steps 50] [--base b7b9160]
"""
import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tinynet as tn

ROOT = Path(__file__).resolve().parents[1]


def fit_before(commit):
    """``fit`` from tinynet/train.py at ``commit``, running on this checkout's other modules."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{commit}:tinynet/train.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "train_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tinynet._train_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.fit


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--base", default="b7b9160", help="the commit before the instruments")
    args = parser.parse_args()

    tn.manual_seed(0)
    x, y = tn.datasets.mnist(train=True)
    x, y = x[:60 * args.steps], y[:60 * args.steps]
    model = tn.Sequential(
        tn.Conv2d(1, 8, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
        tn.Conv2d(8, 16, 3, padding=1), tn.ReLU(), tn.MaxPool2d(2),
        tn.Flatten(), tn.Linear(16 * 7 * 7, 10),
    )
    optimizer = tn.optim.Adam(model.parameters(), lr=1e-3)
    loader = tn.data.DataLoader(x, y, batch_size=60)
    old_fit = fit_before(args.base)
    variants = {
        "before": lambda: old_fit(model, tn.CrossEntropyLoss(), optimizer, loader, progress=False),
        "off": lambda: tn.fit(model, tn.CrossEntropyLoss(), optimizer, loader, progress=False),
        "detect_anomaly": lambda: tn.fit(model, tn.CrossEntropyLoss(), optimizer, loader, progress=False,
                                         detect_anomaly=True),
        "record every step": lambda: tn.fit(model, tn.CrossEntropyLoss(), optimizer, loader, progress=False,
                                            record="grad_norms"),
    }
    times = {name: [] for name in variants}
    for run in variants.values():
        run()  # compile and warm up
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    base = np.median(times["before"])
    print(f"MNIST CNN training step, batch 60, {args.rounds} rounds of {args.steps} steps, alternating")
    for name, values in times.items():
        print(f"{name:>18}: median {np.median(values):.3f} ms/step  (min {min(values):.3f})  "
              f"ratio to before {np.median(values) / base:.3f}")
    off = np.array(times["off"]) / np.array(times["before"])
    print(f"per-round ratio off/before: {np.round(off, 3).tolist()}")


if __name__ == "__main__":
    main()
