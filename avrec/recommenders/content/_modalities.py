"""Item features as an ordered list of modality matrices, shared by the content models."""

from __future__ import annotations

from typing import Any

import numpy as np

from avrec.exceptions import DataValidationError

__all__ = ["modality_presence", "require_modalities", "standardize_columns", "standardize_present"]


def require_modalities(item_features: Any, model: str) -> list[tuple[str, np.ndarray]]:
    """Return ``[(name, float32 (n_items, d)), ...]`` from what ``fit`` received.

    Parameters
    ----------
    item_features : ItemFeatures, ndarray of shape (n_items, d) or None
        As validated by the base class (already aligned to the item vocabulary).
        A bare array is one modality named ``"features"``.
    model : str
        Class name, for the error message.

    Returns
    -------
    list of (str, ndarray of shape (n_items, d_m), dtype float32)

    Raises
    ------
    DataValidationError
        If ``item_features`` is None.

    Examples
    --------
    >>> [(n, a.shape) for n, a in require_modalities(np.ones((3, 2)), "ContentKNN")]
    [('features', (3, 2))]
    """
    if item_features is None:
        raise DataValidationError(
            f"{model} needs item_features: pass fit(X, item_features=...) with an "
            "ItemFeatures or an (n_items, d) array"
        )
    if hasattr(item_features, "modalities") and hasattr(item_features, "concat"):
        return [
            (name, np.asarray(item_features[name], dtype=np.float32))
            for name in item_features.modalities
        ]
    return [("features", np.asarray(item_features, dtype=np.float32))]


def standardize_columns(F: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre and scale each column to unit variance (constant columns are only centred).

    Parameters
    ----------
    F : ndarray of shape (n_items, d)

    Returns
    -------
    standardized : ndarray of shape (n_items, d), dtype float32
    mean : ndarray of shape (d,), dtype float32
    scale : ndarray of shape (d,), dtype float32
        The standard deviation, 1 where it is 0.

    Examples
    --------
    >>> Z, mean, scale = standardize_columns(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> Z.tolist(), mean.tolist(), scale.tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [1.0, 1.0], [1.0, 1.0])
    """
    F64 = np.asarray(F, dtype=np.float64)
    mean = F64.mean(axis=0)
    scale = F64.std(axis=0)
    scale[scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 1.0
    Z = (F64 - mean) / scale
    return Z.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32)


def modality_presence(item_features: Any, n_modalities: int) -> np.ndarray:
    """Return which items have which modality, ``(n_items, n_modalities)`` bool.

    Parameters
    ----------
    item_features : ItemFeatures or ndarray of shape (n_items, d)
        A bare array is one modality that every item has.
    n_modalities : int
        Number of modalities (columns of the result) when ``item_features`` is an array.

    Returns
    -------
    ndarray of shape (n_items, n_modalities), dtype bool

    Examples
    --------
    >>> from avrec.data import ItemFeatures
    >>> f = ItemFeatures({"a": np.ones((2, 1))}, present={"a": [True, False]})
    >>> modality_presence(f, 1).tolist()
    [[True], [False]]
    """
    if hasattr(item_features, "presence"):
        return item_features.presence()
    return np.ones((np.asarray(item_features).shape[0], n_modalities), dtype=bool)


def standardize_present(
    F: np.ndarray, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`standardize_columns` over the rows that are ``present``; other rows become 0.

    Parameters
    ----------
    F : ndarray of shape (n_items, d)
    present : ndarray of shape (n_items,), dtype bool

    Returns
    -------
    standardized : ndarray of shape (n_items, d), dtype float32
        Zero (the standardised mean) in absent rows.
    mean, scale : ndarray of shape (d,), dtype float32

    Examples
    --------
    >>> Z, mean, _ = standardize_present(np.array([[0.0], [2.0], [9.0]]), np.array([1, 1, 0], bool))
    >>> Z.ravel().tolist(), mean.tolist()
    ([-1.0, 1.0, 0.0], [1.0])
    """
    present = np.asarray(present, dtype=bool)
    if present.all():
        return standardize_columns(F)
    out = np.zeros(F.shape, dtype=np.float32)
    if not present.any():
        return out, np.zeros(F.shape[1], np.float32), np.ones(F.shape[1], np.float32)
    out[present], mean, scale = standardize_columns(np.asarray(F)[present])
    return out, mean, scale
