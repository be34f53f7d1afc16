"""DPItemKNN and DPEASE: private aggregation, then per-user post-processing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from known_data import block_interactions
from test_recommender_contract import holdout

from avrec.exceptions import ConfigurationError, NotFittedError, PrivacyBudgetExceeded
from avrec.privacy import DPEASE, DPItemKNN, PrivacyAccountant, bound_contributions
from avrec.privacy._dp_recommenders import ease_from_gram, similarity_from_gram
from avrec.privacy._releases import bounded_gram
from avrec.recommenders import EASE, ItemKNN
from avrec.recommenders.cf._itemknn import item_similarity

torch.set_num_threads(1)
INF = float("inf")


@pytest.fixture(scope="module")
def data():
    return block_interactions()


def _bounded(X, m, seed):
    # the model hands its seeded generator to the release, which bounds first
    return bound_contributions(X, m, random_state=np.random.default_rng(seed))


@pytest.mark.parametrize("m", [5, 1000])
def test_itemknn_at_epsilon_inf_equals_itemknn_on_bounded_data(data, m):
    dp = DPItemKNN(k=15, shrinkage=2.0, epsilon=INF, max_items_per_user=m, random_state=3)
    dp.fit(data, catalogue=data.items)
    B = _bounded(data.matrix, m, 3)
    ref = ItemKNN(k=15, shrinkage=2.0).fit(B)
    assert (dp.similarity_ != ref.similarity_).nnz == 0
    np.testing.assert_array_equal(dp.score_items(X=B), ref.score_items())
    assert dp.epsilon_spent_ == INF and dp.delta_spent_ == 0.0


@pytest.mark.parametrize("m", [5, 1000])
def test_ease_at_epsilon_inf_equals_ease_on_bounded_data(data, m):
    dp = DPEASE(l2=7.0, epsilon=INF, max_items_per_user=m, random_state=3).fit(
        data, catalogue=data.items
    )
    B = _bounded(data.matrix, m, 3)
    ref = EASE(l2=7.0).fit(B)
    np.testing.assert_array_equal(dp.weights_, ref.weights_)
    np.testing.assert_array_equal(dp.score_items(X=B), ref.score_items())


def test_similarity_from_exact_gram_matches_item_similarity(data):
    W = data.matrix.astype(np.float64)
    for shrinkage in (0.0, 3.0):
        a = similarity_from_gram(bounded_gram(W), 7, shrinkage=shrinkage, block_bytes=8 * 60 * 7)
        b = item_similarity(W, 7, shrinkage=shrinkage)
        assert (a != b).nnz == 0


def test_ease_from_gram_projection_makes_any_noise_solvable():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 50, (30, 30))
    G = np.triu(noise) + np.triu(noise, 1).T  # symmetric, strongly indefinite
    with pytest.raises(ConfigurationError, match="positive definite"):
        ease_from_gram(G, 1.0, project=False)
    B = ease_from_gram(G, 1.0)
    assert np.isfinite(B).all() and np.abs(np.diag(B)).max() == 0


def _hits(model, train, test):
    model.fit(train, catalogue=train.items)
    idx, _ = model.recommend(k=5)
    truth = test.matrix.toarray() > 0
    return truth[np.arange(idx.shape[0])[:, None], idx].sum()


@pytest.mark.parametrize(
    ("cls", "params"), [(DPItemKNN, {"k": 20}), (DPEASE, {"l2": 10.0})], ids=["knn", "ease"]
)
def test_accuracy_increases_with_epsilon(data, cls, params):
    means = []
    for eps in (1.0, 10.0, 100.0, INF):
        hits = [
            _hits(
                cls(epsilon=eps, delta=1e-5, max_items_per_user=20, random_state=s, **params),
                *holdout(data, seed=s),
            )
            for s in range(3)
        ]
        means.append(np.mean(hits))
    assert (np.diff(means) > 0).all(), means


@pytest.mark.parametrize("cls", [DPItemKNN, DPEASE])
def test_fit_charges_the_accountant(data, cls):
    acc = PrivacyAccountant(epsilon=3.0, delta=1e-5)
    model = cls(epsilon=1.0, delta=1e-6, max_items_per_user=10, random_state=0)
    model.fit(data, catalogue=data.items, accountant=acc)
    assert acc.spent == (1.0, 1e-6)
    assert (model.epsilon_spent_, model.delta_spent_) == (1.0, 1e-6)
    cls(epsilon=0.5, mechanism="laplace", random_state=0).fit(
        data, catalogue=data.items, accountant=acc
    )
    assert acc.spent == (1.5, 1e-6)  # pure-DP mechanisms spend no delta
    assert not hasattr(model, "_accountant")  # the ledger is not kept on the model


@pytest.mark.parametrize("cls", [DPItemKNN, DPEASE])
def test_overspend_raises_before_release_and_keeps_the_model(data, cls):
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5)
    fresh = cls(epsilon=2.0, random_state=0)
    with pytest.raises(PrivacyBudgetExceeded):
        fresh.fit(data, catalogue=data.items, accountant=acc)
    with pytest.raises(NotFittedError):
        fresh.recommend([0])
    model = cls(epsilon=0.6, random_state=0).fit(data, catalogue=data.items, accountant=acc)
    before = model.score_items([0, 1])
    with pytest.raises(PrivacyBudgetExceeded):
        model.fit(data.subset(users=np.arange(10)), catalogue=data.items, accountant=acc)
    np.testing.assert_array_equal(model.score_items([0, 1]), before)
    assert acc.spent[0] == pytest.approx(0.6) and len(acc.releases) == 1
    with pytest.raises(PrivacyBudgetExceeded):  # an exact release needs an infinite budget
        cls(epsilon=INF).fit(
            data, catalogue=data.items, accountant=PrivacyAccountant(epsilon=100.0)
        )


def test_epsilon_inf_saves_and_loads(data, tmp_path):
    model = DPItemKNN(k=5, epsilon=INF, max_items_per_user=8, random_state=0).fit(
        data, catalogue=data.items
    )
    model.save(tmp_path / "m")
    loaded = DPItemKNN.load(tmp_path / "m")
    assert loaded.epsilon == INF and loaded.epsilon_spent_ == INF
    np.testing.assert_array_equal(loaded.score_items(X=data.matrix), model.score_items())


def test_personalisation_uses_the_users_full_history(data):
    """Scoring is post-processing on the user's own data: X= gives the training scores."""
    model = DPItemKNN(k=10, epsilon=5.0, max_items_per_user=3, random_state=0).fit(
        data, catalogue=data.items
    )
    np.testing.assert_array_equal(model.score_items(X=data.matrix), model.score_items())


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": math.nan}, "epsilon"),
        ({"delta": 0.0}, "needs delta > 0"),
        ({"delta": 1.0}, "delta"),
        ({"mechanism": "exp"}, "mechanism"),
        ({"max_items_per_user": 0}, "max_items_per_user"),
    ],
)
@pytest.mark.parametrize("cls", [DPItemKNN, DPEASE])
def test_bad_parameters_raise_in_fit(data, cls, params, match):
    model = cls(**params)  # stored verbatim, validated in fit
    with pytest.raises(ConfigurationError, match=match):
        model.fit(data, catalogue=data.items)


