"""Shared low-level helpers: validation, seeding, persistence, progress bars, torch.distributed."""

from avrec.utils._data_parallel import DataParallelStep, all_gather_rows, sync_buffers
from avrec.utils._distributed import (
    DistributedContext,
    all_reduce_mean,
    barrier,
    broadcast_generator,
    broadcast_object,
    get_rank,
    get_world_size,
    init_from_env,
    is_distributed,
    is_main_process,
    launched_by_torchrun,
    shard,
)
from avrec.utils._persistence import (
    atomic_directory,
    atomic_write,
    load_arrays,
    read_json,
    save_arrays,
    write_json,
)
from avrec.utils._progress import progress
from avrec.utils._random import check_random_state, torch_seed
from avrec.utils._registry import (
    qualified_name,
    register_class,
    registered_classes,
    resolve_class,
)
from avrec.utils._validation import check_positive_int, check_top_k, check_users

__all__ = [
    "DataParallelStep",
    "DistributedContext",
    "all_gather_rows",
    "all_reduce_mean",
    "atomic_directory",
    "atomic_write",
    "barrier",
    "broadcast_generator",
    "broadcast_object",
    "check_positive_int",
    "check_random_state",
    "check_top_k",
    "check_users",
    "get_rank",
    "get_world_size",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "launched_by_torchrun",
    "load_arrays",
    "progress",
    "qualified_name",
    "read_json",
    "register_class",
    "registered_classes",
    "resolve_class",
    "save_arrays",
    "shard",
    "sync_buffers",
    "torch_seed",
    "write_json",
]
