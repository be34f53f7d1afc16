"""Most-popular items: the baseline every other model must beat."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData

__all__ = ["Popularity"]


class Popularity(Recommender):
    """Recommend the items with the most (optionally time-decayed) interactions.

    Every user gets the same ranking (minus the items they have seen). It is
    the baseline of every evaluation: a model that does not beat it has not
    learned anything personal.

    Parameters
    ----------
    weighting : {"count", "weight"}, default="count"
        ``"count"`` scores an item by the number of users who interacted with
        it; ``"weight"`` by the sum of their interaction weights (plays,
        ratings).
    half_life : float, optional
        Time decay in seconds: an interaction ``half_life`` seconds older than
        the newest one in the data counts half. Needs
        :class:`~avrec.data.Interactions` with timestamps.

    Attributes
    ----------
    item_scores_ : ndarray of shape (n_items,), dtype float64
        The popularity of each item.
    reference_time_ : float or None
        Timestamp the decay is measured from (the newest interaction).

    See Also
    --------
    avrec.evaluation.evaluate : compare models against this baseline.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1]])
    >>> model = Popularity().fit(X)
    >>> model.item_scores_.tolist()
    [3.0, 1.0, 1.0]
    >>> items, scores = model.recommend([1], k=2)
    >>> items.tolist()
    [[1, 2]]
    """

    _supports_partial_fit: ClassVar[bool] = True

    def __init__(
        self, weighting: Literal["count", "weight"] = "count", half_life: float | None = None
    ) -> None:
        self.weighting = weighting
        self.half_life = half_life

    def _validate(self, timestamps: np.ndarray | None) -> None:
        if self.weighting not in ("count", "weight"):
            raise ConfigurationError(
                f"weighting must be 'count' or 'weight', got {self.weighting!r}"
            )
        if self.half_life is not None:
            if not isinstance(self.half_life, (int, float)) or not self.half_life > 0:
                raise ConfigurationError(
                    f"half_life must be a positive number of seconds, got {self.half_life!r}"
                )
            if timestamps is None:
                raise DataValidationError(
                    "half_life needs timestamps: fit on Interactions built with timestamps"
                )

    def _contributions(self, X: sp.csr_matrix, timestamps: np.ndarray | None, ref: float | None):
        values = np.ones(X.nnz) if self.weighting == "count" else X.data.astype(np.float64)
        if self.half_life is not None:
            values = values * np.exp2(-(ref - timestamps) / float(self.half_life))
        return np.bincount(X.indices, weights=values, minlength=X.shape[1])

    def _fit(self, data: FitData) -> dict[str, Any]:
        self._validate(data.timestamps)
        ref = None
        if self.half_life is not None:
            ref = float(data.timestamps.max()) if data.timestamps.size else 0.0
        return {
            "item_scores_": self._contributions(data.X, data.timestamps, ref),
            "reference_time_": ref,
        }

    def _partial_fit(self, data: FitData, X_full: sp.csr_matrix) -> dict[str, Any]:
        self._validate(data.timestamps)
        scores, ref = self.item_scores_, self.reference_time_
        if self.half_life is not None and data.timestamps.size:
            new_ref = max(ref, float(data.timestamps.max()))
            scores = scores * np.exp2(-(new_ref - ref) / float(self.half_life))
            ref = new_ref
        return {
            "item_scores_": scores + self._contributions(data.X, data.timestamps, ref),
            "reference_time_": ref,
        }

    def _score(self, users: np.ndarray | None, X_users: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.item_scores_.astype(np.float32), (X_users.shape[0], 1))
