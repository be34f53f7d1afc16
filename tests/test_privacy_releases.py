"""Contribution bounding and the DP releases of item counts and item co-occurrences."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions

from avrec.data import Interactions
from avrec.exceptions import ConfigurationError, PrivacyBudgetExceeded
from avrec.privacy import (
    PrivacyAccountant,
    bound_contributions,
    cooccurrence_sensitivity,
    discrete_gaussian_sigma,
    dp_item_cooccurrence,
    dp_item_popularity,
    gaussian_sigma,
    popularity_sensitivity,
)
from avrec.privacy._releases import bounded_gram

torch.set_num_threads(1)


def random_matrix(n_users=40, n_items=12, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.integers(1, 5, (n_users, n_items))
    return sp.csr_matrix(dense.astype(np.float32))


# ---------------------------------------------------------------------- bounding
class TestBoundContributions:
    def test_keeps_at_most_m_per_user_from_the_user_own_items(self):
        X = random_matrix()
        B = bound_contributions(X, 3, random_state=0)
        counts = np.diff(B.indptr)
        assert counts.max() <= 3
        np.testing.assert_array_equal(counts, np.minimum(np.diff(X.indptr), 3))
        assert ((B.toarray() > 0) <= (X.toarray() > 0)).all()  # a subset of each row
        assert set(B.data.tolist()) == {1.0}

    def test_deterministic_with_seed_and_varies_across_seeds(self):
        X = random_matrix()
        a = bound_contributions(X, 2, random_state=7)
        b = bound_contributions(X, 2, random_state=7)
        c = bound_contributions(X, 2, random_state=8)
        assert (a != b).nnz == 0
        assert (a != c).nnz > 0

    def test_sampling_is_uniform_within_a_user(self):
        X = sp.csr_matrix(np.ones((1, 4), dtype=np.float32))
        kept = sum(bound_contributions(X, 2, random_state=s).toarray()[0] for s in range(2000))
        np.testing.assert_allclose(kept / 2000, 0.5, atol=0.05)

    def test_rows_under_the_bound_are_kept_whole_and_weights_clipped(self):
        X = sp.csr_matrix(np.array([[3.0, 0.5, 0, 0], [0, 0, 2.0, 0]], dtype=np.float32))
        B = bound_contributions(X, 5, max_weight=1.0, random_state=0)
        np.testing.assert_array_equal(B.toarray(), np.minimum(X.toarray(), 1.0))

    def test_interactions_in_interactions_out(self):
        data = block_interactions()
        B = bound_contributions(data, 4, random_state=0)
        assert isinstance(B, Interactions)
        assert B.users == data.users and B.items == data.items
        assert np.diff(B.matrix.indptr).max() <= 4
        assert B.timestamps is not None and B.timestamps.size == B.nnz

    @pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
    def test_bad_bound(self, bad):
        with pytest.raises(ConfigurationError, match="max_items_per_user"):
            bound_contributions(random_matrix(), bad)


# ---------------------------------------------------------------------- sensitivity
def _upper(G):
    return G[np.triu_indices(G.shape[0])]


@pytest.mark.parametrize("m", [1, 2, 3, 5])
def test_cooccurrence_sensitivity_by_brute_force(m):
    """Max over neighbouring datasets (one user removed) of the change, vs the formula.

    The removed user can hold any set of at most ``m`` of the ``n`` items after
    bounding (and any raw row bounds to one of these), so enumerating every such
    set on top of a fixed dataset gives the exact maximum.
    """
    n_items = 6
    rest = bound_contributions(random_matrix(10, n_items, 0.5, seed=m), m, random_state=0)
    base = _upper(bounded_gram(rest))
    l1 = l2 = pop_l1 = pop_l2 = 0.0
    for c in range(1, min(m, n_items) + 1):
        for items in itertools.combinations(range(n_items), c):
            row = np.zeros((1, n_items), dtype=np.float32)
            row[0, list(items)] = 1
            with_user = sp.vstack([rest, sp.csr_matrix(row)]).tocsr()
            diff = _upper(bounded_gram(with_user)) - base
            l1, l2 = max(l1, np.abs(diff).sum()), max(l2, np.sqrt((diff**2).sum()))
            pop = np.asarray(with_user.sum(0) - rest.sum(0)).ravel()
            pop_l1, pop_l2 = max(pop_l1, np.abs(pop).sum()), max(pop_l2, np.sqrt((pop**2).sum()))
    sens = cooccurrence_sensitivity(m, n_items)
    assert l1 == sens["l1"] and l2 == pytest.approx(sens["l2"], rel=1e-12)
    assert sens["l1"] == min(m, n_items) * (min(m, n_items) + 1) / 2
    pop_sens = popularity_sensitivity(m, n_items)
    assert pop_l1 == pop_sens["l1"] and pop_l2 == pytest.approx(pop_sens["l2"], rel=1e-12)


def test_sensitivity_is_capped_by_the_catalogue():
    assert cooccurrence_sensitivity(50, 4) == cooccurrence_sensitivity(4)
    assert popularity_sensitivity(50, 4)["l1"] == 4.0


# ---------------------------------------------------------------------- noise scale
def _discrete_laplace_std(scale: float) -> float:
    p = math.exp(-1 / scale)
    return math.sqrt(2 * p / (1 - p) ** 2)


def _popularity_noise(mechanism, eps, delta, m, reps=4, n_items=500):
    X = sp.csr_matrix(np.eye(n_items, dtype=np.float32)[np.arange(3 * n_items) % n_items])
    exact = np.asarray(X.sum(0)).ravel().astype(np.int64)  # 1 item per user: all kept
    noise = [
        dp_item_popularity(
            X, eps, max_items_per_user=m, mechanism=mechanism, delta=delta, random_state=s
        )
        - exact
        for s in range(reps)
    ]
    return np.concatenate(noise)


@pytest.mark.parametrize(
    ("mechanism", "expected"),
    [
        ("laplace", lambda eps, d, m: math.sqrt(2) * m / eps),
        ("gaussian", lambda eps, d, m: gaussian_sigma(eps, d, math.sqrt(m))),
        ("discrete_laplace", lambda eps, d, m: _discrete_laplace_std(m / eps)),
        ("discrete_gaussian", lambda eps, d, m: discrete_gaussian_sigma(eps, d, math.sqrt(m))),
    ],
)
def test_popularity_noise_std_matches_calibration(mechanism, expected):
    eps, delta, m = 1.0, 1e-5, 4
    noise = _popularity_noise(mechanism, eps, delta, m)
    assert abs(noise.mean()) < 0.15 * expected(eps, delta, m)
    assert noise.std() == pytest.approx(expected(eps, delta, m), rel=0.08)
    if mechanism.startswith("discrete"):
        assert np.issubdtype(noise.dtype, np.integer)


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian", "discrete_laplace"])
def test_cooccurrence_noise_std_matches_calibration(mechanism):
    eps, delta, m, n_items = 2.0, 1e-5, 3, 40
    X = block_interactions(n_users=30, n_items=n_items).matrix
    sens = cooccurrence_sensitivity(m, n_items)
    expected = {
        "laplace": math.sqrt(2) * sens["l1"] / eps,
        "gaussian": gaussian_sigma(eps, delta, sens["l2"]),
        "discrete_laplace": _discrete_laplace_std(sens["l1"] / eps),
    }[mechanism]
    noise = []
    for s in range(3):
        # a Generator is used first for the bounding, so the same seed rebuilds the subset
        G = dp_item_cooccurrence(
            X,
            eps,
            delta,
            max_items_per_user=m,
            mechanism=mechanism,
            random_state=np.random.default_rng(s),
        )
        exact = bounded_gram(bound_contributions(X, m, random_state=np.random.default_rng(s)))
        assert (G == G.T).all()
        noise.append(_upper(G - exact))
    noise = np.concatenate(noise)
    assert abs(noise.mean()) < 0.1 * expected
    assert noise.std() == pytest.approx(expected, rel=0.1)


def test_cooccurrence_symmetric_and_noise_independent_in_the_triangle():
    X = block_interactions(n_users=30, n_items=30).matrix
    G = dp_item_cooccurrence(
        X, 1.0, 1e-5, max_items_per_user=4, mechanism="gaussian", random_state=0
    )
    assert (G == G.T).all()
    iu = np.triu_indices(30, 1)
    # off-diagonal noise is not doubled: its spread is the calibrated sigma, not 2x
    exact = bounded_gram(bound_contributions(X, 4, random_state=np.random.default_rng(0)))
    sigma = gaussian_sigma(1.0, 1e-5, cooccurrence_sensitivity(4, 30)["l2"])
    assert (G - exact)[iu].std() == pytest.approx(sigma, rel=0.15)


def test_epsilon_inf_is_the_exact_gram_of_the_bounded_data():
    X = random_matrix()
    G = dp_item_cooccurrence(X, math.inf, max_items_per_user=3, random_state=0)
    B = bound_contributions(X, 3, random_state=0)
    np.testing.assert_array_equal(G, (B.T @ B).toarray())
    np.testing.assert_array_equal(np.diagonal(G), np.asarray(B.sum(0)).ravel())


# ---------------------------------------------------------------------- budget
@pytest.mark.parametrize("release", ["popularity", "cooccurrence"])
def test_overspend_raises_before_any_release(release, monkeypatch):
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5)
    acc.spend(0.8)
    drawn = []
    import avrec.privacy._counts as counts

    real = counts.sample_discrete_laplace
    monkeypatch.setattr(
        counts, "sample_discrete_laplace", lambda *a, **k: drawn.append(1) or real(*a, **k)
    )
    X = random_matrix()
    with pytest.raises(PrivacyBudgetExceeded):
        if release == "popularity":
            dp_item_popularity(X, 0.5, max_items_per_user=3, accountant=acc, random_state=0)
        else:
            dp_item_cooccurrence(X, 0.5, max_items_per_user=3, accountant=acc, random_state=0)
    assert drawn == []
    assert acc.spent == (0.8, 0.0) and len(acc.releases) == 1
    dp_item_popularity(X, 0.2, max_items_per_user=3, accountant=acc, random_state=0)
    assert drawn == [1] and acc.spent[0] == pytest.approx(1.0)


def test_gaussian_release_charges_delta():
    acc = PrivacyAccountant(epsilon=2.0, delta=1e-5)
    dp_item_cooccurrence(
        random_matrix(), 1.0, 1e-6, max_items_per_user=3, mechanism="gaussian", accountant=acc
    )
    assert acc.spent == (1.0, 1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"mechanism": "gaussian"}, "delta > 0"),
        ({"mechanism": "exponential"}, "mechanism"),
        ({"delta": 1.5, "mechanism": "gaussian"}, "delta"),
        ({"max_items_per_user": 0}, "max_items_per_user"),
    ],
)
def test_bad_release_parameters(kwargs, match):
    args = {"epsilon": 1.0, "max_items_per_user": 3, **kwargs}
    eps = args.pop("epsilon")
    with pytest.raises(ConfigurationError, match=match):
        dp_item_cooccurrence(random_matrix(), eps, **args)
    with pytest.raises(ConfigurationError, match=match):
        dp_item_popularity(random_matrix(), eps, **args)
