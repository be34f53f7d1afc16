"""VBPR: the loss against a reference, content scoring of cold items, BPR fallback, partial_fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions, block_item_features

from avrec.data import ItemFeatures, Vocabulary, make_interactions, random_split
from avrec.evaluation import recall_at_k
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders import BPR, VBPR, Popularity
from avrec.recommenders.hybrid._vbpr_train import _VBPRModule

torch.set_num_threads(1)

FAST = {
    "factors": 8,
    "content_factors": 4,
    "learning_rate": 0.02,
    "iterations": 20,
    "batch_size": 128,
    "device": "cpu",
    "verbose": False,
}


@pytest.fixture(scope="module")
def blocks():
    return block_interactions()


@pytest.fixture(scope="module")
def features():
    return block_item_features()


def cold_copy(data, cold):
    """``data.matrix`` with every interaction of the items ``cold`` removed."""
    train = data.matrix.tolil()
    train[:, cold] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    return train


# ---------------------------------------------------------------------- the objective
def test_forward_matches_numpy_reference_and_gradients_check():
    rng = np.random.default_rng(0)
    n_users, n_items, f, c, d = 5, 7, 3, 2, 4
    arrays = {
        "user_factors": rng.normal(size=(n_users, f)),
        "item_factors": rng.normal(size=(n_items, f)),
        "item_bias": rng.normal(size=n_items),
        "user_content": rng.normal(size=(n_users, c)),
        "projection": rng.normal(size=(c, d)),
        "feature_bias": rng.normal(size=d),
    }
    F = rng.normal(size=(n_items, d))
    reg, creg = 0.3, 0.7
    module = _VBPRModule(
        **{k: torch.tensor(v) for k, v in arrays.items()},
        features=torch.tensor(F),
        regularization=reg,
        content_regularization=creg,
    )
    u, i, j = np.array([0, 1, 4, 4]), np.array([2, 3, 0, 6]), np.array([1, 1, 5, 2])
    x, penalty = module(*(torch.from_numpy(a) for a in (u, i, j)))

    def score(uu, ii):  # x_ui of the paper, term by term
        a = arrays
        return (
            a["item_bias"][ii]
            + np.sum(a["user_factors"][uu] * a["item_factors"][ii], 1)
            + np.sum(a["user_content"][uu] * (F[ii] @ a["projection"].T), 1)
            + F[ii] @ a["feature_bias"]
        )

    np.testing.assert_allclose(x.detach().numpy(), score(u, i) - score(u, j), rtol=1e-12)
    a = arrays
    rows = (
        np.sum(a["user_factors"][u] ** 2, 1)
        + np.sum(a["user_content"][u] ** 2, 1)
        + np.sum(a["item_factors"][i] ** 2, 1)
        + np.sum(a["item_factors"][j] ** 2, 1)
        + a["item_bias"][i] ** 2
        + a["item_bias"][j] ** 2
    )
    shared = np.sum(a["projection"] ** 2) + np.sum(a["feature_bias"] ** 2)
    np.testing.assert_allclose(
        penalty.detach().numpy(), 0.5 * reg * rows + 0.5 * creg * shared, rtol=1e-12
    )
    names = [name for name, _ in module.named_parameters()]
    triples = tuple(torch.from_numpy(a) for a in (u, i, j))

    def loss(*values):
        x, pen = torch.func.functional_call(module, dict(zip(names, values, strict=True)), triples)
        return torch.sum(torch.nn.functional.softplus(-x) + pen)

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in module.parameters())
    assert torch.autograd.gradcheck(loss, inputs, eps=1e-6, atol=1e-5)


def test_loss_decreases_and_scores_follow_the_formula(blocks, features):
    model = VBPR(random_state=0, **FAST).fit(blocks, item_features=features)
    assert model.loss_history_.shape == (20,)
    assert model.loss_history_[-1] < 0.5 * model.loss_history_[0]
    raw = features.concat()
    F = (raw - model.feature_mean_) / model.feature_scale_
    np.testing.assert_allclose(model.item_features_, F, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.item_features_.std(0), 1.0, rtol=1e-4)
    expected = (
        model.item_bias_
        + model.user_factors_ @ model.item_factors_.T
        + model.user_content_factors_ @ (F @ model.projection_.T).T
        + F @ model.feature_bias_
    )
    np.testing.assert_allclose(model.score_items(), expected, rtol=1e-4, atol=1e-5)
    assert model.user_content_factors_.shape == (blocks.n_users, 4)
    assert model.projection_.shape == (4, 14)


@pytest.mark.parametrize("policy", ["mean", "min", "zero"])
def test_cold_items_are_ranked_by_their_content(blocks, features, policy):
    # three items of each of the four groups lose all their interactions
    cold = np.arange(8, 20)  # items 8..19: groups 0,1,2,3 three times each
    train = cold_copy(blocks, cold)
    model = VBPR(cold_item_bias=policy, random_state=0, **FAST).fit(train, item_features=features)
    np.testing.assert_array_equal(model.cold_items_, cold)
    assert not model.item_factors_[cold].any()
    warm_bias = np.delete(model.item_bias_, cold)
    expected = {"mean": warm_bias.mean(), "min": warm_bias.min(), "zero": 0.0}[policy]
    np.testing.assert_allclose(model.item_bias_[cold], expected, rtol=1e-6)
    idx, _ = model.recommend(k=3, items=cold)
    user_group = np.arange(blocks.n_users) % 4
    assert (idx % 4 == user_group[:, None]).mean() > 0.8


def test_without_features_degrades_to_bpr():
    X = make_interactions(
        300, 120, density=0.1, n_clusters=4, popularity_exponent=0.5, random_state=0
    )
    train, test = random_split(X, test_size=0.25, random_state=0)
    matched = {
        "factors": 16,
        "learning_rate": 0.05,
        "regularization": 0.05,
        "iterations": 20,
        "batch_size": 128,
        "optimizer": "sgd",
        "device": "cpu",
        "random_state": 0,
        "verbose": False,
    }
    vbpr = VBPR(**matched).fit(train)
    bpr = BPR(**matched).fit(train)
    assert vbpr.projection_.shape == (0, 0) and vbpr.user_content_factors_.shape == (300, 0)
    assert not vbpr.item_content_bias_.any()
    ours, theirs = (recall_at_k(m.recommend(k=10)[0], test.matrix, 10) for m in (vbpr, bpr))
    pop = recall_at_k(Popularity().fit(train).recommend(k=10)[0], test.matrix, 10)
    assert abs(ours - theirs) < 0.1 * theirs, (ours, theirs)
    assert ours > 1.3 * pop, (ours, pop)
    adam = VBPR(**{**matched, "optimizer": "adam", "learning_rate": 0.005}).fit(train)
    assert recall_at_k(adam.recommend(k=10)[0], test.matrix, 10) > 1.3 * pop


# ---------------------------------------------------------------------- features
def test_standardize_modes(blocks, features):
    raw = features.concat()
    mod = VBPR(standardize="modality", random_state=0, **FAST).fit(blocks, item_features=features)
    for block in (slice(0, 8), slice(8, 14)):  # audio, video
        sq = np.sum(mod.item_features_[:, block] ** 2, axis=1).mean()
        np.testing.assert_allclose(sq, 1.0, rtol=1e-4)
    np.testing.assert_allclose(mod.item_features_.mean(0), 0.0, atol=1e-5)
    none = VBPR(standardize=None, random_state=0, **FAST).fit(blocks, item_features=raw)
    np.testing.assert_array_equal(none.item_features_, raw)
    # an ndarray is one modality
    arr = VBPR(standardize="modality", random_state=0, **FAST).fit(blocks, item_features=raw)
    np.testing.assert_allclose(np.sum(arr.item_features_**2, axis=1).mean(), 1.0, rtol=1e-4)


def test_item_features_are_aligned_by_item_id(blocks, features):
    shuffled = features.align(Vocabulary(blocks.items.ids[::-1]))
    a = VBPR(random_state=0, **FAST).fit(blocks, item_features=features)
    b = VBPR(random_state=0, **FAST).fit(blocks, item_features=shuffled)
    np.testing.assert_array_equal(a.score_items(), b.score_items())


def test_bad_features_raise(blocks, features):
    model = VBPR(**FAST)
    with pytest.raises(DataValidationError, match="rows"):
        model.fit(blocks.matrix, item_features=np.ones((blocks.n_items + 1, 3)))
    with pytest.raises(DataValidationError, match="2-d"):
        model.fit(blocks.matrix, item_features=np.ones(blocks.n_items))
    bad = np.ones((blocks.n_items, 3))
    bad[0, 0] = np.nan
    with pytest.raises(DataValidationError, match="finite"):
        model.fit(blocks.matrix, item_features=bad)
    partial = ItemFeatures({"audio": features["audio"][:10]}, items=features.items.ids[:10])
    with pytest.raises(DataValidationError, match="no features"):
        model.fit(blocks, item_features=partial)
    assert not hasattr(model, "n_items_")


# ---------------------------------------------------------------------- users
def test_fold_in_maps_histories_close_to_trained_users(blocks, features):
    model = VBPR(random_state=0, **FAST).fit(blocks, item_features=features)
    folded = model._fold_in(blocks.matrix)
    trained = np.hstack([model.user_factors_, model.user_content_factors_])
    cos = np.sum(folded * trained, 1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(trained, axis=1)
    )
    assert np.median(cos) > 0.8
    empty = model.score_items(X=sp.csr_matrix((1, blocks.n_items), dtype=np.float32))
    np.testing.assert_allclose(empty[0], model.item_bias_ + model.item_content_bias_, rtol=1e-6)
    # histories made only of cold items still carry their content
    cold = np.arange(8, 20)
    cold_model = VBPR(random_state=0, **FAST).fit(cold_copy(blocks, cold), item_features=features)
    hist = sp.csr_matrix(
        (np.ones(6, np.float32), np.r_[8, 12, 16, 9, 13, 17], [0, 3, 6]), shape=(2, 60)
    )  # group 0's and group 1's cold items
    idx, _ = cold_model.recommend(k=5, X=hist)
    assert (idx % 4 == np.array([[0], [1]])).mean() >= 0.8


def test_partial_fit_learns_new_users_without_forgetting_old_ones():
    X = make_interactions(
        400, 120, density=0.1, n_clusters=4, popularity_exponent=0.5, random_state=1
    )
    old, new = X.subset(users=np.arange(300)), X.subset(users=np.arange(300, 400))
    old_train, old_test = random_split(old, test_size=0.3, random_state=0)
    new_train, new_test = random_split(new, test_size=0.3, random_state=0)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(120, 6)).astype(np.float32)  # uninformative content
    model = VBPR(random_state=0, **{**FAST, "factors": 16}).fit(old_train, item_features=feats)
    old_before = recall_at_k(model.recommend(k=10)[0], old_test.matrix, 10)
    # before: the new users are only known by their histories (or not at all)
    empty = sp.csr_matrix(new_train.matrix.shape, dtype=np.float32)
    cold_start = recall_at_k(model.recommend(k=10, X=empty)[0], new_test.matrix, 10)
    folded = recall_at_k(model.recommend(k=10, X=new_train.matrix)[0], new_test.matrix, 10)
    model.partial_fit(new_train)
    assert model.n_users_ == 400
    assert model.user_factors_.shape == (400, 16)
    assert model.user_content_factors_.shape == (400, 4)
    np.testing.assert_array_equal(model.projection_.shape, (4, 6))
    after = recall_at_k(model.recommend(np.arange(300, 400), k=10)[0], new_test.matrix, 10)
    old_after = recall_at_k(model.recommend(np.arange(300), k=10)[0], old_test.matrix, 10)
    assert after > 1.3 * cold_start, (after, cold_start)
    assert after >= 0.95 * folded, (after, folded)
    assert old_after >= 0.8 * old_before, (old_after, old_before)
    with pytest.raises(ConfigurationError, match="refit"):
        model.set_params(factors=4).partial_fit(new_train)


# ---------------------------------------------------------------------- configuration
def test_reproducible_with_seed(blocks, features):
    a = VBPR(random_state=3, **FAST).fit(blocks, item_features=features)
    b = VBPR(random_state=3, **FAST).fit(blocks, item_features=features)
    c = VBPR(random_state=4, **FAST).fit(blocks, item_features=features)
    for name in ("user_factors_", "projection_", "item_bias_", "loss_history_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.projection_, c.projection_)
    g1 = VBPR(random_state=np.random.default_rng(5), **FAST).fit(blocks, item_features=features)
    g2 = VBPR(random_state=np.random.default_rng(5), **FAST).fit(blocks, item_features=features)
    np.testing.assert_array_equal(g1.score_items(), g2.score_items())


def test_device_is_validated_in_fit(blocks):
    for bad in ("tpu", 3.5):
        with pytest.raises(ConfigurationError, match="device"):
            VBPR(**{**FAST, "device": bad}).fit(blocks)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="CUDA is not available"):
            VBPR(**{**FAST, "device": "cuda"}).fit(blocks)
    else:  # pragma: no cover - exercised on GPU machines
        with pytest.raises(ConfigurationError, match="CUDA devices"):
            VBPR(**{**FAST, "device": "cuda:99"}).fit(blocks)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("factors", 0),
        ("content_factors", 1.5),
        ("learning_rate", 0.0),
        ("regularization", -1.0),
        ("content_regularization", float("nan")),
        ("batch_size", 0),
        ("negative_sampling", "hard"),
        ("optimizer", "lbfgs"),
        ("standardize", "l2"),
        ("cold_item_bias", "max"),
    ],
)
def test_invalid_hyperparameters_raise_in_fit(blocks, param, value):
    model = VBPR(**{**FAST, param: value})
    with pytest.raises(ConfigurationError, match=param):
        model.fit(blocks)


def test_popularity_sampling_and_sgd_learn(blocks, features):
    train = cold_copy(blocks, np.arange(8, 20))
    for params in (
        {"negative_sampling": "popularity"},
        {"optimizer": "sgd", "learning_rate": 0.05},
    ):
        model = VBPR(random_state=0, **{**FAST, **params}).fit(train, item_features=features)
        assert model.loss_history_[-1] < model.loss_history_[0]
        idx, _ = model.recommend(k=3, items=np.arange(8, 20))
        assert (idx % 4 == (np.arange(blocks.n_users) % 4)[:, None]).mean() > 0.8
