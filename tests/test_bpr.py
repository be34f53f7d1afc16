"""BPR: accuracy against popularity, reproducibility, the negative sampler, devices, partial_fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from avrec.data import make_interactions, random_split
from avrec.evaluation import evaluate, recall_at_k
from avrec.exceptions import ConfigurationError
from avrec.recommenders import BPR, Popularity
from avrec.recommenders.cf._bpr import PositivePairs, popularity_cdf, sample_negatives

FAST = {"factors": 16, "iterations": 20, "batch_size": 128, "device": "cpu", "verbose": False}


@pytest.fixture(scope="module")
def split():
    X = make_interactions(
        300, 120, density=0.1, n_clusters=4, popularity_exponent=0.5, random_state=0
    )
    return random_split(X, test_size=0.25, random_state=0)


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_beats_popularity_in_recall(split, sampling):
    train, test = split
    model = BPR(negative_sampling=sampling, random_state=0, **FAST).fit(train)
    ours = evaluate(model, train, test, k=10, metrics=("recall",))["recall@10"]
    base = evaluate(Popularity().fit(train), train, test, k=10, metrics=("recall",))["recall@10"]
    assert ours > 1.3 * base, (ours, base)
    assert model.loss_history_[-1] < model.loss_history_[0]


def test_adam_optimizer_learns(split):
    train, test = split
    model = BPR(optimizer="adam", learning_rate=0.01, random_state=0, **FAST).fit(train)
    ours = evaluate(model, train, test, k=10, metrics=("recall",))["recall@10"]
    base = evaluate(Popularity().fit(train), train, test, k=10, metrics=("recall",))["recall@10"]
    assert ours > 1.2 * base, (ours, base)


def test_reproducible_with_seed(split):
    train, _ = split
    a = BPR(random_state=3, **FAST).fit(train)
    b = BPR(random_state=3, **FAST).fit(train)
    c = BPR(random_state=4, **FAST).fit(train)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    assert not np.array_equal(a.user_factors_, c.user_factors_)


def test_popularity_sampler_draws_proportionally():
    counts = np.array([0, 1, 4, 9, 16, 100, 0, 2], dtype=np.float64)
    cdf = popularity_cdf(counts, 0.75)
    gen = torch.Generator().manual_seed(0)
    n = 400_000
    items, keep = sample_negatives(torch.zeros(n, dtype=torch.int64), counts.size, None, gen, cdf)
    assert bool(keep.all())
    freq = np.bincount(items.numpy(), minlength=counts.size) / n
    expected = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(freq, expected, atol=3e-3)
    assert freq[0] == 0 and freq[6] == 0  # never-seen items are never drawn
    uniform, _ = sample_negatives(torch.zeros(n, dtype=torch.int64), 8, None, gen)
    np.testing.assert_allclose(np.bincount(uniform.numpy(), minlength=8) / n, 1 / 8, atol=3e-3)


@pytest.mark.parametrize("max_bytes", [0, 2**20])  # sorted keys, bitmap
def test_negatives_avoid_the_users_history(max_bytes):
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((50, 30)) < 0.5).astype(np.float32))
    positives = PositivePairs(X, max_bitmap_bytes=max_bytes)
    assert (positives.bitmap is None) == (max_bytes == 0)
    users = torch.from_numpy(np.repeat(np.arange(50), 200))
    truth = X.toarray() > 0
    got = positives.contains(
        users, torch.from_numpy(np.tile(np.arange(30), 50 * 200 // 30 + 1)[: users.numel()])
    )
    np.testing.assert_array_equal(
        got.numpy(),
        truth[users.numpy(), np.tile(np.arange(30), 50 * 200 // 30 + 1)[: users.numel()]],
    )
    items, keep = sample_negatives(users, 30, positives, torch.Generator().manual_seed(1))
    drawn_pos = truth[users.numpy(), items.numpy()]
    assert not drawn_pos[keep.numpy()].any()
    assert keep.float().mean() > 0.9  # half the items are positives: 4 rounds leave ~1/16 dropped


def test_device_is_validated_in_fit(split):
    train, _ = split
    for bad in ("tpu", "meta", 3.5, "cuda:not-a-number"):
        model = BPR(**{**FAST, "device": bad})
        with pytest.raises(ConfigurationError, match="device"):
            model.fit(train)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigurationError, match="CUDA is not available"):
            BPR(**{**FAST, "device": "cuda"}).fit(train)
    else:  # pragma: no cover - exercised on GPU machines
        with pytest.raises(ConfigurationError, match="CUDA devices"):
            BPR(**{**FAST, "device": "cuda:99"}).fit(train)
    assert (
        BPR(**{**FAST, "device": torch.device("cpu"), "iterations": 1})
        .fit(train)
        .user_factors_.dtype
        == np.float32
    )


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("learning_rate", 0.0),
        ("regularization", -1.0),
        ("batch_size", 0),
        ("negative_sampling", "hard"),
        ("popularity_alpha", float("inf")),
        ("optimizer", "lbfgs"),
    ],
)
def test_invalid_hyperparameters_raise_in_fit(split, param, value):
    model = BPR(**{**FAST, param: value})
    with pytest.raises(ConfigurationError, match=param):
        model.fit(split[0])


def test_fold_in_maps_histories_close_to_trained_users(split):
    train, _ = split
    model = BPR(random_state=0, **FAST).fit(train)
    folded = model._fold_in(train.matrix)
    cos = np.sum(folded * model.user_factors_, 1) / (
        np.linalg.norm(folded, axis=1) * np.linalg.norm(model.user_factors_, axis=1)
    )
    assert np.median(cos) > 0.8
    empty = model.score_items(X=sp.csr_matrix((1, train.n_items), dtype=np.float32))
    np.testing.assert_allclose(empty[0], model.item_bias_, rtol=1e-6)


def test_partial_fit_adds_users_with_good_recommendations():
    X = make_interactions(
        400, 120, density=0.1, n_clusters=4, popularity_exponent=0.5, random_state=1
    )
    old, new = X.subset(users=np.arange(300)), X.subset(users=np.arange(300, 400))
    new_train, new_test = random_split(new, test_size=0.3, random_state=0)
    model = BPR(random_state=0, **FAST).fit(old)
    model.partial_fit(new_train)
    assert model.n_users_ == 400 and model.user_factors_.shape == (400, 16)
    assert model.loss_history_.shape == (20,)
    idx, _ = model.recommend(np.arange(300, 400), k=10)
    pop = Popularity().fit(old).recommend(k=10, X=new_train.matrix)[0]
    ours, base = recall_at_k(idx, new_test.matrix, 10), recall_at_k(pop, new_test.matrix, 10)
    assert ours > 1.3 * base, (ours, base)


def test_partial_fit_on_new_users_does_not_make_old_users_forget():
    X = make_interactions(
        400, 120, density=0.1, n_clusters=4, popularity_exponent=0.5, random_state=1
    )
    old, new = X.subset(users=np.arange(300)), X.subset(users=np.arange(300, 400))
    old_train, old_test = random_split(old, test_size=0.3, random_state=0)
    new_train, new_test = random_split(new, test_size=0.3, random_state=0)
    model = BPR(random_state=0, **FAST).fit(old_train)
    before = recall_at_k(model.recommend(np.arange(300), k=10)[0], old_test.matrix, 10)
    no_history = sp.csr_matrix(new_train.matrix.shape, dtype=np.float32)
    cold_start = model.recommend(k=10, X=no_history, exclude=new_train.matrix)[0]
    model.partial_fit(new_train)
    after = recall_at_k(model.recommend(np.arange(300), k=10)[0], old_test.matrix, 10)
    assert after >= 0.8 * before, (before, after)  # old users keep their quality
    learned = model.recommend(np.arange(300, 400), k=10)[0]
    ours = recall_at_k(learned, new_test.matrix, 10)
    assert ours > 1.3 * recall_at_k(cold_start, new_test.matrix, 10)  # new users improve
