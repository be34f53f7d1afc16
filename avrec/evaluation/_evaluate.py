"""Evaluate a fitted recommender on held-out interactions, in bounded-memory user batches."""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from avrec.evaluation._beyond_accuracy import (
    _diversity,
    _feature_matrix,
    _novelty,
    _self_information,
)
from avrec.evaluation._ranking import (
    _as_csr,
    _average_precision,
    _check_top_k,
    _f1,
    _hit_matrix,
    _hit_rate,
    _ndcg,
    _precision,
    _recall,
    _reciprocal_rank,
    _truncated_recall,
)
from avrec.exceptions import DataValidationError, NotFittedError

__all__ = ["EvaluationResult", "evaluate"]

logger = logging.getLogger(__name__)

#: Upper bound on one batch's dense float32 score block, ``batch_size * n_items * 4`` bytes.
SCORE_MEMORY_BOUND = 256 * 2**20

_ACCURACY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "precision": _precision,
    "recall": _recall,
    "truncated_recall": _truncated_recall,
    "f1": _f1,
    "ndcg": _ndcg,
    "map": _average_precision,
    "mrr": _reciprocal_rank,
    "hit_rate": _hit_rate,
}
_BEYOND = ("coverage", "novelty", "diversity")
METRIC_NAMES = (*_ACCURACY, *_BEYOND)
DEFAULT_METRICS = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage")


