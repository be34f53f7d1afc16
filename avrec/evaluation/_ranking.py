"""Ranking accuracy metrics computed from top-k item indices and a held-out matrix.

Every metric takes ``top_k``, an int array ``(n_users, K)`` of recommended item
indices (best first, rows padded with ``-1``), and ``relevant``, a sparse matrix
``(n_users, n_items)`` whose nonzero entries are the held-out items (binary
relevance). The hit matrix is built once per call with one vectorised sorted-key
lookup; no Python loop runs over users.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import DataValidationError

__all__ = [
    "f1_at_k",
    "hit_rate_at_k",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "recall_at_k",
    "truncated_recall_at_k",
]


# ---------------------------------------------------------------------- validation
def _as_csr(matrix: Any, name: str) -> sp.csr_matrix:
    """Return ``matrix`` as canonical CSR without explicit zeros, copying only if needed.

    Accepts scipy sparse matrices/arrays, 2-d array-likes and objects with a
    sparse ``.matrix`` attribute (:class:`avrec.data.Interactions`).
    """
    inner = getattr(matrix, "matrix", None)
    if inner is not None and sp.issparse(inner):
        matrix = inner
    if sp.issparse(matrix):
        if matrix.ndim != 2:
            raise DataValidationError(f"{name} must be 2-d (n_users, n_items), got {matrix.ndim}-d")
        csr = sp.csr_matrix(matrix)  # shares the caller's arrays when already CSR
        copied = False  # so copy before any in-place fix
    else:
        try:
            arr = np.asarray(matrix)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise DataValidationError(
                f"{name} must be a sparse matrix (n_users, n_items), got {type(matrix).__name__}"
            ) from exc
        if arr.ndim != 2 or arr.dtype.kind not in "biuf":
            raise DataValidationError(
                f"{name} must be a sparse matrix or 2-d numeric array (n_users, n_items), "
                f"got {type(matrix).__name__} with shape {arr.shape} and dtype {arr.dtype}"
            )
        csr = sp.csr_matrix(arr)
        copied = True
    if not csr.has_canonical_format:
        csr = csr.copy() if not copied else csr
        csr.sum_duplicates()  # also sorts the indices
        copied = True
    if csr.nnz and not np.all(csr.data != 0):
        csr = csr.copy() if not copied else csr
        csr.eliminate_zeros()
    return csr


def _check_top_k(top_k: Any, n_items: int, *, name: str = "top_k") -> np.ndarray:
    """Validate recommended indices and return them as a 2-d int64 array."""
    arr = np.asarray(top_k)
    if arr.ndim != 2:
        raise DataValidationError(
            f"{name} must be a 2-d int array of shape (n_users, K), got shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise DataValidationError(f"{name} has no columns; it must be (n_users, K) with K >= 1")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise DataValidationError(
                f"{name} must hold integer item indices, got dtype {arr.dtype}"
            )
    arr = arr.astype(np.int64, copy=False)
    if arr.size == 0:
        return arr
    bad = (arr < -1) | (arr >= n_items)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(
            f"{name}[{row}, {col}] = {arr[row, col]} is out of range for {n_items} items "
            "(valid indices are 0..n_items-1, with -1 for padding)"
        )
    srt = np.sort(arr, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        row, col = np.argwhere(dup)[0]
        raise DataValidationError(
            f"{name} row {row} recommends item {srt[row, col]} more than once; "
            "each row must list distinct items (pad with -1)"
        )
    return arr


def _check_k(k: Any, n_columns: int, *, name: str = "top_k") -> int:
    """Resolve a cut-off: ``None`` means all columns; larger than the columns is an error."""
    if k is None:
        return n_columns
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or int(k) < 1:
        raise DataValidationError(f"k must be a positive int or None, got {k!r}")
    if int(k) > n_columns:
        raise DataValidationError(
            f"k={int(k)} is larger than the {n_columns} columns of {name}; "
            "ask the model for at least k recommendations"
        )
    return int(k)


def _hit_matrix(top_k: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n_users, K)``: whether ``top_k[u, j]`` is a nonzero of ``relevant[u]``.

    One ``searchsorted`` over globally sorted keys ``row * n_items + col``;
    ``-1`` padding never matches. ``relevant`` must have no explicit zeros.
    """
    n_users, _ = top_k.shape
    n_items = relevant.shape[1]
    if relevant.nnz == 0 or top_k.size == 0:
        return np.zeros(top_k.shape, dtype=bool)
    if not relevant.has_sorted_indices:
        relevant = relevant.sorted_indices()
    offsets = np.arange(n_users, dtype=np.int64) * n_items
    keys = np.repeat(offsets, np.diff(relevant.indptr)) + relevant.indices
    query = top_k + offsets[:, None]
    pos = np.searchsorted(keys, query)
    np.minimum(pos, keys.size - 1, out=pos)
    return (keys[pos] == query) & (top_k >= 0)


