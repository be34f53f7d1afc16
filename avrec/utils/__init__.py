"""Shared low-level helpers: validation, seeding, persistence and progress bars."""

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
from avrec.utils._validation import check_positive_int, check_top_k, check_users

__all__ = [
    "atomic_directory",
    "atomic_write",
    "check_positive_int",
    "check_random_state",
    "check_top_k",
    "check_users",
    "load_arrays",
    "progress",
    "read_json",
    "save_arrays",
    "torch_seed",
    "write_json",
]
