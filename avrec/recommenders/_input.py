"""Conversion of what users pass as interactions into validated CSR matrices."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.data import Interactions, ItemFeatures, Vocabulary
from avrec.exceptions import DataValidationError

__all__ = ["FitData", "check_interactions", "check_item_features"]


@dataclass(frozen=True)
class FitData:
    """Everything a model's ``_fit`` receives, validated by the base class.

    Attributes
    ----------
    X : scipy.sparse.csr_matrix of shape (n_users, n_items)
        float32, canonical CSR, non-negative finite weights.
    timestamps : ndarray of shape (nnz,) or None
        Seconds, aligned with ``X.data``.
    item_features : object or None
        As passed to ``fit`` (an ``(n_items, d)`` array or an ``ItemFeatures``).
    rng : numpy.random.Generator
        Derived from the model's ``random_state``.
    interactions : Interactions or None
        The original object when ``fit`` got one (for vocabularies).
    """

    X: sp.csr_matrix
    timestamps: np.ndarray | None
    item_features: Any
    rng: np.random.Generator
    interactions: Interactions | None = None


def check_interactions(
    X: Any,
    name: str = "X",
    *,
    n_items: int | None = None,
    allow_empty: bool = False,
) -> tuple[sp.csr_matrix, Interactions | None]:
    """Validate interactions given as :class:`~avrec.data.Interactions`, sparse or dense.

    Parameters
    ----------
    X : Interactions, scipy.sparse matrix or array-like of shape (n_users, n_items)
        Non-negative, finite weights.
    name : str, default="X"
        Argument name for error messages.
    n_items : int, optional
        Required number of columns.
    allow_empty : bool, default=False
        Accept a matrix without stored entries (histories of new users may be empty).

    Returns
    -------
    csr : scipy.sparse.csr_matrix of shape (n_users, n_items), float32
    interactions : Interactions or None
        ``X`` itself when it was an Interactions.

    Raises
    ------
    DataValidationError
        On a wrong type or shape, NaN, infinite or negative values, or an empty matrix.

    Examples
    --------
    >>> csr, _ = check_interactions(np.eye(2))
    >>> csr.shape, csr.dtype
    ((2, 2), dtype('float32'))
    """
    interactions = None
    if isinstance(X, Interactions):
        interactions = X
        csr = X.matrix
    elif sp.issparse(X):
        csr = sp.csr_matrix(X, dtype=np.float32)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
    else:
        try:
            arr = np.asarray(X)
        except Exception as exc:  # any conversion failure is bad input
            raise DataValidationError(f"{name} could not be converted to a matrix: {exc}") from exc
        if arr.ndim != 2 or arr.dtype.kind not in "biuf":
            raise DataValidationError(
                f"{name} must be Interactions, a scipy sparse matrix or a 2-d numeric array, "
                f"got {type(X).__name__} with shape {getattr(arr, 'shape', None)}"
            )
        csr = sp.csr_matrix(arr.astype(np.float32))
    if csr.ndim != 2:
        raise DataValidationError(f"{name} must be 2-d, got shape {csr.shape}")
    if csr.nnz:
        data = csr.data
        if not np.all(np.isfinite(data)):
            raise DataValidationError(f"{name} contains NaN or infinite weights")
        if (data < 0).any():
            raise DataValidationError(f"{name} contains negative weights")
    if not allow_empty and (csr.nnz == 0 or csr.shape[0] == 0 or csr.shape[1] == 0):
        raise DataValidationError(f"{name} is empty: it has no interactions (shape {csr.shape})")
    if n_items is not None and csr.shape[1] != n_items:
        raise DataValidationError(
            f"{name} has {csr.shape[1]} item columns but the model was fitted on {n_items} items"
        )
    return csr, interactions


def check_item_features(item_features: Any, n_items: int, items: Vocabulary | None = None) -> Any:
    """Check that item features have one row per item, aligning ``ItemFeatures`` to ``items``.

    Parameters
    ----------
    item_features : None, array-like of shape (n_items, d), or ItemFeatures
        ``ItemFeatures`` whose item ids differ from ``items`` are reordered to
        follow ``items`` (every item needs features).
    n_items : int
    items : Vocabulary, optional
        Item ids of the interaction matrix's columns.

    Returns
    -------
    object
        ``item_features`` unchanged (arrays converted to float32 ndarrays).

    Raises
    ------
    DataValidationError
        If the number of rows differs from ``n_items`` or values are not finite.
    """
    if item_features is None:
        return None
    if (
        isinstance(item_features, ItemFeatures)
        and items is not None
        and item_features.items != items
    ):
        item_features = item_features.align(items)
    arr = item_features.concat() if hasattr(item_features, "concat") else item_features
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise DataValidationError(f"item_features must be 2-d (n_items, d), got shape {arr.shape}")
    if arr.shape[0] != n_items:
        raise DataValidationError(
            f"item_features has {arr.shape[0]} rows but the interactions have {n_items} items"
        )
    if arr.dtype.kind not in "biuf" or not np.all(np.isfinite(arr)):
        raise DataValidationError("item_features must be finite numbers")
    if hasattr(item_features, "concat"):
        return item_features
    return arr.astype(np.float32, copy=False)
