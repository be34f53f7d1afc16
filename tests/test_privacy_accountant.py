"""PrivacyAccountant and RDP analysis against formulas and published reference values."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from scipy import stats

from avrec.exceptions import ConfigurationError, PrivacyBudgetExceeded
from avrec.privacy import (
    DEFAULT_RDP_ORDERS,
    PrivacyAccountant,
    PrivacyRelease,
    dpsgd_epsilon,
    dpsgd_noise_multiplier,
    gaussian_rdp,
    gaussian_sigma,
    rdp_to_epsilon,
)

# ----------------------------------------------------------------- basic composition


def test_basic_composition_sums_and_reports_remaining():
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5)
    acc.spend(0.25, mechanism="laplace", note="a")
    acc.spend(0.25, 2e-6, mechanism="gaussian")
    assert acc.spent == pytest.approx((0.5, 2e-6))
    assert acc.remaining == pytest.approx((0.5, 8e-6))
    assert [r.mechanism for r in acc.releases] == ["laplace", "gaussian"]
    assert isinstance(acc.releases[0], PrivacyRelease) and acc.releases[0].note == "a"


def test_overspend_raises_before_recording_with_a_clear_message():
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-6)
    acc.spend(0.8)
    assert acc.can_spend(0.2) and not acc.can_spend(0.3)
    assert not acc.can_spend(0.1, 1e-5)
    with pytest.raises(PrivacyBudgetExceeded) as info:
        acc.spend(0.3, mechanism="laplace")
    msg = str(info.value)
    assert "requested (epsilon=0.3" in msg and "spent (epsilon=0.8" in msg
    assert "budget (epsilon=1" in msg
    with pytest.raises(PrivacyBudgetExceeded, match="delta=1e-05"):
        acc.spend(0.1, 1e-5)
    assert len(acc.releases) == 1 and acc.spent == (0.8, 0.0)
    acc.spend(0.2)  # exactly the rest is allowed
    assert acc.remaining == pytest.approx((0.0, 1e-6))


def test_releases_is_a_copy():
    acc = PrivacyAccountant(epsilon=1.0)
    acc.spend(0.1)
    acc.releases.clear()
    assert len(acc.releases) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epsilon": 0.0}, "epsilon"),
        ({"epsilon": math.inf}, "epsilon"),
        ({"epsilon": 1.0, "delta": 1.0}, "delta"),
        ({"epsilon": 1.0, "delta": -0.1}, "delta"),
        ({"epsilon": 1.0, "composition": "fancy"}, "composition"),
        ({"epsilon": 1.0, "delta": 1e-5, "slack_delta": 1e-4}, "slack_delta"),
        ({"epsilon": 1.0, "composition": "rdp", "orders": [0.5, 2.0]}, "orders"),
    ],
)
def test_bad_budgets_are_named(kwargs, match):
    with pytest.raises(ConfigurationError, match=match):
        PrivacyAccountant(**kwargs)


def test_bad_spends_are_named():
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5)
    with pytest.raises(ConfigurationError, match="epsilon"):
        acc.spend(-1.0)
    with pytest.raises(ConfigurationError, match="delta"):
        acc.spend(0.1, 1.5)
    with pytest.raises(ConfigurationError, match="noise_multiplier"):
        acc.spend_gaussian(0.0, delta=1e-6)
    with pytest.raises(ConfigurationError, match="sample_rate"):
        acc.spend_gaussian(1.0, sample_rate=1.5, delta=1e-6)
    with pytest.raises(ConfigurationError, match="steps"):
        acc.spend_gaussian(1.0, steps=0, delta=1e-6)
    assert acc.releases == []


def test_concurrent_spending_never_overspends():
    acc = PrivacyAccountant(epsilon=1.0)
    refused = []

    def worker():
        for _ in range(50):
            try:
                acc.spend(0.01)
            except PrivacyBudgetExceeded:
                refused.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(acc.releases) == 100 and len(refused) == 100
    assert acc.spent[0] == pytest.approx(1.0)


# -------------------------------------------------------------- advanced composition


def test_advanced_composition_matches_the_drv_formula():
    eps, k, slack = 0.1, 100, 1e-6
    acc = PrivacyAccountant(epsilon=100.0, delta=1e-5, composition="advanced", slack_delta=slack)
    for _ in range(k):
        acc.spend(eps, 1e-9)
    expected = math.sqrt(2 * k * math.log(1 / slack)) * eps + k * eps * math.expm1(eps)
    assert expected < k * eps  # better than basic here
    assert acc.spent == pytest.approx((expected, k * 1e-9 + slack))


def test_advanced_composition_falls_back_to_basic_when_that_is_better():
    acc = PrivacyAccountant(epsilon=10.0, delta=1e-5, composition="advanced")
    acc.spend(1.0)
    acc.spend(1.0)
    assert acc.spent == (2.0, 0.0)


def test_advanced_composition_allows_what_basic_refuses():
    basic = PrivacyAccountant(epsilon=5.0, delta=1e-5)
    advanced = PrivacyAccountant(epsilon=5.0, delta=1e-5, composition="advanced")
    while basic.can_spend(0.1):
        basic.spend(0.1)
    while advanced.can_spend(0.1):
        advanced.spend(0.1)

    def drv(k):  # default slack: delta / 2
        return math.sqrt(2 * k * math.log(2e5)) * 0.1 + k * 0.1 * math.expm1(0.1)

    k = len(advanced.releases)
    assert len(basic.releases) == 50 and k > 50
    assert drv(k) <= 5.0 < drv(k + 1)
    assert advanced.spent == pytest.approx((drv(k), 5e-6))
    with pytest.raises(PrivacyBudgetExceeded):
        advanced.spend(0.1)


def test_advanced_composition_heterogeneous_epsilons():
    acc = PrivacyAccountant(epsilon=100.0, delta=1e-5, composition="advanced", slack_delta=1e-6)
    epsilons = [0.05] * 200 + [0.2] * 50
    for e in epsilons:
        acc.spend(e)
    e = np.array(epsilons)
    expected = math.sqrt(2 * math.log(1e6) * np.sum(e**2)) + np.sum(e * np.expm1(e))
    assert acc.spent[0] == pytest.approx(expected)


# ------------------------------------------------------------------- RDP analysis


def test_gaussian_rdp_is_alpha_over_two_sigma_squared():
    orders = np.array([1.5, 2.0, 10.0, 32.0, 256.0])
    np.testing.assert_allclose(gaussian_rdp(1.7, orders), orders / (2 * 1.7**2))
    np.testing.assert_allclose(gaussian_rdp(1.7, orders, steps=5), 5 * orders / (2 * 1.7**2))


def test_subsampled_gaussian_rdp_integer_order_matches_direct_sum():
    q, sigma, alpha = 0.05, 1.3, 7
    # Mironov-Talwar-Zhang: A_alpha = sum_i C(alpha, i) (1-q)^(alpha-i) q^i exp((i^2-i)/(2 s^2))
    a = sum(
        math.comb(alpha, i) * (1 - q) ** (alpha - i) * q**i * math.exp((i * i - i) / (2 * sigma**2))
        for i in range(alpha + 1)
    )
    assert gaussian_rdp(sigma, [alpha], sample_rate=q)[0] == pytest.approx(math.log(a) / 6)


def test_subsampled_gaussian_rdp_fractional_order_matches_numerical_integral():
    from scipy import integrate

    q, sigma, alpha = 0.1, 1.0, 2.5
    mu0 = stats.norm(0, sigma).pdf

    def mu(z):
        return (1 - q) * mu0(z) + q * stats.norm(1, sigma).pdf(z)

    val, _ = integrate.quad(lambda z: mu0(z) * (mu(z) / mu0(z)) ** alpha, -30, 30, limit=200)
    assert gaussian_rdp(sigma, [alpha], sample_rate=q)[0] == pytest.approx(
        math.log(val) / (alpha - 1), rel=1e-6
    )


def test_rdp_is_between_neighbours_and_grows_with_sample_rate():
    orders = [2.0, 4.5, 16.0]
    low = gaussian_rdp(1.0, orders, sample_rate=0.01)
    high = gaussian_rdp(1.0, orders, sample_rate=0.1)
    full = gaussian_rdp(1.0, orders)
    assert np.all(low < high) and np.all(high < full)


def test_opacus_docstring_reference_value():
    # opacus/accountants/analysis/rdp.py module example: (0.336, 23) with Balle et al. 2020
    orders = list(range(2, 33))
    rdp = gaussian_rdp(1.0, orders, sample_rate=1e-5, steps=10) + gaussian_rdp(
        3.0, orders, sample_rate=1e-4, steps=4
    )
    eps, order = rdp_to_epsilon(orders, rdp, 1e-5)
    assert round(eps, 3) == 0.336 and order == 23


@pytest.mark.parametrize(
    ("noise", "epochs", "published", "tolerance"),
    [(1.12, 60, 2.92, 0.005), (1.2, 10, 1.20, 0.005), (0.6, 30, 9.74, 0.015)],
)
def test_tf_privacy_mnist_tutorial_table(noise, epochs, published, tolerance):
    # tensorflow/privacy tutorials/README.md ("Select Parameters"): batch 256 of 60,000
    # MNIST examples, delta = 1e-5, orders 1.1..10.9 and 12..63, classic RDP conversion.
    # The first two rows match to two decimals; for the third we get 9.75 (9.7527).
    steps = epochs * 60000 // 256
    eps = dpsgd_epsilon(noise, 256 / 60000, steps, 1e-5, conversion="classic")
    assert abs(eps - published) <= tolerance


def test_tighter_conversion_is_smaller_and_default():
    steps = 60 * 60000 // 256
    classic = dpsgd_epsilon(1.1, 256 / 60000, steps, 1e-5, conversion="classic")
    balle = dpsgd_epsilon(1.1, 256 / 60000, steps, 1e-5)
    assert balle < classic
    assert round(classic, 2) == 3.01  # Abadi et al.'s MNIST setting, sigma=1.1, 60 epochs


def test_noise_multiplier_search_inverts_epsilon():
    q, steps, delta = 0.004, 5000, 1e-5
    sigma = dpsgd_noise_multiplier(2.0, delta, q, steps)
    assert dpsgd_epsilon(sigma, q, steps, delta) <= 2.0
    assert dpsgd_epsilon(sigma * (1 - 1e-3), q, steps, delta) > 2.0


def test_noise_multiplier_search_reports_unreachable_targets():
    with pytest.raises(ConfigurationError, match="target_epsilon"):
        dpsgd_noise_multiplier(0.0, 1e-5, 0.01, 100)


def test_rdp_to_epsilon_validates():
    with pytest.raises(ConfigurationError, match="rdp"):
        rdp_to_epsilon([2.0, 3.0], [0.1], 1e-5)
    with pytest.raises(ConfigurationError, match="conversion"):
        rdp_to_epsilon([2.0], [0.1], 1e-5, conversion="other")
    with pytest.raises(ConfigurationError, match="delta"):
        rdp_to_epsilon([2.0], [0.1], 0.0)
    assert rdp_to_epsilon([2.0], [math.inf], 1e-5)[0] == math.inf


# ------------------------------------------------------------------ analytic Gaussian


def test_analytic_gaussian_matches_balle_and_wang():
    # calibrateAnalyticGaussianMechanism(1.0, 1e-5, 1.0) from Balle & Wang's reference code
    assert gaussian_sigma(1.0, 1e-5, 1.0) == pytest.approx(3.730631634944469, rel=1e-9)


@pytest.mark.parametrize(
    ("eps", "delta", "sens"), [(0.1, 1e-6, 1.0), (1.0, 1e-5, 2.5), (8.0, 1e-9, 1.0)]
)
def test_analytic_gaussian_sigma_is_the_smallest_satisfying_the_exact_condition(eps, delta, sens):
    def exact_delta(sigma):
        a, b = sens / (2 * sigma), eps * sigma / sens
        return stats.norm.cdf(a - b) - math.exp(eps) * stats.norm.cdf(-a - b)

    sigma = gaussian_sigma(eps, delta, sens)
    assert exact_delta(sigma) <= delta * (1 + 1e-9)
    assert exact_delta(sigma * (1 - 1e-6)) > delta
    if eps < 1:
        assert sigma < gaussian_sigma(eps, delta, sens, analytic=False)


def test_classic_gaussian_formula():
    assert gaussian_sigma(0.5, 1e-5, 2.0, analytic=False) == pytest.approx(
        math.sqrt(2 * math.log(1.25e5)) * 2.0 / 0.5
    )


# --------------------------------------------------------------- RDP accountant


def test_rdp_accountant_matches_dpsgd_epsilon():
    q, sigma, steps, delta = 256 / 60000, 1.1, 1000, 1e-5
    acc = PrivacyAccountant(epsilon=10.0, delta=delta, composition="rdp")
    for _ in range(10):
        acc.spend_gaussian(sigma, sample_rate=q, steps=steps // 10, mechanism="dp-sgd")
    assert acc.spent[0] == pytest.approx(dpsgd_epsilon(sigma, q, steps, delta), rel=1e-9)
    assert acc.spent[1] == delta
    assert acc.epsilon_for(1e-6) > acc.epsilon_for(1e-5) > acc.epsilon_for(1e-3)
    record = acc.releases[0]
    assert (record.noise_multiplier, record.sample_rate, record.steps) == (sigma, q, 100)
    assert len(record.rdp) == len(DEFAULT_RDP_ORDERS)


def test_rdp_accountant_refuses_a_dpsgd_run_that_would_overspend():
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5, composition="rdp")
    assert not acc.can_spend_gaussian(1.1, sample_rate=256 / 60000, steps=14062)
    with pytest.raises(PrivacyBudgetExceeded, match="dp-sgd"):
        acc.spend_gaussian(1.1, sample_rate=256 / 60000, steps=14062, mechanism="dp-sgd")
    assert acc.releases == [] and acc.spent == (0.0, 0.0)


def test_rdp_composes_many_gaussians_better_than_basic():
    sigma = gaussian_sigma(0.1, 1e-7)
    rdp = PrivacyAccountant(epsilon=100.0, delta=1e-5, composition="rdp")
    for _ in range(100):
        rdp.spend_gaussian(sigma)
    assert rdp.spent[0] < 100 * 0.1 / 2  # basic composition would give 10


def test_rdp_pure_releases_use_the_zcdp_bound_and_never_exceed_basic():
    acc = PrivacyAccountant(epsilon=50.0, delta=1e-5, composition="rdp")
    for _ in range(400):
        acc.spend(0.05)
    orders = np.asarray(DEFAULT_RDP_ORDERS)
    curve = 400 * np.minimum(0.05, orders * 0.05**2 / 2)
    assert acc.spent[0] == pytest.approx(rdp_to_epsilon(orders, curve, 1e-5)[0])
    assert acc.spent[0] < 400 * 0.05 / 2

    single = PrivacyAccountant(epsilon=1.0, delta=1e-5, composition="rdp")
    single.spend(1.0)  # one pure release is never charged more than its epsilon
    assert single.spent == (1.0, 0.0)


def test_rdp_mixes_pure_approximate_and_gaussian_releases():
    acc = PrivacyAccountant(epsilon=5.0, delta=1e-5, composition="rdp")
    acc.spend(0.5)
    acc.spend(0.3, 2e-6, mechanism="gaussian-approx")
    acc.spend_gaussian(2.0, sample_rate=0.01, steps=500)
    g = gaussian_rdp(2.0, DEFAULT_RDP_ORDERS, sample_rate=0.01, steps=500)
    eps_g = rdp_to_epsilon(DEFAULT_RDP_ORDERS, g, 1e-5 - 2e-6)[0]
    eps, delta = acc.spent
    assert delta == 1e-5
    assert eps <= eps_g + 0.5 + 0.3 + 1e-12  # never worse than splitting by basic composition
    assert eps > eps_g + 0.3


def test_gaussian_under_basic_needs_delta_and_converts_with_it():
    acc = PrivacyAccountant(epsilon=5.0, delta=1e-5)
    with pytest.raises(ConfigurationError, match="delta="):
        acc.spend_gaussian(1.0, sample_rate=0.01, steps=100)
    acc.spend_gaussian(1.0, sample_rate=0.01, steps=100, delta=5e-6)
    expected = dpsgd_epsilon(1.0, 0.01, 100, 5e-6)
    assert acc.spent == pytest.approx((expected, 5e-6))


def test_rdp_with_no_delta_budget_refuses_gaussians_but_takes_pure_releases():
    acc = PrivacyAccountant(epsilon=1.0, composition="rdp")
    acc.spend(0.5)
    with pytest.raises(PrivacyBudgetExceeded):
        acc.spend_gaussian(10.0)
    assert acc.spent == (0.5, 0.0)


def test_rdp_accountant_charges_an_analytic_gaussian_no_more_than_its_guarantee():
    from avrec.privacy import gaussian_mechanism

    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5, composition="rdp")
    gaussian_mechanism(np.zeros(2), 1.0, 1.0, 1e-5, accountant=acc, random_state=0)
    assert acc.spent == pytest.approx((1.0, 1e-5))
    # its RDP curve alone would have claimed more at this delta
    curve = gaussian_rdp(gaussian_sigma(1.0, 1e-5), DEFAULT_RDP_ORDERS)
    assert rdp_to_epsilon(DEFAULT_RDP_ORDERS, curve, 1e-5)[0] > 1.0


def test_spend_gaussian_with_a_known_epsilon():
    acc = PrivacyAccountant(epsilon=3.0, delta=1e-5)
    sigma = gaussian_sigma(0.5, 1e-6)
    acc.spend_gaussian(sigma, delta=1e-6, epsilon=0.5)
    assert acc.spent == pytest.approx((0.5, 1e-6))
    with pytest.raises(ConfigurationError, match="needs delta"):
        acc.spend_gaussian(sigma, epsilon=0.5)


def test_a_release_without_privacy_is_refused():
    for composition in ("basic", "advanced", "rdp"):
        acc = PrivacyAccountant(epsilon=100.0, delta=1e-5, composition=composition)
        assert not acc.can_spend(math.inf)
        with pytest.raises(PrivacyBudgetExceeded, match="epsilon=inf"):
            acc.spend(math.inf, mechanism="no noise")
        assert acc.releases == []


def test_releases_are_written_to_the_audit_log_before_they_count(tmp_path):
    from avrec.privacy import AuditLog, laplace_mechanism

    log_path = tmp_path / "audit.jsonl"
    acc = PrivacyAccountant(epsilon=1.0, delta=1e-5, composition="rdp", audit_log=log_path)
    laplace_mechanism(np.zeros(3), 1.0, 0.25, random_state=0, accountant=acc, note="counts")
    acc.spend_gaussian(2.0, sample_rate=0.01, steps=100, mechanism="dp-sgd")
    with pytest.raises(PrivacyBudgetExceeded):
        acc.spend(5.0)
    log = AuditLog(log_path)
    assert log.verify().ok
    entries = list(log.entries())
    assert len(entries) == 2 == len(acc.releases)
    assert {e["event"] for e in entries} == {"dp_release"}
    first, second = (e["payload"] for e in entries)
    assert first["mechanism"] == "laplace" and first["epsilon"] == 0.25
    assert first["note"] == "counts"
    assert second["mechanism"] == "dp-sgd" and second["steps"] == 100
    assert second["spent_epsilon"] == pytest.approx(acc.spent[0])


def test_an_unwritable_audit_log_refuses_the_release(tmp_path):
    from avrec.privacy import AuditLog

    class Broken(AuditLog):
        def append(self, *args, **kwargs):
            raise OSError("disk full")

    acc = PrivacyAccountant(epsilon=1.0, audit_log=Broken(tmp_path / "log.jsonl"))
    with pytest.raises(OSError, match="disk full"):
        acc.spend(0.5)
    assert acc.releases == [] and acc.spent == (0.0, 0.0)
