"""Beyond-accuracy metrics: catalogue coverage, novelty and intra-list diversity.

These look only at what was recommended (and at training popularity or item
features), not at the held-out items.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.evaluation._ranking import _as_csr, _check_k, _check_top_k, _reduce
from avrec.exceptions import DataValidationError

__all__ = ["coverage_at_k", "intra_list_diversity_at_k", "novelty_at_k"]

# Float64 elements gathered per chunk by intra_list_diversity_at_k (32 MiB).
_DIVERSITY_CHUNK_ELEMENTS = 1 << 22


def _resolve_n_items(n_items: Any) -> int:
    if isinstance(n_items, numbers.Integral) and not isinstance(n_items, bool):
        if int(n_items) < 1:
            raise DataValidationError(f"n_items must be a positive int, got {n_items}")
        return int(n_items)
    inner = getattr(n_items, "matrix", n_items)
    shape = getattr(inner, "shape", None)
    if shape is not None and len(shape) == 2 and shape[1] >= 1:
        return int(shape[1])
    raise DataValidationError(
        "n_items must be a positive int or a matrix of shape (n_users, n_items), "
        f"got {type(n_items).__name__}"
    )


def coverage_at_k(top_k: Any, n_items: Any, k: int | None = None) -> float:
    """Catalogue coverage at k: distinct items in anyone's top ``k``, divided by ``n_items``.

    A catalogue-level metric (there is no per-user value): computed over all
    rows of ``top_k``; ``-1`` padding is ignored.

    Parameters
    ----------
    top_k : array-like of int, shape (n_users, K)
        Recommended item indices per user, best first, padded with ``-1``.
    n_items : int or matrix of shape (n_users, n_items)
        Catalogue size, or a matrix (sparse, dense or
        :class:`~avrec.data.Interactions`) whose second dimension is used.
    k : int, optional
        Cut-off; ``None`` uses all ``K`` columns. Must satisfy ``1 <= k <= K``.

    Returns
    -------
    float
        In ``[0, 1]``.

    Raises
    ------
    DataValidationError
        If ``top_k`` is not 2-d integer, holds an index outside ``[-1, n_items)``
        or a repeated item in a row, ``n_items`` is not positive, or ``k`` is
        not an int in ``[1, K]``.

    Examples
    --------
    >>> import numpy as np
    >>> coverage_at_k(np.array([[0, 1], [1, -1]]), n_items=4)  # {0, 1} of 4 items
    0.5
    >>> coverage_at_k(np.array([[0, 1], [2, 1]]), n_items=4, k=1)  # {0, 2}
    0.5
    """
    n = _resolve_n_items(n_items)
    arr = _check_top_k(top_k, n)
    kk = _check_k(k, arr.shape[1])
    items = arr[:, :kk].ravel()
    seen = np.zeros(n, dtype=bool)
    seen[items[items >= 0]] = True
    return float(np.count_nonzero(seen) / n)


def _self_information(popularity: Any) -> tuple[np.ndarray, bool]:
    """Return ``(-log2 pop_i (n_items,), from_matrix)``; matrix input floors pop at 1/n_users."""
    inner = getattr(popularity, "matrix", popularity)
    if sp.issparse(inner) or np.ndim(inner) == 2:
        train = _as_csr(popularity, "popularity")
        n_train_users, n_items = train.shape
        if n_train_users == 0:
            raise DataValidationError("popularity: the training matrix has no users (rows)")
        counts = np.bincount(train.indices, minlength=n_items)
        pop = np.maximum(counts, 1) / n_train_users
        return -np.log2(pop), True
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.ndim != 1 or pop.size == 0:
        raise DataValidationError(
            "popularity must be a training matrix (n_users, n_items) or a 1-d vector "
            f"(n_items,), got shape {pop.shape}"
        )
    if not np.all(np.isfinite(pop)) or pop.min() < 0 or pop.max() > 1:
        raise DataValidationError("popularity must hold fractions of users in [0, 1]")
    with np.errstate(divide="ignore"):
        return -np.log2(pop), False


def novelty_at_k(
    top_k: Any, popularity: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Novelty at k: mean self-information ``-log2(pop_i)`` of the recommended items.

    ``pop_i`` is the fraction of training users who interacted with item ``i``;
    rarely seen items are more novel. Per user the mean runs over the
    non-padded items of the first ``k``. Not bounded by 1: values lie in
    ``[0, log2(n_train_users)]``.

    Items with popularity 0 (never seen in training) would have infinite
    self-information. With a training matrix their popularity is floored at
    ``1 / n_train_users``, as if one user had seen them, so they score the
    largest finite value ``log2(n_train_users)``. A popularity vector carries
    no user count, so recommending an item whose popularity is 0 raises.

    Parameters
    ----------
    top_k : array-like of int, shape (n_users, K)
        Recommended item indices per user, best first, padded with ``-1``.
    popularity : sparse matrix of shape (n_train_users, n_items) or ndarray of shape (n_items,)
        The training interactions (nonzeros count, also an
        :class:`~avrec.data.Interactions`), or precomputed fractions in ``[0, 1]``.
    k : int, optional
        Cut-off; ``None`` uses all ``K`` columns. Must satisfy ``1 <= k <= K``.
    per_user : bool, default=False
        Return the per-user values instead of their mean.

    Returns
    -------
    float or ndarray of shape (n_users,), dtype float64
        The mean over users with at least one recommended item (NaN if none),
        or per-user values with NaN for users whose list is all padding.

    Raises
    ------
    DataValidationError
        For malformed ``top_k`` or ``k`` (see :func:`precision_at_k`), a
        ``popularity`` that is neither a matrix nor a vector of fractions, or a
        recommended item whose popularity (vector) is 0.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> train = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]]))
    >>> # pop = [1, 1/4, 0 -> floored to 1/4]; user 0: (0 + 2) / 2, user 1: 2
    >>> novelty_at_k(np.array([[0, 1], [2, -1]]), train, per_user=True)
    array([1., 2.])
    >>> novelty_at_k(np.array([[0, 1]]), np.array([0.5, 0.25, 0.0]))
    1.5
    """
    info, from_matrix = _self_information(popularity)
    arr = _check_top_k(top_k, info.size)
    kk = _check_k(k, arr.shape[1])
    arr = arr[:, :kk]
    if not from_matrix:
        zero = (arr >= 0) & np.isinf(info[np.maximum(arr, 0)])
        if zero.any():
            row, col = np.argwhere(zero)[0]
            raise DataValidationError(
                f"popularity of recommended item {arr[row, col]} is 0, so its self-information "
                "is infinite; pass the training matrix instead to floor it at 1 / n_train_users"
            )
    return _reduce(_novelty(arr, info), per_user)


