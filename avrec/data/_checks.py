"""Validation of the per-interaction arrays: weights, timestamps and stored matrix data."""

from __future__ import annotations

from typing import Any

import numpy as np

from avrec.exceptions import DataValidationError

__all__ = ["check_matrix_data", "check_timestamps", "check_weights"]


def check_weights(weights: Any, n: int, name: str = "weights") -> np.ndarray:
    if weights is None:
        return np.ones(n, dtype=np.float32)
    w = np.asarray(weights)
    if w.ndim != 1:
        raise DataValidationError(f"{name} must be 1-d, got shape {w.shape}")
    if w.shape[0] != n:
        raise DataValidationError(f"{name} has length {w.shape[0]}, expected {n}")
    if w.dtype.kind not in "biuf":
        raise DataValidationError(f"{name} must be numeric, got dtype {w.dtype}")
    w = w.astype(np.float64, copy=False)
    if not np.all(np.isfinite(w)):
        bad = int(np.argmax(~np.isfinite(w)))
        raise DataValidationError(
            f"{name} contains NaN or infinite values (first at position {bad})"
        )
    if (w < 0).any():
        bad = int(np.argmax(w < 0))
        raise DataValidationError(f"{name} must be non-negative; found {w[bad]} at position {bad}")
    return w


def check_matrix_data(data: np.ndarray) -> None:
    """Validate float32 CSR data without a float64 copy (20M entries: no 160 MB spike)."""
    if data.size == 0:
        return
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(np.argmax(~finite))
        raise DataValidationError(
            f"matrix data contains NaN or infinite values (first at position {bad})"
        )
    negative = data < 0
    if negative.any():
        bad = int(np.argmax(negative))
        raise DataValidationError(
            f"matrix data must be non-negative; found {data[bad]} at position {bad}"
        )


def check_timestamps(timestamps: Any, n: int) -> np.ndarray | None:
    if timestamps is None:
        return None
    t = np.asarray(timestamps)
    if t.ndim != 1:
        raise DataValidationError(f"timestamps must be 1-d, got shape {t.shape}")
    if t.shape[0] != n:
        raise DataValidationError(f"timestamps has length {t.shape[0]}, expected {n}")
    if t.dtype.kind == "M":  # datetime64 -> seconds since the epoch
        if np.isnat(t).any():
            raise DataValidationError("timestamps contains missing values (NaT)")
        return t.astype("datetime64[ns]").astype(np.int64) / 1e9
    if t.dtype.kind not in "iuf":
        raise DataValidationError(
            f"timestamps must be numeric (seconds) or datetime64, got dtype {t.dtype}"
        )
    t = t.astype(np.float64, copy=False)
    if not np.all(np.isfinite(t)):
        raise DataValidationError("timestamps contains NaN or infinite values")
    return t
