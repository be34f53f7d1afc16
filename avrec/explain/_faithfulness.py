"""Faithfulness: does removing history items in attribution order lower the score fastest?"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from avrec.exceptions import DataValidationError
from avrec.explain._history import check_item, history_rows, user_history
from avrec.explain._neighbours import explain_recommendation
from avrec.utils import check_positive_int, check_random_state

__all__ = ["deletion_curve", "faithfulness"]

#: Fractions of the history removed at which :func:`faithfulness` averages the curves.
GRID_POINTS = 21


def deletion_curve(model: Any, user: Any, item: Any, order: Any, *, X: Any = None) -> np.ndarray:
    """The model's score for ``item`` as history items are removed one by one in ``order``.

    Every modified history is re-scored by the model (``score_items(X=...)``,
    all in one call), so the curve is what the model computes, not an
    approximation from the contributions.

    Parameters
    ----------
    model : Recommender
        Fitted; must score histories given as ``X=``.
    user : int
        Training row, or row of ``X`` when it is given.
    item : int
        Item column whose score is tracked.
    order : array-like of int, shape (m,)
        Distinct items of the user's history, removed first to last (e.g.
        :attr:`Explanation.items`, largest contribution first).
    X : Interactions, sparse matrix or array of shape (n_rows, n_items) or (n_items,), optional
        Histories given at call time.

    Returns
    -------
    ndarray of shape (m + 1,), dtype float64
        Entry ``t`` is the score with the first ``t`` items of ``order`` removed.

    Raises
    ------
    DataValidationError
        If ``order`` holds items outside the history or repeats one.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import EASE
    >>> X = np.array([[1, 0, 0, 1, 0], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0],
    ...               [0, 0, 1, 1, 1], [0, 1, 0, 1, 1]])
    >>> model = EASE(l2=1.0).fit(X)
    >>> deletion_curve(model, 0, 1, [0, 3]).round(3).tolist()
    [0.468, -0.043, 0.0]
    """
    history = user_history(model, user, X)
    row = history.row
    item = check_item(item, int(model.n_items_))
    positions = _positions(row.indices, order)
    kept = np.ones((positions.size + 1, row.nnz), dtype=bool)
    for t, pos in enumerate(positions):
        kept[t + 1 :, pos] = False
    scores = model.score_items(X=history_rows(history, kept), items=[item])
    return scores[:, 0].astype(np.float64)


def faithfulness(
    model: Any,
    users: Any,
    *,
    X: Any = None,
    items: Any = None,
    n_random: int = 10,
    attribution: Callable[..., Any] | None = None,
    random_state: Any = None,
) -> Bunch:
    """Compare deletion curves in attribution order with deletion in random order.

    For each user, the explained item (by default the user's top
    recommendation) is re-scored while the history items are removed one by
    one, most contributing first (:func:`deletion_curve`), and while they are
    removed in ``n_random`` random orders. Each curve is normalised to run
    from 1 (full history) to 0 (empty history) over the fraction of the
    history removed, and the *area between the curves* (mean random curve
    minus attribution curve, trapezoidal rule over ``[0, 1]``) is computed:
    positive when the attributions find the items the score really depends on,
    0 for attributions no better than chance, at most 1.

    Parameters
    ----------
    model : Recommender
        Fitted; must score histories given as ``X=``.
    users : array-like of int, shape (n_users,)
        Training rows, or rows of ``X``.
    X : Interactions or sparse matrix of shape (n_rows, n_items), optional
        Histories given at call time.
    items : array-like of int, shape (n_users,), optional
        Item explained for each user; default each user's top recommendation.
    n_random : int, default=10
        Random orders averaged per user.
    attribution : callable, optional
        ``attribution(model, user, item, X) -> order`` (history items, most
        important first). Default: the order of
        :func:`explain_recommendation`'s contributions.
    random_state : None, int or numpy.random.Generator
        Seeds the random orders.

    Returns
    -------
    sklearn.utils.Bunch
        ``mean_area`` (float, over users with an area), ``areas`` (n_users,)
        (NaN where undefined: histories of fewer than two items, or the same
        score with and without the history), ``explained_items`` (n_users,),
        ``grid`` (21,) fractions of the history removed, and
        ``attribution_curve`` / ``random_curve`` (21,): the normalised curves
        averaged over users on that grid.

    See Also
    --------
    deletion_curve, explain_recommendation

    Notes
    -----
    For models whose score is a sum over the history (ItemKNN, EASE),
    removing the largest contributions first lowers the score fastest by
    construction, so a positive area there checks the implementation; for
    ALS (whose fold-in re-solves the user's factors as items are removed) and
    content models it measures how far the contributions predict the model.
    """
    user_rows = np.atleast_1d(np.asarray(users))
    if user_rows.ndim != 1 or user_rows.size == 0:
        raise DataValidationError("users must be a non-empty 1-d array of user rows")
    n_random = check_positive_int(n_random, "n_random")
    rng = check_random_state(random_state)
    if items is not None:
        items = np.atleast_1d(np.asarray(items))
        if items.shape != user_rows.shape:
            raise DataValidationError(
                f"items must have one entry per user ({user_rows.size}), got shape {items.shape}"
            )
    attribution = attribution or _contribution_order
    grid = np.linspace(0.0, 1.0, GRID_POINTS)
    areas = np.full(user_rows.size, np.nan)
    chosen = np.full(user_rows.size, -1, dtype=np.int64)
    attr_curves, random_curves = [], []
    for n, user in enumerate(user_rows):
        history = user_history(model, user, X)
        row = history.row
        if items is None:
            top, _ = model.recommend([0], k=1, X=history_rows(history, np.ones(row.nnz, bool)))
            item = int(top[0, 0])
        else:
            item = check_item(items[n], int(model.n_items_), name="items")
        chosen[n] = item
        if row.nnz < 2 or item < 0:
            continue
        order = np.asarray(attribution(model, user, item, X))
        attr = deletion_curve(model, user, item, order, X=X)
        start, end = attr[0], attr[-1]
        if not abs(start - end) > 1e-9 * max(abs(start), abs(end), 1e-30):
            continue
        rand = np.mean(
            [
                deletion_curve(model, user, item, rng.permutation(row.indices), X=X)
                for _ in range(n_random)
            ],
            axis=0,
        )
        x = np.linspace(0.0, 1.0, attr.size)
        a_norm, r_norm = (attr - end) / (start - end), (rand - end) / (start - end)
        areas[n] = _trapezoid(r_norm - a_norm, x)
        attr_curves.append(np.interp(grid, x, a_norm))
        random_curves.append(np.interp(grid, x, r_norm))
    valid = ~np.isnan(areas)
    nan_curve = np.full_like(grid, np.nan)
    return Bunch(
        mean_area=float(areas[valid].mean()) if valid.any() else float("nan"),
        areas=areas,
        explained_items=chosen,
        grid=grid,
        attribution_curve=np.mean(attr_curves, axis=0) if attr_curves else nan_curve,
        random_curve=np.mean(random_curves, axis=0) if random_curves else nan_curve.copy(),
    )


def _contribution_order(model: Any, user: Any, item: int, X: Any) -> np.ndarray:
    return explain_recommendation(model, user, item, X=X).items


def _positions(history: np.ndarray, order: Any) -> np.ndarray:
    order = np.atleast_1d(np.asarray(order))
    if order.ndim != 1 or (order.size and order.dtype.kind not in "iu"):
        raise DataValidationError(f"order must be a 1-d array of item indices, got {order!r}")
    if np.unique(order).size != order.size:
        raise DataValidationError("order repeats an item")
    lookup = {int(item): pos for pos, item in enumerate(history)}
    missing = [int(i) for i in order if int(i) not in lookup]
    if missing:
        raise DataValidationError(f"order holds items not in the user's history, e.g. {missing[0]}")
    return np.array([lookup[int(i)] for i in order], dtype=np.int64)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)
