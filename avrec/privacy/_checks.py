"""Argument validation shared by the differential-privacy mechanisms."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from avrec.exceptions import ConfigurationError, DataValidationError

__all__: list[str] = []


def check_epsilon(epsilon: Any, name: str = "epsilon") -> float:
    """A finite float ``> 0``; ConfigurationError naming ``name`` otherwise."""
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, numbers.Real)
        or not math.isfinite(float(epsilon))
        or float(epsilon) <= 0
    ):
        raise ConfigurationError(f"{name} must be a finite number > 0, got {epsilon!r}")
    return float(epsilon)


def check_delta(delta: Any, name: str = "delta") -> float:
    """A float in the open interval (0, 1)."""
    if (
        isinstance(delta, bool)
        or not isinstance(delta, numbers.Real)
        or not (0.0 < float(delta) < 1.0)
    ):
        raise ConfigurationError(f"{name} must be a number in (0, 1), got {delta!r}")
    return float(delta)


def check_sensitivity(sensitivity: Any, *, integer: bool = False) -> float | int:
    """A finite sensitivity ``> 0`` (a positive int when ``integer``)."""
    if integer:
        if (
            isinstance(sensitivity, bool)
            or not isinstance(sensitivity, numbers.Integral)
            or int(sensitivity) < 1
        ):
            raise ConfigurationError(
                f"sensitivity must be a positive int for an integer-valued mechanism, "
                f"got {sensitivity!r}"
            )
        return int(sensitivity)
    return check_epsilon(sensitivity, "sensitivity")


def check_values(values: Any, name: str = "values") -> np.ndarray:
    """A finite float64 array (any shape, scalars allowed)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{name} must be an array of numbers, got {values!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise DataValidationError(f"{name} must be finite (no NaN or inf)")
    return arr


def check_int_values(values: Any, name: str = "values") -> np.ndarray:
    """An int64 array; floats are accepted only when they are whole numbers."""
    arr = np.asarray(values)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise DataValidationError(f"{name} must be an array of integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataValidationError(f"{name} must hold whole numbers for an integer mechanism")
        if np.any(np.abs(arr) > 2.0**62):
            raise DataValidationError(f"{name} must fit in int64")
    return arr.astype(np.int64)


def check_accountant(accountant: Any) -> Any:
    """None or something with the :class:`PrivacyAccountant` spending API."""
    if accountant is not None and not (
        hasattr(accountant, "spend") and hasattr(accountant, "spend_gaussian")
    ):
        raise ConfigurationError(
            f"accountant must be a PrivacyAccountant or None, got {type(accountant).__name__}"
        )
    return accountant