def _prepare(top_k: Any, relevant: Any, k: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate inputs; return ``(hits (n_users, k) bool, n_relevant (n_users,), k)``."""
    rel = _as_csr(relevant, "relevant")
    arr = _check_top_k(top_k, rel.shape[1])
    if arr.shape[0] != rel.shape[0]:
        raise DataValidationError(
            f"top_k has {arr.shape[0]} rows but relevant has {rel.shape[0]}; "
            "both must have one row per user"
        )
    kk = _check_k(k, arr.shape[1])
    hits = _hit_matrix(arr[:, :kk], rel)
    return hits, np.diff(rel.indptr).astype(np.int64), kk


def _reduce(values: np.ndarray, per_user: bool) -> float | np.ndarray:
    """Per-user values (NaN = skipped) or their mean over the users not skipped."""
    if per_user:
        return values
    valid = ~np.isnan(values)
    if not valid.any():
        return float("nan")
    return float(values[valid].mean())


# ---------------------------------------------------------------------- kernels
# Each kernel takes hits (n_users, k) bool and n_relevant (n_users,) int and returns
# float64 (n_users,) with NaN for users without relevant items.
def _masked(values: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64, copy=False)
    values[n_rel == 0] = np.nan
    return values


def _precision(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return _masked(hits.sum(axis=1) / hits.shape[1], n_rel)


def _recall(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return _masked(hits.sum(axis=1) / np.maximum(n_rel, 1), n_rel)


def _truncated_recall(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    denom = np.maximum(np.minimum(n_rel, hits.shape[1]), 1)
    return _masked(hits.sum(axis=1) / denom, n_rel)


def _f1(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    n_hits = hits.sum(axis=1)
    # 2PR / (P + R) = 2 hits / (k + |rel|), and 0 when there is no hit.
    return _masked(2.0 * n_hits / (hits.shape[1] + n_rel), n_rel)


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _ndcg(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    disc = _discounts(k)
    # sequential sums in both, so a perfect list scores exactly 1.0
    dcg = np.cumsum(hits * disc, axis=1)[:, -1]
    ideal = np.cumsum(disc)[np.clip(np.minimum(n_rel, k) - 1, 0, None)]
    return _masked(dcg / ideal, n_rel)


def _average_precision(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    k = hits.shape[1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    total = (precision_at_rank * hits).sum(axis=1)
    return _masked(total / np.maximum(np.minimum(n_rel, k), 1), n_rel)


def _reciprocal_rank(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    first = hits.argmax(axis=1)
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _masked(rr, n_rel)


def _hit_rate(hits: np.ndarray, n_rel: np.ndarray) -> np.ndarray:
    return _masked(hits.any(axis=1).astype(np.float64), n_rel)


# ---------------------------------------------------------------------- public API
_SHARED_DOC = """
    Parameters
    ----------
    top_k : array-like of int, shape (n_users, K)
        Recommended item indices per user, best first. Rows may be padded with
        ``-1`` (fewer than ``K`` candidates); padding never counts as a hit. Each
        row must list distinct items.
    relevant : sparse matrix of shape (n_users, n_items)
        Held-out interactions; every nonzero entry is a relevant item (binary
        relevance). An :class:`~avrec.data.Interactions` or a dense 2-d array is
        accepted too.
    k : int, optional
        Cut-off; ``None`` uses all ``K`` columns. Must satisfy ``1 <= k <= K``.
    per_user : bool, default=False
        Return the per-user values instead of their mean.

    Returns
    -------
    float or ndarray of shape (n_users,), dtype float64
        The mean over users with at least one relevant item (NaN if there are
        none), or with ``per_user=True`` one value per user, NaN for users
        without relevant items (skipped).

    Raises
    ------
    DataValidationError
        If ``top_k`` is not 2-d integer, holds an index outside ``[-1, n_items)``
        or a repeated item, its rows do not match ``relevant``, or ``k`` is not
        an int in ``[1, K]``.
"""


def _document(func: Any) -> Any:
    if func.__doc__:  # None under python -OO
        func.__doc__ = func.__doc__.replace("    {shared}\n", _SHARED_DOC.lstrip("\n"))
    return func


@_document
def precision_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Precision at k: the fraction of the first ``k`` recommendations that are relevant.

    ``hits / k`` per user. Padded (``-1``) positions count as misses, so a
    model that returns fewer than ``k`` items is not rewarded for it.

    {shared}

    See Also
    --------
    recall_at_k, truncated_recall_at_k

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1]]))
    >>> top_k = np.array([[0, 1], [3, -1]])
    >>> precision_at_k(top_k, relevant)  # (1/2 + 1/2) / 2
    0.5
    >>> precision_at_k(top_k, relevant, k=1, per_user=True)
    array([1., 1.])
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_precision(hits, n_rel), per_user)


@_document
def recall_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Recall at k (plain): hits in the first ``k`` divided by the number of relevant items.

    ``hits / |relevant|`` per user; it cannot reach 1 when a user has more than
    ``k`` relevant items. See :func:`truncated_recall_at_k` for the variant
    divided by ``min(|relevant|, k)``.

    {shared}

    See Also
    --------
    truncated_recall_at_k, precision_at_k

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[1, 1, 1, 0]]))
    >>> recall_at_k(np.array([[0, 3]]), relevant)  # 1 hit / 3 relevant
    0.3333333333333333
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_recall(hits, n_rel), per_user)


@_document
def truncated_recall_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Truncated recall at k: hits divided by ``min(|relevant|, k)``.

    Unlike plain :func:`recall_at_k`, a perfect top-k list scores 1 even when
    the user has more than ``k`` relevant items (the "capped recall" that some
    libraries report as precision).

    {shared}

    See Also
    --------
    recall_at_k

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[1, 1, 1, 0]]))
    >>> truncated_recall_at_k(np.array([[0, 3]]), relevant)  # 1 hit / min(3, 2)
    0.5
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_truncated_recall(hits, n_rel), per_user)


@_document
def f1_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """F1 at k: the harmonic mean of :func:`precision_at_k` and plain :func:`recall_at_k`.

    Per user ``2PR / (P + R) = 2 hits / (k + |relevant|)``, 0 without hits.

    {shared}

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[1, 1, 1, 0]]))
    >>> f1_at_k(np.array([[0, 3]]), relevant)  # P = 1/2, R = 1/3 -> 2 / 5
    0.4
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_f1(hits, n_rel), per_user)


