"""FeatureToFactor: the mapper's closed form, cold-item quality, fold-in, nesting, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_data import block_interactions, block_item_features
from sklearn.base import clone
from sklearn.linear_model import Ridge

from avrec.data import cold_item_split
from avrec.evaluation import ndcg_at_k
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders import ALS, BPR, FeatureToFactor, ItemKNN, Recommender

torch.set_num_threads(1)


def small_als(**kw):
    return ALS(factors=8, iterations=8, regularization=5.0, random_state=0, verbose=False, **kw)


def small_bpr():
    return BPR(factors=8, iterations=30, batch_size=64, device="cpu", random_state=0, verbose=False)


@pytest.fixture(scope="module")
def split():
    return cold_item_split(block_interactions(), test_size=0.5, random_state=0)


@pytest.fixture(scope="module")
def features():
    return block_item_features()


def cold_ndcg(model, split):
    """NDCG@10 of rankings restricted to the cold items, over users with a cold item."""
    _, test, cold = split
    users = np.flatnonzero(test.user_counts() > 0)
    idx, _ = model.recommend(users, k=10, items=cold)
    return ndcg_at_k(idx, test.matrix[users])


def random_ndcg(split, repeats=20, seed=0):
    _, test, cold = split
    users = np.flatnonzero(test.user_counts() > 0)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(repeats):
        idx = np.stack([rng.permutation(cold)[:10] for _ in users])
        values.append(ndcg_at_k(idx, test.matrix[users]))
    return float(np.mean(values))


def test_ridge_mapper_is_the_closed_form(split, features):
    train, _, cold = split
    alpha = 3.0
    model = FeatureToFactor(base=small_als(), alpha=alpha).fit(train, item_features=features)
    np.testing.assert_array_equal(model.cold_items_, cold)
    Z = (features.concat() - features.concat().mean(0)) / features.concat().std(0)
    warm = np.setdiff1d(np.arange(train.n_items), cold)
    reference = Ridge(alpha=alpha).fit(Z[warm], model.base_.item_factors_[warm])
    np.testing.assert_allclose(model.mapper_coef_, reference.coef_.T, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.mapper_intercept_, reference.intercept_, rtol=1e-4, atol=1e-6)
    assert model.mapper_hidden_coef_ is None
    # cold items get the mapped factors, warm items keep the learned ones
    np.testing.assert_allclose(
        model.item_factors_[cold], reference.predict(Z[cold]), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_array_equal(model.item_factors_[warm], model.base_.item_factors_[warm])
    # training users are scored with the base's user factors and the patched item factors
    expected = model.base_.user_factors_ @ model.item_factors_.T
    np.testing.assert_allclose(model.score_items(), expected, rtol=1e-5, atol=1e-6)


def test_blend_warm_mixes_mapped_factors(split, features):
    train, _, cold = split
    model = FeatureToFactor(base=small_als(), blend_warm=0.25).fit(train, item_features=features)
    warm = np.setdiff1d(np.arange(train.n_items), cold)
    expected = 0.75 * model.base_.item_factors_[warm] + 0.25 * model.mapped_item_factors_[warm]
    np.testing.assert_allclose(model.item_factors_[warm], expected, rtol=1e-5, atol=1e-6)


def test_cold_items_far_above_random(split, features):
    train = split.train
    baseline = random_ndcg(split)
    ridge = FeatureToFactor(random_state=0).fit(train, item_features=features)
    plain = small_als().fit(train)  # cold items all score 0 without the mapper
    assert cold_ndcg(ridge, split) > 1.8 * baseline, (cold_ndcg(ridge, split), baseline)
    assert cold_ndcg(ridge, split) > cold_ndcg(plain, split) + 0.1


def test_mlp_mapper(split, features):
    train = split.train
    params = {"base": small_als(), "mapper": "mlp", "hidden_size": 16, "epochs": 150}
    a = FeatureToFactor(**params, random_state=0).fit(train, item_features=features)
    b = FeatureToFactor(**params, random_state=0).fit(train, item_features=features)
    np.testing.assert_array_equal(a.score_items(), b.score_items())
    assert a.mapper_hidden_coef_.shape == (features.concat().shape[1], 16)
    assert cold_ndcg(a, split) > 1.8 * random_ndcg(split)


def test_bpr_base_maps_the_item_bias(split, features):
    train, _, cold = split
    model = FeatureToFactor(base=small_bpr()).fit(train, item_features=features)
    assert model.mapped_item_factors_.shape[1] == 9  # 8 factors + the bias
    assert cold.size == 30
    np.testing.assert_allclose(model.item_bias_[cold], model.mapped_item_factors_[cold, 8])
    expected = model.base_.user_factors_ @ model.item_factors_.T + model.item_bias_
    np.testing.assert_allclose(model.score_items(), expected, rtol=1e-5, atol=1e-5)
    assert cold_ndcg(model, split) > 1.3 * random_ndcg(split)


@pytest.mark.parametrize("make_base", [small_als, small_bpr])
def test_history_fold_in_uses_mapped_factors(split, features, make_base):
    train, _, cold = split
    model = FeatureToFactor(base=make_base()).fit(train, item_features=features)
    group = cold % 4
    # a new user who consumed only cold items of one group: recommended that group's items
    target = group[0]
    hist = np.zeros((1, train.n_items), dtype=np.float32)
    hist[0, cold[group == target]] = 1
    idx, _ = model.recommend(k=5, X=hist)
    assert (idx % 4 == target).mean() >= 0.8
    # the base model alone cannot fold in a history of cold items (ALS: all zero)
    if isinstance(model.base_, ALS):
        assert np.allclose(model.base_.score_items(X=hist), 0)


def test_nested_params_and_clone():
    model = FeatureToFactor(base=ALS(factors=4, verbose=False))
    params = model.get_params()
    assert params["base__factors"] == 4
    model.set_params(base__factors=6, alpha=0.5)
    assert model.base.factors == 6 and model.alpha == 0.5
    copy = clone(model)
    assert copy.base is not model.base and copy.base.factors == 6


def test_save_load_nested(split, features, tmp_path):
    train = split.train
    model = FeatureToFactor(base=small_bpr(), mapper="mlp", epochs=20, random_state=0)
    model.fit(train, item_features=features)
    model.save(tmp_path / "f2f")
    assert (tmp_path / "f2f" / "base_" / "params.json").exists()
    loaded = Recommender.load(tmp_path / "f2f")
    assert isinstance(loaded, FeatureToFactor)
    assert isinstance(loaded.base, BPR) and loaded.base.get_params() == model.base.get_params()
    assert isinstance(loaded.base_, BPR)
    np.testing.assert_array_equal(loaded.score_items(), model.score_items())
    hist = train.matrix[:3]
    np.testing.assert_array_equal(loaded.score_items(X=hist), model.score_items(X=hist))


def test_not_modifying_the_given_base(split, features):
    base = small_als()
    FeatureToFactor(base=base).fit(split.train, item_features=features)
    assert not hasattr(base, "item_factors_")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"base": "als"}, "base must be None or an avrec"),
        ({"base": ItemKNN(k=5)}, "user_factors_ and item_factors_"),
        ({"mapper": "forest"}, "mapper"),
        ({"alpha": -1.0}, "alpha"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"epochs": 1.5}, "epochs"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"blend_warm": 1.5}, "blend_warm"),
    ],
)
def test_bad_configuration(split, features, params, match):
    with pytest.raises(ConfigurationError, match=match):
        FeatureToFactor(**params).fit(split.train, item_features=features)


def test_needs_item_features(split):
    with pytest.raises(DataValidationError, match="needs item_features"):
        FeatureToFactor().fit(split.train)
