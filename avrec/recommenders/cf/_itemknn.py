"""Item-based nearest neighbours: cosine similarity on (optionally re-weighted) interactions."""

from __future__ import annotations

import logging
import math
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData

__all__ = ["ItemKNN"]

logger = logging.getLogger(__name__)

#: Upper bound on the dense similarity block (float64) computed at a time during fit.
SIMILARITY_BLOCK_BYTES = 64 * 2**20


def bm25_weight(X: sp.spmatrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """Re-weight a user-item matrix with Okapi BM25, items as documents and users as terms.

    This is the weighting of implicit's ``bm25_weight`` applied to the
    item-user matrix: a user who consumed many items carries less
    information (inverse document frequency), and the weight saturates in
    the interaction count (``k1``) relative to the item's popularity (``b``).

    .. math::

        w_{ui} = x_{ui} \\frac{(k_1 + 1)}{k_1 \\left(1 - b + b\\,|i| / \\overline{|i|}\\right)
        + x_{ui}} \\left(\\log n_\\text{items} - \\log(1 + n_u)\\right)

    where ``|i|`` is the item's total weight, its mean is over items and
    ``n_u`` is the number of items user ``u`` interacted with. As in
    implicit, the idf is negative for users who consumed (almost) every item.

    Parameters
    ----------
    X : sparse matrix of shape (n_users, n_items)
        Non-negative interaction weights.
    k1 : float, default=1.2
        Saturation of the interaction weight.
    b : float, default=0.75
        Strength of the item-popularity (document length) normalisation, in [0, 1].

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_users, n_items), dtype float64

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> W = bm25_weight(sp.csr_matrix(np.array([[1.0, 0, 0], [1, 1, 0]])))
    >>> W.shape, bool(W[0, 0] > W[1, 0])
    ((2, 3), True)
    """
    W = sp.csr_matrix(X, dtype=np.float64, copy=True)
    n_items = W.shape[1]
    user_degree = np.diff(W.indptr)
    idf = math.log(n_items) - np.log1p(user_degree)
    item_length = np.bincount(W.indices, weights=W.data, minlength=n_items)
    mean_length = item_length.mean() if n_items else 0.0
    length_norm = (1.0 - b) + b * item_length / (mean_length if mean_length > 0 else 1.0)
    rows = np.repeat(np.arange(W.shape[0]), user_degree)
    W.data = W.data * (k1 + 1.0) / (k1 * length_norm[W.indices] + W.data) * idf[rows]
    return W


def tfidf_weight(X: sp.spmatrix) -> sp.csr_matrix:
    """Re-weight a user-item matrix with TF-IDF, items as documents and users as terms.

    As implicit's ``tfidf_weight`` on the item-user matrix:
    ``w_ui = sqrt(x_ui) * (log n_items - log(1 + n_u))``.

    Parameters
    ----------
    X : sparse matrix of shape (n_users, n_items)
        Non-negative interaction weights.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_users, n_items), dtype float64

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> X = sp.csr_matrix(np.array([[4.0, 0, 0, 0], [0, 1, 1, 0]]))
    >>> tfidf_weight(X).toarray().round(3).tolist()
    [[1.386, 0.0, 0.0, 0.0], [0.0, 0.288, 0.288, 0.0]]
    """
    W = sp.csr_matrix(X, dtype=np.float64, copy=True)
    user_degree = np.diff(W.indptr)
    idf = math.log(W.shape[1]) - np.log1p(user_degree)
    W.data = np.sqrt(W.data) * np.repeat(idf, user_degree)
    return W


class ItemKNN(Recommender):
    """Item-based k-nearest-neighbour recommender.

    Items are compared by the users who consumed them: the similarity of
    items ``i`` and ``j`` is the cosine of their (optionally BM25 or TF-IDF
    weighted) user columns, shrunk towards zero when few users support it,

    .. math:: s_{ij} = \\frac{w_i \\cdot w_j}{\\lVert w_i \\rVert \\lVert w_j \\rVert + \\lambda}.

    Each item keeps its ``k`` most similar other items (row ``i`` of
    ``similarity_``). A user's score for item ``j`` is
    ``sum_i x_ui * similarity_[i, j]``: every item in the history votes for its
    neighbours with its interaction weight. Users known only by their history
    (``recommend(X=...)``) are scored the same way without refitting.

    The similarity is computed with sparse products over blocks of items, so
    memory stays bounded by the block size plus the kept neighbours.

    Parameters
    ----------
    k : int, default=100
        Neighbours kept per item.
    similarity : {"cosine", "dot"}, default="cosine"
        ``"dot"`` uses the plain inner product of the weighted columns (as
        implicit's ``BM25Recommender`` and ``TFIDFRecommender`` do).
    weighting : {None, "bm25", "tfidf"}, default=None
        Re-weighting of the interactions before the similarity; see
        :func:`bm25_weight` and :func:`tfidf_weight`. Scores always use the
        raw interaction weights.
    shrinkage : float, default=0.0
        Added to the denominator of the cosine; damps similarities supported
        by few users. Only with ``similarity="cosine"``.
    bm25_k1 : float, default=1.2
        BM25 saturation, used when ``weighting="bm25"``.
    bm25_b : float, default=0.75
        BM25 popularity normalisation in [0, 1], used when ``weighting="bm25"``.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32
        Row ``i`` holds the (at most) ``k`` largest non-zero similarities of
        item ``i`` to other items; the diagonal is empty. Not symmetric after
        pruning.

    See Also
    --------
    EASE : a dense item-item model that usually ranks better when it fits in memory.

    Notes
    -----
    Ties at the ``k``-th neighbour are broken arbitrarily. Items nobody
    interacted with have no neighbours and are never recommended by
    similarity (their score is 0).

    References
    ----------
    .. [1] B. Sarwar, G. Karypis, J. Konstan and J. Riedl, "Item-based
       collaborative filtering recommendation algorithms", WWW 2001.
    .. [2] M. Deshpande and G. Karypis, "Item-based top-N recommendation
       algorithms", ACM TOIS 22(1), 2004.
    .. [3] B. Frederickson, implicit: ``implicit.nearest_neighbours``
       (``bm25_weight``, ``tfidf_weight``, ``CosineRecommender``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]])
    >>> model = ItemKNN(k=2).fit(X)
    >>> model.similarity_.shape
    (4, 4)
    >>> items, scores = model.recommend([3], k=1)
    >>> items.tolist()
    [[1]]
    """

    _test_params: ClassVar[dict[str, Any]] = {"k": 20}

    def __init__(
        self,
        k: int = 100,
        similarity: Literal["cosine", "dot"] = "cosine",
        weighting: Literal["bm25", "tfidf"] | None = None,
        shrinkage: float = 0.0,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
    ) -> None:
        self.k = k
        self.similarity = similarity
        self.weighting = weighting
        self.shrinkage = shrinkage
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b

    def _validate(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, Integral) or self.k < 1:
            raise ConfigurationError(f"k must be a positive int, got {self.k!r}")
        if self.similarity not in ("cosine", "dot"):
            raise ConfigurationError(
                f"similarity must be 'cosine' or 'dot', got {self.similarity!r}"
            )
        if self.weighting not in (None, "bm25", "tfidf"):
            raise ConfigurationError(
                f"weighting must be None, 'bm25' or 'tfidf', got {self.weighting!r}"
            )
        if not _is_real(self.shrinkage) or not self.shrinkage >= 0:
            raise ConfigurationError(
                f"shrinkage must be a finite number >= 0, got {self.shrinkage!r}"
            )
        if self.similarity == "dot" and self.shrinkage != 0:
            raise ConfigurationError("shrinkage applies to similarity='cosine' only; set it to 0")
        if not _is_real(self.bm25_k1) or not self.bm25_k1 >= 0:
            raise ConfigurationError(f"bm25_k1 must be a finite number >= 0, got {self.bm25_k1!r}")
        if not _is_real(self.bm25_b) or not 0 <= self.bm25_b <= 1:
            raise ConfigurationError(f"bm25_b must be a number in [0, 1], got {self.bm25_b!r}")

    def _fit(self, data: FitData) -> dict[str, Any]:
        self._validate()
        if self.weighting == "bm25":
            W = bm25_weight(data.X, k1=float(self.bm25_k1), b=float(self.bm25_b))
        elif self.weighting == "tfidf":
            W = tfidf_weight(data.X)
        else:
            W = sp.csr_matrix(data.X, dtype=np.float64)
        similarity = item_similarity(
            W,
            k=int(self.k),
            cosine=self.similarity == "cosine",
            shrinkage=float(self.shrinkage),
        )
        return {"similarity_": similarity}

    def _score(self, users: np.ndarray | None, X_users: sp.csr_matrix) -> np.ndarray:
        return (X_users @ self.similarity_).toarray().astype(np.float32, copy=False)


def item_similarity(
    W: sp.csr_matrix,
    k: int,
    *,
    cosine: bool = True,
    shrinkage: float = 0.0,
    block_bytes: int = SIMILARITY_BLOCK_BYTES,
) -> sp.csr_matrix:
    """Top-``k`` item-item similarities of the columns of ``W``, computed in blocks of items.

    Parameters
    ----------
    W : scipy.sparse.csr_matrix of shape (n_users, n_items)
        (Weighted) interactions.
    k : int
        Neighbours kept per item (row).
    cosine : bool, default=True
        Divide the inner products by ``norm_i * norm_j + shrinkage``.
    shrinkage : float, default=0.0
        See :class:`ItemKNN`.
    block_bytes : int, optional
        Bound on the dense float64 block of similarities held at once.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32
        Row ``i`` holds the ``k`` largest non-zero similarities of item ``i``
        to other items, with sorted column indices.
    """
    n_items = W.shape[1]
    items_by_user = sp.csr_matrix(W.T)  # (n_items, n_users): one row per item
    norms = np.sqrt(np.asarray(items_by_user.multiply(items_by_user).sum(axis=1)).ravel())
    kk = min(k, n_items - 1)
    block = max(1, block_bytes // (8 * max(n_items, 1)))
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, n_items if kk > 0 else 0, block):
        stop = min(start + block, n_items)
        sims = (items_by_user[start:stop] @ W).toarray()
        if cosine:
            denom = norms[start:stop, None] * norms[None, :] + shrinkage
            np.divide(sims, denom, out=sims, where=denom > 0)
        local = np.arange(stop - start)
        sims[sims == 0] = -np.inf  # never keep zeros (they are implicit in sparse storage)
        sims[local, local + start] = -np.inf  # nor the item itself
        top = np.argpartition(sims, n_items - kk, axis=1)[:, n_items - kk :]
        vals = np.take_along_axis(sims, top, axis=1)
        keep = np.isfinite(vals)
        rows_out.append(np.broadcast_to(local[:, None] + start, top.shape)[keep])
        cols_out.append(top[keep])
        vals_out.append(vals[keep])
        logger.debug("item similarity: rows %d-%d of %d", start, stop, n_items)
    if rows_out:
        rows, cols, vals = (np.concatenate(p) for p in (rows_out, cols_out, vals_out))
    else:
        rows = cols = np.empty(0, dtype=np.int64)
        vals = np.empty(0)
    S = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_items, n_items))
    S.sort_indices()
    return S


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