@_document
def ndcg_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Normalised discounted cumulative gain at k, with binary gains.

    ``DCG = sum_j hit_j / log2(j + 2)`` over ranks ``j = 0..k-1``, divided by
    the ideal DCG of ``min(|relevant|, k)`` hits at the top.

    {shared}

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    >>> # hit at rank 2 only: (1 / log2(3)) / (1 + 1 / log2(3))
    >>> round(ndcg_at_k(np.array([[0, 1, 2]]), relevant), 6)
    0.386853
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_ndcg(hits, n_rel), per_user)


@_document
def map_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Mean average precision at k.

    Average precision per user is ``sum_j precision@(j+1) * hit_j`` divided by
    ``min(|relevant|, k)``, so a perfect list scores 1.

    {shared}

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[1, 0, 1, 0]]))
    >>> map_at_k(np.array([[0, 1, 2]]), relevant)  # (1/1 + 2/3) / 2
    0.8333333333333333
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_average_precision(hits, n_rel), per_user)


@_document
def mrr_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Mean reciprocal rank at k: ``1 / rank`` of the first hit (1-based), 0 without a hit.

    {shared}

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 0, 0, 0]]))
    >>> mrr_at_k(np.array([[0, 1, 2], [3, 2, 1]]), relevant)  # (1/3 + 0) / 2
    0.16666666666666666
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_reciprocal_rank(hits, n_rel), per_user)


@_document
def hit_rate_at_k(
    top_k: Any, relevant: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Hit rate at k: 1 if any of the first ``k`` recommendations is relevant, else 0.

    {shared}

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> relevant = sp.csr_matrix(np.array([[0, 0, 1, 0], [1, 0, 0, 0]]))
    >>> hit_rate_at_k(np.array([[0, 1, 2], [3, 2, 1]]), relevant)
    0.5
    """
    hits, n_rel, _ = _prepare(top_k, relevant, k)
    return _reduce(_hit_rate(hits, n_rel), per_user)
