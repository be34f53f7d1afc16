"""Modality importance: the modality that carries the signal matters, the noise does not."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from known_data import block_interactions, block_item_features

from avrec.data import ItemFeatures, random_split
from avrec.exceptions import DataValidationError
from avrec.explain import modality_importance
from avrec.recommenders import ContentKNN, ItemKNN, Recommender


class OneModality(Recommender):
    """Scores items by the dot product of their ``modality`` features with the history mean."""

    _uses_item_features: ClassVar[bool] = True

    def __init__(self, modality: str = "audio") -> None:
        self.modality = modality

    def _fit(self, data) -> dict[str, Any]:
        return {"vectors_": np.asarray(data.item_features[self.modality], dtype=np.float64)}

    def _score(self, users, X_users) -> np.ndarray:
        profile = X_users @ self.vectors_
        return np.asarray(profile @ self.vectors_.T, dtype=np.float32)


@pytest.fixture(scope="module")
def split():
    X = block_interactions(n_users=80, n_items=40, seed=2)
    return random_split(X, test_size=0.3, random_state=0)


@pytest.fixture(scope="module")
def features():
    signal = block_item_features(n_items=40, seed=2, noise=0.3)["audio"]
    noise = np.random.default_rng(9).normal(size=(40, 5))
    return ItemFeatures({"audio": signal, "video": noise}, items=[f"i{i}" for i in range(40)])


@pytest.mark.parametrize(
    "model", [OneModality(), ContentKNN(modality_weights={"audio": 1.0, "video": 0.3})]
)
def test_signal_modality_matters_noise_does_not(model, split, features):
    train, test = split
    result = modality_importance(model, train, test, features, n_repeats=4, random_state=0)
    assert result.groups == ["audio", "video"]
    assert result.importances.shape == (2, 4) and result.metric == "ndcg@10"
    audio, video = result.importances_mean
    assert result.baseline > 0.2
    assert audio > 0.1  # permuting the signal destroys the ranking
    assert abs(video) < 0.25 * audio  # the noise modality carries nothing
    assert np.allclose(result.importances_std, result.importances.std(axis=1))


def test_mean_ablation_groups_and_columns(split, features):
    train, test = split
    result = modality_importance(
        OneModality(),
        train,
        test,
        features,
        groups={"signal": "audio", "both": ["audio", "video"], "cols": [0, 1]},
        strategy="mean",
        metric="recall",
        k=5,
    )
    assert result.groups == ["signal", "both", "cols"] and result.metric == "recall@5"
    assert np.all(result.importances_std == 0)  # ablation is deterministic
    assert result.importances_mean[0] > 0.05
    assert result.importances_mean[1] == pytest.approx(result.importances_mean[0])


def test_plain_array_features_and_cf_only_model(split):
    train, test = split
    arr = np.random.default_rng(0).normal(size=(40, 3))
    result = modality_importance(ItemKNN(k=10), train, test, arr, n_repeats=2, random_state=1)
    assert result.groups == ["column 0", "column 1", "column 2"]
    assert np.all(result.importances == 0)  # ItemKNN ignores the features


def test_reproducible_and_errors(split, features):
    train, test = split
    a = modality_importance(OneModality(), train, test, features, n_repeats=2, random_state=3)
    b = modality_importance(OneModality(), train, test, features, n_repeats=2, random_state=3)
    assert np.array_equal(a.importances, b.importances)
    with pytest.raises(DataValidationError, match="metric"):
        modality_importance(OneModality(), train, test, features, metric="coverage")
    with pytest.raises(DataValidationError, match="no modality"):
        modality_importance(OneModality(), train, test, features, groups={"x": "text"})
    with pytest.raises(DataValidationError, match="column index"):
        modality_importance(OneModality(), train, test, features, groups={"x": [99]})
    with pytest.raises(DataValidationError, match="strategy"):
        modality_importance(OneModality(), train, test, features, strategy="drop")
    with pytest.raises(DataValidationError, match="CF"):
        modality_importance(OneModality(), train, test, features, groups={"CF": None})
    with pytest.raises(DataValidationError, match="2-d"):
        modality_importance(OneModality(), train, test, np.ones(40))


def test_cf_group_of_a_hybrid_blend(split, features):
    from avrec.recommenders.hybrid import HybridBlend

    train, test = split
    blend = HybridBlend([("knn", ItemKNN(k=10)), ("content", OneModality())], weights=[1.0, 1.0])
    result = modality_importance(
        blend, train, test, features, groups={"CF": None, "audio": "audio"}, random_state=0
    )
    assert result.groups == ["CF", "audio"]
    assert np.all(result.importances[0] == result.importances[0, 0])  # deterministic
    assert result.importances_mean[0] > 0.02  # the collaborative part carries signal
    content_only = HybridBlend([("content", OneModality())])
    with pytest.raises(DataValidationError, match="no collaborative component"):
        modality_importance(content_only, train, test, features, groups={"CF": None})
