"""Helpers shared by the CPU benchmarks.

Each benchmark times tinynet and PyTorch in the same run, each library in its own
subprocess (so neither pays for the other's imports or thread pools, and each peak memory
is its own), with the same number of threads, alternating the two sides ``--repeat`` times
and keeping each figure's median: this shared machine's speed drifts by up to 20% with its
other tenants, and alternating spreads that drift over both libraries. Results are printed
as ratios tinynet / PyTorch (lower is better for tinynet).

PyTorch runs twice per round: as installed, and with tinynet's malloc thresholds
(``tinynet.kernels.malloc``, given to glibc through its environment variables), since tinynet
tunes malloc in its own process and PyTorch allocates through malloc too. Both ratios are printed.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIDES = ("tinynet", "torch", "torch_tuned_malloc")
#: The library each side runs.
LIBRARY = {"tinynet": "tinynet", "torch": "torch", "torch_tuned_malloc": "torch"}


def side_env(side):
    """The environment variables ``side``'s process gets on top of this one's: glibc's names for
    tinynet's malloc thresholds for ``torch_tuned_malloc``. (Imported here, in the parent, so the
    sides' processes do not import tinynet for it.)"""
    if side != "torch_tuned_malloc":
        return {}
    from tinynet.kernels import malloc

    return {"MALLOC_MMAP_THRESHOLD_": str(malloc.MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(malloc.TRIM_THRESHOLD)}


def limit_threads(library, threads):
    """Give ``library`` ``threads`` threads: PyTorch's intra-op pool, or numba's pool, on
    which tinynet's kernels run (its BLAS calls are single-threaded; see ``tinynet.kernels.threads``)."""
    if library == "torch":
        import torch

        torch.set_num_threads(threads)
    else:
        import numba

        numba.set_num_threads(threads)


def median_ms(fn, repeats, warmup=20, rounds=5, synchronize=None):
    """Median over ``rounds`` of the mean wall-clock time of ``repeats`` calls of ``fn``, in
    milliseconds. On a GPU pass ``synchronize``: each round then ends when the device has finished."""
    synchronize = synchronize or (lambda: None)
    for _ in range(warmup):
        fn()
    synchronize()
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        synchronize()
        means.append((time.perf_counter() - start) / repeats * 1e3)
    return statistics.median(means)


def tinynet_train_step(model, loss_fn, optimizer):
    """``step(x, y) -> loss``: one tinynet training step (forward, loss, backward, update). Like
    PyTorch's, whose input does not require a gradient, the backward pass computes none for the input."""
    def step(x, y):
        loss = loss_fn(model(x), y)
        model.backward_parameters(loss_fn.backward())
        optimizer.step()
        optimizer.zero_grad()
        return loss

    return step


def torch_train_step(model, loss_fn, optimizer):
    """``step(x, y) -> loss``: the same step in PyTorch, reading the loss as a Python number as
    tinynet's loss returns one (so both sides wait for the step to finish)."""
    def step(x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def side_parser(doc):
    """An argument parser for a benchmark script with ``--threads``, ``--repeat`` and the hidden
    ``--side`` that ``run_sides`` passes to each subprocess; its description is ``doc``'s first paragraph."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for each library (default: all cores)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating; medians are shown (default 3)")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    return parser


def run_side(args, sides, *arguments):
    """In a side's subprocess (``args.side`` set): limit its threads, run its library's function,
    ``sides["tinynet"]`` or ``sides["torch"]``, with ``*arguments`` and print its results as JSON for
    ``run_sides``. Returns whether this was such a subprocess."""
    if args.side is None:
        return False
    library = LIBRARY[args.side]
    limit_threads(library, args.threads)
    print(json.dumps(sides[library](*arguments)))
    return True


def peak_rss_mb():
    """This process's peak resident memory (VmHWM), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_sides(script, arguments, repeat):
    """Run ``python script --side SIDE *arguments`` for every side, ``repeat`` times alternating.

    Each run prints one JSON object as its last line. Returns ``{side: {key: value}}`` with the
    median of every float and the first run's value of anything else.
    """
    runs = {side: [] for side in SIDES}
    for _ in range(repeat):
        for side in SIDES:
            command = [sys.executable, script, "--side", side, *map(str, arguments)]
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, **side_env(side)})
            if done.returncode != 0:
                raise SystemExit(f"the {side} side of {script} failed:\n{done.stderr}")
            runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        side: {key: statistics.median(run[key] for run in results) if isinstance(value, float) else value
               for key, value in results[0].items()}
        for side, results in runs.items()
    }


def print_ratios(rows):
    """Print a table of ``(what, tinynet, pytorch, pytorch with tuned malloc)`` figures with the
    ratios tinynet / PyTorch, for PyTorch as installed and with tinynet's malloc settings."""
    print(f"{'':<36} {'tinynet':>10} {'PyTorch':>10} {'ratio':>7} {'PyTorch, tuned malloc':>22} {'ratio':>7}")
    for what, ours, theirs, tuned in rows:
        print(f"{what:<36} {ours:>10.2f} {theirs:>10.2f} {ours / theirs:>7.2f} {tuned:>22.2f} {ours / tuned:>7.2f}")
