"""DP models that stay private: saved state, fresh noise, accounting and a public catalogue."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions, block_item_features
from scipy import stats

import avrec.privacy._dpbpr as dpbpr_module
from avrec.data import Interactions
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.privacy import (
    DPBPR,
    DPEASE,
    DPVBPR,
    DPItemKNN,
    PrivacyAccountant,
    bound_contributions,
    discrete_gaussian,
    dp_item_cooccurrence,
    dpsgd_epsilon,
    estimate_epsilon,
    gaussian_mechanism,
    laplace_mechanism,
    randomized_response,
)
from avrec.privacy._dpsgd import noisy_gradient
from avrec.privacy._releases import bounded_gram

torch.set_num_threads(1)

SGD = {
    "factors": 4,
    "epsilon": None,
    "noise_multiplier": 1.0,
    "sample_rate": 0.5,
    "epochs": 4,
    "max_items_per_user": 10,
    "learning_rate": 0.05,
    "device": "cpu",
    "verbose": False,
}

#: Exactly what each saved DP model may contain: its release, the public catalogue.
RELEASED = {
    DPItemKNN: {"similarity_", "shrinkage_", "epsilon_spent_", "delta_spent_"},
    DPEASE: {"weights_", "epsilon_spent_", "delta_spent_"},
    DPBPR: {
        "item_factors_",
        "item_bias_",
        "noise_multiplier_",
        "sample_rate_",
        "steps_",
        "epsilon_",
        "delta_",
        "epsilon_spent_",
        "delta_spent_",
    },
}
RELEASED[DPVBPR] = RELEASED[DPBPR] | {
    "projection_",
    "feature_bias_",
    "item_features_",
    "feature_mean_",
    "feature_scale_",
    "item_content_factors_",
    "item_content_bias_",
}
PUBLIC = {"items_", "n_items_"}
MODELS = {
    DPItemKNN: {"k": 10, "epsilon": 4.0, "max_items_per_user": 10},
    DPEASE: {"l2": 10.0, "epsilon": 4.0, "max_items_per_user": 10},
    DPBPR: SGD,
    DPVBPR: {**SGD, "content_factors": 2},
}


@pytest.fixture(scope="module")
def data():
    return block_interactions(n_users=40, n_items=24)


def _fit(cls, data, **extra):
    kwargs = {"catalogue": data.items}
    if cls is DPVBPR:
        kwargs["item_features"] = block_item_features(n_items=data.n_items)
    return cls(**{**MODELS[cls], "random_state": 0, **extra}).fit(data, **kwargs)


# ------------------------------------------------------------------ saved models
@pytest.mark.parametrize("cls", list(MODELS), ids=lambda c: c.__name__)
def test_saved_dp_model_holds_only_its_release(cls, data, tmp_path):
    model = _fit(cls, data)
    assert hasattr(model, "train_matrix_") and model.n_users_ == data.n_users  # in memory
    model.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "params.json").read_text())
    assert set(doc["state"]) == RELEASED[cls] | PUBLIC
    with np.load(tmp_path / "m" / "state.npz") as arrays:
        names = {name.split("/")[0].split(".")[0] for name in arrays.files}
    assert names <= RELEASED[cls] | PUBLIC
    for private in ("train_matrix_", "users_", "n_users_", "user_factors_", "loss_history_"):
        assert not any(private in name for name in names), private
    loaded = cls.load(tmp_path / "m")
    assert not hasattr(loaded, "train_matrix_") and not hasattr(loaded, "n_users_")
    assert loaded.items_ == data.items
    # a user is scored from their own history, exactly as the fitted model scores it
    hist = data.matrix[:5]
    np.testing.assert_array_equal(loaded.score_items(X=hist), model.score_items(X=hist))
    idx, _ = loaded.recommend(k=3, X=hist)
    assert not np.isin(idx[0], hist[0].indices).any()
    with pytest.raises(DataValidationError, match="pass X="):
        loaded.recommend([0])
    with pytest.raises(DataValidationError, match="pass X="):
        loaded.predict([[0, 0]])


# ------------------------------------------------------------------ fresh noise
def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_gaussian_releases_under_one_seed_draw_independent_noise():
    n = 20_000
    x = np.random.default_rng(1).normal(size=n) * 10
    y1 = gaussian_mechanism(x, 1.0, 0.5, 1e-5, random_state=7)
    y2 = gaussian_mechanism(x, 1.0, 2.0, 1e-5, random_state=7)
    z1, z2 = y1 - x, y2 - x
    assert abs(_corr(z1, z2)) < 0.04  # ~0: 5.7 standard errors of r at n=20,000
    # with shared noise z2 = (s2 / s1) z1 and x = (s2 y1 - s1 y2) / (s2 - s1) exactly
    s1, s2 = z1.std(), z2.std()
    recovered = (s2 * y1 - s1 * y2) / (s2 - s1)
    assert np.abs(recovered - x).mean() > 1.0


@pytest.mark.parametrize(
    "release",
    [
        lambda v, seed: laplace_mechanism(v, 1.0, 1.0, random_state=seed),
        lambda v, seed: gaussian_mechanism(v, 1.0, 1.0, 1e-5, random_state=seed),
        lambda v, seed: discrete_gaussian(v.astype(np.int64), 1.0, 1.0, 1e-5, random_state=seed),
    ],
    ids=["laplace", "gaussian", "discrete_gaussian"],
)
def test_neighbouring_inputs_under_one_seed_draw_independent_noise(release):
    """Monday's and Tuesday's counts (one user more) must not share noise: it would cancel."""
    n = 20_000
    monday = np.zeros(n)
    tuesday = monday.copy()
    tuesday[0] = 1.0
    z1 = release(monday, 3) - monday
    z2 = release(tuesday, 3) - tuesday
    assert abs(_corr(z1, z2)) < 0.04
    # an identical release repeats exactly (it reveals nothing new; runs stay reproducible)
    np.testing.assert_array_equal(release(monday, 3) - monday, z1)


def test_default_random_state_is_the_secure_source(monkeypatch):
    import os

    calls = []
    real = os.urandom

    def spy(n):
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", spy)
    laplace_mechanism(np.zeros(4), 1.0, 1.0)
    gaussian_mechanism(np.zeros(4), 1.0, 1.0, 1e-5)
    assert len(calls) >= 2


def test_cooccurrence_releases_of_neighbouring_logs_draw_independent_noise():
    X = block_interactions(n_users=60, n_items=40).matrix
    Xn = X[1:]  # one user fewer
    kw = {"max_items_per_user": 5, "mechanism": "gaussian", "random_state": 0}
    G1 = dp_item_cooccurrence(X, 2.0, 1e-5, **kw)
    G2 = dp_item_cooccurrence(Xn, 2.0, 1e-5, **kw)
    iu = np.triu_indices(40)
    # the bounding uses the seeded generator itself: the same users keep the same items
    E1 = bounded_gram(bound_contributions(X, 5, random_state=0))
    E2 = bounded_gram(bound_contributions(Xn, 5, random_state=0))
    assert abs(_corr((G1 - E1)[iu], (G2 - E2)[iu])) < 0.2  # 820 entries: ~5.7 std errors


def test_dpsgd_releases_draw_their_own_noise(data, monkeypatch):
    """Two fits with one int seed share noise only if they are the identical release."""
    first_draws = []
    real = dpbpr_module.noisy_gradient

    def spy(summed, sigma, C, normaliser, rng):
        if not first_draws or first_draws[-1][0] is not rng:  # keeps rng alive: no id reuse
            first_draws.append((rng, rng.bit_generator.state["state"]["state"]))
        return real(summed, sigma, C, normaliser, rng)

    monkeypatch.setattr(dpbpr_module, "noisy_gradient", spy)
    _fit(DPBPR, data)
    _fit(DPBPR, data, noise_multiplier=2.0)
    _fit(DPBPR, data.subset(users=np.arange(1, data.n_users)))
    _fit(DPBPR, data)
    states = [s for _, s in first_draws]
    assert len(states) == 4
    assert len(set(states[:3])) == 3 and states[3] == states[0]


# ------------------------------------------------------------------ DP-SGD noise scale
def test_dpsgd_noise_has_scale_sigma_c_over_the_expected_batch():
    sigma, C, normaliser = 1.7, 0.6, 12.5
    true_scale = sigma * C / normaliser
    out = noisy_gradient(torch.zeros(20_000), sigma, C, normaliser, np.random.default_rng(0))
    sample = out.numpy().astype(np.float64)
    assert stats.kstest(sample, "norm", args=(0, true_scale)).pvalue > 1e-3
    for wrong in (0.7, 1.3):  # the test has the power to see a 30 % error either way
        assert stats.kstest(sample, "norm", args=(0, wrong * true_scale)).pvalue < 1e-6


@pytest.mark.parametrize("public_n_users", [None, 100])
def test_dpbpr_adds_that_noise_with_the_public_normaliser(data, monkeypatch, public_n_users):
    """The noise DPBPR really adds, recovered from its update: N(0, (sigma C)^2) per entry."""
    seen = []
    real = dpbpr_module.noisy_gradient

    def spy(summed, sigma, C, normaliser, rng):
        out = real(summed, sigma, C, normaliser, rng)
        seen.append((sigma, C, normaliser, (out * normaliser - summed).numpy().ravel()))
        return out

    monkeypatch.setattr(dpbpr_module, "noisy_gradient", spy)
    model = _fit(
        DPBPR,
        data,
        noise_multiplier=1.3,
        max_grad_norm=0.5,
        epochs=20,
        public_n_users=public_n_users,
    )
    n = data.n_users if public_n_users is None else public_n_users
    assert len(seen) == model.steps_
    assert {(s, c, z) for s, c, z, _ in seen} == {(1.3, 0.5, 0.5 * n)}
    noise = np.concatenate([z for *_, z in seen]).astype(np.float64)
    assert stats.kstest(noise, "norm", args=(0, 0.65)).pvalue > 1e-3
    for wrong in (0.7, 1.3):
        assert stats.kstest(noise, "norm", args=(0, wrong * 0.65)).pvalue < 1e-6


# ------------------------------------------------------------------ accounting
def test_randomized_response_charges_every_bit_a_user_owns():
    acc = PrivacyAccountant(epsilon=100.0)
    randomized_response(np.zeros((50, 8), dtype=int), 0.5, accountant=acc, random_state=0)
    assert acc.spent == (pytest.approx(4.0), 0.0)  # 8 bits per user at 0.5 each
    randomized_response(np.zeros(6, dtype=int), 0.5, accountant=acc, random_state=0)
    assert acc.spent[0] == pytest.approx(7.0)  # a 1-d array: one user's 6 bits
    small = PrivacyAccountant(epsilon=3.0)
    with pytest.raises(Exception, match="budget exceeded"):
        randomized_response(np.zeros((2, 8), dtype=int), 0.5, accountant=small)
    assert small.spent == (0.0, 0.0)


@pytest.mark.parametrize("cls", [DPItemKNN, DPEASE])
@pytest.mark.parametrize(
    ("mechanism", "spends_delta"),
    [("laplace", False), ("discrete_laplace", False), ("gaussian", True)],
)
def test_delta_spent_is_zero_for_the_laplace_mechanisms(cls, mechanism, spends_delta, data):
    acc = PrivacyAccountant(epsilon=10.0, delta=1e-3)
    params = {"max_items_per_user": 3} if "laplace" in mechanism else {}
    model = cls(epsilon=4.0, delta=1e-5, mechanism=mechanism, random_state=0, **params)
    model.fit(data, accountant=acc, catalogue=data.items)
    expected = 1e-5 if spends_delta else 0.0
    assert model.delta_spent_ == expected and acc.spent[1] == pytest.approx(expected)


# ------------------------------------------------------------------ public catalogue
def test_interactions_need_a_public_catalogue(data):
    with pytest.raises(ConfigurationError, match="catalogue"):
        DPItemKNN(epsilon=4.0).fit(data)


def test_the_catalogue_not_the_log_decides_the_items():
    catalogue = ["a", "b", "c", "d"]
    lone = Interactions.from_arrays(["u1", "u2", "u3"], ["a", "b", "d"], np.ones(3))
    without = Interactions.from_arrays(["u1", "u2"], ["a", "b"], np.ones(2))
    for log in (lone, without):  # whether "d" has its one listener does not show in the shape
        model = DPItemKNN(k=2, epsilon=4.0, max_items_per_user=2, random_state=0)
        model.fit(log, catalogue=catalogue)
        assert model.items_.ids.tolist() == catalogue and model.n_items_ == 4
    outside = Interactions.from_arrays(["u1", "u2"], ["a", "zz"], np.ones(2))
    model = DPEASE(l2=5.0, epsilon=4.0, max_items_per_user=2, random_state=0)
    model.fit(outside, catalogue=catalogue)  # items outside the catalogue are dropped
    assert model.n_items_ == 4 and model.train_matrix_.nnz == 1
    with pytest.raises(DataValidationError, match="catalogue has 4 items"):
        DPEASE(l2=5.0).fit(sp.csr_matrix(np.ones((3, 5))), catalogue=catalogue)
    with pytest.raises(ConfigurationError, match="catalogue must be"):
        DPEASE(l2=5.0).fit(outside, catalogue="abcd")


# ------------------------------------------------------------------ empirical audits
#: Neighbouring logs on a two-item catalogue: d1 adds a user who played item 0.
D0 = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.float32))
D1 = sp.csr_matrix(np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32))


@pytest.mark.parametrize(("release_eps", "n", "caught"), [(1.0, 1500, False), (8.0, 300, True)])
def test_estimate_epsilon_audits_dp_item_cooccurrence(release_eps, n, caught):
    """Claimed epsilon = 1; a release that really runs at 8 (too little noise) is caught."""

    def mechanism(d, size, rng):
        return np.array(
            [
                dp_item_cooccurrence(
                    d, release_eps, max_items_per_user=1, mechanism="laplace", random_state=rng
                )[0, 0]
                for _ in range(size)
            ]
        )

    est = estimate_epsilon(
        mechanism, D0, D1, n, bins=np.arange(-3.5, 6.0), min_count=50, random_state=0
    )
    if caught:
        assert est.lower_bound > 1.0
    else:
        assert est.lower_bound <= 1.0 and est.epsilon > 0.3  # sees the user, within the claim


@pytest.mark.parametrize(
    ("noise_multiplier", "n", "caught"), [(2.0, 400, False), (0.05, 200, True)]
)
def test_estimate_epsilon_audits_a_dpbpr_step(monkeypatch, noise_multiplier, n, caught):
    """Each DPBPR step releases a noisy clipped gradient sum; audit its item-0 bias entry.

    With a frozen table (learning rate 1e-12, no user updates) and sampling rate 1 every
    step is an independent run of the same Gaussian mechanism, whose guarantee is one
    step's: ``dpsgd_epsilon(2.0, 1, 1, 1e-5)``. The same audit catches a run whose noise
    is 40x too small for that claim.
    """
    outputs = []
    real = dpbpr_module.noisy_gradient

    def spy(summed, sigma, C, normaliser, rng):
        out = real(summed, sigma, C, normaliser, rng)
        outputs.append(float(out[0, -1]) * normaliser)
        return out

    monkeypatch.setattr(dpbpr_module, "noisy_gradient", spy)
    kw = {
        "factors": 2,
        "epsilon": None,
        "noise_multiplier": noise_multiplier,
        "sample_rate": 1.0,
        "max_items_per_user": 1,
        "learning_rate": 1e-12,
        "user_learning_rate": 0.0,
        "public_n_users": 2,
        "device": "cpu",
        "verbose": False,
    }

    def mechanism(d, size, rng):
        outputs.clear()
        DPBPR(epochs=size, random_state=rng, **kw).fit(d)
        return np.array(outputs)

    claimed = dpsgd_epsilon(2.0, 1.0, 1, 1e-5)
    edges = np.linspace(-3, 3, 13) * noise_multiplier
    est = estimate_epsilon(mechanism, D0[1:], D1[1:], n, bins=edges, min_count=20, random_state=0)
    if caught:
        assert est.lower_bound > claimed
    else:
        assert est.lower_bound <= claimed
