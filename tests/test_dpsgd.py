"""DPBPR: user-level DP-SGD (per-user gradients, clipping, noise, accounting)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from known_data import block_interactions

from avrec.exceptions import ConfigurationError, NotFittedError, PrivacyBudgetExceeded
from avrec.privacy import DPBPR, PrivacyAccountant, dpsgd_epsilon
from avrec.privacy._dpsgd import (
    _user_loss,
    clip_per_user,
    clipped_gradient_sum,
    per_user_gradients,
    sample_distinct_negatives,
)

torch.set_num_threads(1)

FAST = {
    "factors": 4,
    "sample_rate": 0.5,
    "epochs": 2,
    "max_items_per_user": 8,
    "device": "cpu",
    "verbose": False,
}


@pytest.fixture(scope="module")
def data():
    return block_interactions(n_users=40, n_items=24)


def _triples(B=5, T=6, n_items=30, f=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(n_items, f + 1, generator=gen)
    users = torch.randn(B, f, generator=gen)
    perm = torch.stack([torch.randperm(n_items, generator=gen) for _ in range(B)])
    pos, neg = perm[:, :T], perm[:, T : 2 * T]  # distinct, disjoint per user
    mask = (torch.rand(B, T, generator=gen) < 0.8).float()
    return table, users, pos, neg, mask


def test_per_user_gradients_equal_a_loop_of_autograd():
    table, users, pos, neg, mask = _triples()
    g_pos, g_neg, g_user = per_user_gradients(table[pos], table[neg], users, mask)
    for b in range(users.shape[0]):
        t = table.clone().requires_grad_(True)
        u = users[b].clone().requires_grad_(True)
        loss = _user_loss(t[pos[b]], t[neg[b]], u, mask[b])
        grad_t, grad_u = torch.autograd.grad(loss, (t, u))
        mine = torch.zeros_like(table)
        mine.index_add_(0, pos[b], g_pos[b])
        mine.index_add_(0, neg[b], g_neg[b])
        torch.testing.assert_close(mine, grad_t, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(g_user[b], grad_u, rtol=1e-5, atol=1e-6)
        # the gathered rows are distinct items, so their norm is the full gradient's norm
        gathered = torch.sqrt(g_pos[b].pow(2).sum() + g_neg[b].pow(2).sum())
        torch.testing.assert_close(gathered, torch.linalg.norm(grad_t))


def test_clipping_bounds_each_users_contribution():
    table, users, pos, neg, mask = _triples(B=6)
    C = 0.01  # below every user's gradient norm: every user is clipped
    _, _, norms = clip_per_user(*per_user_gradients(table[pos], table[neg], users, mask)[:2], C)
    assert (norms > C).all()
    summed, _, _ = clipped_gradient_sum(table, users, pos, neg, mask, C)
    for b in range(users.shape[0]):
        keep = [i for i in range(users.shape[0]) if i != b]
        without, _, _ = clipped_gradient_sum(
            table, users[keep], pos[keep], neg[keep], mask[keep], C
        )
        alone, _, _ = clipped_gradient_sum(
            table, users[b : b + 1], pos[b : b + 1], neg[b : b + 1], mask[b : b + 1], C
        )
        assert float(torch.linalg.norm(summed - without)) <= C * (1 + 1e-5)
        assert float(torch.linalg.norm(alone)) == pytest.approx(C, rel=1e-4)


def test_clip_leaves_small_gradients_alone():
    g = torch.full((2, 1, 3), 0.01)
    p, _, norms = clip_per_user(g, torch.zeros_like(g), 1.0)
    torch.testing.assert_close(p, g)
    assert (norms < 1).all()


def test_negatives_are_distinct_and_outside_the_history():
    gen = torch.Generator().manual_seed(0)
    hist = torch.rand(50, 20, generator=gen) < 0.4
    items, ok = sample_distinct_negatives(hist, 8, gen)
    for b in range(50):
        row = items[b]
        assert row.unique().numel() == 8
        assert not hist[b, row[ok[b]]].any()
        assert int(ok[b].sum()) == min(8, int((~hist[b]).sum()))


def test_epsilon_of_the_run_equals_dpsgd_epsilon(data):
    model = DPBPR(epsilon=None, noise_multiplier=1.3, delta=1e-5, random_state=0, **FAST)
    acc = PrivacyAccountant(epsilon=100.0, delta=1e-5, composition="rdp")
    model.fit(data, catalogue=data.items, accountant=acc)
    expected = dpsgd_epsilon(1.3, FAST["sample_rate"], model.steps_, 1e-5)
    assert model.steps_ == math.ceil(FAST["epochs"] / FAST["sample_rate"])
    assert model.epsilon_ == pytest.approx(expected, rel=1e-9)
    assert acc.spent[0] == pytest.approx(expected, rel=1e-6)
    basic = PrivacyAccountant(epsilon=100.0, delta=1e-4)
    DPBPR(epsilon=None, noise_multiplier=1.3, delta=1e-5, random_state=0, **FAST).fit(
        data, accountant=basic, catalogue=data.items
    )
    assert basic.spent == (pytest.approx(expected, rel=1e-6), 1e-5)


def test_target_epsilon_is_met(data):
    model = DPBPR(epsilon=3.0, delta=1e-5, random_state=0, **FAST).fit(data, catalogue=data.items)
    assert model.epsilon_ <= 3.0
    assert model.epsilon_ == pytest.approx(3.0, rel=1e-2)
    assert model.noise_multiplier_ > 0 and model.epsilon_spent_ == model.epsilon_


def test_overspend_raises_before_training(data, monkeypatch):
    import avrec.privacy._dpsgd as dpsgd

    calls = []
    real = dpsgd.per_user_gradients
    monkeypatch.setattr(dpsgd, "per_user_gradients", lambda *a: calls.append(1) or real(*a))
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5, composition="rdp")
    model = DPBPR(epsilon=None, noise_multiplier=0.5, delta=1e-5, random_state=0, **FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        model.fit(data, catalogue=data.items, accountant=acc)
    assert calls == [] and acc.releases == []
    with pytest.raises(NotFittedError):
        model.recommend([0])


def test_no_noise_at_epsilon_inf(data):
    model = DPBPR(epsilon=math.inf, random_state=0, **FAST).fit(data, catalogue=data.items)
    assert model.noise_multiplier_ == 0.0 and model.epsilon_ == math.inf
    assert model.delta_ == 0.0


def test_noise_changes_the_item_table_only_through_the_seed(data):
    a = DPBPR(epsilon=None, noise_multiplier=2.0, random_state=1, **FAST).fit(
        data, catalogue=data.items
    )
    b = DPBPR(epsilon=None, noise_multiplier=2.0, random_state=1, **FAST).fit(
        data, catalogue=data.items
    )
    c = DPBPR(epsilon=None, noise_multiplier=0.0, random_state=1, **FAST).fit(
        data, catalogue=data.items
    )
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert not np.allclose(a.item_factors_, c.item_factors_)


def test_fold_in_is_per_user(data):
    model = DPBPR(epsilon=None, noise_multiplier=1.0, random_state=0, **FAST).fit(
        data, catalogue=data.items
    )
    hist = data.matrix[:6]
    together = model.score_items(X=hist)
    for u in range(6):
        np.testing.assert_allclose(model.score_items(X=hist[u]), together[u : u + 1], rtol=1e-5)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epsilon": None}, "exactly one"),
        ({"epsilon": 1.0, "noise_multiplier": 1.0}, "exactly one"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"delta": 0.0}, "delta"),
        ({"max_items_per_user": 0}, "max_items_per_user"),
    ],
)
def test_bad_parameters(data, params, match):
    kw = {**FAST, **params}
    with pytest.raises(ConfigurationError, match=match):
        DPBPR(**kw).fit(data, catalogue=data.items)
