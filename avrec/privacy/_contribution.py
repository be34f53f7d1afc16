"""Per-user contribution bounding: the step that makes a user's influence on a release finite."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.recommenders._input import check_interactions
from avrec.utils import check_random_state

__all__ = ["bound_contributions"]


def bound_contributions(
    X: Any,
    max_items_per_user: int,
    *,
    max_weight: float | None = None,
    random_state: int | np.random.Generator | None = None,
) -> Any:
    """Keep at most ``max_items_per_user`` interactions per user, sampled uniformly.

    Differential privacy at the *user* level protects everything one user
    contributes, so every DP release first bounds that contribution: each
    user keeps a uniform random subset of at most ``m = max_items_per_user``
    of their interactions (all of them if they have fewer), and each kept
    weight is binarised to 1 (or clipped to ``[0, max_weight]``). After this,
    adding or removing one user changes an item count by at most 1 per item
    and by at most ``m`` in total, whatever the data.

    The subset of one user depends only on that user's own row and the
    random draw, so neighbouring datasets (differing in one user) stay
    neighbouring after bounding: the bound costs no privacy.

    Parameters
    ----------
    X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
        Non-negative interaction weights.
    max_items_per_user : int
        ``m >= 1``: the most interactions a user keeps.
    max_weight : float, optional
        ``None`` (default) binarises the kept weights to 1; a positive number
        clips them to ``[0, max_weight]`` instead.
    random_state : None, int or numpy.random.Generator
        Seeds which interactions are kept; a fixed seed gives the same subset.

    Returns
    -------
    Interactions or scipy.sparse.csr_matrix of shape (n_users, n_items)
        :class:`~avrec.data.Interactions` (same vocabularies, timestamps of the
        kept entries) when ``X`` is one, else a float32 CSR matrix.

    Raises
    ------
    ConfigurationError
        If ``max_items_per_user`` is not a positive int or ``max_weight`` is not
        a positive finite number.
    DataValidationError
        If ``X`` is malformed (negative or NaN weights, not 2-d).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 2, 3, 0], [0, 5, 0, 0]])
    >>> B = bound_contributions(X, 2, random_state=0)
    >>> np.diff(B.indptr).tolist(), B.data.tolist()
    ([2, 1], [1.0, 1.0, 1.0])
    """
    m = check_max_items(max_items_per_user)
    if max_weight is not None and (
        isinstance(max_weight, bool)
        or not isinstance(max_weight, numbers.Real)
        or not np.isfinite(max_weight)
        or not max_weight > 0
    ):
        raise ConfigurationError(
            f"max_weight must be None or a positive finite number, got {max_weight!r}"
        )
    csr, interactions = check_interactions(X, allow_empty=True)
    keep = _sample_mask(csr, m, check_random_state(random_state))
    if interactions is not None:
        out = interactions.select_entries(keep)
        matrix = out.matrix
    else:
        kept_before = np.zeros(csr.nnz + 1, dtype=np.int64)
        np.cumsum(keep, out=kept_before[1:])
        matrix = sp.csr_matrix(
            (csr.data[keep], csr.indices[keep], kept_before[csr.indptr]),
            shape=csr.shape,
            dtype=np.float32,
        )
        out = matrix
    if max_weight is None:
        matrix.data[:] = 1.0
    else:
        np.minimum(matrix.data, np.float32(max_weight), out=matrix.data)
    return out


def check_max_items(value: Any) -> int:
    """Validate ``max_items_per_user`` (a positive int) and return it as an int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ConfigurationError(f"max_items_per_user must be a positive int, got {value!r}")
    return int(value)


def _sample_mask(csr: sp.csr_matrix, m: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask over ``csr``'s entries keeping a uniform subset of <= m per row."""
    counts = np.diff(csr.indptr)
    if csr.nnz == 0 or counts.max() <= m:
        return np.ones(csr.nnz, dtype=bool)
    rows = np.repeat(np.arange(csr.shape[0]), counts)
    keys = rng.random(csr.nnz)
    order = np.lexsort((keys, rows))  # by row, then by random key: a random order per row
    rank = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], counts)
    keep = np.zeros(csr.nnz, dtype=bool)
    keep[order[rank < m]] = True
    return keep
