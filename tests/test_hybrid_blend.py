"""HybridBlend: nested parameters, blending arithmetic, weight search, persistence, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions, block_item_features
from scipy.stats import rankdata
from sklearn.base import clone

from avrec.evaluation import ndcg_at_k
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders import (
    ALS,
    EASE,
    ContentKNN,
    FeatureToFactor,
    HybridBlend,
    ItemKNN,
    Popularity,
    Recommender,
    top_k,
)
from avrec.recommenders.hybrid._blend_weights import (
    ndcg,
    normalize_scores,
    search_weights,
    simplex_grid,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return block_interactions()


@pytest.fixture(scope="module")
def features():
    return block_item_features()


def small_als():
    return ALS(factors=8, iterations=8, regularization=5.0, random_state=0, verbose=False)


# ---------------------------------------------------------------------- parameters
def test_nested_get_set_params_and_clone():
    blend = HybridBlend([("als", ALS(factors=4, verbose=False)), ("content", ContentKNN())])
    params = blend.get_params()
    assert params["als__factors"] == 4 and params["content__standardize"] is True
    assert "als" in params and "components" in params
    assert blend.set_params(als__factors=8, content__half_life=60.0) is blend
    assert blend.components[0][1].factors == 8 and blend.components[1][1].half_life == 60.0
    blend.set_params(content=ContentKNN(weighting="binary"))  # replace a whole component
    assert blend.components[1][1].weighting == "binary"
    copy = clone(blend)
    assert copy.components[0][1] is not blend.components[0][1]
    assert copy.get_params()["als__factors"] == 8
    assert HybridBlend().get_params(deep=True)["components"] is None


def test_uses_item_features_follows_the_components():
    assert HybridBlend._uses_item_features  # the class says yes (for the contract suite)
    assert HybridBlend()._uses_item_features
    assert not HybridBlend([("knn", ItemKNN()), ("pop", Popularity())])._uses_item_features
    assert HybridBlend([("knn", ItemKNN()), ("c", ContentKNN())])._uses_item_features


# ---------------------------------------------------------------------- arithmetic
def test_normalizations_match_reference():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(5, 8))
    S[1] = 3.0  # a constant row
    S[2, :3] = S[2, 3]  # ties
    z = normalize_scores(S, "zscore")
    ref = (S - S.mean(1, keepdims=True)) / np.where(S.std(1) > 0, S.std(1), 1)[:, None]
    ref[1] = 0
    np.testing.assert_allclose(z, ref, rtol=1e-5, atol=1e-6)
    mm = normalize_scores(S, "minmax")
    span = S.max(1, keepdims=True) - S.min(1, keepdims=True)
    ref = np.where(span > 0, (S - S.min(1, keepdims=True)) / np.where(span > 0, span, 1), 0)
    np.testing.assert_allclose(mm, ref, rtol=1e-5, atol=1e-6)
    r = normalize_scores(S, "rank")
    np.testing.assert_allclose(r, (rankdata(S, axis=1) - 1) / 7, rtol=1e-6)
    np.testing.assert_array_equal(normalize_scores(S, "none"), S.astype(np.float32))


def test_internal_ndcg_equals_evaluation_ndcg():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(30, 25))
    seen = sp.csr_matrix(rng.random((30, 25)) < 0.2)
    relevant = sp.csr_matrix((rng.random((30, 25)) < 0.15) & ~seen.toarray())
    masked = scores.copy()
    masked[seen.toarray()] = -np.inf
    idx, _ = top_k(masked, 10)
    assert ndcg(scores, seen, relevant, 10) == pytest.approx(ndcg_at_k(idx, relevant), rel=1e-9)


def test_simplex_grid():
    grid = simplex_grid(3)
    np.testing.assert_allclose(grid.sum(1), 1.0)
    assert (grid >= 0).all() and len(grid) == 66  # step 0.1
    np.testing.assert_allclose(grid[0], [0.3, 0.3, 0.4])  # closest to equal first
    assert len(simplex_grid(6)) <= 300
    np.testing.assert_array_equal(simplex_grid(1), [[1.0]])


def test_search_weights_finds_the_useful_component():
    rng = np.random.default_rng(2)
    relevant = sp.csr_matrix(np.eye(20)[rng.permutation(20)])
    good = relevant.toarray() + 0.1 * rng.random((20, 20))
    noise = 5 * rng.random((20, 20))
    w, value = search_weights([noise, good], sp.csr_matrix((20, 20)), relevant, k=10)
    assert value == pytest.approx(1.0) and w[1] > w[0]


def test_blend_equals_weighted_normalised_components(data, features):
    blend = HybridBlend(
        [("knn", ItemKNN(k=20)), ("content", ContentKNN())],
        weights=[3.0, 1.0],
        normalization="minmax",
    ).fit(data, item_features=features)
    np.testing.assert_allclose(blend.weights_, [0.75, 0.25])
    knn = ItemKNN(k=20).fit(data)
    content = ContentKNN().fit(data, item_features=features)
    expected = 0.75 * normalize_scores(knn.score_items(), "minmax") + 0.25 * normalize_scores(
        content.score_items(), "minmax"
    )
    np.testing.assert_allclose(blend.score_items(), expected, rtol=1e-5, atol=1e-6)
    hist = data.matrix[:5]
    expected_x = 0.75 * normalize_scores(
        knn.score_items(X=hist), "minmax"
    ) + 0.25 * normalize_scores(content.score_items(X=hist), "minmax")
    np.testing.assert_allclose(blend.score_items(X=hist), expected_x, rtol=1e-5, atol=1e-6)


def test_weights_dict_and_single_component(data, features):
    blend = HybridBlend(
        [("knn", ItemKNN(k=20)), ("content", ContentKNN())], weights={"content": 1, "knn": 0}
    ).fit(data, item_features=features)
    alone = ContentKNN().fit(data, item_features=features)
    np.testing.assert_allclose(
        blend.score_items(), normalize_scores(alone.score_items(), "zscore"), rtol=1e-5, atol=1e-6
    )


def test_timestamps_of_histories_reach_the_components(data, features):
    content = ContentKNN(half_life=1e7)
    blend = HybridBlend([("c", content)], normalization="none").fit(data, item_features=features)
    hist = data.subset(users=np.arange(6))
    np.testing.assert_allclose(
        blend.score_items(X=hist),
        clone(content).fit(data, item_features=features).score_items(X=hist),
        rtol=1e-6,
    )


# ---------------------------------------------------------------------- weight search
def test_fit_weights_prefer_the_useful_component(data):
    blend = HybridBlend(
        [("pop", Popularity()), ("knn", ItemKNN(k=20))], weights="fit", random_state=0
    ).fit(data)
    assert blend.weights_[1] >= 0.7, blend.weights_
    assert 0 < blend.validation_ndcg_ <= 1
    # the final components are fitted on all the data
    assert blend.components_[1].train_matrix_.nnz == data.nnz
    # reproducible with a seed, also from a bare matrix
    again = HybridBlend(
        [("pop", Popularity()), ("knn", ItemKNN(k=20))], weights="fit", random_state=0
    ).fit(data.matrix)
    assert again.weights_[1] >= 0.7


def test_fit_weights_need_held_out_interactions():
    X = sp.csr_matrix(np.eye(4, dtype=np.float32))  # one interaction per user
    with pytest.raises(DataValidationError, match="no interactions to hold out"):
        HybridBlend([("knn", ItemKNN())], weights="fit").fit(X)


# ---------------------------------------------------------------------- cold items
def test_cold_items_ranked_by_the_content_component(data, features):
    train = data.matrix.tolil()
    cold = np.r_[np.arange(1, 60, 4)[::2], np.arange(2, 60, 4)[::2]]
    train[:, cold] = 0
    train = sp.csr_matrix(train)
    for normalization in ("zscore", "rank", "minmax"):
        blend = HybridBlend(
            [("als", small_als()), ("content", ContentKNN())], normalization=normalization
        ).fit(train, item_features=features)
        idx, _ = blend.recommend(np.arange(1, 120, 4), k=4, items=cold)
        assert (idx % 4 == 1).mean() > 0.8, normalization


# ---------------------------------------------------------------------- partial_fit
def test_partial_fit_delegates_to_components(data, features):
    old, new = data.subset(users=np.arange(100)), data.subset(users=np.arange(100, 120))
    blend = HybridBlend([("als", small_als()), ("content", ContentKNN())])
    blend.fit(old, item_features=features)
    before = blend.components_
    blend.partial_fit(new)
    assert blend.n_users_ == 120 and blend.users_ == data.users
    assert blend.components_[0] is not before[0] and before[0].n_users_ == 100
    content = ContentKNN().fit(old, item_features=features).partial_fit(new)
    als = small_als().fit(old).partial_fit(new)
    expected = 0.5 * normalize_scores(als.score_items(), "zscore") + 0.5 * normalize_scores(
        content.score_items(), "zscore"
    )
    np.testing.assert_allclose(blend.score_items(), expected, rtol=1e-5, atol=1e-5)


def test_partial_fit_names_unsupported_components(data, features):
    blend = HybridBlend([("knn", ItemKNN(k=5)), ("content", ContentKNN())])
    blend.fit(data, item_features=features)
    before = blend.score_items()
    with pytest.raises(NotImplementedError, match=r"\['knn'\]"):
        blend.partial_fit(data.matrix[:3])
    np.testing.assert_array_equal(blend.score_items(), before)


# ---------------------------------------------------------------------- persistence
def test_save_load_nested_components(data, features, tmp_path):
    blend = HybridBlend(
        [
            ("als", small_als()),
            ("f2f", FeatureToFactor(base=small_als())),
            ("content", ContentKNN(modality_weights={"audio": 2.0, "video": 1.0})),
        ],
        weights={"als": 1.0, "f2f": 1.0, "content": 2.0},
        normalization="rank",
    ).fit(data, item_features=features)
    blend.save(tmp_path / "blend")
    assert (tmp_path / "blend" / "components_" / "1" / "base_" / "state.npz").exists()
    loaded = Recommender.load(tmp_path / "blend")
    assert isinstance(loaded, HybridBlend)
    deep, deep_loaded = blend.get_params(), loaded.get_params()
    for key in ("als__factors", "f2f__base__factors", "content__modality_weights", "weights"):
        assert deep_loaded[key] == deep[key]
    assert [type(c) for c in loaded.components_] == [ALS, FeatureToFactor, ContentKNN]
    assert isinstance(loaded.components_[1].base_, ALS)
    np.testing.assert_array_equal(loaded.weights_, blend.weights_)
    np.testing.assert_array_equal(loaded.score_items(), blend.score_items())
    hist = data.matrix[:4]
    np.testing.assert_array_equal(loaded.score_items(X=hist), blend.score_items(X=hist))


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"components": []}, "non-empty list"),
        ({"components": [("knn", ItemKNN)]}, "must be an avrec Recommender instance"),
        ({"components": [("knn", "ItemKNN")]}, "must be an avrec Recommender instance"),
        ({"components": [ItemKNN()]}, r"\(name, Recommender\) pairs"),
        ({"components": [("a", ItemKNN()), ("a", Popularity())]}, "unique.*'a'"),
        ({"components": [("a__b", ItemKNN())]}, "without '__'"),
        ({"components": [("weights", ItemKNN())]}, "clash"),
        ({"weights": "best"}, "weights must be None, 'fit'"),
        ({"weights": [1.0]}, "1 values for 2 components"),
        ({"weights": [1.0, -1.0]}, ">= 0"),
        ({"weights": [0, 0]}, "all 0"),
        ({"weights": {"knn": 1.0}}, r"missing \['pop'\]"),
        ({"weights": {"knn": 1.0, "pop": 1.0, "x": 1.0}}, r"unknown \['x'\]"),
        ({"normalization": "softmax"}, "normalization"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_bad_configuration(data, params, match):
    params.setdefault("components", [("knn", ItemKNN(k=5)), ("pop", Popularity())])
    with pytest.raises(ConfigurationError, match=match):
        HybridBlend(**params).fit(data)


def test_missing_features_name_the_component(data):
    with pytest.raises(DataValidationError, match=r"component 'content'.*needs item_features"):
        HybridBlend([("knn", ItemKNN()), ("content", ContentKNN())]).fit(data)


def test_cold_items_ranked_by_the_content_components_even_at_zero_weight():
    from avrec.data import cold_item_split

    X = block_interactions()
    F = block_item_features()
    train, _, cold = cold_item_split(X, test_size=0.2, random_state=0)
    comps = [("ease", EASE(l2=10.0)), ("content", ContentKNN())]
    blend = HybridBlend(comps, weights=[1.0, 0.0]).fit(train, item_features=F)
    content = ContentKNN().fit(train, item_features=F)
    np.testing.assert_array_equal(np.flatnonzero(blend.cold_items_), cold)
    np.testing.assert_allclose(blend.cold_weights(), [0.0, 1.0])
    users = np.arange(12)
    # among the cold items the blend orders exactly as the content model does
    got = blend.recommend(users, k=len(cold), items=cold)[0]
    want = content.recommend(users, k=len(cold), items=cold)[0]
    np.testing.assert_array_equal(got, want)
    # warm items keep the given weights: EASE alone
    warm = np.setdiff1d(np.arange(X.n_items), cold)
    ease = EASE(l2=10.0).fit(train)
    np.testing.assert_array_equal(
        blend.recommend(users, k=5, items=warm)[0], ease.recommend(users, k=5, items=warm)[0]
    )
    plain = HybridBlend(comps, weights=[1.0, 0.0], cold_items="blend").fit(train, item_features=F)
    assert plain.cold_weights() is None
    with pytest.raises(ConfigurationError, match="cold_items"):
        HybridBlend(comps, cold_items="ignore").fit(train, item_features=F)
