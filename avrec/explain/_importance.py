"""Modality and feature-group importance: how much does the ranking quality rely on each?"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

from avrec.data import ItemFeatures
from avrec.evaluation import evaluate
from avrec.evaluation._evaluate import METRIC_NAMES
from avrec.exceptions import DataValidationError
from avrec.utils import check_positive_int, check_random_state

__all__ = ["modality_importance"]

#: Name of the group that switches off a hybrid model's collaborative component.
CF_GROUP = "CF"


def modality_importance(
    estimator: Any,
    X_train: Any,
    X_test: Any,
    item_features: Any,
    *,
    groups: Mapping[str, Any] | None = None,
    n_repeats: int = 5,
    metric: str = "ndcg",
    k: int = 10,
    strategy: str = "permute",
    random_state: Any = None,
) -> Bunch:
    """Importance of each modality (or group of feature columns) for the ranking quality.

    In the spirit of :func:`sklearn.inspection.permutation_importance`: the
    model is fitted on the real features and scored on ``X_test`` with
    :func:`~avrec.evaluation.evaluate` (the baseline); then, for each group,
    the group's features are corrupted, a clone of the estimator
    (:func:`sklearn.base.clone`) is refitted on ``X_train`` with them and
    scored again. The importance is the drop of the metric. Refitting is the
    faithful path: content models fix their use of the features at fit time
    (ContentKNN standardises and normalises the columns over the catalogue),
    so corrupting the features of an already fitted model would not change
    what it computes.

    Parameters
    ----------
    estimator : Recommender
        An unfitted (or fitted: it is cloned) model taking ``item_features=``
        in ``fit``.
    X_train : Interactions or sparse matrix of shape (n_users, n_items)
        Training interactions.
    X_test : Interactions or sparse matrix of shape (n_users, n_items)
        Held-out interactions the metric is computed on.
    item_features : ItemFeatures or ndarray of shape (n_items, d)
        The features the estimator is fitted with.
    groups : dict of str to group, optional
        Name -> a modality name, a list of modality names, or a list of
        column indices into ``item_features.concat()`` (into the array for a
        bare array). The special group ``"CF"`` maps to ``None``: for a
        hybrid model (HybridBlend) it refits with the weights the baseline fit
        used, except that the components that use no item features get
        weight 0 (they are not refitted on corrupted data: the model loses
        them). Unlike the feature groups it is not random (repeated as
        ``"mean"``).
        Default: one group per modality of an ItemFeatures, one per column of
        an array.
    n_repeats : int, default=5
        Permutations per group (with ``strategy="mean"`` the ablation is
        deterministic: it is computed once and repeated).
    metric : str, default="ndcg"
        A metric name of :func:`~avrec.evaluation.evaluate` (``"ndcg"``,
        ``"recall"``, ``"map"`` ...).
    k : int, default=10
        Cut-off of the metric.
    strategy : {"permute", "mean"}, default="permute"
        ``"permute"`` shuffles the item rows of the group's columns (one
        permutation for all the columns of the group, so the features stay
        realistic but no longer belong to their item); ``"mean"`` replaces
        every column of the group by its mean over the items.
    random_state : None, int or numpy.random.Generator
        Seeds the permutations.

    Returns
    -------
    sklearn.utils.Bunch
        ``importances_mean`` (n_groups,), ``importances_std`` (n_groups,),
        ``importances`` (n_groups, n_repeats): baseline minus corrupted
        metric; ``baseline`` (float); ``groups`` (list of str, the row order);
        ``metric`` (e.g. ``"ndcg@10"``); ``strategy``.

    Raises
    ------
    DataValidationError
        For an unknown metric, modality or column, an empty group, or a
        ``"CF"`` group for a model without collaborative components.

    See Also
    --------
    sklearn.inspection.permutation_importance

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.data import ItemFeatures, make_interactions, random_split
    >>> from avrec.recommenders import ContentKNN
    >>> X = make_interactions(n_users=60, n_items=30, density=0.15, random_state=0)
    >>> train, test = random_split(X, test_size=0.3, random_state=0)
    >>> rng = np.random.default_rng(0)
    >>> feats = ItemFeatures({"audio": rng.normal(size=(30, 4)), "video": rng.normal(size=(30, 3))})
    >>> result = modality_importance(ContentKNN(), train, test, feats, n_repeats=2,
    ...                              random_state=0)
    >>> result.groups, result.importances.shape
    (['audio', 'video'], (2, 2))
    """
    n_repeats = check_positive_int(n_repeats, "n_repeats")
    k = check_positive_int(k, "k")
    if metric not in METRIC_NAMES or metric in ("coverage", "diversity"):
        raise DataValidationError(
            f"metric must be a per-user metric of avrec.evaluation.evaluate, got {metric!r}"
        )
    if strategy not in ("permute", "mean"):
        raise DataValidationError(f"strategy must be 'permute' or 'mean', got {strategy!r}")
    rng = check_random_state(random_state)
    layout = _Layout(item_features)
    resolved = layout.resolve_groups(groups)
    key = f"{metric}@{k}"

    def fitted(features: Any, params: dict[str, Any] | None = None) -> Any:
        model = clone(estimator)
        if params:
            model.set_params(**params)
        return model.fit(X_train, item_features=features)

    def score(model: Any) -> float:
        return float(evaluate(model, X_train, X_test, k=k, metrics=[metric])[key])

    base_model = fitted(item_features)
    baseline = score(base_model)
    importances = np.empty((len(resolved), n_repeats))
    for g, columns in enumerate(resolved.values()):
        if columns is None:  # the collaborative components of a hybrid
            importances[g] = baseline - score(fitted(item_features, _without_cf(base_model)))
        elif strategy == "mean":
            importances[g] = baseline - score(fitted(layout.corrupt(columns, None)))
        else:
            for r in range(n_repeats):
                perm = rng.permutation(layout.n_items)
                importances[g, r] = baseline - score(fitted(layout.corrupt(columns, perm)))
    return Bunch(
        importances_mean=importances.mean(axis=1),
        importances_std=importances.std(axis=1),
        importances=importances,
        baseline=baseline,
        groups=list(resolved),
        metric=key,
        strategy=strategy,
    )


class _Layout:
    """Where each modality's columns sit in ``concat()``, and how to corrupt some of them."""

    def __init__(self, item_features: Any) -> None:
        if isinstance(item_features, ItemFeatures):
            self.features = item_features
            self.blocks = {name: np.array(item_features[name]) for name in item_features}
        else:
            arr = np.asarray(item_features, dtype=np.float32)
            if arr.ndim != 2:
                raise DataValidationError(
                    f"item_features must be ItemFeatures or a 2-d array, got shape {arr.shape}"
                )
            self.features = None
            self.blocks = {"features": arr}
        self.modalities = list(self.blocks)
        self.n_items = next(iter(self.blocks.values())).shape[0]
        self.offsets = {}
        start = 0
        for name, block in self.blocks.items():
            self.offsets[name] = (start, start + block.shape[1])
            start += block.shape[1]
        self.n_columns = start

    def resolve_groups(self, groups: Mapping[str, Any] | None) -> dict[str, np.ndarray | None]:
        if groups is None:
            if self.features is not None:
                return {m: np.arange(*self.offsets[m]) for m in self.modalities}
            return {f"column {j}": np.array([j]) for j in range(self.n_columns)}
        if not isinstance(groups, Mapping) or not groups:
            raise DataValidationError("groups must be a non-empty dict of name -> group")
        out: dict[str, np.ndarray | None] = {}
        for name, spec in groups.items():
            if spec is None:
                if name != CF_GROUP:
                    raise DataValidationError(
                        f"group {name!r} is None; only the {CF_GROUP!r} group may be None"
                    )
                out[name] = None
                continue
            specs = [spec] if isinstance(spec, str) else list(np.atleast_1d(spec))
            if not specs:
                raise DataValidationError(f"group {name!r} is empty")
            columns: list[int] = []
            for part in specs:
                if isinstance(part, str):
                    if part not in self.offsets:
                        raise DataValidationError(
                            f"group {name!r}: no modality {part!r}; modalities are "
                            f"{self.modalities}"
                        )
                    columns.extend(range(*self.offsets[part]))
                elif isinstance(part, (int, np.integer)) and 0 <= part < self.n_columns:
                    columns.append(int(part))
                else:
                    raise DataValidationError(
                        f"group {name!r}: {part!r} is neither a modality nor a column index "
                        f"in [0, {self.n_columns})"
                    )
            out[name] = np.unique(columns)
        return out

    def corrupt(self, columns: np.ndarray, perm: np.ndarray | None) -> Any:
        blocks = {name: block.copy() for name, block in self.blocks.items()}
        for name, (start, stop) in self.offsets.items():
            local = columns[(columns >= start) & (columns < stop)] - start
            if local.size == 0:
                continue
            block = blocks[name]
            if perm is None:
                block[:, local] = block[:, local].mean(axis=0, keepdims=True)
            else:
                block[:, local] = block[perm][:, local]
        if self.features is None:
            return blocks["features"]
        return ItemFeatures(blocks, self.features.items)


def _without_cf(fitted: Any) -> dict[str, Any]:
    """Weights that switch off a fitted hybrid's collaborative components (weight 0).

    Starts from the weights the fitted baseline used (``weights_``, also when
    they were searched with ``weights="fit"``), so only the CF weights change.
    """
    weights = getattr(fitted, "weights_", None)
    components = getattr(fitted, "components_", None)
    if weights is None or components is None:
        raise DataValidationError(
            f"the {CF_GROUP!r} group needs a hybrid model with fitted component weights "
            f"(HybridBlend); {type(fitted).__name__} has none"
        )
    cf = [not getattr(comp, "_uses_item_features", False) for comp in components]
    if not any(cf):
        raise DataValidationError(f"{type(fitted).__name__} has no collaborative component")
    new = [0.0 if is_cf else float(w) for is_cf, w in zip(cf, weights, strict=True)]
    if sum(new) <= 0:
        raise DataValidationError(
            f"{type(fitted).__name__} has only collaborative components with a weight > 0; "
            "switching them off leaves nothing to score with"
        )
    return {"weights": new}
