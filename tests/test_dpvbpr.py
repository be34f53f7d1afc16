"""DPVBPR: per-user content gradients, joint clipping, accounting, cold items under DP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions, block_item_features

import avrec.privacy._dpvbpr_grads as dpvbpr
from avrec.exceptions import ConfigurationError, NotFittedError, PrivacyBudgetExceeded
from avrec.privacy import DPBPR, DPVBPR, PrivacyAccountant, dpsgd_epsilon
from avrec.privacy._dpvbpr_grads import (
    _user_content_loss,
    clip_jointly,
    clipped_content_gradient_sum,
    per_user_content_gradients,
)

torch.set_num_threads(1)

FAST = {
    "factors": 4,
    "content_factors": 3,
    "sample_rate": 0.5,
    "epochs": 2,
    "max_items_per_user": 8,
    "device": "cpu",
    "verbose": False,
}


@pytest.fixture(scope="module")
def data():
    return block_interactions(n_users=40, n_items=24)


@pytest.fixture(scope="module")
def features():
    return block_item_features(n_items=24)


def _problem(B=5, T=6, n_items=30, f=4, c=3, d=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(n_items, f + 1, generator=gen)
    E = torch.randn(c, d, generator=gen)
    beta = torch.randn(d, generator=gen)
    feats = torch.randn(n_items, d, generator=gen)
    users = torch.randn(B, f, generator=gen)
    theta = torch.randn(B, c, generator=gen)
    perm = torch.stack([torch.randperm(n_items, generator=gen) for _ in range(B)])
    pos, neg = perm[:, :T], perm[:, T : 2 * T]  # distinct, disjoint per user
    mask = (torch.rand(B, T, generator=gen) < 0.8).float()
    return table, E, beta, feats, users, theta, pos, neg, mask


def _joint_norm(*tensors):
    return float(torch.sqrt(sum(t.pow(2).sum() for t in tensors)))


def test_per_user_gradients_equal_a_loop_of_autograd():
    table, E, beta, feats, users, theta, pos, neg, mask = _problem()
    dfeat = feats[pos] - feats[neg]
    g_pos, g_neg, g_u, g_t, g_E, g_b = per_user_content_gradients(
        table[pos], table[neg], users, theta, E, beta, dfeat, mask
    )
    assert g_E.shape == (users.shape[0], *E.shape) and g_b.shape == (users.shape[0], *beta.shape)
    for b in range(users.shape[0]):
        leaves = [x.clone().requires_grad_(True) for x in (table, users[b], theta[b], E, beta)]
        t, u, th, e, bt = leaves
        loss = _user_content_loss(t[pos[b]], t[neg[b]], u, th, e, bt, dfeat[b], mask[b])
        grad_t, grad_u, grad_th, grad_e, grad_bt = torch.autograd.grad(loss, leaves)
        mine = torch.zeros_like(table)
        mine.index_add_(0, pos[b], g_pos[b])
        mine.index_add_(0, neg[b], g_neg[b])
        for got, want in ((mine, grad_t), (g_u[b], grad_u), (g_t[b], grad_th)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g_E[b], grad_e, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g_b[b], grad_bt, rtol=1e-5, atol=1e-6)
        # the gathered rows are distinct items: their norm is the full table gradient's norm
        assert _joint_norm(g_pos[b], g_neg[b]) == pytest.approx(_joint_norm(grad_t), rel=1e-5)


def test_loss_is_the_vbpr_score_difference():
    table, E, beta, feats, users, theta, pos, neg, mask = _problem(B=1, T=2)
    f = users.shape[1]

    def x(i):
        return table[i, f] + users[0] @ table[i, :f] + theta[0] @ (E @ feats[i]) + beta @ feats[i]

    want = sum(
        mask[0, t] * torch.nn.functional.softplus(-(x(pos[0, t]) - x(neg[0, t]))) for t in range(2)
    )
    got = _user_content_loss(
        table[pos[0]],
        table[neg[0]],
        users[0],
        theta[0],
        E,
        beta,
        feats[pos[0]] - feats[neg[0]],
        mask[0],
    )
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("share", [None, 0.1, 0.7])
def test_clipping_bounds_each_users_contribution_to_every_released_parameter(share):
    table, E, beta, feats, users, theta, pos, neg, mask = _problem(B=6)
    C = 0.01  # below every user's gradient norm (and each part's): every user is clipped

    def run(sel):
        return clipped_content_gradient_sum(
            table, E, beta, feats, users[sel], theta[sel], pos[sel], neg[sel], mask[sel], C, share
        )

    everyone = list(range(6))
    s_table, s_E, s_beta, *_ = run(everyone)
    for b in everyone:
        w_table, w_E, w_beta, *_ = run([i for i in everyone if i != b])
        a_table, a_E, a_beta, *_ = run([b])
        moved = _joint_norm(s_table - w_table, s_E - w_E, s_beta - w_beta)
        assert moved <= C * (1 + 1e-4)
        assert _joint_norm(a_table, a_E, a_beta) == pytest.approx(C, rel=1e-4)
        if share is not None:  # each part within its own bound
            assert _joint_norm(a_table) == pytest.approx(C * math.sqrt(1 - share), rel=1e-4)
            assert _joint_norm(a_E, a_beta) == pytest.approx(C * math.sqrt(share), rel=1e-4)


def test_chunked_gradient_sum_equals_one_block(monkeypatch):
    args = _problem(B=7)
    whole = clipped_content_gradient_sum(*args, 0.5)
    monkeypatch.setattr(dpvbpr, "_GRAD_BLOCK", 2 * 3 * 7)  # two users per chunk
    chunked = clipped_content_gradient_sum(*args, 0.5)
    for a, b in zip(whole[:5], chunked[:5], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert whole[5] == pytest.approx(chunked[5], rel=1e-6)


def test_clip_jointly_leaves_small_gradients_alone():
    small = [torch.full((2, 3), 0.01), torch.full((2, 2, 2), 0.01)]
    clipped, norms = clip_jointly(small, 1.0)
    for a, b in zip(clipped, small, strict=True):
        torch.testing.assert_close(a, b)
    assert (norms < 1).all()
    big, norms = clip_jointly([torch.full((1, 4), 3.0), torch.full((1, 2, 2), 4.0)], 1.0)
    assert float(norms[0]) == pytest.approx(10.0)
    assert _joint_norm(*big) == pytest.approx(1.0, rel=1e-6)


def test_epsilon_of_the_run_equals_dpsgd_epsilon(data, features):
    acc = PrivacyAccountant(epsilon=100.0, delta=1e-5, composition="rdp")
    model = DPVBPR(epsilon=None, noise_multiplier=1.3, delta=1e-5, random_state=0, **FAST)
    model.fit(data, catalogue=data.items, item_features=features, accountant=acc)
    expected = dpsgd_epsilon(1.3, FAST["sample_rate"], model.steps_, 1e-5)
    assert model.steps_ == math.ceil(FAST["epochs"] / FAST["sample_rate"])
    assert model.epsilon_ == pytest.approx(expected, rel=1e-9)
    assert model.noise_multiplier_ == 1.3 and model.epsilon_spent_ == model.epsilon_
    assert acc.spent[0] == pytest.approx(expected, rel=1e-6)
    assert "DPVBPR" in acc.releases[0].mechanism


def test_target_epsilon_is_met(data, features):
    model = DPVBPR(epsilon=3.0, delta=1e-5, random_state=0, **FAST)
    model.fit(data, catalogue=data.items, item_features=features)
    assert model.epsilon_ <= 3.0
    assert model.epsilon_ == pytest.approx(3.0, rel=1e-2)


def test_overspend_raises_before_training_and_keeps_the_model(data, features, monkeypatch):
    calls = []
    real = dpvbpr.per_user_content_gradients
    monkeypatch.setattr(
        dpvbpr, "per_user_content_gradients", lambda *a: calls.append(1) or real(*a)
    )
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5, composition="rdp")
    model = DPVBPR(epsilon=None, noise_multiplier=0.5, delta=1e-5, random_state=0, **FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        model.fit(data, catalogue=data.items, item_features=features, accountant=acc)
    assert calls == [] and acc.releases == []
    with pytest.raises(NotFittedError):
        model.recommend([0])
    model.fit(data, catalogue=data.items, item_features=features)  # without an accountant: trains
    before = model.score_items([0, 1])
    calls.clear()
    with pytest.raises(PrivacyBudgetExceeded):
        model.fit(data, catalogue=data.items, item_features=features, accountant=acc)
    assert calls == []
    np.testing.assert_array_equal(model.score_items([0, 1]), before)


def test_reproducible_with_a_seed(data, features):
    kw = {"epsilon": None, "noise_multiplier": 2.0, **FAST}
    a = DPVBPR(random_state=1, **kw).fit(data, catalogue=data.items, item_features=features)
    b = DPVBPR(random_state=1, **kw).fit(data, catalogue=data.items, item_features=features)
    c = DPVBPR(random_state=2, **kw).fit(data, catalogue=data.items, item_features=features)
    for name in ("item_factors_", "item_bias_", "projection_", "feature_bias_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.score_items(), b.score_items())
    assert not np.allclose(a.projection_, c.projection_)


def test_noise_reaches_every_released_parameter(data, features):
    kw = {"epsilon": None, "random_state": 1, **FAST}
    noisy = DPVBPR(noise_multiplier=2.0, **kw).fit(
        data, catalogue=data.items, item_features=features
    )
    clean = DPVBPR(noise_multiplier=0.0, **kw).fit(
        data, catalogue=data.items, item_features=features
    )
    for name in ("item_factors_", "item_bias_", "projection_", "feature_bias_"):
        assert not np.allclose(getattr(noisy, name), getattr(clean, name)), name
    np.testing.assert_array_equal(noisy.user_factors_.shape, clean.user_factors_.shape)


def test_without_features_it_is_dpbpr(data):
    kw = {k: v for k, v in FAST.items() if k != "content_factors"}
    kw.update(epsilon=None, noise_multiplier=1.0, random_state=3)
    mine = DPVBPR(content_factors=5, **kw).fit(data, catalogue=data.items)
    ref = DPBPR(**kw).fit(data, catalogue=data.items)
    for name in ("item_factors_", "item_bias_", "user_factors_", "loss_history_"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(ref, name))
    assert mine.projection_.size == mine.feature_bias_.size == 0
    assert mine.user_content_factors_.shape == (data.n_users, 0)
    np.testing.assert_array_equal(mine.score_items(), ref.score_items())
    hist = data.matrix[:5]
    np.testing.assert_allclose(
        mine.score_items(X=hist), ref.score_items(X=hist), rtol=1e-5, atol=1e-6
    )


def test_items_without_interactions_are_not_special_cased(data, features):
    train = data.matrix.tolil()
    train[:, [1, 2]] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    model = DPVBPR(epsilon=math.inf, random_state=0, **FAST).fit(train, item_features=features)
    assert not hasattr(model, "cold_items_")
    # drawn as negatives like every item: their bias moved from its initial 0
    assert (model.item_bias_[[1, 2]] != 0).all()
    assert (np.linalg.norm(model.item_factors_[[1, 2]], axis=1) > 0).all()


def test_fold_in_is_per_user_and_uses_content(data, features):
    model = DPVBPR(epsilon=None, noise_multiplier=1.0, random_state=0, **FAST)
    model.fit(data, catalogue=data.items, item_features=features)
    hist = data.matrix[:6]
    together = model.score_items(X=hist)
    for u in range(6):
        np.testing.assert_allclose(model.score_items(X=hist[u]), together[u : u + 1], rtol=1e-5)
    folded = model._fold_in(hist)
    assert folded.shape == (6, FAST["factors"] + FAST["content_factors"])
    assert np.abs(folded[:, FAST["factors"] :]).sum() > 0
    empty = model.score_items(X=sp.csr_matrix((1, data.n_items), dtype=np.float32))
    np.testing.assert_allclose(empty[0], model.item_bias_ + model.item_content_bias_)


def _cold_group_accuracy(model, cold, n_users):
    """Share of each group-1/2 user's top-5 among ``cold`` that is of the user's group."""
    user_group = np.arange(n_users) % 4
    users = np.flatnonzero(np.isin(user_group, [1, 2]))
    idx, _ = model.recommend(users, k=5, items=cold)
    return float(np.mean(idx % 4 == user_group[users][:, None]))


def test_content_ranks_cold_items_under_dp_where_dpbpr_cannot():
    n_users = 400
    data = block_interactions(n_users=n_users)
    # items 1, 5, .., 17 (group 1) and 2, 6, .., 18 (group 2) lose all interactions
    cold = np.r_[np.arange(1, 60, 4)[:5], np.arange(2, 60, 4)[:5]]
    train = data.matrix.tolil()
    train[:, cold] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    kw = {
        "factors": 8,
        "epsilon": 4.0,
        "delta": 1e-5,
        "sample_rate": 0.1,
        "epochs": 20,
        "max_items_per_user": 20,
        "learning_rate": 0.02,
        "device": "cpu",
        "random_state": 0,
        "verbose": False,
    }
    private = DPVBPR(**kw).fit(train, item_features=block_item_features())
    baseline = DPBPR(**kw).fit(train)
    assert private.epsilon_ <= 4.0 and private.noise_multiplier_ > 1
    assert private.noise_multiplier_ == baseline.noise_multiplier_
    ours = _cold_group_accuracy(private, cold, n_users)
    theirs = _cold_group_accuracy(baseline, cold, n_users)
    assert ours > 0.8, ours  # measured 0.86
    assert theirs < 0.65, theirs  # chance is 0.5; measured 0.50


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"content_factors": 0}, "content_factors"),
        ({"content_regularization": -1.0}, "content_regularization"),
        ({"standardize": "rows"}, "standardize"),
        ({"content_clip_share": 1.0}, "content_clip_share"),
        ({"content_clip_share": 0.0}, "content_clip_share"),
        ({"epsilon": None}, "exactly one"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
    ],
)
def test_bad_parameters(data, features, params, match):
    with pytest.raises(ConfigurationError, match=match):
        DPVBPR(**{**FAST, **params}).fit(data, catalogue=data.items, item_features=features)
