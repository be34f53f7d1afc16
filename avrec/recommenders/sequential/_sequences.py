"""Ordered, padded item sequences from a CSR interaction matrix and per-entry order keys.

Each stored entry ``(user, item)`` of a CSR matrix carries an order key (a
timestamp, or a position); a user's sequence is their items sorted by key,
ties broken by item index (the CSR order), which is the order
:func:`~avrec.data.leave_last_out` uses. Everything is vectorised over the
entries: one stable sort, no Python loop over users.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = [
    "append_keys",
    "entry_positions",
    "merge_keys",
    "pad_rows",
    "padded_sequences",
    "position_keys",
    "training_sequences",
    "widen",
]


def entry_positions(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of the stored entries of CSR ``rows``, in the order of ``X[rows]``.

    Parameters
    ----------
    indptr : ndarray of shape (n_rows + 1,)
    rows : ndarray of shape (n_query,), int

    Returns
    -------
    ndarray of shape (nnz of the rows,), dtype int64

    Examples
    --------
    >>> entry_positions(np.array([0, 2, 3, 5]), np.array([2, 0])).tolist()
    [3, 4, 0, 1]
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    out_starts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - out_starts, lengths)


def _entry_rows(indptr: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))


def _sorted_rank(indptr: np.ndarray, keys: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(order, rank)``: entries sorted by ``(row, key)``, and each one's rank in its row.

    The sort is stable, so ties keep the CSR (item index) order.
    """
    rows = _entry_rows(indptr)
    order = np.arange(rows.size, dtype=np.int64) if keys is None else np.lexsort((keys, rows))
    rank = np.empty(rows.size, dtype=np.int64)
    rank[order] = np.arange(rows.size, dtype=np.int64) - indptr[rows[order]]
    return order, rank


def position_keys(X: sp.csr_matrix, timestamps: np.ndarray | None = None) -> np.ndarray:
    """Each entry's position in its row's sequence (0 = oldest), as float64 keys.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of shape (n_users, n_items)
    timestamps : ndarray of shape (nnz,), optional
        Order by these; by the item index (the CSR order) when None.

    Returns
    -------
    ndarray of shape (nnz,), dtype float64

    Examples
    --------
    >>> X = sp.csr_matrix(np.array([[1, 1, 1]]))
    >>> position_keys(X, np.array([30.0, 10.0, 20.0])).tolist()
    [2.0, 0.0, 1.0]
    """
    return _sorted_rank(X.indptr, timestamps)[1].astype(np.float64)


