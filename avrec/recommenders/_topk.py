"""Top-k selection over dense score matrices, with masking and padding."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["mask_entries", "top_k"]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices and values of the ``k`` largest scores of each row.

    Uses :func:`numpy.argpartition` (linear time) and sorts only the ``k``
    winners. Scores of ``-inf`` or NaN are never returned: those slots, and
    the slots of rows with fewer than ``k`` columns, are padded with index
    ``-1`` and score ``-inf``. Ties are broken towards the lower item index,
    and each row's result depends on that row alone, so results do not
    change with the batch size.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_items)
        Higher is better.
    k : int
        Number of items per row.

    Returns
    -------
    indices : ndarray of shape (n_rows, k), dtype int64
    values : ndarray of shape (n_rows, k), dtype float32

    Examples
    --------
    >>> idx, val = top_k(np.array([[0.25, 0.5, -np.inf]]), 3)
    >>> idx.tolist(), val.tolist()
    ([[1, 0, -1]], [[0.5, 0.25, -inf]])
    """
    scores = np.asarray(scores, dtype=np.float32)
    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    if kk == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, np.float32)
    clean = np.where(np.isnan(scores), np.float32(-np.inf), scores)
    if kk < n_items:
        part = np.argpartition(-clean, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    vals = np.take_along_axis(clean, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    invalid = np.isneginf(vals)
    idx[invalid] = -1
    if kk < k:
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return idx, vals.astype(np.float32, copy=False)


def mask_entries(scores: np.ndarray, mask: sp.csr_matrix, value: float = -np.inf) -> None:
    """Set ``scores[u, i] = value`` in place wherever ``mask[u, i]`` is stored.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_items)
        Modified in place.
    mask : scipy.sparse.csr_matrix of shape (n_rows, n_items)
        Every stored entry (whatever its value) is masked.
    value : float, default=-inf

    Examples
    --------
    >>> s = np.zeros((2, 3), dtype=np.float32)
    >>> mask_entries(s, sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 1]])))
    >>> s.tolist()
    [[-inf, 0.0, 0.0], [0.0, 0.0, -inf]]
    """
    if mask.nnz == 0:
        return
    rows = np.repeat(np.arange(mask.shape[0]), np.diff(mask.indptr))
    scores[rows, mask.indices] = value
