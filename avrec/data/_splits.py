"""Train/test splits of an interaction log: random per user, leave-last-out, temporal, cold-item.

Every splitter partitions the stored entries: ``train`` and ``test`` keep the
input's vocabularies and shape (they are built with
:meth:`~avrec.data.Interactions.select_entries`), share no (user, item) pair,
and together hold every entry with its weight and timestamp. The work is
vectorised: random keys per entry and a per-row rank from one sort, with no
Python loop over users.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from avrec.data._checks import check_timestamps
from avrec.data._interactions import Interactions
from avrec.exceptions import DataValidationError, DataWarning
from avrec.utils import check_random_state

__all__ = [
    "ColdItemSplit",
    "TrainTestSplit",
    "cold_item_split",
    "leave_last_out",
    "random_split",
    "temporal_split",
]


class TrainTestSplit(NamedTuple):
    """The result of a split; unpacks as ``train, test = ...``.

    Attributes
    ----------
    train : Interactions
        Entries to fit on; same shape and vocabularies as the input.
    test : Interactions
        Held-out entries; same shape and vocabularies as the input.
    """

    train: Interactions
    test: Interactions


class ColdItemSplit(NamedTuple):
    """The result of :func:`cold_item_split`; unpacks as ``train, test, cold_items = ...``.

    Attributes
    ----------
    train : Interactions
        Every entry of the warm items; no entry of a cold item.
    test : Interactions
        Every entry of the cold items.
    cold_items : ndarray of shape (n_cold,), dtype int64
        Column indices of the held-out items, sorted.
    """

    train: Interactions
    test: Interactions
    cold_items: np.ndarray


def random_split(
    X: Interactions | sp.spmatrix | sp.sparray,
    test_size: float = 0.2,
    *,
    min_train: int = 1,
    random_state: int | np.random.Generator | None = None,
) -> TrainTestSplit:
    """Hold out a random fraction of each user's interactions.

    User ``u`` with ``n_u`` entries gets ``test_size * n_u`` of them in test,
    rounded up or down at random with the probabilities that make the
    expected count exact (so the overall test fraction is ``test_size`` even
    when users have few items), but never so many that fewer than
    ``min_train`` stay in train.

    Parameters
    ----------
    X : Interactions or scipy.sparse matrix of shape (n_users, n_items)
        The log to split.
    test_size : float, default=0.2
        Fraction of each user's entries to hold out, in ``(0, 1)``.
    min_train : int, default=1
        Entries each user keeps in train at least (users with fewer entries
        stay entirely in train).
    random_state : None, int or numpy.random.Generator, default=None
        Seed; equal seeds give equal splits.

    Returns
    -------
    TrainTestSplit
        ``(train, test)``, each an :class:`~avrec.data.Interactions` of shape
        ``(n_users, n_items)`` with the input's vocabularies.

    Raises
    ------
    DataValidationError
        If ``test_size`` is outside ``(0, 1)`` or ``min_train`` is not a
        non-negative int.

    Warns
    -----
    DataWarning
        If the test set comes out empty.

    Examples
    --------
    >>> from avrec.data import make_interactions
    >>> X = make_interactions(100, 50, density=0.2, random_state=0)
    >>> train, test = random_split(X, test_size=0.25, random_state=0)
    >>> train.nnz + test.nnz == X.nnz, train.users == X.users
    (True, True)
    >>> round(test.nnz / X.nnz, 2)
    0.25
    """
    X = _as_interactions(X)
    test_size = _check_test_size(test_size)
    min_train = _check_count(min_train, "min_train", minimum=0)
    rng = check_random_state(random_state)
    counts = X.user_counts()
    n_test = np.floor(test_size * counts + rng.random(X.n_users)).astype(np.int64)
    n_test = np.minimum(n_test, np.maximum(counts - min_train, 0))
    rows = _rows(X)
    # a random rank of every entry within its row, from one sort of (row, random 32-bit key)
    order = _sort_within_rows(rows, rng.integers(0, 2**32, size=X.nnz, dtype=np.int64))
    rank = np.empty(X.nnz, dtype=np.int64)
    rank[order] = np.arange(X.nnz) - X.matrix.indptr[rows[order]]
    return _split(X, rank < n_test[rows])


def leave_last_out(X: Interactions, n: int = 1) -> TrainTestSplit:
    """Hold out each user's ``n`` most recent interactions.

    Parameters
    ----------
    X : Interactions of shape (n_users, n_items)
        The log to split; it must carry timestamps.
    n : int, default=1
        Interactions per user to hold out. Users with ``n`` or fewer
        interactions stay entirely in train.

    Returns
    -------
    TrainTestSplit
        ``(train, test)`` with the input's vocabularies; test holds exactly
        ``n`` entries of every user with more than ``n``.

    Raises
    ------
    DataValidationError
        If ``X`` has no timestamps or ``n`` is not a positive int.

    Warns
    -----
    DataWarning
        If no user has more than ``n`` interactions (empty test set).

    Notes
    -----
    Entries with equal timestamps are ordered by item index (the larger index
    counts as later), so the split is deterministic.

    Examples
    --------
    >>> from avrec.data import Interactions
    >>> X = Interactions.from_arrays(
    ...     ["a", "a", "a", "b"], ["x", "y", "z", "x"], timestamps=[3, 1, 2, 5]
    ... )
    >>> train, test = leave_last_out(X)
    >>> X.items.to_ids(test.matrix.indices).tolist()
    ['x']
    >>> train.nnz, test.nnz
    (3, 1)
    """
    X = _as_interactions(X)
    n = _check_count(n, "n", minimum=1)
    if X.timestamps is None:
        raise DataValidationError(
            "timestamps: leave_last_out needs an Interactions with timestamps "
            "(use random_split for logs without them)"
        )
    rows = _rows(X)
    # CSR order is (row, column), so a stable sort by (row, time) breaks ties by column
    t = X.timestamps
    span = float(t.max() - t.min()) if t.size else 0.0
    if t.size and span < 2**32 and np.all(t == np.floor(t)):  # whole seconds: integer key
        order = _sort_within_rows(rows, (t - t.min()).astype(np.int64))
    else:
        order = np.lexsort((t, rows))
    from_end = np.empty(X.nnz, dtype=np.int64)
    from_end[order] = X.matrix.indptr[rows[order] + 1] - 1 - np.arange(X.nnz)
    return _split(X, (from_end < n) & (X.user_counts()[rows] > n))


def temporal_split(
    X: Interactions, test_size: float | None = None, *, at: Any = None
) -> TrainTestSplit:
    """Split the whole log at one point in time: later interactions form the test set.

    Parameters
    ----------
    X : Interactions of shape (n_users, n_items)
        The log to split; it must carry timestamps.
    test_size : float, optional
        Fraction of entries, in ``(0, 1)``, that the cut should leave in
        test; ``0.2`` when neither ``test_size`` nor ``at`` is given. Entries
        sharing the cut's timestamp all go to test, so the fraction can come
        out a little larger.
    at : float or numpy.datetime64, optional
        The cut itself (seconds, or a datetime): entries with a timestamp
        ``>= at`` go to test.

    Returns
    -------
    TrainTestSplit
        ``(train, test)`` with the input's vocabularies; every test timestamp
        is later than every train timestamp.

    Raises
    ------
    DataValidationError
        If ``X`` has no timestamps, both ``test_size`` and ``at`` are given,
        or ``test_size`` is outside ``(0, 1)``.

    Warns
    -----
    DataWarning
        If train or test comes out empty.

    Examples
    --------
    >>> from avrec.data import Interactions
    >>> X = Interactions.from_arrays([1, 1, 2, 2], [1, 2, 1, 3], timestamps=[10, 20, 30, 40])
    >>> train, test = temporal_split(X, test_size=0.5)
    >>> test.timestamps.tolist()
    [30.0, 40.0]
    >>> temporal_split(X, at=15).train.nnz
    1
    """
    X = _as_interactions(X)
    if X.timestamps is None:
        raise DataValidationError(
            "timestamps: temporal_split needs an Interactions with timestamps"
        )
    if test_size is not None and at is not None:
        raise DataValidationError("give test_size or at, not both")
    t = X.timestamps
    if at is None:
        test_size = _check_test_size(0.2 if test_size is None else test_size)
        if X.nnz == 0:
            return _split(X, np.zeros(0, dtype=bool))
        n_train = min(int(np.ceil((1.0 - test_size) * X.nnz)), X.nnz - 1)
        cut = np.partition(t, n_train)[n_train]  # the (n_train)-th smallest timestamp
    else:
        try:
            cut = float(check_timestamps(np.asarray([at]), 1)[0])  # type: ignore[index]
        except DataValidationError as exc:
            raise DataValidationError(f"at must be a number or a datetime64, got {at!r}") from exc
    return _split(X, t >= cut)


def cold_item_split(
    X: Interactions | sp.spmatrix | sp.sparray,
    test_size: float = 0.2,
    *,
    random_state: int | np.random.Generator | None = None,
) -> ColdItemSplit:
    """Hold out a random fraction of the items entirely, for cold-start evaluation.

    Parameters
    ----------
    X : Interactions or scipy.sparse matrix of shape (n_users, n_items)
        The log to split.
    test_size : float, default=0.2
        Fraction of the items *that have interactions* to make cold, in
        ``(0, 1)``; rounded to the nearest count, at least one.
    random_state : None, int or numpy.random.Generator, default=None
        Seed; equal seeds give equal splits.

    Returns
    -------
    ColdItemSplit
        ``(train, test, cold_items)``: train has no entry of a cold item, test
        has all of them; both keep the input's shape and vocabularies (so a
        cold item is a column of train with no entries).

    Raises
    ------
    DataValidationError
        If ``test_size`` is outside ``(0, 1)`` or fewer than two items have
        interactions.

    Examples
    --------
    >>> from avrec.data import make_interactions
    >>> X = make_interactions(100, 50, density=0.2, random_state=0)
    >>> train, test, cold = cold_item_split(X, test_size=0.1, random_state=0)
    >>> len(cold), int(train.item_counts()[cold].sum()), int(test.item_counts()[cold].sum())
    (5, 0, 60)
    >>> test.nnz
    60
    """
    X = _as_interactions(X)
    test_size = _check_test_size(test_size)
    rng = check_random_state(random_state)
    warm = np.flatnonzero(X.item_counts() > 0)
    if warm.size < 2:
        raise DataValidationError(
            f"cold_item_split needs at least two items with interactions, got {warm.size}"
        )
    n_cold = min(max(1, round(test_size * warm.size)), warm.size - 1)
    cold = np.sort(rng.choice(warm, size=n_cold, replace=False)).astype(np.int64)
    is_cold = np.zeros(X.n_items, dtype=bool)
    is_cold[cold] = True
    train, test = _split(X, is_cold[X.matrix.indices])
    return ColdItemSplit(train, test, cold)


# ---------------------------------------------------------------------- helpers
def _split(X: Interactions, test_mask: np.ndarray) -> TrainTestSplit:
    train, test = X.select_entries(~test_mask), X.select_entries(test_mask)
    if X.nnz and (test.nnz == 0 or train.nnz == 0):
        warnings.warn(
            f"the split left the {'test' if test.nnz == 0 else 'train'} set empty",
            DataWarning,
            stacklevel=3,
        )
    return TrainTestSplit(train, test)


def _sort_within_rows(rows: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Stable argsort by ``(rows, key)`` for ``0 <= key < 2**32``: one radix sort of int64."""
    return np.argsort((rows << 32) | key, kind="stable")


def _rows(X: Interactions) -> np.ndarray:
    return np.repeat(np.arange(X.n_users, dtype=np.int64), np.diff(X.matrix.indptr))


def _as_interactions(X: Any) -> Interactions:
    if isinstance(X, Interactions):
        return X
    if sp.issparse(X):
        return Interactions.from_csr(X)
    raise DataValidationError(
        f"X must be an Interactions or a scipy sparse matrix, got {type(X).__name__}"
    )


def _check_test_size(test_size: Any) -> float:
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, numbers.Real)
        or not 0.0 < float(test_size) < 1.0
    ):
        raise DataValidationError(f"test_size must be a float in (0, 1), got {test_size!r}")
    return float(test_size)


def _check_count(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise DataValidationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)
