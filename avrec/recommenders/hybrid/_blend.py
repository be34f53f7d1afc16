"""A weighted blend of several recommenders' per-user normalised scores."""

from __future__ import annotations

import copy
import logging
import math
import warnings
from numbers import Real
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.utils.metaestimators import _BaseComposition

from avrec.data import Interactions, random_split
from avrec.exceptions import ConfigurationError, DataValidationError, DataWarning
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders.cf import ItemKNN
from avrec.recommenders.content import ContentKNN
from avrec.recommenders.hybrid._blend_weights import normalize_scores, search_weights

__all__ = ["HybridBlend"]

logger = logging.getLogger(__name__)

_NORMALIZATIONS = ("zscore", "minmax", "rank", "none")


class HybridBlend(Recommender, _BaseComposition):
    """Weighted sum of several recommenders' scores, each normalised per user.

    Every component is fitted on the same data (content-aware components
    also get ``item_features``). To score, each component's scores for a
    user are normalised over the items (``normalization``) and summed with
    the component weights:

    .. math:: s_{ui} = \\sum_k w_k\\, \\operatorname{norm}(s^{(k)}_{u\\cdot})_i .

    With ``weights="fit"`` the weights are chosen on held-out data: a random
    ``validation_fraction`` of every user's interactions is hidden, the
    components are fitted on the rest, and the weights on a grid over the
    simplex that maximise NDCG@10 of the hidden items are kept; then the
    components are refitted on all the data.

    Parameters
    ----------
    components : list of (str, Recommender), optional
        Named, unfitted recommenders (like the steps of a scikit-learn
        ``Pipeline``); they are cloned. Their hyperparameters are reachable as
        ``<name>__<param>`` through ``get_params``/``set_params``. Default:
        ``[("itemknn", ItemKNN()), ("content", ContentKNN())]``.
    weights : None, "fit", dict of str to float or list of float, default=None
        Non-negative component weights (None: equal). A dict must name
        every component. ``"fit"`` searches them on held-out data.
    normalization : {"zscore", "minmax", "rank", "none"}, default="zscore"
        Per-user transformation of each component's scores over all items:
        standard score, rescaling to ``[0, 1]``, rank ``/ (n_items - 1)``
        (ties averaged), or none. A user whose scores are constant gets 0
        (zscore, minmax).
    validation_fraction : float, default=0.2
        Fraction of each user's interactions held out when ``weights="fit"``,
        in ``(0, 1)``.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the validation split of ``weights="fit"``; the components keep
        their own ``random_state``.
    cold_items : {"content", "blend"}, default="content"
        How items without training interactions are scored. ``"content"``:
        only by the components that were given item features, with their
        weights renormalised to sum to 1 (equal weights if all of them are 0),
        because a collaborative component's score for an item it never saw
        carries no information. ``"blend"``: like every other item.

    Attributes
    ----------
    components_ : list of Recommender
        The fitted clones, in the order of ``components``.
    component_names_ : list of str
        Their names.
    weights_ : ndarray of shape (n_components,), dtype float64
        The weights used, rescaled to sum to 1.
    validation_ndcg_ : float or None
        With ``weights="fit"``, the NDCG@10 of the chosen weights on the
        held-out interactions; else None.
    feature_components_ : ndarray of shape (n_components,), dtype bool
        Which components were fitted with item features.
    cold_items_ : ndarray of shape (n_items,), dtype bool
        Items without training interactions (updated by ``partial_fit``).
    n_users_, n_items_, train_matrix_, users_, items_
        See :class:`~avrec.recommenders.Recommender`.

    See Also
    --------
    ContentKNN, FeatureToFactor : content models to blend with collaborative ones.

    Notes
    -----
    *Cold items* (no training interactions): a collaborative component gives
    an item it never saw an uninformative score (0 for ALS, ItemKNN or
    Popularity, the same for every cold item). With ``cold_items="content"``
    (the default) a cold item's blended score is therefore the weighted mean
    of the normalised scores of the feature-using components alone, on the
    same scale as a warm item's blend (both are convex combinations of
    normalised scores). This matters with ``weights="fit"``: the validation
    split holds warm items only, so the search may give the content
    components little or no weight, which would otherwise leave cold items
    unranked. With ``cold_items="blend"`` cold items are blended like the
    others, and the content components order them among themselves only if
    their weight is positive.

    *Item features* go to the components with ``_uses_item_features``; the
    others are fitted on the interactions alone. Without ``item_features``,
    a component that needs them (ContentKNN) raises.

    *partial_fit* calls ``partial_fit`` of every component (the weights are
    kept); it raises :class:`NotImplementedError` naming the components that
    do not support it, before changing anything.

    *NDCG@10* of the weight search is computed here (DCG of the hidden items
    among the top 10 not seen in the fitting part, over the ideal DCG), equal
    to :func:`avrec.evaluation.ndcg_at_k`, which the recommenders layer cannot
    import. At most 2000 validation users (a random sample) are scored.

    References
    ----------
    .. [1] R. Burke, "Hybrid Recommender Systems: Survey and Experiments",
       User Modeling and User-Adapted Interaction 12(4), 2002.
    .. [2] E. A. Fox, J. A. Shaw, "Combination of Multiple Searches", TREC-2,
       1994 (CombSUM of normalised scores).

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import ContentKNN, ItemKNN
    >>> X = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 1, 1, 0]])
    >>> F = np.array([[1, 0], [1, 0.1], [0.9, 0], [0, 1], [0.1, 1.0]])
    >>> blend = HybridBlend([("knn", ItemKNN(k=3)), ("content", ContentKNN())],
    ...                     weights={"knn": 2, "content": 1}).fit(X, item_features=F)
    >>> blend.weights_.round(3).tolist()
    [0.667, 0.333]
    >>> blend.recommend([0], k=1)[0].tolist()
    [[2]]
    >>> blend.get_params()["knn__k"]
    3
    """

    _supports_partial_fit: ClassVar[bool] = True
    _uses_timestamps: ClassVar[bool] = True
    _test_params: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        components: list[tuple[str, Recommender]] | None = None,
        weights: str | dict[str, float] | list[float] | None = None,
        normalization: Literal["zscore", "minmax", "rank", "none"] = "zscore",
        validation_fraction: float = 0.2,
        random_state: int | np.random.Generator | None = None,
        cold_items: Literal["content", "blend"] = "content",
    ) -> None:
        self.components = components
        self.weights = weights
        self.normalization = normalization
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.cold_items = cold_items

    @property
    def _uses_item_features(self) -> bool:  # type: ignore[override]
        """True when some component uses item features (on the class: True)."""
        if self.components is None:
            return True
        return any(getattr(est, "_uses_item_features", False) for _, est in _pairs(self.components))

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Get parameters, including ``<component>__<param>`` ones when ``deep``.

        Parameters
        ----------
        deep : bool, default=True
            Also return the components' parameters.

        Returns
        -------
        dict of str to object
        """
        return self._get_params("components", deep=deep)

    def set_params(self, **params: Any) -> HybridBlend:
        """Set parameters, including ``<component>__<param>`` or a whole ``<component>``.

        Parameters
        ----------
        **params
            Parameter names mapped to their new values.

        Returns
        -------
        self
        """
        self._set_params("components", **params)
        return self

    # ------------------------------------------------------------------ configuration
    def _resolve_components(self, rng: np.random.Generator) -> list[tuple[str, Recommender]]:
        if self.components is None:
            return [("itemknn", ItemKNN()), ("content", ContentKNN())]
        if not isinstance(self.components, (list, tuple)) or not self.components:
            raise ConfigurationError(
                "components must be a non-empty list of (name, Recommender) pairs, "
                f"got {self.components!r}"
            )
        pairs = []
        for item in self.components:
            if not isinstance(item, (list, tuple)) or len(item) != 2:
                raise ConfigurationError(
                    f"components must hold (name, Recommender) pairs, got {item!r}"
                )
            name, est = item
            if not isinstance(name, str) or not name or "__" in name:
                raise ConfigurationError(
                    f"component names must be non-empty strings without '__', got {name!r}"
                )
            if not isinstance(est, Recommender):
                raise ConfigurationError(
                    f"component {name!r} must be an avrec Recommender instance, "
                    f"got {type(est).__name__}"
                )
            pairs.append((name, clone(est)))
        names = [name for name, _ in pairs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"component names must be unique; repeated: {duplicates}")
        clash = sorted(set(names) & set(self.get_params(deep=False)))
        if clash:
            raise ConfigurationError(
                f"component names {clash} clash with HybridBlend's own parameter names"
            )
        return pairs

    def _validate(self, names: list[str]) -> np.ndarray | None:
        """Check the settings; return the given weights (None for ``"fit"``)."""
        if self.cold_items not in ("content", "blend"):
            raise ConfigurationError(
                f"cold_items must be 'content' or 'blend', got {self.cold_items!r}"
            )
        if self.normalization not in _NORMALIZATIONS:
            raise ConfigurationError(
                f"normalization must be one of {_NORMALIZATIONS}, got {self.normalization!r}"
            )
        frac = self.validation_fraction
        if not (_is_real(frac) and 0 < frac < 1):
            raise ConfigurationError(f"validation_fraction must be in (0, 1), got {frac!r}")
        w = self.weights
        if isinstance(w, str):
            if w != "fit":
                raise ConfigurationError(
                    f"weights must be None, 'fit', a dict or a list of numbers, got {w!r}"
                )
            return None
        if w is None:
            values = [1.0] * len(names)
        elif isinstance(w, dict):
            unknown = sorted(set(w) - set(names))
            missing = [n for n in names if n not in w]
            if unknown or missing:
                raise ConfigurationError(
                    f"weights must name every component exactly: unknown {unknown}, "
                    f"missing {missing} (components: {names})"
                )
            values = [w[n] for n in names]
        elif isinstance(w, (list, tuple, np.ndarray)):
            values = list(np.asarray(w, dtype=object).ravel())
            if len(values) != len(names):
                raise ConfigurationError(
                    f"weights has {len(values)} values for {len(names)} components"
                )
        else:
            raise ConfigurationError(
                f"weights must be None, 'fit', a dict or a list of numbers, got {w!r}"
            )
        if not all(_is_real(v) and v >= 0 for v in values):
            raise ConfigurationError(f"weights must be finite numbers >= 0, got {w!r}")
        arr = np.asarray(values, dtype=np.float64)
        if arr.sum() <= 0:
            raise ConfigurationError("weights are all 0: give some component a weight > 0")
        return arr / arr.sum()

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        pairs = self._resolve_components(data.rng)
        names = [name for name, _ in pairs]
        weights = self._validate(names)
        X_fit = data.X if data.interactions is None else data.interactions
        best_ndcg = None
        if weights is None:
            weights, best_ndcg = self._search_weights(pairs, X_fit, data)
        fitted = [
            _fit_component(name, clone(est), X_fit, data.item_features) for name, est in pairs
        ]
        logger.debug(
            "HybridBlend weights %s", dict(zip(names, weights.round(3).tolist(), strict=True))
        )
        uses_features = [
            bool(getattr(est, "_uses_item_features", False)) and data.item_features is not None
            for _, est in pairs
        ]
        return {
            "components_": fitted,
            "component_names_": names,
            "weights_": weights,
            "validation_ndcg_": best_ndcg,
            "feature_components_": np.asarray(uses_features, dtype=bool),
            "cold_items_": _cold_mask(data.X),
        }

    def _search_weights(
        self, pairs: list[tuple[str, Recommender]], X: Any, data: FitData
    ) -> tuple[np.ndarray, float]:
        source = X if isinstance(X, Interactions) else Interactions.from_csr(data.X)
        with warnings.catch_warnings():  # an empty test set is reported below, as an error
            warnings.simplefilter("ignore", DataWarning)
            train, test = random_split(
                source, test_size=float(self.validation_fraction), random_state=data.rng
            )
        users = np.flatnonzero(test.user_counts() > 0)
        if users.size == 0:
            raise DataValidationError(
                "weights='fit' found no interactions to hold out: users need at least two "
                "interactions each; give weights explicitly"
            )
        if users.size > MAX_VALIDATION_USERS:
            users = np.sort(data.rng.choice(users, MAX_VALIDATION_USERS, replace=False))
        seen, relevant = train.matrix[users], test.matrix[users]
        scores = []
        for name, est in pairs:
            model = _fit_component(name, clone(est), train, data.item_features)
            scores.append(normalize_scores(model.score_items(users), self.normalization))
        weights, ndcg = search_weights(scores, seen, relevant, k=10)
        return weights, ndcg

    # ------------------------------------------------------------------ incremental
    def partial_fit(self, X_new: Any) -> HybridBlend:
        """Update every component with new interactions (the weights are kept).

        On an unfitted model this is :meth:`fit`.

        Parameters
        ----------
        X_new : Interactions, scipy.sparse matrix or ndarray of shape (n_rows, n_items)
            New interactions only.

        Returns
        -------
        self

        Raises
        ------
        NotImplementedError
            If a component does not support ``partial_fit`` (nothing is changed).
        """
        if not self._is_fitted():
            return self.fit(X_new)
        unsupported = [
            name
            for name, comp in zip(self.component_names_, self.components_, strict=True)
            if not comp._supports_partial_fit
        ]
        if unsupported:
            raise NotImplementedError(
                f"HybridBlend.partial_fit needs every component to support partial_fit; "
                f"{unsupported} do not: call fit on all the data"
            )
        # update shallow copies, so that a failure leaves the fitted components as they were
        updated = [copy.copy(comp).partial_fit(X_new) for comp in self.components_]
        super().partial_fit(X_new)
        self.components_ = updated
        self.cold_items_ = _cold_mask(self.train_matrix_)
        return self

    def _partial_fit(self, data: FitData, X_full: sp.csr_matrix) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ scoring
    def _score(
        self,
        users: np.ndarray | None,
        X_users: sp.csr_matrix,
        timestamps: np.ndarray | None = None,
    ) -> np.ndarray:
        out = np.zeros((X_users.shape[0], self.n_items_), dtype=np.float32)
        cold_weights = self.cold_weights()
        cold = self.cold_items_ if cold_weights is not None else None
        cold_out = None if cold is None else np.zeros((out.shape[0], int(cold.sum())), np.float32)
        for k, (weight, comp) in enumerate(zip(self.weights_, self.components_, strict=True)):
            cold_weight = 0.0 if cold_weights is None else cold_weights[k]
            if weight == 0 and cold_weight == 0:
                continue
            norm = normalize_scores(
                comp._score_block(users, X_users, timestamps), self.normalization
            )
            if weight:
                out += np.float32(weight) * norm
            if cold_out is not None and cold_weight:
                cold_out += np.float32(cold_weight) * norm[:, cold]
        if cold_out is not None:
            out[:, cold] = cold_out
        return out

    def cold_weights(self) -> np.ndarray | None:
        """Component weights applied to cold items, or None when they are blended as usual.

        Returns
        -------
        ndarray of shape (n_components,) or None
            With ``cold_items="content"``, the fitted weights restricted to the
            components that got item features and rescaled to sum to 1 (equal
            among them if their weights are all 0); None if there is no cold
            item, no such component, or ``cold_items="blend"``.
        """
        self._check_fitted()
        features = getattr(self, "feature_components_", None)
        cold = getattr(self, "cold_items_", None)
        if self.cold_items == "blend" or features is None or not features.any():
            return None
        if cold is None or not cold.any():
            return None
        w = np.where(features, self.weights_, 0.0)
        if w.sum() <= 0:
            w = features.astype(np.float64)
        return w / w.sum()


#: Validation users scored by the weight search at most (a random sample beyond).
MAX_VALIDATION_USERS = 2000


def _cold_mask(X: sp.csr_matrix) -> np.ndarray:
    """Items (columns) without any stored interaction."""
    return np.bincount(X.indices, minlength=X.shape[1]) == 0


def _pairs(components: Any) -> list[tuple[str, Any]]:
    try:
        return [(name, est) for name, est in components]
    except (TypeError, ValueError):
        return []


def _fit_component(name: str, model: Recommender, X: Any, item_features: Any) -> Recommender:
    try:
        if getattr(model, "_uses_item_features", False) and item_features is not None:
            return model.fit(X, item_features=item_features)
        return model.fit(X)
    except (ConfigurationError, DataValidationError) as exc:
        raise type(exc)(f"component {name!r}: {exc}") from exc


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
