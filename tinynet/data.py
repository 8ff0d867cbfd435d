"""Mini-batches from in-memory arrays.

``DataLoader(images, labels, batch_size=60, shuffle=True, seed=0)`` yields
``(x_batch, y_batch)`` tuples that walk once through the data per epoch. The
whole data set already sits in memory as arrays (MNIST is 188 MB as float32),
so a batch is one slice or one fancy-indexing gather per array: no per-sample
Python loop, no collate step, and the batches come out C-contiguous, which is
what the numba and BLAS kernels downstream want.

Randomness follows the rest of tinynet: pass ``seed`` (or an explicit
``numpy.random.Generator`` as ``rng``) for a private, repeatable stream, or pass
neither to draw from tinynet's default generator (seeded by
``tinynet.manual_seed``).

For data-parallel training (``tinynet.distributed``), ``shard=comm`` makes each
process take its own slice of every global batch; see ``DataLoader``.
"""
import math

import numpy as np

from ._checks import integer, is_int
from .backend import check_same_device, device_of, get_array_module, to_device
from .rng import default_generator


class DataLoader:
    """Iterate over aligned arrays in mini-batches, optionally shuffled afresh each epoch.

    Args:
        *arrays: one or more NumPy (or CuPy, all on the same device) arrays with the
            same length along axis 0; sample ``i`` is ``(a[i] for a in arrays)``.
        batch_size: samples per batch, a positive integer (default 1).
        shuffle: draw a new random permutation of the samples at every ``iter()``
            (that is, every epoch). Default False: samples in their stored order.
        drop_last: drop the final batch when it would be smaller than ``batch_size``.
        seed: seed of a private generator, created once here, so a loader built
            with the same seed yields the same sequence of epochs bit for bit.
        rng: an explicit ``numpy.random.Generator`` to draw from instead
            (give ``seed`` or ``rng``, not both). With neither, each epoch draws
            from ``tinynet.rng.default_generator()`` as it is at that moment, so a
            ``tinynet.manual_seed`` call made after building the loader still counts.
        transform: optional ``transform(batch, rng) -> batch`` applied to every
            batch, where ``batch`` is the tuple of arrays and ``rng`` the loader's
            generator (for random augmentation). It must return a tuple and must
            not modify its input in place (see below).
        shard: a ``tinynet.distributed`` communicator (anything with ``rank`` and
            ``size``), for data-parallel training. Every process must build its
            loader alike (same arrays, seed and batch size): each epoch's order is
            then the same everywhere, is cut into global batches of
            ``batch_size * size`` samples, and process ``rank`` takes the
            ``rank``-th ``batch_size`` slice of each. The last partial global batch
            is dropped, so every process runs ``num_samples // (batch_size * size)``
            steps; ``transform`` gets a generator of this process's own, seeded at
            every epoch from the loader's generator and the rank. With one process
            the loader is the same as without ``shard``.

    Shape:
        Each batch is a tuple with one array per input array; array ``k`` of a
        batch has shape ``(B,) + arrays[k].shape[1:]`` with ``B = batch_size``
        (smaller for the last batch unless ``drop_last``). Every batch is a
        1-tuple when there is one input array: ``for (x,) in loader``.

    Without shuffling a batch is a view of the input arrays (no copy); with
    shuffling it is a fresh gathered copy. Either way do not modify a batch in
    place unless it is your own copy, or the data set itself may change.

    Example::

        loader = DataLoader(images, labels, batch_size=60, shuffle=True, seed=0)
        len(loader)                # 1000 batches for 60,000 samples
        for x, y in loader:        # x: (60, 1, 28, 28) float32, y: (60,) int64
            ...
    """

    def __init__(self, *arrays, batch_size=1, shuffle=False, drop_last=False, seed=None, rng=None, transform=None,
                 shard=None):
        if not arrays:
            raise ValueError("DataLoader: expected at least one array, got none")
        for index, array in enumerate(arrays):
            if getattr(array, "ndim", 0) < 1:
                got = f"shape {array.shape}" if hasattr(array, "shape") else f"a {type(array).__name__}"
                raise TypeError(f"DataLoader: array {index} must be an array with at least one dimension, got {got}")
        length = len(arrays[0])
        for index, array in enumerate(arrays[1:], start=1):
            if len(array) != length:
                raise ValueError(
                    f"DataLoader: all arrays must have the same length along axis 0, "
                    f"but array 0 has {length} and array {index} has {len(array)}"
                )
        check_same_device("DataLoader", **{f"array {i}": a for i, a in enumerate(arrays)})
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool):
            raise TypeError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        if seed is not None and rng is not None:
            raise ValueError("DataLoader: give either seed or rng, not both")
        if seed is not None and integer("DataLoader", "seed", seed) < 0:
            raise ValueError(f"DataLoader: seed must be a non-negative integer, got {seed!r}")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise TypeError(f"DataLoader: rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got {type(transform).__name__}")
        if shard is not None:
            rank, size = getattr(shard, "rank", None), getattr(shard, "size", None)
            if not all(is_int(v) for v in (rank, size)) \
                    or not 0 <= rank < size:
                raise TypeError(f"DataLoader: shard must be a communicator with 0 <= rank < size "
                                f"(tinynet.distributed.init()), got {shard!r}")
            if size > 1 and (shuffle or transform is not None) and seed is None and rng is None:
                # The default generator is seeded per process (tinynet.distributed.manual_seed).
                raise ValueError("DataLoader: with shard, pass seed (the same on every process) so that every "
                                 "process draws the same order of samples")

        self.arrays = arrays
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self._rng = np.random.default_rng(seed) if seed is not None else rng
        # This process's rank and the number of processes sharing each global batch.
        self.shard = shard
        self._rank, self._processes = (int(shard.rank), int(shard.size)) if shard is not None else (0, 1)

    @property
    def num_samples(self):
        """The number of samples (the common length of the arrays)."""
        return len(self.arrays[0])

    def __len__(self):
        """The number of batches per epoch (this process's, with ``shard``)."""
        if self._processes > 1:
            return self.num_samples // (self.batch_size * self._processes)
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def __iter__(self):
        # Draw the epoch's permutation now, at iter(), rather than at the first
        # next(): each iter() call then takes exactly one draw, in call order.
        rng = self._rng if self._rng is not None else default_generator()
        order = None
        if self.shuffle:
            # Indices come from NumPy's generator on every device, so a seed gives
            # the same batches on the CPU and the GPU; one transfer per epoch.
            order = to_device(rng.permutation(self.num_samples), device_of(self.arrays[0]))
        if self._processes > 1 and self.transform is not None:
            # Each process augments its own samples: its own stream, drawn afresh from the shared one.
            rng = np.random.default_rng([int(rng.integers(2**63)), self._rank])
        return self._batches(order, rng)

    def _batches(self, order, rng):
        xp = get_array_module(*self.arrays)
        # Batch k of this process starts at k * step + offset of the epoch's order.
        step, offset = self.batch_size * self._processes, self.batch_size * self._rank
        for start in range(offset, len(self) * step, step):
            stop = min(start + self.batch_size, self.num_samples)
            index = slice(start, stop) if order is None else order[start:stop]
            # A gather is C-contiguous already; a slice is unless the input array is not.
            batch = tuple(xp.ascontiguousarray(array[index]) for array in self.arrays)
            if self.transform is not None:
                batch = self.transform(batch, rng)
                if not isinstance(batch, tuple):
                    raise TypeError(
                        f"DataLoader: transform must return a tuple of arrays, got {type(batch).__name__}"
                    )
            yield batch

    def __repr__(self):
        return (
            f"DataLoader(num_samples={self.num_samples}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}"
            + (f", shard=rank {self._rank} of {self._processes})" if self.shard is not None else ")")
        )
