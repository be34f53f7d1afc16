"""Per-model additive terms behind :func:`~avrec.explain.explain_recommendation`.

Each function reads the fitted attributes a model scores with and returns the
contributions of the user's history items (plus bias, residual and details)
that add up to the model's score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avrec.explain._history import History, history_rows

__all__ = ["model_terms"]

Terms = dict[str, Any]


def _itemknn(model: Any, history: History, item: int) -> Terms:
    row = history.row
    column = model.similarity_[row.indices][:, [item]].toarray().ravel().astype(np.float64)
    return {
        "contributions": row.data.astype(np.float64) * column,
        "method": "ItemKNN: x_uj * similarity_[j, i]",
    }


def _ease(model: Any, history: History, item: int) -> Terms:
    row = history.row
    column = np.asarray(model.weights_[row.indices, item], dtype=np.float64)
    return {
        "contributions": row.data.astype(np.float64) * column,
        "method": "EASE: x_uj * weights_[j, i]",
    }


def _als(model: Any, history: History, item: int) -> Terms:
    row = history.row
    user = history.user if history.from_train else None
    Y = np.asarray(model.item_factors_, dtype=np.float64)
    hist = row.indices
    conf = 1.0 + float(model.alpha) * row.data.astype(np.float64)
    Yh = Y[hist]
    A = Y.T @ Y + float(model.regularization) * np.eye(Y.shape[1])
    A += Yh.T @ ((conf - 1.0)[:, None] * Yh)
    # (y_i^T W y_j) for every history item j, via one solve W y_i (W is symmetric)
    w_yi = np.linalg.solve(A, Y[item])
    contributions = conf * (Yh @ w_yi)
    fresh = float(contributions.sum())
    details: dict[str, Any] = {"fresh_score": fresh}
    residual = 0.0
    if user is not None:
        stored = float(np.asarray(model.user_factors_[user], dtype=np.float64) @ Y[item])
        residual = stored - fresh
        details["stored_score"] = stored
        details["residual"] = (
            "stored_score (the user factors of the last training sweep) minus fresh_score "
            "(the exact least-squares solve against the final item factors that is decomposed)"
        )
    return {
        "contributions": contributions,
        "residual": residual,
        "details": details,
        "method": "ALS: c_uj * y_i^T (Y^T C_u Y + reg I)^-1 y_j",
    }


def _bpr(model: Any, history: History, item: int) -> Terms:
    row = history.row
    user = history.user if history.from_train else None
    Y = np.asarray(model.item_factors_, dtype=np.float64)
    M = np.asarray(model.fold_in_map_, dtype=np.float64)
    hist = row.indices
    n = max(hist.size, 1)
    contributions = (Y[hist] @ (M @ Y[item])) / n
    bias = float(model.item_bias_[item])
    fresh = float(contributions.sum()) + bias
    details: dict[str, Any] = {"fresh_score": fresh}
    residual = 0.0
    if user is not None:
        stored = float(np.asarray(model.user_factors_[user], dtype=np.float64) @ Y[item]) + bias
        residual = stored - fresh
        details["stored_score"] = stored
        details["residual"] = (
            "stored_score (learned user factors) minus fresh_score (the fold-in "
            "u = mean_j y_j @ fold_in_map_ that is decomposed)"
        )
    return {
        "contributions": contributions,
        "bias": bias,
        "residual": residual,
        "details": details,
        "method": "BPR: y_i^T fold_in_map_^T y_j / |history| + item_bias_[i]",
    }


def _popularity(model: Any, history: History, item: int) -> Terms:
    return {
        "contributions": np.zeros(history.row.nnz),
        "bias": float(model.item_scores_[item]),
        "method": "Popularity: item_scores_[i], independent of the history",
    }


def _content_knn(model: Any, history: History, item: int) -> Terms:
    row = history.row
    if history.from_train:
        weights = model.user_weights_[history.user]
    else:  # the weights ContentKNN gives a history passed as X= (decay needs timestamps)
        times = history.times if model.half_life is not None else None
        weights = model._history_weights(row, times)
    a = weights.toarray().ravel()[row.indices].astype(np.float64)
    F = np.asarray(model.item_vectors_, dtype=np.float64)
    Fh, fi = F[row.indices], F[item]
    contributions = np.zeros(row.nnz)
    per_dimension = np.zeros(F.shape[1])
    per_modality: dict[str, float] = {}
    for name in model.modalities_:
        start, stop = model.modality_slices_[name]
        profile = a @ Fh[:, start:stop]
        norm = float(np.linalg.norm(profile))
        scale = float(model.modality_weights_[name]) / norm if norm > 0 else 0.0
        contributions += scale * a * (Fh[:, start:stop] @ fi[start:stop])
        per_dimension[start:stop] = scale * profile * fi[start:stop]
        per_modality[name] = float(per_dimension[start:stop].sum())
    return {
        "contributions": contributions,
        "feature_contributions": per_modality,
        "details": {"dimension_contributions": per_dimension, "history_weights": a},
        "method": "ContentKNN: sum_m w_m / ||p_u^m|| * a_uj * (f_j^m . f_i^m)",
    }


def _hybrid_blend(model: Any, history: History, item: int) -> Terms:
    if model.normalization == "rank":
        raise TypeError(
            "HybridBlend with normalization='rank' has no additive decomposition over the "
            "history (ranks are not sums); use counterfactual or deletion_curve"
        )
    from avrec.explain._neighbours import explain_recommendation

    row = history.row
    position = {int(j): p for p, j in enumerate(row.indices)}
    contributions = np.zeros(row.nnz)
    bias = residual = offset = 0.0
    per_component: dict[str, float] = {}
    full = history_rows(history, np.ones((1, row.nnz), dtype=bool))
    weights = model.weights_
    cold_weights = model.cold_weights() if hasattr(model, "cold_weights") else None
    if cold_weights is not None and model.cold_items_[item]:
        weights = cold_weights  # a cold item is scored by the feature-using components only
    for name, weight, comp in zip(model.component_names_, weights, model.components_, strict=True):
        if weight == 0:
            per_component[name] = 0.0
            continue
        if history.from_train:
            scores = comp.score_items([history.user])[0].astype(np.float64)
            exp = explain_recommendation(comp, history.user, item)
        else:
            scores = comp.score_items([0], X=full)[0].astype(np.float64)
            exp = explain_recommendation(comp, 0, item, X=full)
        center, spread = _normalization(scores, model.normalization)
        if spread == 0.0:  # a constant row normalises to 0: the component adds nothing
            per_component[name] = 0.0
            continue
        scale = float(weight) / spread
        for j, value in zip(exp.items, exp.contributions, strict=True):
            contributions[position[int(j)]] += scale * value
        bias += scale * exp.bias
        residual += scale * exp.residual
        offset -= scale * center
        per_component[name] = scale * (float(scores[item]) - center)
    return {
        "contributions": contributions,
        "bias": bias,
        "residual": residual + offset,
        "feature_contributions": per_component,
        "details": {
            "normalization_offset": offset,
            "residual": (
                "normalization_offset (minus each component's per-user centre, its mean "
                "score for zscore or minimum for minmax, times weight / spread) plus the "
                "components' own residuals, scaled the same way"
            ),
        },
        "method": "HybridBlend: sum_k w_k (s_k - centre_k) / spread_k, s_k split per component",
    }


def _normalization(scores: np.ndarray, method: str) -> tuple[float, float]:
    """``(centre, spread)`` of HybridBlend's per-user normalisation (spread 0: constant row)."""
    if method == "none":
        return 0.0, 1.0
    if method == "zscore":
        center, spread = float(scores.mean()), float(scores.std())
    else:  # minmax
        center, spread = float(scores.min()), float(scores.max() - scores.min())
    if not spread > 1e-12 * max(float(np.abs(scores).max()), 1.0):
        return center, 0.0
    return center, spread


def model_terms() -> list[tuple[str, str, Callable[..., Terms]]]:
    """``(module, class name, terms function)`` of every model with a decomposition."""
    return [
        ("avrec.recommenders.cf", "ItemKNN", _itemknn),
        ("avrec.recommenders.cf", "EASE", _ease),
        ("avrec.recommenders.cf", "ALS", _als),
        ("avrec.recommenders.cf", "BPR", _bpr),
        ("avrec.recommenders.cf", "Popularity", _popularity),
        ("avrec.recommenders.content", "ContentKNN", _content_knn),
        ("avrec.recommenders.hybrid", "HybridBlend", _hybrid_blend),
    ]
