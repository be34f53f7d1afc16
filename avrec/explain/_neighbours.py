"""Neighbour explanations: a recommendation's score as a sum over the user's history items.

"Because you watched X": for the models whose score is (or contains) a sum
over the history, :func:`explain_recommendation` returns that sum's terms,
computed from the fitted attributes the model scores with, so the terms add up
to the model's own score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avrec.explain._history import check_item, history_rows, user_history
from avrec.explain._model_terms import Terms, model_terms

__all__ = ["Explanation", "explain_recommendation"]


class Explanation:
    """Why one item got its score: additive contributions of the user's history items.

    ``score == contributions.sum() + bias + residual`` (up to float32
    rounding of the model's own scores).

    Parameters
    ----------
    user : int
        Training row, or row of the ``X`` the explanation was computed from.
    item : int
        Item column being explained.
    score : float
        The model's score for ``(user, item)`` (``model.score_items``).
    items : ndarray of shape (n_history,), dtype int64
        History items, sorted by decreasing contribution.
    contributions : ndarray of shape (n_history,), dtype float64
        Contribution of each history item to ``score``.
    weights : ndarray of shape (n_history,), dtype float64
        The interaction weight ``x_uj`` of each history item.
    bias : float, default=0.0
        The part of the score that does not depend on the history (an item
        bias, a popularity score).
    residual : float, default=0.0
        The part of the model's score the decomposition does not reach, with
        its cause in ``details["residual"]`` (e.g. ALS factors stored from
        the training sweeps versus the exact solve that is decomposed).
    method : str, default=""
        The formula the contributions come from.
    feature_contributions : dict of str to float, optional
        The same score split over feature groups (modalities) instead of
        history items, for content models.
    details : dict, optional
        Model-specific quantities (e.g. ``stored_score`` and ``fresh_score``).
    item_ids : ndarray of shape (n_items,), optional
        Ids of all items (the model's ``items_`` vocabulary), used as labels.

    Attributes
    ----------
    user, item, score, items, contributions, weights, bias, residual, method, \
feature_contributions, details, item_ids
        As given.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import ItemKNN
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    >>> model = ItemKNN(k=3).fit(X)
    >>> exp = explain_recommendation(model, 0, 2)
    >>> exp.items.tolist(), bool(np.isclose(exp.contributions.sum(), exp.score))
    ([0, 1], True)
    >>> exp.top(1)[0].tolist()
    [0]
    """

    def __init__(
        self,
        *,
        user: int,
        item: int,
        score: float,
        items: np.ndarray,
        contributions: np.ndarray,
        weights: np.ndarray,
        bias: float = 0.0,
        residual: float = 0.0,
        method: str = "",
        feature_contributions: dict[str, float] | None = None,
        details: dict[str, Any] | None = None,
        item_ids: np.ndarray | None = None,
    ) -> None:
        items = np.asarray(items, dtype=np.int64)
        contributions = np.asarray(contributions, dtype=np.float64)
        weights = np.asarray(weights, dtype=np.float64)
        order = np.lexsort((items, -contributions))  # largest first, ties by item index
        self.user = int(user)
        self.item = int(item)
        self.score = float(score)
        self.items = items[order]
        self.contributions = contributions[order]
        self.weights = weights[order]
        self.bias = float(bias)
        self.residual = float(residual)
        self.method = method
        self.feature_contributions = feature_contributions
        self.details = dict(details or {})
        self.item_ids = item_ids

    @property
    def total(self) -> float:
        """float: ``contributions.sum() + bias + residual``, which equals ``score``."""
        return float(self.contributions.sum() + self.bias + self.residual)

    def top(self, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` history items that contribute most.

        Parameters
        ----------
        n : int, default=5

        Returns
        -------
        items : ndarray of shape (min(n, n_history),), dtype int64
        contributions : ndarray of shape (min(n, n_history),), dtype float64
            Largest first.
        """
        n = max(0, int(n))
        return self.items[:n].copy(), self.contributions[:n].copy()

    def labels(self, items: np.ndarray | None = None) -> list[str]:
        """Display labels of items (their ids when known, else ``"item <index>"``).

        Parameters
        ----------
        items : ndarray of int, optional
            Default: the history items, in order.

        Returns
        -------
        list of str
        """
        items = self.items if items is None else np.asarray(items)
        if self.item_ids is None:
            return [f"item {int(i)}" for i in items]
        return [str(self.item_ids[int(i)]) for i in items]

    def to_frame(self) -> Any:
        """The contributions as a :class:`pandas.DataFrame`, one row per history item.

        Returns
        -------
        pandas.DataFrame of shape (n_history, 4)
            Columns ``item``, ``label``, ``weight`` and ``contribution``.

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install "avrec[pandas]"``).
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is a test dependency
            raise ImportError('to_frame needs pandas: pip install "avrec[pandas]"') from exc
        return pd.DataFrame(
            {
                "item": self.items,
                "label": self.labels(),
                "weight": self.weights,
                "contribution": self.contributions,
            }
        )

    def __repr__(self) -> str:
        top_items, top_values = self.top(3)
        parts = ", ".join(
            f"{label}: {value:+.4g}"
            for label, value in zip(self.labels(top_items), top_values, strict=True)
        )
        more = "" if self.items.size <= 3 else f", ... ({self.items.size} items)"
        extra = ""
        if self.bias:
            extra += f", bias={self.bias:+.4g}"
        if self.residual:
            extra += f", residual={self.residual:+.4g}"
        label = self.labels(np.array([self.item]))[0]
        return f"Explanation({label}, score={self.score:.4g}: {parts}{more}{extra})"


def explain_recommendation(model: Any, user: Any, item: Any, *, X: Any = None) -> Explanation:
    """Split a recommender's score for one item over the user's history items.

    The terms are computed from the fitted attributes the model scores with
    and add up to ``model.score_items([user], [item], X=X)`` (up to float32
    rounding), with any part that is not a sum over the history in ``bias``
    or ``residual``. The history terms are exact for ItemKNN, EASE,
    Popularity and ContentKNN, and for every model when the history is given
    as ``X=``. For training users of ALS (``solver="cg"``) and BPR, whose
    scores come from stored user factors, the terms decompose the fold-in of
    the history instead, and ``residual`` is the stored minus the fold-in
    score: a few conjugate-gradient steps for ALS, but for BPR it can be a
    sizeable part of the history-dependent score (inspect it before trusting
    the terms). HybridBlend's ``residual`` holds its normalisation centring.

    ========================  =================================================
    model                     score of item ``i`` for history ``x_u``
    ========================  =================================================
    ItemKNN                   ``sum_j x_uj * similarity_[j, i]``
    EASE                      ``sum_j x_uj * weights_[j, i]``
    ALS                       ``sum_j c_uj * y_i^T W_u y_j`` (see Notes)
    BPR                       ``sum_j y_i^T M y_j / |h_u| + item_bias_[i]``
                              (the fold-in map ``M = fold_in_map_``)
    Popularity                ``item_scores_[i]``: all in ``bias``
    ContentKNN                ``sum_m w_m / ||p_u^m|| sum_j a_uj f_j^m . f_i^m``
                              (also split per modality: ``feature_contributions``)
    HybridBlend               ``sum_k w_k (s_k - centre_k) / spread_k``, each
                              component's ``s_k`` split as above (see Notes)
    ========================  =================================================

    Parameters
    ----------
    model : Recommender
        A fitted ItemKNN, EASE, ALS, BPR, Popularity, ContentKNN or HybridBlend.
    user : int
        Training row, or row of ``X`` when it is given (default 0 then).
    item : int
        Item column to explain.
    X : Interactions, sparse matrix or array of shape (n_rows, n_items) or (n_items,), optional
        Histories given at call time, as in ``model.recommend(X=...)``.

    Returns
    -------
    Explanation

    Raises
    ------
    TypeError
        For a model without an exact decomposition over the history; use
        :func:`~avrec.explain.counterfactual` or
        :func:`~avrec.explain.deletion_curve`, which work with any model.
    DataValidationError
        For an out-of-range user or item, or a mis-shaped ``X``.
    NotFittedError
        If the model is not fitted.

    See Also
    --------
    counterfactual : the smallest set of history items whose removal changes the top item.
    faithfulness : checks that the contributions predict what removing items does.

    Notes
    -----
    *ALS.* With item factors ``Y``, regularisation ``lambda`` and confidence
    ``c_uj = 1 + alpha * x_uj`` on the history ``h_u`` (preference 1 there,
    0 elsewhere), the user's factors solve
    ``u = W_u Y^T C_u p_u`` with ``W_u = (Y^T Y + lambda I + Y_h^T (C_u - I)
    Y_h)^-1``, so the score ``y_i . u`` is ``sum_j c_uj (y_i^T W_u y_j)``, as
    in implicit's ``explain``. For histories given as ``X=`` this is exactly
    how ALS scores (its fold-in is this solve). For training users ALS scores
    with the factors stored by the last training sweep, which with
    ``solver="cg"`` are a few conjugate-gradient steps from that solve: the
    difference ``stored_score - fresh_score`` is returned as ``residual``
    (both scores are in ``details``). With ``solver="cholesky"`` the last
    sweep solves users exactly and the residual is rounding.

    *HybridBlend* (z-score, min-max or no normalisation) scales each
    component's contributions by ``w_k / spread_k``; the centring term
    ``-sum_k w_k centre_k / spread_k`` depends on the user's whole score row
    and is the ``residual`` (``details["normalization_offset"]``);
    ``feature_contributions`` splits the score per component. Rank
    normalisation is not a sum: ``TypeError``.

    *BPR.* Users given as ``X=`` get ``u = mean_{j in h_u} y_j @ M``, so the
    score is linear in the history; training users' factors were learned
    directly, and ``residual`` is the stored score minus that fold-in score.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import EASE
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 1, 0]])
    >>> model = EASE(l2=1.0).fit(X)
    >>> exp = explain_recommendation(model, 0, 2)
    >>> bool(np.isclose(exp.total, model.score_items([0], [2])[0, 0]))
    True
    """
    history = user_history(model, user, X)
    row, user, from_train = history.row, history.user, history.from_train
    item = check_item(item, int(model.n_items_))
    explainer = _find_explainer(model)
    if explainer is None:
        raise TypeError(
            f"{type(model).__name__} has no exact decomposition of its scores over the "
            "history; use avrec.explain.counterfactual or deletion_curve, which re-score "
            "modified histories and work with any recommender"
        )
    hist_items = row.indices.astype(np.int64)
    weights = row.data.astype(np.float64)
    if from_train:
        score = float(model.score_items([user], [item])[0, 0])
    else:
        query = history_rows(history, np.ones((1, row.nnz), dtype=bool))
        score = float(model.score_items([0], [item], X=query)[0, 0])
    parts = explainer(model, history, item)
    return Explanation(
        user=user,
        item=item,
        score=score,
        items=hist_items,
        contributions=parts.pop("contributions"),
        weights=weights,
        item_ids=_item_ids(model),
        **parts,
    )


def _find_explainer(model: Any) -> Callable[..., Terms] | None:
    import importlib

    for module_name, class_name, fn in model_terms():
        try:
            klass = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):  # a model not in this release
            continue
        if isinstance(model, klass):
            return fn
    return None


def _item_ids(model: Any) -> np.ndarray | None:
    items = getattr(model, "items_", None)
    return None if items is None else np.asarray(items.ids)
