"""The process group of a ``torchrun`` job: who am I, how many are we, which part is mine.

avrec runs on more than one process through :mod:`torch.distributed` only: launch a script
with ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``), and the feature extractor and the trainers find the group here. Without a
launcher every function answers for a single process (rank 0 of 1), so library code calls
them unconditionally. torch is imported lazily: importing this module stays cheap.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

from avrec.exceptions import ConfigurationError

__all__ = [
    "DistributedContext",
    "all_reduce_mean",
    "barrier",
    "broadcast_generator",
    "broadcast_object",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "shard",
]

_ENV = ("RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in its group.

    Attributes
    ----------
    rank : int
        Global rank, ``0 <= rank < world_size``.
    world_size : int
        Number of processes.
    local_rank : int
        Rank on this node (selects the GPU with NCCL).
    backend : str or None
        ``"gloo"``, ``"nccl"``, or None for a single process without a group.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main_process(self) -> bool:
        """bool: whether this is rank 0 (the one that logs, shows progress and saves)."""
        return self.rank == 0


def _dist() -> Any:
    import torch.distributed as dist

    return dist


def launched_by_torchrun() -> bool:
    """Whether the environment of a ``torchrun`` worker is set (``RANK`` and ``WORLD_SIZE``).

    Examples
    --------
    >>> import os
    >>> launched_by_torchrun() == all(k in os.environ for k in ("RANK", "WORLD_SIZE"))
    True
    """
    return all(key in os.environ for key in _ENV)


def is_distributed() -> bool:
    """Whether a default process group with more than one process is initialised.

    Examples
    --------
    >>> is_distributed()
    False
    """
    dist = _dist()
    return bool(dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1)


def get_rank() -> int:
    """Rank of this process in the default group (0 without one)."""
    dist = _dist()
    return int(dist.get_rank()) if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes in the default group (1 without one)."""
    dist = _dist()
    return int(dist.get_world_size()) if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """Whether this is rank 0 (always True for a single process).

    Examples
    --------
    >>> is_main_process()
    True
    """
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process of the group (a no-op for a single process)."""
    if is_distributed():
        dist = _dist()
        if dist.get_backend() == "nccl":
            import torch

            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def init_from_env(backend: str | None = None, timeout_s: float = 1800.0) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment.

    Idempotent: an already initialised group is reused. Without the ``torchrun``
    environment (``RANK``, ``WORLD_SIZE``) nothing is initialised and the context of a
    single process is returned.

    Parameters
    ----------
    backend : {"gloo", "nccl"}, optional
        Default: ``"nccl"`` when CUDA is available (each process then uses the GPU
        ``LOCAL_RANK``), else ``"gloo"``.
    timeout_s : float, default=1800
        How long a collective waits for the other processes.

    Returns
    -------
    DistributedContext

    Raises
    ------
    ConfigurationError
        For an unknown backend, or NCCL without CUDA.

    Examples
    --------
    >>> import os
    >>> ctx = init_from_env() if "RANK" not in os.environ else None
    >>> ctx
    DistributedContext(rank=0, world_size=1, local_rank=0, backend=None)
    """
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        return _context(dist.get_backend())
    if not launched_by_torchrun():
        return DistributedContext()
    import torch

    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl"):
        raise ConfigurationError(f"backend must be None, 'gloo' or 'nccl', got {backend!r}")
    if not dist.is_available():
        raise ConfigurationError("this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigurationError("backend='nccl' needs CUDA; use 'gloo' on CPUs")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
    dist.init_process_group(
        backend, init_method="env://", timeout=datetime.timedelta(seconds=timeout_s)
    )
    return _context(backend)


def _context(backend: Any) -> DistributedContext:
    return DistributedContext(
        rank=get_rank(),
        world_size=get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        backend=str(backend),
    )


def shard(n: int, rank: int, world_size: int, *, block: int = 1, strided: bool = False) -> range:
    """The part of ``range(n)`` that ``rank`` of ``world_size`` processes takes.

    Deterministic, disjoint and covering: the shards of ranks ``0 .. world_size-1``
    partition ``range(n)``. Contiguous shards are made of whole blocks of ``block``
    consecutive indices (e.g. whole DataLoader batches) and differ by at most one
    block; strided shards are ``range(rank, n, world_size)``, the order of
    :class:`torch.utils.data.DistributedSampler` without padding.

    Parameters
    ----------
    n : int
        Number of indices, ``>= 0``.
    rank : int
        ``0 <= rank < world_size``.
    world_size : int
        ``>= 1``.
    block : int, default=1
        Contiguous shards hold whole blocks (the last block may be shorter).
    strided : bool, default=False
        Round-robin indices instead of a contiguous range (``block`` is ignored).

    Returns
    -------
    range
        May be empty when there are fewer blocks than processes.

    Examples
    --------
    >>> [list(shard(10, r, 3)) for r in range(3)]
    [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    >>> [list(shard(10, r, 3, block=4)) for r in range(3)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    >>> list(shard(10, 1, 3, strided=True))
    [1, 4, 7]
    """
    for name, value, low in (("n", n, 0), ("world_size", world_size, 1), ("block", block, 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigurationError(f"{name} must be an int >= {low}, got {value!r}")
    if not isinstance(rank, int) or isinstance(rank, bool) or not 0 <= rank < world_size:
        raise ConfigurationError(f"rank must be an int in [0, {world_size}), got {rank!r}")
    if strided:
        return range(rank, n, world_size)
    blocks = -(-n // block)
    base, extra = divmod(blocks, world_size)
    first = rank * base + min(rank, extra)
    last = first + base + (1 if rank < extra else 0)
    return range(min(first * block, n), min(last * block, n))


def all_reduce_mean(value: float) -> float:
    """The mean of a float over the processes of the group (the value itself when alone).

    Parameters
    ----------
    value : float

    Returns
    -------
    float

    Examples
    --------
    >>> all_reduce_mean(2.5)
    2.5
    """
    if not is_distributed():
        return float(value)
    import torch

    dist = _dist()
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def _collective_device() -> Any:
    import torch

    return torch.device("cuda") if _dist().get_backend() == "nccl" else torch.device("cpu")


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s value of a picklable object, on every process (``obj`` when alone).

    Used for seeds: a ``random_state=None`` draws different entropy in each
    process, and the processes must agree on the shuffling.

    Examples
    --------
    >>> broadcast_object([1, 2])
    [1, 2]
    """
    if not is_distributed():
        return obj
    box = [obj]
    _dist().broadcast_object_list(box, src=src, device=_collective_device())
    return box[0]


def broadcast_generator(generator: Any, src: int = 0) -> None:
    """Give every process rank ``src``'s state of a :class:`torch.Generator` (in place).

    After this, processes that draw alike get the same numbers: the same shuffled order
    and the same negatives for a global batch, each then training on its part. A no-op
    for a single process.
    """
    if not is_distributed():
        return
    state = generator.get_state().to(_collective_device())
    _dist().broadcast(state, src=src)
    generator.set_state(state.cpu())