def _novelty(top_k: np.ndarray, info: np.ndarray) -> np.ndarray:
    """Per-user mean of ``info`` over the non-padded items; NaN for all-padding rows."""
    valid = top_k >= 0
    total = np.where(valid, info[np.where(valid, top_k, 0)], 0.0).sum(axis=1)
    n = valid.sum(axis=1)
    out = np.full(top_k.shape[0], np.nan)
    np.divide(total, n, out=out, where=n > 0)
    return out


def _feature_matrix(item_features: Any) -> np.ndarray:
    if hasattr(item_features, "concat") and callable(item_features.concat):
        item_features = item_features.concat()
    feats = np.asarray(item_features)
    if feats.ndim != 2 or feats.dtype.kind not in "biuf":
        raise DataValidationError(
            "item_features must be a numeric array of shape (n_items, d) or an ItemFeatures "
            f"(with .concat()), got shape {feats.shape} and dtype {feats.dtype}"
        )
    if not np.all(np.isfinite(feats)):
        raise DataValidationError("item_features must be finite (found NaN or inf)")
    return feats


def intra_list_diversity_at_k(
    top_k: Any, item_features: Any, k: int | None = None, *, per_user: bool = False
) -> float | np.ndarray:
    """Intra-list diversity at k: mean pairwise cosine distance within each user's top ``k``.

    Per user, the mean of ``1 - cos(f_i, f_j)`` over the unordered pairs of
    non-padded items in the first ``k``. An item whose feature vector is all
    zeros has cosine similarity 0 (distance 1) with every item. Distances lie
    in ``[0, 2]``, and in ``[0, 1]`` when features are non-negative.

    Computed as ``(|sum_i e_i|^2 - sum_i |e_i|^2) / (m (m - 1))`` on the unit
    vectors ``e_i``, in chunks of users, so memory stays bounded.

    Parameters
    ----------
    top_k : array-like of int, shape (n_users, K)
        Recommended item indices per user, best first, padded with ``-1``.
    item_features : ndarray of shape (n_items, d) or ItemFeatures
        Item feature vectors, or any object whose ``.concat()`` returns them.
    k : int, optional
        Cut-off; ``None`` uses all ``K`` columns. Must satisfy ``1 <= k <= K``.
    per_user : bool, default=False
        Return the per-user values instead of their mean.

    Returns
    -------
    float or ndarray of shape (n_users,), dtype float64
        The mean over users with at least two recommended items (NaN if none),
        or per-user values with NaN for users with fewer than two items.

    Raises
    ------
    DataValidationError
        For malformed ``top_k`` or ``k`` (see :func:`precision_at_k`), an index
        beyond the rows of ``item_features``, or non-finite / non-2-d features.

    Examples
    --------
    >>> import numpy as np
    >>> features = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> # pairs (0, 1): 1, (0, 2) and (1, 2): 1 - 1/sqrt(2)
    >>> round(intra_list_diversity_at_k(np.array([[0, 1, 2]]), features), 6)
    0.528595
    >>> intra_list_diversity_at_k(np.array([[0, 1], [2, -1]]), features, per_user=True)
    array([ 1., nan])
    """
    feats = _feature_matrix(item_features)
    arr = _check_top_k(top_k, feats.shape[0], name="top_k")
    kk = _check_k(k, arr.shape[1])
    return _reduce(_diversity(arr[:, :kk], feats), per_user)


def _diversity(top_k: np.ndarray, feats: np.ndarray) -> np.ndarray:
    """Per-user intra-list diversity; NaN for rows with fewer than two items."""
    n_users, k = top_k.shape
    out = np.full(n_users, np.nan)
    chunk = max(1, _DIVERSITY_CHUNK_ELEMENTS // max(1, k * feats.shape[1]))
    for start in range(0, n_users, chunk):
        idx = top_k[start : start + chunk]
        valid = idx >= 0
        vecs = feats[np.where(valid, idx, 0)].astype(np.float64)  # (c, k, d)
        norms = np.linalg.norm(vecs, axis=2, keepdims=True)
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        vecs *= scale * valid[:, :, None]
        summed = vecs.sum(axis=1)
        pair_sum = np.einsum("ij,ij->i", summed, summed) - np.einsum("ijk,ijk->i", vecs, vecs)
        m = valid.sum(axis=1).astype(np.float64)
        enough = m >= 2
        mean_sim = pair_sum[enough] / (m[enough] * (m[enough] - 1.0))
        out[start : start + chunk][enough] = np.clip(1.0 - mean_sim, 0.0, 2.0)
    return out
