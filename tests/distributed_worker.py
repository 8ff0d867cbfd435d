"""What each process of the ``mpiexec -n 2`` jobs in ``test_distributed.py`` runs.

    mpiexec -n 2 python tests/distributed_worker.py SCENARIO OUTPUT [MNIST_ROOT]

The processes check among themselves what must hold on every process at once (bit-identical
weights and optimizer state after every step, identical logs); an assertion that fails raises on
every process, or aborts the job (``tinynet.distributed.init``). Rank 0 writes what the test
compares with one-process runs to ``OUTPUT``.
"""
import hashlib
import json
import sys

import numba
import numpy as np

import tinynet as tn
from tinynet import distributed, recipes
from tinynet.callbacks import Callback
from tinynet.data import DataLoader
from tinynet.train import save_checkpoint

#: The equivalence runs: samples per process per step, steps.
BATCH, STEPS = 8, 10


def mnist_subset(root, train, samples, dtype=np.float32):
    images, labels = tn.datasets.mnist(root, train=train)
    return images[:samples].astype(dtype), labels[:samples]


def model_for(name, dtype):
    """The MNIST MLP without dropout (masks could not match a one-process run) or the CNN."""
    model = recipes.mlp_model() if name == "mlp" else recipes.cnn_model()
    for module in model.modules():
        if isinstance(module, tn.Dropout):
            module.p = 0.0
    return model.to(dtype)


def optimizer_for(name, model):
    return tn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9) if name == "sgd" else tn.optim.Adam(model.parameters())


def state_arrays(model, optimizer):
    """``{key: array}`` of the weights and the optimizer's state (its scalars as 0-d arrays)."""
    arrays = {f"model.{key}": np.asarray(value) for key, value in model.state_dict().items()}
    arrays.update({f"optimizer.{key}": np.asarray(value) for key, value in optimizer.state_dict().items()})
    return arrays


def check_identical(comm, arrays, where):
    """Assert that every process holds the same bits in ``arrays``."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
    digests = comm.allgather(digest.hexdigest())
    assert len(set(digests)) == 1, f"{where}: the processes' weights or optimizer states differ: {digests}"


def steps(comm, output, root):
    """10 hand-written steps of each (model, optimizer) in float64, batch BATCH per process."""
    images, labels = mnist_subset(root, True, BATCH * comm.size * STEPS, np.float64)
    results = {}
    for model_name in ("mlp", "cnn"):
        for optimizer_name in ("sgd", "adam"):
            distributed.manual_seed(0, comm)  # rank 0's weights are those of a one-process tn.manual_seed(0)
            model = model_for(model_name, np.float64)
            distributed.broadcast_parameters(model, comm)
            optimizer = distributed.DistributedOptimizer(optimizer_for(optimizer_name, model), comm)
            loss_fn = tn.CrossEntropyLoss()
            loader = DataLoader(images, labels, batch_size=BATCH, shuffle=True, seed=0, shard=comm)
            assert len(loader) == STEPS
            for step, (x, y) in enumerate(loader, start=1):
                loss_fn(model(x), y)
                model.backward_parameters(loss_fn.backward())
                optimizer.step()
                optimizer.zero_grad()
                check_identical(comm, state_arrays(model, optimizer), f"{model_name}/{optimizer_name} step {step}")
            results.update({f"{model_name}.{optimizer_name}.{key}": value
                            for key, value in state_arrays(model, optimizer).items()})
    threads = comm.gather(numba.get_num_threads())
    if comm.is_main:
        tn.save({"threads": np.array(threads), "size": comm.size, **results}, output)


class SaveAfterFirstEpoch(Callback):
    def __init__(self, path):
        self.path = path

    def on_epoch_end(self, state, logs):
        if state.epoch == 1:
            save_checkpoint(self.path, state)


class InputMean(tn.Sequential):
    """A Sequential that keeps a running mean of its input images as a buffer, which each process
    updates from its own samples, as BatchNorm's running statistics are updated."""

    def __init__(self, *layers):
        super().__init__(*layers)
        self.register_buffer("running_mean", np.zeros((1, 28, 28), np.float32))

    def forward(self, x):
        if self.training:
            self.running_mean = np.float32(0.9) * self.running_mean + np.float32(0.1) * x.mean(axis=0)
        return super().forward(x)


def mlp_with_input_mean():
    return InputMean(*recipes.mlp_model())


def train_run(comm, root, seed, epochs, resume_from=None, callbacks=()):
    """The MNIST MLP (dropout, augmentation, momentum SGD, a cosine schedule, a buffer) on a subset
    with ``fit``; returns the model, optimizer and history. The test set of 250 images comes in
    batches of 100, 100 and 50, which the processes share unequally."""
    distributed.manual_seed(seed, comm)
    x_train, y_train = mnist_subset(root, True, 320)
    x_test, y_test = mnist_subset(root, False, 250)
    model = mlp_with_input_mean()
    optimizer = distributed.DistributedOptimizer(tn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), comm)
    schedule = tn.schedules.CosineAnnealingLR(optimizer, T_max=3)
    train_loader = DataLoader(x_train, y_train, batch_size=16, shuffle=True, seed=seed, shard=comm,
                              transform=recipes.default_augmentation())
    history = tn.fit(model, tn.CrossEntropyLoss(), optimizer, train_loader, DataLoader(x_test, y_test, batch_size=100),
                     epochs=epochs, scheduler=schedule, resume_from=resume_from, callbacks=callbacks,
                     progress=False, comm=comm)
    return model, optimizer, history


def resume(comm, output, root):
    """Two epochs with a checkpoint after the first; then, in fresh objects built from other
    seeds, the second epoch again from that checkpoint: the same bits on every process."""
    distributed.manual_seed(0, comm)
    draws = comm.allgather(float(tn.rng.default_generator().random()))
    assert draws[0] != draws[1], f"the processes' default generators draw the same: {draws}"
    checkpoint = f"{output}.checkpoint.npz"
    model, optimizer, history = train_run(comm, root, 0, 2, callbacks=[SaveAfterFirstEpoch(checkpoint)])
    check_identical(comm, state_arrays(model, optimizer), "after two epochs")
    histories = comm.allgather(history)
    assert histories[0] == histories[1], f"the processes' logs differ: {histories}"
    resumed_model, resumed_optimizer, resumed_history = train_run(comm, root, 7, 2, resume_from=checkpoint)
    resumed, straight = state_arrays(resumed_model, resumed_optimizer), state_arrays(model, optimizer)
    check_identical(comm, resumed, "after resuming")
    for key in straight:
        assert np.array_equal(resumed[key], straight[key]), f"resumed run differs in {key}"
    assert resumed_history == history, f"resumed history {resumed_history} != {history}"
    if comm.is_main:
        tn.save({"model": dict(model.state_dict()), "val_loss": history["val_loss"][-1],
                 "val_accuracy": history["val_accuracy"][-1]}, output)


def fail(comm, output, root):
    """Rank 1 raises while rank 0 waits for it in a barrier."""
    if comm.rank == 1:
        raise RuntimeError("rank 1 failed on purpose")
    comm.barrier()


def threads(comm, output, root):
    with open(output, "w") as file:
        json.dump({"size": comm.size, "threads": numba.get_num_threads()}, file)


if __name__ == "__main__":
    scenario, output = sys.argv[1], sys.argv[2]
    globals()[scenario](distributed.init(), output, sys.argv[3] if len(sys.argv) > 3 else None)
