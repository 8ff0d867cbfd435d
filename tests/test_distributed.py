"""Data-parallel training (``tinynet.distributed``): jobs of two processes under ``mpiexec``,
compared with one-process runs, plus the pieces that need no MPI (sharding, seeding, wrapping).

The jobs run ``tests/distributed_worker.py``; each has a timeout, so a hang fails the test."""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinynet as tn
from tinynet import cli, distributed, recipes
from tinynet.data import DataLoader

from distributed_worker import BATCH, STEPS, mlp_with_input_mean, mnist_subset, model_for, optimizer_for, state_arrays
from helpers import tolerance

WORKER = Path(__file__).with_name("distributed_worker.py")
MPIEXEC = shutil.which("mpiexec")
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpi4py and an MPI with mpiexec: pip install tinynet[distributed]",
)


def run_job(args, processes=2, timeout=240):
    """``mpiexec -n processes python args...`` (plain ``python args`` for ``processes=None``); a
    job still running after ``timeout`` seconds is killed, all its processes, and fails the test."""
    command = [sys.executable, *map(str, args)]
    if processes is not None:
        command = [MPIEXEC, "-n", str(processes), *command]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        stdout, stderr = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        stdout, stderr = job.communicate()
        pytest.fail(f"{' '.join(command)} still ran after {timeout} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, job.returncode, stdout, stderr)


def run_worker(scenario, output, mnist_root, processes=2):
    done = run_job([WORKER, scenario, output, mnist_root], processes)
    assert done.returncode == 0, f"the {scenario} job failed:\n{done.stdout}\n{done.stderr}"
    return done


class World:
    """A stand-in communicator for the parts that read only ``rank`` and ``size``."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size


# --- without MPI -------------------------------------------------------------------------

@given(samples=st.integers(0, 120), batch_size=st.integers(1, 9), processes=st.integers(1, 4), shuffle=st.booleans())
def test_shard_deals_each_global_batch_to_the_processes_in_rank_order(samples, batch_size, processes, shuffle):
    """Batch k of process r is the r-th slice of batch k of one loader at ``batch_size * processes``
    (without its partial last batch when there are several processes), so the shards are disjoint."""
    data = np.arange(samples)
    whole = [batch for (batch,) in DataLoader(data, batch_size=batch_size * processes, shuffle=shuffle, seed=3,
                                              drop_last=processes > 1)]
    shards = [[batch for (batch,) in DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=3,
                                                shard=World(rank, processes))] for rank in range(processes)]
    assert [len(shard) for shard in shards] == [len(whole)] * processes
    for step, batch in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([shard[step] for shard in shards]), batch)
    taken = np.concatenate([batch for shard in shards for batch in shard] or [np.zeros(0, int)])
    assert len(set(taken.tolist())) == len(taken) == (samples if processes == 1 else
                                                      samples // (batch_size * processes) * batch_size * processes)


def test_shard_of_one_process_is_the_plain_loader():
    data = np.arange(50.0)
    plain = DataLoader(data, batch_size=8, shuffle=True, seed=1, transform=lambda b, rng: (b[0] + rng.random(),))
    alone = DataLoader(data, batch_size=8, shuffle=True, seed=1, transform=lambda b, rng: (b[0] + rng.random(),),
                       shard=World(0, 1))
    assert len(alone) == len(plain) == 7
    for (a,), (b,) in zip(plain, alone):
        np.testing.assert_array_equal(a, b)


def test_shard_gives_each_process_its_own_augmentation_stream():
    data = np.zeros(16)
    draws = [[batch[0] for (batch,) in DataLoader(data, batch_size=4, seed=0, shard=World(rank, 2),
                                                  transform=lambda b, rng: (b[0] + rng.random(4),))]
             for rank in range(2)]
    again = [batch[0] for (batch,) in DataLoader(data, batch_size=4, seed=0, shard=World(0, 2),
                                                 transform=lambda b, rng: (b[0] + rng.random(4),))]
    assert draws[0] != draws[1] and draws[0] == again


def test_shard_refusals():
    data = np.arange(10)
    with pytest.raises(TypeError, match=r"DataLoader: shard must be a communicator with 0 <= rank < size"):
        DataLoader(data, shard=World(2, 2))
    with pytest.raises(ValueError, match="DataLoader: with shard, pass seed"):
        DataLoader(data, shuffle=True, shard=World(0, 2))


def test_rank_seed_keeps_rank_0_and_separates_the_others():
    assert distributed.rank_seed(5, 0) == 5
    seeds = {distributed.rank_seed(5, rank) for rank in range(1, 64)} | {5}
    assert len(seeds) == 64
    distributed.manual_seed(5, World(1, 2))
    first = tn.rng.default_generator().random()
    tn.manual_seed(distributed.rank_seed(5, 1))
    assert tn.rng.default_generator().random() == first


def test_default_threads_divide_the_cores():
    cores = os.cpu_count()
    assert distributed.default_threads(1) == min(cores, len(os.sched_getaffinity(0)))
    assert distributed.default_threads(cores) == 1 and distributed.default_threads(4 * cores) == 1


@pytest.mark.parametrize("threads", [0, numba.config.NUMBA_NUM_THREADS + 1, 1.5, True])
def test_init_refuses_a_thread_count_numba_cannot_take(threads):
    with pytest.raises(ValueError, match=rf"tinynet.distributed.init: threads must be an integer from 1 to numba's "
                                         rf"pool size \(NUMBA_NUM_THREADS, {numba.config.NUMBA_NUM_THREADS}\), "
                                         rf"got {threads!r}"):
        distributed.init(threads=threads)


def test_distributed_optimizer_forwards_to_the_wrapped_one():
    model = tn.Sequential(tn.Linear(3, 2))
    adam = tn.optim.Adam(model.parameters(), lr=0.1)
    wrapped = distributed.DistributedOptimizer(adam, World(0, 1))
    schedule = tn.schedules.StepLR(wrapped, step_size=1, gamma=0.5)
    schedule.step()
    assert adam.lr == wrapped.lr == 0.05 and wrapped.params is adam.params
    model(np.ones((4, 3), np.float32))
    model.backward_parameters(np.ones((4, 2), np.float32))
    wrapped.step()  # one process: the gradients are the wrapped optimizer's as they are
    assert adam.step_count == 1 and wrapped.state_dict()["step"] == 1
    with pytest.raises(TypeError, match="DistributedOptimizer: expected a tinynet optimizer, got DistributedOptimizer"):
        distributed.DistributedOptimizer(wrapped, World(0, 1))


def test_fit_refuses_an_unwrapped_optimizer_on_several_processes():
    model = tn.Sequential(tn.Linear(2, 2))
    x, y = np.zeros((4, 2), np.float32), np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="fit: with comm, pass the optimizer as tinynet.distributed.DistributedOptimizer"):
        tn.fit(model, tn.CrossEntropyLoss(), tn.optim.SGD(model.parameters(), lr=0.1), DataLoader(x, y),
               progress=False, comm=World(0, 2))


def test_resuming_on_more_processes_than_saved_is_refused_before_anything_changes(tmp_path):
    model = tn.Sequential(tn.Linear(2, 2))
    optimizer = tn.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "one.npz"
    tn.train.save_checkpoint(path, tn.train.TrainingState(model, None, optimizer, None, None, None, 1))
    weights = model[0].weight.data.copy()
    model[0].weight.data += 1
    state = tn.train.TrainingState(model, None, optimizer, None, None, None, 1, comm=World(1, 2))
    with pytest.raises(ValueError, match=r"the checkpoint holds the random streams of 1 process\(es\), not of 2; "
                                         r"resume it with at most 1"):
        tn.train.load_checkpoint(path, state)
    np.testing.assert_array_equal(model[0].weight.data, weights + 1)
    assert state.epoch == 0


def test_distributed_without_mpi4py_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    assert cli.main(["train", "cnn", "--distributed", "--epochs", "1", "--data-root", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "tinynet train cnn: error: distributed training needs mpi4py and an MPI library" in err
    assert "pip install tinynet[distributed]" in err


# --- jobs of two processes --------------------------------------------------------------

def one_process_run(model_name, optimizer_name, images, labels, split):
    """STEPS steps at batch 2 * BATCH in one process; with ``split``, each step's gradient is the
    mean of the two half-batch gradients, (g0 + g1) / 2, as two processes compute it."""
    tn.manual_seed(0)
    model = model_for(model_name, np.float64)
    optimizer = optimizer_for(optimizer_name, model)
    loss_fn = tn.CrossEntropyLoss()
    for x, y in DataLoader(images, labels, batch_size=2 * BATCH, shuffle=True, seed=0):
        if not split:
            loss_fn(model(x), y)
            model.backward_parameters(loss_fn.backward())
        else:
            halves = []
            for half in (slice(0, BATCH), slice(BATCH, 2 * BATCH)):
                loss_fn(model(x[half]), y[half])
                model.backward_parameters(loss_fn.backward())
                halves.append([param.grad for param in model.parameters()])
                optimizer.zero_grad()
            for param, g0, g1 in zip(model.parameters(), *halves):
                param.grad = (g0 + g1) / 2
        optimizer.step()
        optimizer.zero_grad()
    return state_arrays(model, optimizer)


@pytest.fixture(scope="module")
def two_process_steps(mnist_root, tmp_path_factory):
    output = tmp_path_factory.mktemp("steps") / "steps.npz"
    one_process_run("cnn", "adam", *mnist_subset(mnist_root, True, 2 * BATCH, np.float64), split=False)  # compile first
    run_worker("steps", output, mnist_root)
    return tn.load(output)


@needs_mpi
@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_two_processes_match_one_process_at_twice_the_batch(two_process_steps, mnist_root, model_name, optimizer_name):
    """Every step of the job also checked that both processes held the same bits (the worker)."""
    images, labels = mnist_subset(mnist_root, True, 2 * BATCH * STEPS, np.float64)
    rtol, atol = tolerance(np.float64)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # as each of the two processes on this machine: sums split alike
    try:
        whole = one_process_run(model_name, optimizer_name, images, labels, split=False)
        halves = one_process_run(model_name, optimizer_name, images, labels, split=True)
    finally:
        numba.set_num_threads(threads)
    for key, value in whole.items():
        got = two_process_steps[f"{model_name}.{optimizer_name}.{key}"]
        np.testing.assert_allclose(got, value, rtol=rtol, atol=atol, err_msg=key)
        np.testing.assert_array_equal(got, halves[key], err_msg=f"{key}: not the bits of (g0 + g1) / 2")


@needs_mpi
def test_each_process_gets_its_share_of_the_cores(two_process_steps):
    assert two_process_steps["size"] == 2
    np.testing.assert_array_equal(two_process_steps["threads"], [max(1, os.cpu_count() // 2)] * 2)


@needs_mpi
def test_checkpoint_of_two_processes_resumes_bit_for_bit(mnist_root, tmp_path):
    """The worker trains 2 epochs, saving after the first, resumes that checkpoint in fresh objects
    and checks the same bits (the buffer, averaged after every epoch, included) and logs on both
    processes. Here: rank 0 wrote every process's
    random streams, and the validation metrics are those of the whole test subset in one process
    (sums over the processes' unequal shares, not a mean of their means)."""
    output = tmp_path / "resume.npz"
    run_worker("resume", output, mnist_root)
    saved = tn.load(output)
    checkpoint = tn.load(f"{output}.checkpoint.npz")
    assert list(checkpoint["rng_by_rank"]) == ["1"] and int(checkpoint["epoch"]) == 1
    assert checkpoint["rng_by_rank"]["1"]["default"] != checkpoint["rng"]["default"]

    model = mlp_with_input_mean()
    model.load_state_dict(saved["model"])
    x_test, y_test = mnist_subset(mnist_root, False, 250)
    whole = tn.evaluate(model, tn.CrossEntropyLoss(), DataLoader(x_test, y_test, batch_size=250))
    rtol, atol = tolerance(np.float32)
    np.testing.assert_allclose(saved["val_loss"], whole["loss"], rtol=rtol, atol=atol)
    assert saved["val_accuracy"] == whole["accuracy"]


@needs_mpi
def test_an_exception_on_one_process_ends_the_job(tmp_path):
    start = time.monotonic()
    done = run_job([WORKER, "fail", tmp_path / "unused", ""], timeout=120)
    assert done.returncode != 0
    assert "RuntimeError: rank 1 failed on purpose" in done.stderr
    assert "tinynet.distributed: process 1 of 2 failed; aborting the job" in done.stderr
    assert time.monotonic() - start < 120


@needs_mpi
def test_outside_mpiexec_it_is_a_job_of_one_process(tmp_path):
    output = tmp_path / "threads.json"
    done = run_job([WORKER, "threads", output], processes=None, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(output.read_text()) == {"size": 1, "threads": distributed.default_threads(1)}


@needs_mpi
def test_command_line_trains_the_cnn_on_two_processes(mnist_root, tmp_path):
    """Rank 0 alone prints and saves; the weights are those of a one-process run of the same
    global batch up to rounding (float32: one test accuracy on 200 images, at most one image apart)."""
    options = ["train", "cnn", "--distributed", "--epochs", "1", "--batch-size", "30", "--train-samples", "600",
               "--test-samples", "200", "--no-progress", "--data-root", mnist_root]
    done = run_job(["-m", "tinynet", *options, "--output-dir", tmp_path / "two"], timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("test accuracy") == 2  # the report and the reloaded model's line, once each
    assert "data-parallel on 2 processes" in done.stdout
    two = tn.load(tmp_path / "two" / "mnist_cnn.npz")

    one = recipes.mnist_cnn(epochs=1, batch_size=60, train_samples=600, test_samples=200, progress=False,
                            data_root=mnist_root, output_dir=tmp_path / "one")
    rtol, atol = tolerance(np.float32)
    for key, value in tn.load(one["weights"]).items():
        np.testing.assert_allclose(two[key], value, rtol=rtol, atol=atol, err_msg=key)


@needs_mpi
def test_a_command_line_error_ends_the_job(mnist_root):
    done = run_job(["-m", "tinynet", "train", "cnn", "--distributed", "--batch-size", "0", "--data-root", mnist_root],
                   timeout=120)
    assert done.returncode != 0
    assert "tinynet train cnn: error: mnist_cnn: batch_size must be a positive integer, got 0" in done.stderr
