"""The one history an explanation is about: a training row or a row of ``X=``."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from avrec.data import Interactions
from avrec.exceptions import DataValidationError, NotFittedError
from avrec.recommenders._input import check_interactions
from avrec.utils import check_users

__all__ = ["History", "check_item", "history_rows", "user_history"]


class History(NamedTuple):
    """One user's history: a ``(1, n_items)`` CSR row and the timestamps of its entries."""

    row: sp.csr_matrix
    user: int
    from_train: bool
    times: np.ndarray | None


def user_history(model: Any, user: Any, X: Any = None) -> History:
    """Return the history of one user of a fitted recommender.

    ``row`` is row ``user`` of the training matrix, or of ``X`` when it is
    given (a 1-d ``X`` of length ``n_items_`` is one history; ``user`` then
    defaults to 0). ``times`` holds the timestamps of the row's entries when
    ``X`` is an :class:`~avrec.data.Interactions` with timestamps, or, for
    training users, when the model keeps its training timestamps
    (``timestamps_`` aligned with ``train_matrix_``); else None.
    """
    if getattr(model, "n_items_", None) is None or not hasattr(model, "train_matrix_"):
        raise NotFittedError(f"{type(model).__name__} is not fitted; call fit first")
    n_items = int(model.n_items_)
    if X is None:
        if user is None:
            raise DataValidationError("user must be a training row index when X is not given")
        row = int(check_users(user, int(model.n_users_), name="user")[0])
        train = model.train_matrix_
        stored = getattr(model, "timestamps_", None)
        times = None
        if isinstance(stored, np.ndarray) and stored.shape == (train.nnz,):
            times = stored[train.indptr[row] : train.indptr[row + 1]].astype(np.float64)
        return History(sp.csr_matrix(train[row], dtype=np.float32), row, True, times)
    if not sp.issparse(X) and not isinstance(X, Interactions):
        arr = np.asarray(X)
        if arr.ndim == 1:
            X = arr.reshape(1, -1)
    hist, interactions = check_interactions(X, "X", n_items=n_items, allow_empty=True)
    row = 0 if user is None else int(check_users(user, hist.shape[0], name="user (row of X)")[0])
    times = None
    if interactions is not None and interactions.timestamps is not None:
        times = np.asarray(interactions.timestamps[hist.indptr[row] : hist.indptr[row + 1]])
    return History(sp.csr_matrix(hist[row], dtype=np.float32), row, False, times)


def history_rows(history: History, masks: Any) -> Any:
    """Copies of the history keeping the entries where ``masks`` (n, nnz) is True.

    Returns a CSR matrix ``(n, n_items)``, or an :class:`~avrec.data.Interactions`
    carrying the kept entries' timestamps when the history has timestamps (so
    that time-aware models score the modified histories as they would the
    original).
    """
    row = history.row
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim == 1:
        masks = masks[None, :]
    n = masks.shape[0]
    indptr = np.concatenate([[0], np.cumsum(masks.sum(axis=1))])
    indices = np.broadcast_to(row.indices, masks.shape)[masks]
    data = np.broadcast_to(row.data, masks.shape)[masks]
    csr = sp.csr_matrix((data, indices, indptr), shape=(n, row.shape[1]))
    if history.times is None:
        return csr
    times = np.broadcast_to(history.times, masks.shape)[masks]
    return Interactions.from_csr(csr, timestamps=times)


def check_item(item: Any, n_items: int, name: str = "item") -> int:
    """An item column index in ``[0, n_items)`` or a :class:`DataValidationError`."""
    arr = np.asarray(item)
    if arr.ndim != 0 or arr.dtype.kind not in "iu":
        raise DataValidationError(f"{name} must be one item column index (int), got {item!r}")
    value = int(arr)
    if not 0 <= value < n_items:
        raise DataValidationError(f"{name}={value} is out of range for {n_items} items")
    return value
