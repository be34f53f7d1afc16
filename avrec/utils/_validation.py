"""Argument validation shared by every public entry point."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = ["check_positive_int", "check_top_k", "check_users"]


def check_positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an integer ``>= minimum``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Argument name used in the error message.
    minimum : int, default=1
        Smallest allowed value.

    Returns
    -------
    int

    Raises
    ------
    ConfigurationError
        If ``value`` is not an integer (bools are refused) or is below ``minimum``.

    Examples
    --------
    >>> check_positive_int(5, "k")
    5
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_top_k(k: Any) -> int:
    """Validate a cut-off ``k`` (a positive int).

    Parameters
    ----------
    k : object

    Returns
    -------
    int

    Raises
    ------
    DataValidationError
        If ``k`` is not a positive integer.

    Examples
    --------
    >>> check_top_k(10)
    10
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or int(k) < 1:
        raise DataValidationError(f"k must be a positive int, got {k!r}")
    return int(k)


def check_users(users: Any, n_users: int, *, name: str = "users") -> np.ndarray:
    """Convert ``users`` to a 1-d int64 array of row indices in ``[0, n_users)``.

    Parameters
    ----------
    users : int or array-like of int
        Row indices. A scalar becomes a one-element array.
    n_users : int
        Number of valid rows.
    name : str, default="users"
        Argument name used in error messages.

    Returns
    -------
    ndarray of shape (n,), dtype int64

    Raises
    ------
    DataValidationError
        If ``users`` is not integer-valued, not 1-d, or holds an index outside
        ``[0, n_users)``.

    Examples
    --------
    >>> check_users([0, 2], 3).tolist()
    [0, 2]
    """
    arr = np.asarray(users)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataValidationError(
            f"{name} must be a 1-d array of row indices, got shape {arr.shape}"
        )
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise DataValidationError(
            f"{name} must hold integer row indices, got dtype {arr.dtype}; map external ids "
            "to rows with Vocabulary.index first"
        )
    arr = arr.astype(np.int64, copy=False)
    bad = (arr < 0) | (arr >= n_users)
    if bad.any():
        raise DataValidationError(
            f"{name}: index {int(arr[bad][0])} is out of range for {n_users} users seen in fit "
            "(unknown users have index -1); pass their histories with X= to score new users"
        )
    return arr