def test_model_specific_parameters(data):
    with pytest.raises(ConfigurationError, match="k must"):
        DPItemKNN(k=0).fit(data, catalogue=data.items)
    with pytest.raises(ConfigurationError, match="shrinkage"):
        DPItemKNN(shrinkage=-1.0).fit(data, catalogue=data.items)
    with pytest.raises(ConfigurationError, match="l2"):
        DPEASE(l2=0.0).fit(data, catalogue=data.items)
    with pytest.raises(ConfigurationError, match="noise_shrinkage"):
        DPItemKNN(noise_shrinkage=-1.0).fit(data, catalogue=data.items)
    with pytest.raises(ConfigurationError, match="threshold"):
        DPEASE(threshold=-1.0).fit(data, catalogue=data.items)


def test_noise_aware_post_processing(data):
    from avrec.privacy import cooccurrence_sensitivity, noise_std

    model = DPItemKNN(shrinkage=2.0, noise_shrinkage=5.0, epsilon=4.0, max_items_per_user=6)
    model.fit(data, catalogue=data.items)
    std = noise_std("gaussian", cooccurrence_sensitivity(6, data.n_items), 4.0, 1e-6)
    assert model.shrinkage_ == pytest.approx(2.0 + 5.0 * std)
    # a threshold far above every count leaves no similarity at all
    empty = DPItemKNN(epsilon=4.0, threshold=1e6, random_state=0).fit(data, catalogue=data.items)
    assert empty.similarity_.nnz == 0
    assert (
        DPItemKNN(epsilon=INF, noise_shrinkage=5.0).fit(data, catalogue=data.items).shrinkage_
        == 10.0
    )


def test_partial_fit_is_refused(data):
    model = DPItemKNN(epsilon=INF).fit(data, catalogue=data.items)
    with pytest.raises(NotImplementedError, match="partial_fit"):
        model.partial_fit(data)