class EvaluationResult(Mapping[str, float]):
    """Metric values of one :func:`evaluate` run, a read-only mapping ``"ndcg@10" -> float``.

    Parameters
    ----------
    scores : mapping of str to float
        ``"<metric>@<k>"`` -> value, in display order.
    k : sequence of int
        The cut-offs, ascending.
    metrics : sequence of str
        The metric names, in display order.
    n_users : int
        Users evaluated (those with at least one held-out item).
    n_skipped : int
        Users (rows of ``test``) skipped because they have no held-out item.
    users : ndarray of shape (n_users,), dtype int64
        Row indices of the evaluated users.
    per_user : dict of str to ndarray of shape (n_total_users,), optional
        ``"<metric>@<k>"`` -> per-user values for every row of ``test``, NaN
        for skipped users (coverage has no per-user value).

    Attributes
    ----------
    k, metrics, n_users, n_skipped, users, per_user
        As given.

    Examples
    --------
    >>> result = EvaluationResult(
    ...     {"ndcg@10": 0.5, "ndcg@20": 0.625}, k=(10, 20), metrics=("ndcg",),
    ...     n_users=3, n_skipped=1, users=np.array([0, 1, 3]),
    ... )
    >>> result["ndcg@20"]
    0.625
    >>> print(result.to_markdown())
    | metric |    @10 |    @20 |
    |:-------|-------:|-------:|
    | ndcg   | 0.5000 | 0.6250 |
    """

    def __init__(
        self,
        scores: Mapping[str, float],
        *,
        k: Sequence[int],
        metrics: Sequence[str],
        n_users: int,
        n_skipped: int,
        users: np.ndarray,
        per_user: dict[str, np.ndarray] | None = None,
    ) -> None:
        self._scores = dict(scores)
        self.k = tuple(int(c) for c in k)
        self.metrics = tuple(metrics)
        self.n_users = int(n_users)
        self.n_skipped = int(n_skipped)
        self.users = users
        self.per_user = per_user

    def __getitem__(self, key: str) -> float:
        try:
            return self._scores[key]
        except KeyError:
            raise KeyError(f"{key!r} was not computed; available: {', '.join(self)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._scores)

    def __len__(self) -> int:
        return len(self._scores)

    def to_frame(self) -> Any:
        """Return the values as a :class:`pandas.DataFrame`, one row per metric, one column per k.

        Returns
        -------
        pandas.DataFrame of shape (n_metrics, n_cutoffs)
            Index ``metric``, columns the cut-offs.

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install "avrec[pandas]"``).
        """
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is a test dependency
            raise ImportError('to_frame needs pandas: pip install "avrec[pandas]"') from exc
        data = {c: [self._scores[f"{m}@{c}"] for m in self.metrics] for c in self.k}
        frame = pd.DataFrame(data, index=pd.Index(list(self.metrics), name="metric"))
        frame.columns.name = "k"
        return frame

    def to_markdown(self, floatfmt: str = ".4f") -> str:
        """Return a Markdown table, one row per metric and one column per cut-off.

        Parameters
        ----------
        floatfmt : str, default=".4f"
            Format spec applied to every value.

        Returns
        -------
        str
        """
        header = ["metric", *(f"@{c}" for c in self.k)]
        rows = [
            [m, *(format(self._scores[f"{m}@{c}"], floatfmt) for c in self.k)] for m in self.metrics
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            padded = [cells[0].ljust(widths[0])]
            padded += [cell.rjust(w) for cell, w in zip(cells[1:], widths[1:], strict=True)]
            return "| " + " | ".join(padded) + " |"

        rule = (
            "|:" + "-" * (widths[0] + 1) + "|" + "|".join("-" * (w + 1) + ":" for w in widths[1:])
        )
        lines = [line(header), rule + "|", *(line(r) for r in rows)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EvaluationResult(n_users={self.n_users}, n_skipped={self.n_skipped})\n"
            + self.to_markdown()
        )


def _check_cutoffs(k: Any) -> tuple[int, ...]:
    scalar = isinstance(k, numbers.Integral) or not isinstance(k, Iterable)
    values = [k] if scalar else list(k)
    if not values:
        raise DataValidationError("k must be a positive int or a non-empty sequence of them")
    for c in values:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or int(c) < 1:
            raise DataValidationError(f"k must hold positive ints, got {c!r}")
    return tuple(sorted({int(c) for c in values}))


def _check_metrics(metrics: Any) -> tuple[str, ...]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    if not names:
        raise DataValidationError(f"metrics must not be empty; valid names: {METRIC_NAMES}")
    unknown = [m for m in names if m not in METRIC_NAMES]
    if unknown:
        raise DataValidationError(
            f"unknown metric(s) {unknown} in metrics; valid names: {', '.join(METRIC_NAMES)}"
        )
    return tuple(dict.fromkeys(names))


def _check_aligned(train: Any, test: Any) -> None:
    """Interactions inputs must share vocabularies, or their rows/columns mean different things."""
    for attr in ("users", "items"):
        a, b = getattr(train, attr, None), getattr(test, attr, None)
        if a is not None and b is not None and hasattr(a, "ids") and a != b:
            raise DataValidationError(
                f"train and test have different {attr} vocabularies; build both from one "
                "Interactions (e.g. with a split) so rows and columns align"
            )


def _default_batch_size(n_items: int) -> int:
    """Users per batch so that ``batch * n_items`` float32 scores fit in 256 MiB."""
    return max(1, SCORE_MEMORY_BOUND // (4 * max(1, n_items)))


def evaluate(
    model: Any,
    train: Any,
    test: Any,
    k: int | Sequence[int] = (10, 20),
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    *,
    batch_size: int | None = None,
    item_features: Any = None,
    per_user: bool = False,
    items: Any = None,
) -> EvaluationResult:
    """Rank every item a user has not seen in ``train`` and score the ranking against ``test``.

    Every user (row) with at least one held-out item in ``test`` is evaluated;
    the others are skipped and counted in ``n_skipped``. Top-k lists come from
    ``model.recommend(users, k=max(k), exclude_seen=False, exclude=train[users])``
    called on batches of users, and every metric is computed at every cut-off
    from the same lists, so the values do not depend on ``batch_size``.

    Parameters
    ----------
    model : Recommender
        A fitted model with ``n_items_`` and
        ``recommend(users, k, exclude_seen, exclude)`` returning
        ``(item_indices, scores)`` of shape ``(len(users), k)``, padded with
        ``-1`` / ``-inf``; ``exclude`` is a sparse matrix row-aligned with
        ``users`` whose nonzero items must not be recommended.
    train : Interactions or sparse matrix of shape (n_users, n_items)
        Interactions the model was fitted on; excluded from the rankings and
        used for item popularity (novelty).
    test : Interactions or sparse matrix of shape (n_users, n_items)
        Held-out interactions; nonzero entries are relevant (binary relevance).
        Test items that also appear in ``train`` still count as relevant but
        can never be recommended (a warning is logged).
    k : int or sequence of int, default=(10, 20)
        Cut-offs.
    metrics : str or sequence of str, default=("precision", "recall", "ndcg", "map", \
"mrr", "hit_rate", "coverage")
        Any of ``"precision"``, ``"recall"`` (plain), ``"truncated_recall"``,
        ``"f1"``, ``"ndcg"``, ``"map"``, ``"mrr"``, ``"hit_rate"``,
        ``"coverage"``, ``"novelty"`` (from ``train`` popularity) and
        ``"diversity"`` (intra-list, needs ``item_features``). See the
        ``*_at_k`` functions for the definitions.
    batch_size : int, optional
        Users per ``recommend`` call. By default as many as keep one batch's
        dense float32 scores (``batch_size * n_items * 4`` bytes) under
        256 MiB. Beyond what the model allocates per batch, ``evaluate`` holds
        O(``n_users * n_metrics * n_cutoffs``) float64 per-user values and
        ``train``/``test`` lookups for one batch.
    item_features : ndarray of shape (n_items, d) or ItemFeatures, optional
        Required by ``"diversity"``.
    per_user : bool, default=False
        Also keep per-user values in ``result.per_user``.
    items : array-like of int, shape (n_candidates,), optional
        Rank only these item columns (passed to ``model.recommend(items=...)``),
        e.g. the cold items of :func:`~avrec.data.cold_item_split` for the
        usual cold-start protocol. Relevant test items outside the candidates
        still count in recall's denominator; coverage stays relative to the
        whole catalogue.

    Returns
    -------
    EvaluationResult
        Mapping ``"<metric>@<k>"`` -> mean over evaluated users (coverage: over
        the catalogue), with ``n_users``, ``n_skipped``, ``users`` and, on
        request, ``per_user`` arrays of shape ``(test.shape[0],)`` (NaN for
        skipped users).

    Raises
    ------
    DataValidationError
        If ``train`` and ``test`` shapes or vocabularies disagree with each
        other or with ``model.n_items_``, ``test`` has no held-out item, a
        metric name is unknown (the message lists the valid ones),
        ``"diversity"`` is requested without ``item_features``, ``k`` or
        ``batch_size`` is invalid, or the model returns malformed lists or
        items it was asked to exclude.
    NotFittedError
        If ``model`` has no ``n_items_`` (not fitted).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> class MostPopular:
    ...     n_items_ = 4
    ...     def recommend(self, users, k, exclude_seen=True, exclude=None):
    ...         scores = np.tile(np.array([4.0, 3.0, 2.0, 1.0]), (len(users), 1))
    ...         scores[exclude.nonzero()] = -np.inf
    ...         items = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    ...         return items, np.take_along_axis(scores, items, axis=1)
    >>> train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]))
    >>> test = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]))
    >>> result = evaluate(MostPopular(), train, test, k=1, metrics=["precision", "coverage"])
    >>> result["precision@1"], result.n_users, result.n_skipped
    (0.5, 2, 1)
    >>> result
    EvaluationResult(n_users=2, n_skipped=1)
    | metric    |     @1 |
    |:----------|-------:|
    | precision | 0.5000 |
    | coverage  | 0.5000 |
    """
    train_csr = _as_csr(train, "train")
    test_csr = _as_csr(test, "test")
    if train_csr.shape != test_csr.shape:
        raise DataValidationError(
            f"train has shape {train_csr.shape} but test has shape {test_csr.shape}; "
            "both must be (n_users, n_items) over the same users and items"
        )
    _check_aligned(train, test)
    n_total, n_items = test_csr.shape
    model_items = getattr(model, "n_items_", None)
    if model_items is None:
        raise NotFittedError(f"{type(model).__name__} has no n_items_: fit it before evaluate")
    if int(model_items) != n_items:
        raise DataValidationError(
            f"model was fitted on {model_items} items but train/test have {n_items}"
        )
    model_users = getattr(model, "n_users_", None)
    if model_users is not None and int(model_users) < n_total:
        raise DataValidationError(
            f"test has {n_total} users but the model was fitted on {model_users}"
        )
    cutoffs = _check_cutoffs(k)
    names = _check_metrics(metrics)
    features = None
    if "diversity" in names:
        if item_features is None:
            raise DataValidationError(
                "metric 'diversity' needs item_features=(n_items, d) array or ItemFeatures"
            )
        features = _feature_matrix(item_features)
        if features.shape[0] != n_items:
            raise DataValidationError(
                f"item_features has {features.shape[0]} rows but there are {n_items} items"
            )
    info = _self_information(train_csr)[0] if "novelty" in names else None
    candidates = None
    if items is not None:
        candidates = np.unique(np.asarray(items).ravel())
        if candidates.size == 0 or candidates.dtype.kind not in "iu":
            raise DataValidationError(
                f"items must be a non-empty 1-d array of item indices, got {np.asarray(items)!r}"
            )
        if candidates[0] < 0 or candidates[-1] >= n_items:
            raise DataValidationError(f"items: indices must lie in [0, {n_items})")
    if batch_size is None:
        batch_size = _default_batch_size(n_items)
    elif (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, numbers.Integral)
        or (batch_size < 1)
    ):
        raise DataValidationError(f"batch_size must be a positive int, got {batch_size!r}")
    batch_size = int(batch_size)

    n_relevant = np.diff(test_csr.indptr)
    users = np.flatnonzero(n_relevant).astype(np.int64)
    if users.size == 0:
        raise DataValidationError("test has no held-out interactions; nothing to evaluate")
    overlap = test_csr.multiply(train_csr).nnz
    if overlap:
        logger.warning(
            "%d test interactions also appear in train; they count as relevant but are "
            "excluded from the rankings, which lowers recall-like metrics",
            overlap,
        )

    k_max = cutoffs[-1]
    per_user_names = [m for m in names if m != "coverage"]
    values = {(m, c): np.full(n_total, np.nan) for m in per_user_names for c in cutoffs}
    covered = {c: np.zeros(n_items, dtype=bool) for c in cutoffs} if "coverage" in names else {}
    n_batches = math.ceil(users.size / batch_size)
    logger.info(
        "evaluating %d users (%d skipped) in %d batches of %d",
        users.size,
        n_total - users.size,
        n_batches,
        batch_size,
    )
    for start in range(0, users.size, batch_size):
        batch = users[start : start + batch_size]
        seen = train_csr[batch]
        top = _recommend_batch(model, batch, k_max, seen, n_items, candidates)
        hits = _hit_matrix(top, test_csr[batch])
        n_rel = n_relevant[batch]
        for c in cutoffs:
            top_c, hits_c = top[:, :c], hits[:, :c]
            for m in per_user_names:
                if m in _ACCURACY:
                    values[m, c][batch] = _ACCURACY[m](hits_c, n_rel)
                elif m == "novelty":
                    values[m, c][batch] = _novelty(top_c, info)
                else:  # diversity
                    values[m, c][batch] = _diversity(top_c, features)
            if covered:
                items = top_c.ravel()
                covered[c][items[items >= 0]] = True

    scores: dict[str, float] = {}
    for m in names:
        for c in cutoffs:
            if m == "coverage":
                scores[f"{m}@{c}"] = float(np.count_nonzero(covered[c]) / n_items)
            else:
                v = values[m, c][users]
                ok = ~np.isnan(v)
                scores[f"{m}@{c}"] = float(v[ok].mean()) if ok.any() else float("nan")
    return EvaluationResult(
        scores,
        k=cutoffs,
        metrics=names,
        n_users=users.size,
        n_skipped=n_total - users.size,
        users=users,
        per_user={f"{m}@{c}": v for (m, c), v in values.items()} if per_user else None,
    )


def _recommend_batch(
    model: Any,
    batch: np.ndarray,
    k: int,
    seen: Any,
    n_items: int,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """Call ``model.recommend`` for one batch; validate, pad and check exclusions."""
    if candidates is None:
        out = model.recommend(batch, k=k, exclude_seen=False, exclude=seen)
    else:
        out = model.recommend(batch, k=k, exclude_seen=False, exclude=seen, items=candidates)
    if not isinstance(out, tuple) or len(out) != 2:
        raise DataValidationError(
            f"model.recommend must return a tuple (item_indices, scores), got {type(out).__name__}"
        )
    top = _check_top_k(np.asarray(out[0]), n_items, name="model.recommend item_indices")
    if top.shape[0] != batch.size or top.shape[1] > k:
        raise DataValidationError(
            f"model.recommend returned item_indices of shape {top.shape} for "
            f"{batch.size} users and k={k}"
        )
    if top.shape[1] < k:  # a model that clipped k to its candidates: pad
        top = np.pad(top, ((0, 0), (0, k - top.shape[1])), constant_values=-1)
    if candidates is not None:
        valid = top >= 0
        if not np.isin(top[valid], candidates).all():
            raise DataValidationError("model.recommend returned items outside items=")
    leaked = _hit_matrix(top, seen)
    if leaked.any():
        row, col = np.argwhere(leaked)[0]
        raise DataValidationError(
            f"model.recommend returned item {top[row, col]} for user {batch[row]}, who has it "
            "in train; the model must honour exclude="
        )
    return top
