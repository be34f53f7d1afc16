"""Per-user score normalisation and the simplex search for blend weights."""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from avrec.recommenders._topk import mask_entries, top_k

__all__ = ["ndcg", "normalize_scores", "search_weights", "simplex_grid"]

#: Most weight vectors the grid search evaluates.
MAX_GRID_POINTS = 300


def normalize_scores(scores: np.ndarray, method: str) -> np.ndarray:
    """Normalise each row of ``scores`` over its columns.

    Parameters
    ----------
    scores : ndarray of shape (n_users, n_items)
    method : {"zscore", "minmax", "rank", "none"}
        Standard score; rescale to ``[0, 1]``; rank / (n_items - 1), ties
        averaged; unchanged. Constant rows become 0 (zscore, minmax).

    Returns
    -------
    ndarray of shape (n_users, n_items), dtype float32
        A new array.

    Examples
    --------
    >>> normalize_scores(np.array([[1.0, 3.0, 2.0]]), "minmax").tolist()
    [[0.0, 1.0, 0.5]]
    >>> normalize_scores(np.array([[5.0, 1.0, 5.0]]), "rank").tolist()
    [[0.75, 0.0, 0.75]]
    """
    S = np.asarray(scores, dtype=np.float64)
    if method == "none":
        return S.astype(np.float32)
    if method == "zscore":
        centred = S - S.mean(axis=1, keepdims=True)
        spread = S.std(axis=1, keepdims=True)
    elif method == "minmax":
        low = S.min(axis=1, keepdims=True)
        centred = S - low
        spread = S.max(axis=1, keepdims=True) - low
    elif method == "rank":
        if S.shape[1] < 2:
            return np.zeros(S.shape, dtype=np.float32)
        return ((rankdata(S, axis=1) - 1.0) / (S.shape[1] - 1)).astype(np.float32)
    else:  # pragma: no cover - validated by the caller
        raise ValueError(f"unknown normalization {method!r}")
    out = np.zeros_like(S)
    np.divide(centred, spread, out=out, where=spread > 1e-12 * np.maximum(np.abs(S).max(), 1.0))
    return out.astype(np.float32)


def ndcg(scores: np.ndarray, seen: sp.csr_matrix, relevant: sp.csr_matrix, k: int) -> float:
    """Mean NDCG@k of the rankings of ``scores`` (``seen`` items excluded) against ``relevant``.

    Binary relevance; users without relevant items are skipped. The same
    definition as :func:`avrec.evaluation.ndcg_at_k`.

    Parameters
    ----------
    scores : ndarray of shape (n_users, n_items)
    seen : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Items that may not be recommended.
    relevant : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Held-out items (nonzero entries).
    k : int

    Returns
    -------
    float

    Examples
    --------
    >>> rel = sp.csr_matrix(np.array([[0, 1, 0]]))
    >>> seen = sp.csr_matrix((1, 3))
    >>> round(ndcg(np.array([[3.0, 2.0, 1.0]]), seen, rel, k=2), 4)
    0.6309
    """
    S = np.array(scores, dtype=np.float32)
    mask_entries(S, sp.csr_matrix(seen))
    idx, _ = top_k(S, k)
    truth = sp.csr_matrix(relevant).toarray() != 0
    n_rel = truth.sum(axis=1)
    users = np.flatnonzero(n_rel > 0)
    if users.size == 0:
        return 0.0
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    hits = (idx[users] >= 0) & truth[users[:, None], np.maximum(idx[users], 0)]
    dcg = (hits * discount).sum(axis=1)
    idcg = np.cumsum(discount)[np.minimum(n_rel[users], k) - 1]
    return float(np.mean(dcg / idcg))


def simplex_grid(n_components: int, max_points: int = MAX_GRID_POINTS) -> np.ndarray:
    """Weight vectors on the simplex with the finest step ``1/s`` (s <= 10) within ``max_points``.

    Parameters
    ----------
    n_components : int
    max_points : int, default=300

    Returns
    -------
    ndarray of shape (n_points, n_components), dtype float64
        Non-negative rows summing to 1; the equal-weight point (when on the
        grid) comes first.

    Examples
    --------
    >>> simplex_grid(2, max_points=3).tolist()
    [[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]]
    """
    if n_components == 1:
        return np.ones((1, 1))
    steps = 1
    for s in range(1, 11):
        if math.comb(s + n_components - 1, n_components - 1) <= max_points:
            steps = s
    points = [
        np.diff(np.r_[0, cuts, steps]) / steps
        for cuts in itertools.combinations_with_replacement(range(steps + 1), n_components - 1)
    ]
    grid = np.unique(np.asarray(points), axis=0)
    spread = np.abs(grid - 1.0 / n_components).sum(axis=1)
    return grid[np.argsort(spread, kind="stable")]


def search_weights(
    normalized: list[np.ndarray], seen: sp.csr_matrix, relevant: sp.csr_matrix, k: int = 10
) -> tuple[np.ndarray, float]:
    """Return the simplex-grid weights of the blend with the best NDCG@k, and that NDCG.

    Ties go to the weights closest to equal.

    Parameters
    ----------
    normalized : list of ndarray of shape (n_users, n_items)
        Each component's normalised scores.
    seen, relevant : scipy.sparse.csr_matrix of shape (n_users, n_items)
        See :func:`ndcg`.
    k : int, default=10

    Returns
    -------
    weights : ndarray of shape (n_components,), dtype float64
    ndcg : float

    Examples
    --------
    >>> rel = sp.csr_matrix(np.array([[0, 1, 0]]))
    >>> good, bad = np.array([[0.0, 1.0, 0.5]]), np.array([[1.0, 0.0, 0.5]])
    >>> w, value = search_weights([good, bad], sp.csr_matrix((1, 3)), rel, k=1)
    >>> w.tolist(), value  # the most even weights that rank item 1 first
    ([0.6, 0.4], 1.0)
    """
    grid = simplex_grid(len(normalized))
    stacked = np.stack([np.asarray(s, dtype=np.float32) for s in normalized])
    values = np.array(
        [ndcg(np.tensordot(w.astype(np.float32), stacked, axes=1), seen, relevant, k) for w in grid]
    )
    best = int(np.argmax(values))
    return grid[best], float(values[best])