def padded_sequences(
    X: sp.csr_matrix, keys: np.ndarray | None, max_length: int, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``max_length`` most recent items of every row, oldest first, right-padded.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of shape (n_rows, n_items)
        Histories; the stored entries are the items.
    keys : ndarray of shape (nnz,) or None
        Order keys aligned with ``X``'s entries (timestamps or positions);
        None keeps the CSR order (by item index).
    max_length : int
        Longest sequence kept (the most recent entries).
    pad : int
        Fill value after the end of a sequence.

    Returns
    -------
    items : ndarray of shape (n_rows, max(1, longest kept)), dtype int64
        ``items[r, :lengths[r]]`` is row ``r``'s sequence, oldest first.
    lengths : ndarray of shape (n_rows,), dtype int64

    Examples
    --------
    >>> X = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 1]]))
    >>> items, lengths = padded_sequences(X, np.array([3.0, 1.0, 2.0, 5.0]), 2, pad=-1)
    >>> items.tolist(), lengths.tolist()
    ([[2, 0], [3, -1]], [2, 1])
    """
    indptr = X.indptr.astype(np.int64)
    full = np.diff(indptr)
    lengths = np.minimum(full, max_length)
    out = np.full((X.shape[0], max(1, int(lengths.max(initial=0)))), pad, dtype=np.int64)
    rank = _sorted_rank(indptr, keys)[1]
    rows = _entry_rows(indptr)
    col = rank - (full - lengths)[rows]  # drop the oldest entries of long rows
    keep = col >= 0
    out[rows[keep], col[keep]] = X.indices[keep]
    return out, lengths


def append_keys(
    old: sp.csr_matrix,
    old_keys: np.ndarray,
    new: sp.csr_matrix,
    timestamps: np.ndarray | None,
    use_timestamps: bool,
) -> np.ndarray:
    """Order keys for the entries of ``new`` so that they follow each row's ``old`` entries.

    Parameters
    ----------
    old : scipy.sparse.csr_matrix of shape (n_rows, n_items)
        The existing histories (rows padded to ``new``'s).
    old_keys : ndarray of shape (old.nnz,)
    new : scipy.sparse.csr_matrix of shape (n_rows, n_items)
        New interactions.
    timestamps : ndarray of shape (new.nnz,) or None
        Their timestamps.
    use_timestamps : bool
        The old keys are timestamps too: use the new timestamps as keys.

    Returns
    -------
    ndarray of shape (new.nnz,), dtype float64
        The timestamps, or ``max(old key of the row) + 1 + position in the
        new row`` (by timestamp when given, else by item index).

    Examples
    --------
    >>> old = sp.csr_matrix(np.array([[1, 1, 0]]))
    >>> new = sp.csr_matrix(np.array([[0, 1, 1]]))
    >>> append_keys(old, np.array([0.0, 1.0]), new, None, False).tolist()
    [2.0, 3.0]
    """
    if use_timestamps and timestamps is not None:
        return np.asarray(timestamps, dtype=np.float64).copy()
    n_rows = new.shape[0]
    row_max = np.full(n_rows, -1.0)
    counts = np.diff(old.indptr)
    filled = np.flatnonzero(counts > 0)
    if filled.size:
        row_max[filled] = np.maximum.reduceat(old_keys, old.indptr[filled])
    rank = _sorted_rank(new.indptr.astype(np.int64), timestamps)[1]
    return row_max[_entry_rows(new.indptr)] + 1.0 + rank


def merge_keys(parts: list[tuple[sp.csr_matrix, np.ndarray]], full: sp.csr_matrix) -> np.ndarray:
    """Keys aligned with ``full``'s entries: per (row, item), the largest key among ``parts``.

    Parameters
    ----------
    parts : list of (csr_matrix, ndarray)
        Matrices of ``full``'s shape with keys aligned to their entries;
        together they hold every entry of ``full``.
    full : scipy.sparse.csr_matrix
        The union, in canonical form.

    Returns
    -------
    ndarray of shape (full.nnz,), dtype float64
        A repeated interaction takes its latest key (it moves to the end).
    """
    n_items = max(full.shape[1], 1)
    lin = np.concatenate([_entry_rows(m.indptr) * n_items + m.indices for m, _ in parts])
    key = np.concatenate([np.asarray(k, dtype=np.float64) for _, k in parts])
    order = np.lexsort((key, lin))
    lin, key = lin[order], key[order]
    last = np.r_[lin[1:] != lin[:-1], True] if lin.size else np.zeros(0, dtype=bool)
    lin, key = lin[last], key[last]
    wanted = _entry_rows(full.indptr) * n_items + full.indices
    return key[np.searchsorted(lin, wanted)]


def training_sequences(
    X: sp.csr_matrix, keys: np.ndarray, rows: np.ndarray, length: int, pad: int
) -> tuple[np.ndarray, np.ndarray]:
    """Padded sequences (``length`` most recent items) of the ``rows`` with two items or more."""
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[np.diff(X.indptr)[rows] >= 2]
    sub = X[rows]
    return padded_sequences(sub, keys[entry_positions(X.indptr, rows)], length, pad)


def widen(seqs: np.ndarray, width: int, pad: int) -> np.ndarray:
    if seqs.shape[1] >= width:
        return seqs
    out = np.full((seqs.shape[0], width), pad, dtype=seqs.dtype)
    out[:, : seqs.shape[1]] = seqs
    return out


def pad_rows(X: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    if X.shape[0] == n_rows:
        return X
    indptr = np.concatenate([X.indptr, np.full(n_rows - X.shape[0], X.indptr[-1])])
    return sp.csr_matrix((X.data, X.indices, indptr), shape=(n_rows, X.shape[1]))
