"""Data-parallel training of the MNIST CNN over MPI (``tinynet.distributed``): one epoch with 1 and
with 2 processes, the images per second, the test accuracy after the epoch and the fraction of the
epoch spent in the gradients' allreduce; then the alpha-beta cost model of a ring allreduce, with
alpha and beta measured between the processes of this machine, and the speed-ups it predicts.

    python benchmarks/bench_distributed.py                  # 1 and 2 processes, 3 alternating runs
    python benchmarks/bench_distributed.py --repeat 5 --processes 1 2 4

Configurations: one process at batch 60, with every core's thread and with one thread; P
processes at batch 60 / P each (the same global batch of 60, so the same number of steps, and the
same training up to rounding); P processes at batch 60 each (a global batch of 60 * P: P times
fewer steps). The processes run numba with ``cores // P`` threads (``tinynet.distributed.init``). The model, optimizer (Adam, lr 1e-3),
seed and data are the CNN recipe's; before the timed epoch each job takes 5 warm-up steps (which
load the numba kernels) and then restores the initial weights and a fresh optimizer. The epoch
time runs from a barrier before the first step to one after the last; the allreduce time is rank
0's time inside ``Allreduce``, which includes waiting for the slower process. Each configuration
runs ``--repeat`` times, alternating with the others, and the medians are shown.

The cost model (``predict``): a step of P processes takes its compute time T_c (batch B per
process) plus a ring allreduce of the n gradients of s bytes each,
T_ring(P) = 2 (P - 1) alpha + 2 (P - 1) / P * n * s * beta, so with B fixed per process the
speed-up over one process is P * T_c / (T_c + T_ring(P)). T_c is the faster one-process step
measured here, or ``--step-ms``.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

from bench_cnn import BATCH, load_mnist

#: (name, alpha in seconds, beta in seconds per byte) of the networks the model is evaluated for.
NETWORKS = [("InfiniBand HDR (alpha 2 us, 12.5 GB/s)", 2e-6, 1 / 12.5e9),
            ("10 Gbit Ethernet (alpha 25 us, 1.1 GB/s)", 25e-6, 1 / 1.1e9)]
PREDICTED_PROCESSES = (2, 8, 32, 128)


def worker(batch_size, threads):
    """One process of an epoch job (``threads``: numba's, or 0 for the default); prints rank 0's
    figures as JSON."""
    import numba

    import tinynet as tn
    from tinynet import distributed, recipes

    comm = distributed.init(threads or None)
    distributed.manual_seed(0, comm)
    x_train, y_train, x_test, y_test = load_mnist()
    model = recipes.cnn_model()
    initial = {key: value.copy() for key, value in model.state_dict().items()}
    loss_fn = tn.CrossEntropyLoss()

    def train(optimizer, loader, steps=None):
        for step, (x, y) in enumerate(loader):
            if step == steps:
                break
            loss_fn(model(x), y)
            model.backward_parameters(loss_fn.backward())
            optimizer.step()
            optimizer.zero_grad()

    def fresh_optimizer():
        return distributed.DistributedOptimizer(tn.optim.Adam(model.parameters(), lr=1e-3), comm)

    loader = tn.data.DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=0, shard=comm)
    train(fresh_optimizer(), loader, steps=5)  # loads the kernels
    model.load_state_dict(initial)
    distributed.broadcast_parameters(model, comm)
    optimizer = fresh_optimizer()
    loader = tn.data.DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=0, shard=comm)

    in_allreduce = 0.0
    allreduce = comm.allreduce_

    def timed_allreduce(buffer):
        nonlocal in_allreduce
        start = time.perf_counter()
        allreduce(buffer)
        in_allreduce += time.perf_counter() - start
        return buffer

    comm.allreduce_ = timed_allreduce
    comm.barrier()
    start = time.perf_counter()
    train(optimizer, loader)
    comm.barrier()
    epoch = time.perf_counter() - start
    comm.allreduce_ = allreduce
    results = tn.evaluate(model, loss_fn, tn.data.DataLoader(x_test, y_test, batch_size=1000), comm=comm)
    if comm.is_main:
        images = len(loader) * batch_size * comm.size
        print(json.dumps({"epoch_s": epoch, "images_per_s": images / epoch, "allreduce_fraction": in_allreduce / epoch,
                          "step_ms": epoch / len(loader) * 1e3, "test_accuracy": results["accuracy"],
                          "threads": numba.get_num_threads()}))


def alpha_beta(repeats=2000, large=1 << 20):
    """Measure a 2-process Allreduce: alpha from 1 float32 element, beta from ``large`` ones
    (for P = 2 a ring allreduce costs 2 alpha + n * s * beta)."""
    from tinynet import distributed

    comm = distributed.init()
    times = {}
    for size, count in ((1, repeats), (large, 20)):
        buffer = np.ones(size, np.float32)
        comm.allreduce_(buffer)
        rounds = []
        for _ in range(5):
            comm.barrier()
            start = time.perf_counter()
            for _ in range(count):
                comm.allreduce_(buffer)
            rounds.append((time.perf_counter() - start) / count)
        times[size] = statistics.median(rounds)
    if comm.is_main:
        print(json.dumps({"alpha_s": times[1] / 2, "beta_s_per_byte": (times[large] - times[1]) / (large * 4)}))


def run(processes, *arguments):
    """Run this script under ``mpiexec -n processes`` and return rank 0's JSON line."""
    command = ["mpiexec", "-n", str(processes), sys.executable, __file__, *map(str, arguments)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def predict(step_s, parameters, bytes_per_value=4):
    """Print the ring-allreduce model's speed-ups for a step of ``step_s`` seconds."""
    payload = parameters * bytes_per_value
    for name, alpha, beta in NETWORKS:
        print(f"\n{name}: T_c {step_s * 1e3:.2f} ms, n * s = {payload / 1e3:.1f} kB")
        print(f"{'processes':>10} {'T_ring (ms)':>12} {'allreduce share':>16} {'speed-up':>9} {'efficiency':>11}")
        for p in PREDICTED_PROCESSES:
            ring = 2 * (p - 1) * alpha + 2 * (p - 1) / p * payload * beta
            speedup = p * step_s / (step_s + ring)
            print(f"{p:>10} {ring * 1e3:>12.3f} {ring / (step_s + ring):>16.1%} {speedup:>9.1f} {speedup / p:>11.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts (default 1 2)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration, alternating (default 3)")
    parser.add_argument("--step-ms", type=float, help="T_c of the model (default: the faster one-process step here)")
    args = parser.parse_args()
    configurations = [(1, BATCH, 0), (1, BATCH, 1)]  # (processes, batch per process, threads; 0: the default)
    for p in args.processes:
        if p > 1:
            configurations += [(p, BATCH // p, 0), (p, BATCH, 0)]
    runs = {configuration: [] for configuration in configurations}
    for _ in range(args.repeat):
        for p, batch, threads in configurations:
            runs[(p, batch, threads)].append(run(p, "--worker", batch, threads))
    print(f"MNIST CNN, one epoch of 60,000 images (medians of {args.repeat} alternating runs); "
          "speed-up: images/s over the faster one-process configuration")
    print(f"{'processes':>9} {'batch/process':>13} {'global batch':>12} {'threads':>7} {'step ms':>8} "
          f"{'images/s':>9} {'speed-up':>8} {'allreduce':>9} {'accuracy':>8}")
    medians = {configuration: {key: statistics.median(r[key] for r in results) for key in results[0]}
               for configuration, results in runs.items()}
    base = max(medians[(1, BATCH, threads)]["images_per_s"] for threads in (0, 1))
    for (p, batch, _), median in medians.items():
        print(f"{p:>9} {batch:>13} {batch * p:>12} {median['threads']:>7} {median['step_ms']:>8.2f} "
              f"{median['images_per_s']:>9.0f} {median['images_per_s'] / base:>8.2f} "
              f"{median['allreduce_fraction']:>9.1%} {median['test_accuracy']:>8.2%}")
    measured = run(2, "--alpha-beta")
    print(f"\nAllreduce between 2 processes of this machine (shared memory): alpha {measured['alpha_s'] * 1e6:.1f} us, "
          f"beta {measured['beta_s_per_byte'] * 1e9:.3f} ns/B ({1 / measured['beta_s_per_byte'] / 1e9:.1f} GB/s)")
    from tinynet import recipes

    parameters = sum(p.data.size for p in recipes.cnn_model().parameters())
    step = (args.step_ms or min(medians[(1, BATCH, threads)]["step_ms"] for threads in (0, 1))) / 1e3
    print(f"\nRing-allreduce model for the MNIST CNN ({parameters} float32 parameters), batch {BATCH} per process:")
    predict(step, parameters)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        worker(*map(int, sys.argv[sys.argv.index("--worker") + 1:][:2]))
    elif "--alpha-beta" in sys.argv:
        alpha_beta()
    else:
        main()
