"""Reading delimited text and DataFrame columns into plain arrays (pandas optional)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from avrec.exceptions import DataValidationError

__all__ = ["column_values", "read_delimited", "read_delimited_stdlib"]


def column_values(col: Any, name: str) -> np.ndarray:
    """Turn one frame column into a plain NumPy array (pandas extension dtypes included)."""
    if not hasattr(col, "to_numpy"):
        return np.asarray(col)
    if hasattr(col, "isna") and bool(col.isna().any()):
        bad = int(np.argmax(np.asarray(col.isna())))
        raise DataValidationError(f"column {name!r} has missing values (first at row {bad})")
    dtype = col.dtype
    if getattr(dtype, "tz", None) is not None:  # tz-aware datetimes -> UTC datetime64
        return col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    numpy_dtype = getattr(dtype, "numpy_dtype", None)  # nullable Int64, Float64, boolean
    if numpy_dtype is not None and numpy_dtype.kind in "biuf":
        return col.to_numpy(dtype=numpy_dtype)
    if str(dtype) in ("str", "string"):  # pandas string dtypes: one cast, no Python loop
        return col.to_numpy(dtype=str)
    return col.to_numpy()


def read_delimited(path: str, sep: str, wanted: list[str]) -> Mapping[str, np.ndarray]:
    """Read the ``wanted`` columns of a delimited file with a header row."""
    try:
        import pandas as pd
    except ImportError:
        pd = None
    if pd is not None:
        try:
            frame = pd.read_csv(path, sep=sep, usecols=lambda c: c in wanted)
        except pd.errors.EmptyDataError as exc:
            raise DataValidationError(f"{path}: the file is empty") from exc
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise DataValidationError(f"{path}: cannot parse the file ({exc})") from exc
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            header = pd.read_csv(path, sep=sep, nrows=0).columns.tolist()
            raise DataValidationError(f"{path}: column(s) {missing} not found (columns: {header})")
        return {c: column_values(frame[c], c) for c in wanted}
    return read_delimited_stdlib(path, sep, wanted)


def read_delimited_stdlib(path: str, sep: str, wanted: list[str]) -> Mapping[str, np.ndarray]:
    """The :mod:`csv` fallback of :func:`read_delimited` (no pandas)."""
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration as exc:
            raise DataValidationError(f"{path}: the file is empty") from exc
        missing = [c for c in wanted if c not in header]
        if missing:
            raise DataValidationError(f"{path}: column(s) {missing} not found (columns: {header})")
        pos = [header.index(c) for c in wanted]
        width = max(pos) + 1
        rows = []
        for line_no, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < width:
                raise DataValidationError(
                    f"{path}: line {line_no} has {len(row)} fields, expected {len(header)}"
                )
            rows.append([row[p] for p in pos])
    out: dict[str, np.ndarray] = {}
    for j, c in enumerate(wanted):
        raw = np.array([r[j] for r in rows], dtype=str)
        empty = np.char.str_len(np.char.strip(raw)) == 0 if raw.size else np.zeros(0, bool)
        if empty.any():
            raise DataValidationError(
                f"column {c!r} has missing values (first at line {int(np.argmax(empty)) + 2})"
            )
        for dtype in (np.int64, np.float64):
            try:
                out[c] = raw.astype(dtype)
                break
            except (ValueError, OverflowError):
                continue
        else:
            out[c] = raw
    return out
