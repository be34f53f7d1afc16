"""Cross-modal retrieval: the nearest items to queries of another modality in a shared space."""

from __future__ import annotations

from typing import Any

import numpy as np

from avrec.exceptions import DataValidationError
from avrec.utils import check_positive_int, check_top_k

__all__ = ["cross_modal_search"]


def cross_modal_search(
    queries: Any,
    query_encoder: Any,
    item_embeddings: Any,
    k: int = 10,
    *,
    batch_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``k`` items most similar (cosine) to each query, e.g. text query -> videos.

    The queries are embedded with ``query_encoder`` (for instance the text
    tower of a :class:`~avrec.features.finetune.CrossModalFineTuner`) into the
    space the ``item_embeddings`` live in (the other tower's ``transform`` of
    the catalogue). Both sides are L2-normalised; scores are computed in
    blocks of ``batch_size`` queries and the top ``k`` is selected with
    :func:`numpy.argpartition` (only the winners are sorted).

    Parameters
    ----------
    queries : sequence or array
        Raw queries as ``query_encoder.transform`` takes them (texts, clips),
        or, with ``query_encoder=None``, query embeddings of shape ``(n_queries, d)``.
    query_encoder : encoder or None
        Anything with ``transform(queries) -> (n_queries, d)``.
    item_embeddings : array-like of shape (n_items, d)
        The catalogue in the shared space.
    k : int, default=10
        Items per query.
    batch_size : int, default=1024
        Queries scored per block; the result does not depend on it.

    Returns
    -------
    indices : ndarray of shape (n_queries, k), int64
        Item rows, best first; ``-1`` pads rows when ``k > n_items``.
    scores : ndarray of shape (n_queries, k), float32
        Cosine similarities; ``-inf`` where the index is ``-1``.

    Raises
    ------
    DataValidationError
        On non-finite or mismatched embeddings, or a bad ``k``.

    Examples
    --------
    >>> import numpy as np
    >>> items = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> idx, sc = cross_modal_search(np.array([[2.0, 0.1]]), None, items, k=4)
    >>> idx.tolist(), np.round(sc.astype(np.float64), 3).tolist()
    ([[0, 2, 1, -1]], [[0.999, 0.742, 0.05, -inf]])
    """
    k = check_top_k(k)
    batch_size = check_positive_int(batch_size, "batch_size")
    items = _unit_rows(item_embeddings, "item_embeddings")
    if query_encoder is None:
        q = np.asarray(queries, dtype=np.float32)
    else:
        if not hasattr(query_encoder, "transform"):
            raise DataValidationError(
                f"query_encoder must have transform(), got {type(query_encoder).__name__}"
            )
        q = np.asarray(query_encoder.transform(queries), dtype=np.float32)
    q = _unit_rows(q, "queries")
    if q.shape[1] != items.shape[1]:
        raise DataValidationError(
            f"queries embed to {q.shape[1]} dims but item_embeddings have {items.shape[1]}: "
            "embed both sides into one shared space"
        )
    n_items, kk = items.shape[0], min(k, items.shape[0])
    indices = np.full((q.shape[0], k), -1, dtype=np.int64)
    scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
    for start in range(0, q.shape[0], batch_size):
        block = q[start : start + batch_size] @ items.T
        if kk < n_items:
            part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(n_items), block.shape).copy()
        vals = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)  # best first, ties to the lower index
        rows = slice(start, start + block.shape[0])
        indices[rows, :kk] = np.take_along_axis(part, order, axis=1)
        scores[rows, :kk] = np.take_along_axis(vals, order, axis=1)
    return indices, scores


def _unit_rows(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataValidationError(f"{name} must have shape (n, d) with n, d > 0, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataValidationError(f"{name} contains NaN or infinite values")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, 1e-12)
