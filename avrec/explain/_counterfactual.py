"""Counterfactual explanations: which history items, removed, change the top recommendation?"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import DataValidationError
from avrec.explain._history import history_rows, user_history
from avrec.utils import check_positive_int

__all__ = ["Counterfactual", "counterfactual"]


class Counterfactual:
    """The result of :func:`counterfactual`.

    Parameters
    ----------
    user : int
        Training row, or row of ``X``.
    item : int
        The top recommendation for the full history.
    removed : ndarray of shape (n_removed,), dtype int64
        History items whose removal takes ``item`` out of the top ``k`` (in
        the order the search removed them); empty when none was found.
    found : bool
        Whether such a set was found within ``max_removals``.
    k : int
        Size of the top list ``item`` had to leave.
    original_items : ndarray of shape (k,), dtype int64
        Top ``k`` for the full history.
    new_items : ndarray of shape (k,), dtype int64
        Top ``k`` with ``removed`` taken out of the history (verified by
        ``model.recommend``); equal to ``original_items`` when not found.
    history : ndarray of shape (n_history,), dtype int64
        The user's history items.
    n_scored : int
        Histories the search scored.
    item_ids : ndarray of shape (n_items,), optional
        Item ids of the model, for labels.

    Attributes
    ----------
    user, item, removed, found, k, original_items, new_items, history, n_scored, item_ids
        As given.
    """

    def __init__(
        self,
        *,
        user: int,
        item: int,
        removed: np.ndarray,
        found: bool,
        k: int,
        original_items: np.ndarray,
        new_items: np.ndarray,
        history: np.ndarray,
        n_scored: int,
        item_ids: np.ndarray | None = None,
    ) -> None:
        self.user = int(user)
        self.item = int(item)
        self.removed = np.asarray(removed, dtype=np.int64)
        self.found = bool(found)
        self.k = int(k)
        self.original_items = np.asarray(original_items, dtype=np.int64)
        self.new_items = np.asarray(new_items, dtype=np.int64)
        self.history = np.asarray(history, dtype=np.int64)
        self.n_scored = int(n_scored)
        self.item_ids = item_ids

    def _label(self, item: int) -> str:
        return f"item {item}" if self.item_ids is None else str(self.item_ids[item])

    def __repr__(self) -> str:
        if not self.found:
            return (
                f"Counterfactual({self._label(self.item)} stays in the top {self.k}; "
                f"no set of removals found, {self.n_scored} histories scored)"
            )
        removed = ", ".join(self._label(int(i)) for i in self.removed)
        return (
            f"Counterfactual(without [{removed}] ({self.removed.size} of "
            f"{self.history.size} history items), {self._label(self.item)} leaves the top "
            f"{self.k}; new top: {self._label(int(self.new_items[0]))})"
        )


def counterfactual(
    model: Any, user: Any, *, X: Any = None, k: int = 1, max_removals: int | None = None
) -> Counterfactual:
    """Find a small set of history items whose removal changes the top recommendation.

    A greedy search in the spirit of PRINCE (Ghazimatin et al., 2020): at
    every step, each remaining history item is removed in turn and the
    modified histories are re-scored by the model (``score_items(X=...)``);
    the item whose removal shrinks most the margin of the original top item
    over the best item that could replace it (the ``k``-th best other
    candidate) is removed. For ItemKNN and EASE, whose scores are sums over the
    history, this is the item with the largest contribution to the top item
    minus its contribution to the runner-up. The search stops once
    ``model.recommend(X=history_without_removed, k=k)`` no longer lists the
    original top item; the set is then pruned: each removed item is put back
    if the top item stays out without it. Every claim is re-checked with
    ``recommend``, so the result describes what the model does.

    Works with any fitted recommender that scores histories given as ``X=``.
    The candidates are fixed to the items the user had not interacted with
    (removed history items are never recommended), so the change comes from
    the scores and not from a removed item re-entering the candidates. Every
    history, the full one included, is scored through ``X=``: for models
    whose training users are scored from stored factors (ALS with
    ``solver="cg"``, BPR) the top item may differ from ``recommend([user])``.

    Parameters
    ----------
    model : Recommender
        Fitted; must support ``recommend(X=...)``.
    user : int
        Training row, or row of ``X`` when it is given.
    X : Interactions, sparse matrix or array of shape (n_rows, n_items) or (n_items,), optional
        Histories given at call time.
    k : int, default=1
        The original top item must leave the top ``k``.
    max_removals : int, optional
        Most items removed by the search; default the whole history.

    Returns
    -------
    Counterfactual
        ``removed`` is irreducible (no single item can be put back) but not
        necessarily the smallest such set: finding that is combinatorial.

    Raises
    ------
    DataValidationError
        For an out-of-range user, a mis-shaped ``X``, or invalid ``k`` /
        ``max_removals``.

    See Also
    --------
    explain_recommendation : additive contributions of the history items.

    References
    ----------
    .. [1] A. Ghazimatin, O. Balalau, R. Saha Roy and G. Weikum, "PRINCE:
       Provider-side Interpretability with Counterfactual Explanations in
       Recommender Systems", WSDM 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import ItemKNN
    >>> X = np.array([[1, 0, 0, 1, 0], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0],
    ...               [0, 0, 1, 1, 1], [0, 1, 0, 1, 1]])
    >>> model = ItemKNN(k=4).fit(X)
    >>> cf = counterfactual(model, 0)
    >>> cf.found, cf.item, cf.removed.tolist(), cf.new_items.tolist()
    (True, 1, [0], [4])
    >>> cf  # doctest: +ELLIPSIS
    Counterfactual(without [item 0] (1 of 2 history items), item 1 leaves the top 1; new top: ...)
    """
    hist = user_history(model, user, X)
    row, user = hist.row, hist.user
    k = check_positive_int(k, "k")
    history = row.indices.astype(np.int64)
    limit = (
        history.size if max_removals is None else check_positive_int(max_removals, "max_removals")
    )
    n_items = int(model.n_items_)
    if n_items - history.size <= k:
        raise DataValidationError(
            f"the user has {n_items - history.size} candidate items; k={k} must be smaller"
        )
    exclude = sp.csr_matrix(
        (np.ones(history.size, dtype=np.float32), history, [0, history.size]), shape=(1, n_items)
    )
    seen = np.zeros(n_items, dtype=bool)
    seen[history] = True

    def top_k(kept: np.ndarray) -> np.ndarray:
        items, _ = model.recommend([0], k=k, X=history_rows(hist, kept), exclude=exclude)
        return items[0]

    original = top_k(np.ones(history.size, dtype=bool))
    target = int(original[0])
    n_scored = 1
    kept = np.ones(history.size, dtype=bool)
    removed: list[int] = []
    found = False
    while not found and len(removed) < limit and kept.any():
        options = np.flatnonzero(kept)
        masks = np.repeat(kept[None, :], options.size, axis=0)
        masks[np.arange(options.size), options] = False
        scores = model.score_items(X=history_rows(hist, masks)).astype(np.float64)
        n_scored += options.size
        scores[:, seen] = -np.inf
        others = scores.copy()
        others[:, target] = -np.inf
        kth_other = -np.partition(-others, k - 1, axis=1)[:, k - 1]
        margins = scores[:, target] - kth_other
        pick = options[int(np.argmin(margins))]
        kept[pick] = False
        removed.append(pick)
        n_scored += 1
        found = target not in top_k(kept)
    if found:  # prune: put back every item the change does not need
        for pick in list(removed):
            kept[pick] = True
            n_scored += 1
            if target in top_k(kept):
                kept[pick] = False
            else:
                removed.remove(pick)
    new_items = top_k(kept) if found else original
    return Counterfactual(
        user=user,
        item=target,
        removed=history[removed] if found else np.empty(0, dtype=np.int64),
        found=found,
        k=k,
        original_items=original,
        new_items=new_items,
        history=history,
        n_scored=n_scored,
        item_ids=None if getattr(model, "items_", None) is None else np.asarray(model.items_.ids),
    )
