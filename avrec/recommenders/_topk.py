"""Top-k selection over dense score matrices, with masking and padding."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

__all__ = ["mask_entries", "top_k"]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices and values of the ``k`` largest scores of each row.

    Selection runs in :func:`torch.topk` (multi-threaded; timings against
    :func:`numpy.argpartition` in ``benchmarks/RESULTS.md``) and only the
    ``k`` winners are sorted. Scores of ``-inf`` or NaN
    are never returned: those slots, and the slots of rows with fewer than
    ``k`` columns, are padded with index ``-1`` and score ``-inf``. Ties are
    broken towards the lower item index (also at the ``k``-th place), and
    each row's result depends on that row alone, so results do not change
    with the batch size.

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
    import torch

    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n_rows, n_items = scores.shape
    kk = min(k, n_items)
    if kk == 0 or n_rows == 0:
        return np.full((n_rows, k), -1, dtype=np.int64), np.full((n_rows, k), -np.inf, np.float32)
    t = torch.from_numpy(scores)
    # one extra candidate tells whether a tie straddles the cut (k-th == (k+1)-th)
    extra = 1 if kk < n_items else 0
    vals_t, idx_t = torch.topk(t, kk + extra, dim=1, largest=True, sorted=True)
    bad = torch.isnan(vals_t).any(dim=1)  # topk ranks NaN first: only those rows need care
    if extra:
        bad |= (vals_t[:, kk - 1] == vals_t[:, kk]) & (vals_t[:, kk - 1] > -np.inf)
    vals, part = vals_t[:, :kk].numpy().copy(), idx_t[:, :kk].numpy().astype(np.int64)
    rows = np.flatnonzero(bad.numpy())
    if rows.size:
        sub = torch.nan_to_num(t[rows], nan=-np.inf, posinf=np.inf, neginf=-np.inf)
        part[rows] = _lowest_index_top(sub, kk)
        vals[rows] = np.take_along_axis(sub.numpy(), part[rows], axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    invalid = np.isneginf(vals)
    idx[invalid] = -1
    if kk < k:
        idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return idx, vals.astype(np.float32, copy=False)


def _lowest_index_top(scores, k: int) -> np.ndarray:
    """Exact top-k column sets of a torch tensor, ties at the cut going to lower indices."""
    import torch

    if k >= scores.shape[1]:
        return np.broadcast_to(np.arange(scores.shape[1]), (scores.shape[0], k)).copy()
    kth = torch.topk(scores, k, dim=1).values[:, -1:]
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(dim=1, keepdim=True)
    keep = above | (tied & (torch.cumsum(tied, dim=1, dtype=torch.int32) <= need))
    return torch.nonzero(keep)[:, 1].reshape(scores.shape[0], k).numpy().astype(np.int64)


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
