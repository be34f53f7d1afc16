"""Content-based recommendation: cosine between a user's feature profile and each item."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders.content._modalities import (
    modality_presence,
    require_modalities,
    standardize_present,
)

__all__ = ["ContentKNN"]


class ContentKNN(Recommender):
    """Content-based recommender: items close to the features of a user's history.

    For every modality ``m`` (``"audio"``, ``"video"`` ...) each item's
    feature vector is optionally standardised (per column, over the
    catalogue) and L2-normalised to :math:`\\hat f_i^m`. A user's profile is
    the weighted sum of the vectors of their history,

    .. math:: p_u^m = \\sum_j a_{uj} \\hat f_j^m,

    where :math:`a_{uj}` is the interaction weight (or 1 with
    ``weighting="binary"``) times an optional exponential time decay
    :math:`2^{-(t_u^{\\max} - t_{uj}) / h}` with half-life ``h`` relative to
    the user's latest interaction. An item's score is the cosine between
    profile and item, averaged over modalities with weights :math:`w_m`:

    .. math:: s_{ui} = \\sum_m w_m \\frac{p_u^m \\cdot \\hat f_i^m}{\\lVert p_u^m \\rVert}.

    Items need no interactions to be scored, so items that nobody has
    consumed yet (cold start) are ranked from their features alone.

    Parameters
    ----------
    modality_weights : dict of str to float, optional
        Weight of each modality (names of the ``ItemFeatures``; a bare array
        is the modality ``"features"``). Modalities missing from the dict get
        weight 0 (ignored). Weights are non-negative and rescaled to sum to
        1. Default: equal weights.
    standardize : bool, default=True
        Centre and scale each feature column (over all items) before the L2
        normalisation, so that no single dimension or offset dominates the
        cosine.
    half_life : float, optional
        Half-life, in seconds, of the exponential decay of an interaction's
        weight with its age relative to the user's latest interaction. Needs
        timestamps (fit on :class:`~avrec.data.Interactions` with
        timestamps). Default: no decay.
    weighting : {"weight", "binary"}, default="weight"
        Use the interaction weights as :math:`a_{uj}`, or 1 for every
        interaction.

    Attributes
    ----------
    item_vectors_ : ndarray of shape (n_items_, n_dims), dtype float32
        The normalised item vectors :math:`\\hat f_i^m` of all modalities,
        concatenated in modality order (an item whose features of a modality
        are all zero after standardisation, or that lacks the modality in
        ``ItemFeatures.mask``, has a zero vector there).
    modalities_ : list of str
        Modality names, in the order of ``item_vectors_``'s column blocks.
    modality_slices_ : dict of str to list of int
        ``name -> [start, stop]``: the columns of ``item_vectors_`` (and of
        :meth:`user_profiles`) of each modality.
    modality_weights_ : dict of str to float
        The weights :math:`w_m` actually used (summing to 1).
    feature_mean_ : ndarray of shape (n_dims,), dtype float32
        Column means removed before normalising (zeros without ``standardize``).
    feature_scale_ : ndarray of shape (n_dims,), dtype float32
        Column standard deviations divided out (ones without ``standardize``).
    user_weights_ : scipy.sparse.csr_matrix of shape (n_users_, n_items_), dtype float32
        The weights :math:`a_{uj}` of the training users' histories (with
        decay when ``half_life`` is set).
    timestamps_ : ndarray of shape (nnz,) or None
        Timestamps of ``train_matrix_``'s entries, kept for ``partial_fit``
        when ``half_life`` is set.
    n_users_, n_items_, train_matrix_, users_, items_
        See :class:`~avrec.recommenders.Recommender`.

    See Also
    --------
    FeatureToFactor : maps content features into a collaborative model's factors.
    HybridBlend : blends ContentKNN with collaborative models.

    Notes
    -----
    *Additive decomposition.* With :math:`c_u^m = w_m / \\lVert p_u^m \\rVert`
    (0 for an empty profile), the score is exactly

    .. math::

        s_{ui} = \\sum_m \\sum_{j \\in H_u} c_u^m\\, a_{uj}\\,
        (\\hat f_j^m \\cdot \\hat f_i^m)
        = \\sum_m \\sum_{k \\in m} c_u^m\\, p_{uk}^m\\, \\hat f_{ik}^m,

    a sum over the history items ``j`` (which past item made ``i``
    attractive) and, equivalently, a sum over the feature dimensions ``k``
    (which features did). ``user_weights_`` holds :math:`a_{uj}`,
    ``item_vectors_`` the :math:`\\hat f`, and :meth:`user_profiles` returns
    :math:`q_u = (c_u^m p_u^m)_m`, so that ``scores = q_u @ item_vectors_.T``
    and ``q_u * item_vectors_[i]`` is the per-dimension contribution.

    *Histories given at call time* (``recommend(X=...)``, new users) are
    weighted like the training histories; with ``half_life`` they decay only
    when ``X`` is an :class:`~avrec.data.Interactions` with timestamps (a bare
    matrix carries none). Training users use ``user_weights_``. :meth:`partial_fit` only recomputes
    the history weights (profiles are not learned), so it is as exact as a
    refit.

    Scores lie in ``[-1, 1]``; a user without history scores 0 everywhere.

    References
    ----------
    .. [1] P. Lops, M. de Gemmis, G. Semeraro, "Content-based Recommender
       Systems: State of the Art and Trends", Recommender Systems Handbook,
       Springer 2011.
    .. [2] Y. Deldjoo, M. Elahi, P. Cremonesi, F. Garzotto, P. Piazzolla,
       M. Quadrana, "Content-Based Video Recommendation System Based on
       Stylistic Visual Features", Journal on Data Semantics 5, 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.data import ItemFeatures
    >>> X = np.array([[1, 0, 0, 0], [0, 0, 1, 0]])
    >>> feats = ItemFeatures({"audio": [[1, 0], [1, 0.1], [0, 1], [0.1, 1]]})
    >>> model = ContentKNN(standardize=False).fit(X, item_features=feats)
    >>> items, scores = model.recommend([0, 1], k=1)
    >>> items.tolist()
    [[1], [3]]
    >>> model.item_vectors_.shape, model.modality_slices_
    ((4, 2), {'audio': [0, 2]})
    """

    _supports_partial_fit: ClassVar[bool] = True
    _uses_item_features: ClassVar[bool] = True
    _uses_timestamps: ClassVar[bool] = True
    _test_params: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        modality_weights: dict[str, float] | None = None,
        standardize: bool = True,
        half_life: float | None = None,
        weighting: Literal["weight", "binary"] = "weight",
    ) -> None:
        self.modality_weights = modality_weights
        self.standardize = standardize
        self.half_life = half_life
        self.weighting = weighting

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> None:
        if self.weighting not in ("weight", "binary"):
            raise ConfigurationError(
                f"weighting must be 'weight' or 'binary', got {self.weighting!r}"
            )
        if not isinstance(self.standardize, (bool, np.bool_)):
            raise ConfigurationError(f"standardize must be a bool, got {self.standardize!r}")
        if self.half_life is not None and not (_is_real(self.half_life) and self.half_life > 0):
            raise ConfigurationError(
                f"half_life must be None or a positive number of seconds, got {self.half_life!r}"
            )
        if self.modality_weights is not None and not isinstance(self.modality_weights, dict):
            raise ConfigurationError(
                "modality_weights must be None or a dict of modality name -> weight, "
                f"got {type(self.modality_weights).__name__}"
            )

    def _resolve_weights(self, names: list[str]) -> dict[str, float]:
        if self.modality_weights is None:
            return {name: 1.0 / len(names) for name in names}
        unknown = sorted(set(self.modality_weights) - set(names))
        if unknown:
            raise ConfigurationError(
                f"modality_weights names unknown modalities {unknown}; the item features "
                f"have {names}"
            )
        raw = {name: self.modality_weights.get(name, 0.0) for name in names}
        bad = {k: v for k, v in raw.items() if not (_is_real(v) and v >= 0)}
        if bad:
            raise ConfigurationError(f"modality_weights must be finite numbers >= 0, got {bad}")
        total = float(sum(raw.values()))
        if total <= 0:
            raise ConfigurationError("modality_weights are all 0: give some modality a weight > 0")
        return {name: float(value) / total for name, value in raw.items()}

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        self._validate()
        modalities = require_modalities(data.item_features, type(self).__name__)
        names = [name for name, _ in modalities]
        weights = self._resolve_weights(names)
        if self.half_life is not None and data.timestamps is None:
            raise DataValidationError(
                f"half_life={self.half_life!r} needs interaction timestamps, but X has none: "
                "fit on Interactions with timestamps or set half_life=None"
            )
        presence = modality_presence(data.item_features, len(modalities))
        blocks, means, scales, slices = [], [], [], {}
        start = 0
        for m, (name, F) in enumerate(modalities):
            if self.standardize:  # over the items that have the modality; the others get 0
                F, mean, scale = standardize_present(F, presence[:, m])
            else:
                mean = np.zeros(F.shape[1], dtype=np.float32)
                scale = np.ones(F.shape[1], dtype=np.float32)
            blocks.append(_l2_normalize_rows(F))
            means.append(mean)
            scales.append(scale)
            slices[name] = [start, start + F.shape[1]]
            start += F.shape[1]
        timestamps = None if self.half_life is None else np.asarray(data.timestamps, np.float64)
        return {
            "item_vectors_": np.ascontiguousarray(np.hstack(blocks), dtype=np.float32),
            "modalities_": names,
            "modality_slices_": slices,
            "modality_weights_": weights,
            "feature_mean_": np.concatenate(means),
            "feature_scale_": np.concatenate(scales),
            "user_weights_": self._history_weights(data.X, timestamps),
            "timestamps_": timestamps,
        }

    def _partial_fit(self, data: FitData, X_full: sp.csr_matrix) -> dict[str, Any]:
        self._validate()
        timestamps = None
        if self.half_life is not None:
            if data.timestamps is None or self.timestamps_ is None:
                raise DataValidationError(
                    f"half_life={self.half_life!r} needs timestamps: pass X_new as "
                    "Interactions with timestamps (and fit on timestamped data)"
                )
            timestamps = _merge_timestamps(
                self.train_matrix_, self.timestamps_, data.X, data.timestamps, X_full
            )
        return {
            "user_weights_": self._history_weights(X_full, timestamps),
            "timestamps_": timestamps,
        }

    def _history_weights(self, X: sp.csr_matrix, timestamps: np.ndarray | None) -> sp.csr_matrix:
        """The weights ``a_uj`` of the entries of ``X`` (``timestamps`` aligned with ``X.data``)."""
        X = sp.csr_matrix(X)
        values = (
            np.ones(X.nnz, dtype=np.float64)
            if self.weighting == "binary"
            else X.data.astype(np.float64)
        )
        if timestamps is not None and X.nnz:
            lengths = np.diff(X.indptr)
            nonempty = lengths > 0
            latest = np.zeros(X.shape[0], dtype=np.float64)
            latest[nonempty] = np.maximum.reduceat(timestamps, X.indptr[:-1][nonempty])
            age = np.repeat(latest, lengths) - timestamps
            values = values * np.exp2(-age / float(self.half_life))
        return sp.csr_matrix(
            (values.astype(np.float32), X.indices.copy(), X.indptr.copy()), shape=X.shape
        )

    # ------------------------------------------------------------------ scoring
    def user_profiles(self, users: Any = None, *, X: Any = None) -> np.ndarray:
        """Return the weighted, normalised profiles ``q_u`` with ``scores = q_u @ item_vectors_.T``.

        Block ``m`` of ``q_u`` (columns ``modality_slices_[m]``) is
        :math:`w_m p_u^m / \\lVert p_u^m \\rVert`; see the Notes of the class.

        Parameters
        ----------
        users : array-like of int, shape (n_query,), optional
            Training rows, or rows of ``X`` when it is given. Default: all.
        X : Interactions or sparse matrix of shape (n_rows, n_items_), optional
            Histories to build the profiles from instead of the training data.

        Returns
        -------
        ndarray of shape (n_query, n_dims), dtype float32

        Examples
        --------
        >>> X = np.array([[1, 0, 0], [0, 1, 1]])
        >>> F = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0]])
        >>> model = ContentKNN(standardize=False).fit(X, item_features=F)
        >>> model.user_profiles().tolist()
        [[1.0, 0.0], [0.0, 1.0]]
        """
        self._check_fitted()
        rows, hist, from_train, times = self._query(users, X)
        weights = self._weights_for(rows if from_train else None, hist, times)
        return self._profiles(weights).astype(np.float32)

    def _weights_for(
        self, users: np.ndarray | None, X_users: sp.csr_matrix, timestamps: np.ndarray | None
    ) -> sp.csr_matrix:
        if users is not None:
            return self.user_weights_[users]
        return self._history_weights(X_users, None if self.half_life is None else timestamps)

    def _profiles(self, A: sp.csr_matrix) -> np.ndarray:
        # float64 products: a user's scores then do not depend on the batch it is scored in
        # (BLAS sums in another order for one row than for many), up to float32 rounding
        V = self.item_vectors_.astype(np.float64)
        P = np.asarray(A.astype(np.float64) @ V)
        if P.ndim == 1:  # pragma: no cover - scipy returns 2-d for csr @ dense
            P = P[None, :]
        for name in self.modalities_:
            start, stop = self.modality_slices_[name]
            block = P[:, start:stop]
            norms = np.linalg.norm(block, axis=1)
            scale = np.zeros_like(norms)
            np.divide(self.modality_weights_[name], norms, out=scale, where=norms > 0)
            block *= scale[:, None]
        return P

    def _score(
        self,
        users: np.ndarray | None,
        X_users: sp.csr_matrix,
        timestamps: np.ndarray | None = None,
    ) -> np.ndarray:
        profiles = self._profiles(self._weights_for(users, X_users, timestamps))
        return np.matmul(profiles, self.item_vectors_.T.astype(np.float64)).astype(np.float32)


def _l2_normalize_rows(F: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(F.astype(np.float64), axis=1, keepdims=True)
    out = np.zeros(F.shape, dtype=np.float64)
    np.divide(F, norms, out=out, where=norms > 0)
    return out.astype(np.float32)


def _entry_keys(X: sp.csr_matrix, n_items: int) -> np.ndarray:
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    return rows * n_items + X.indices.astype(np.int64)


def _merge_timestamps(
    old: sp.csr_matrix,
    old_t: np.ndarray,
    new: sp.csr_matrix,
    new_t: np.ndarray,
    full: sp.csr_matrix,
) -> np.ndarray:
    """Timestamps aligned with ``full.data``: the latest of the old and new entry's."""
    n_items = full.shape[1]
    keys = np.concatenate([_entry_keys(old, n_items), _entry_keys(new, n_items)])
    t = np.concatenate([np.asarray(old_t, np.float64), np.asarray(new_t, np.float64)])
    order = np.lexsort((t, keys))  # by key, then time: the last of each key is the latest
    keys, t = keys[order], t[order]
    last = np.r_[keys[1:] != keys[:-1], True] if keys.size else np.zeros(0, bool)
    pos = np.searchsorted(keys[last], _entry_keys(full, n_items))
    return t[last][pos]


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
