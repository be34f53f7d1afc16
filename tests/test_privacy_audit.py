"""Empirical privacy audits: each mechanism's measured loss stays within its claim,
and the same audit catches a deliberately broken version (noise scale halved)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.privacy import (
    EpsilonEstimate,
    discrete_laplace,
    estimate_epsilon,
    exponential_mechanism,
    laplace_mechanism,
    randomized_response,
)

N = 200_000
EPS = 1.0

# The exponential mechanism's neighbouring pair: candidate 0 loses one point, all
# others gain one, the worst case for a non-monotonic utility with 20 candidates.
U0 = np.array([1.0] + [0.0] * 19)
U1 = np.array([0.0] + [1.0] * 19)
_EM_LOSS = 0.5 * EPS + math.log((1 + 19 * math.exp(EPS / 2)) / (math.exp(EPS / 2) + 19))


def _laplace(noise_factor):
    def mech(d, n, rng):
        return laplace_mechanism(np.full(n, float(d)), 1.0, EPS / noise_factor, random_state=rng)

    return mech


def _snapped_laplace(noise_factor):
    def mech(d, n, rng):
        return laplace_mechanism(
            np.full(n, float(d)), 1.0, EPS / noise_factor, snap=True, bound=50.0, random_state=rng
        )

    return mech


def _discrete_laplace(noise_factor):
    def mech(d, n, rng):
        return discrete_laplace(np.full(n, int(d)), 1, EPS / noise_factor, random_state=rng)

    return mech


def _randomized_response(noise_factor):
    def mech(d, n, rng):
        return randomized_response(np.full(n, int(d)), EPS / noise_factor, random_state=rng)

    return mech


def _exponential(noise_factor):
    # broken: claims a non-monotonic utility but uses the monotonic (halved) noise
    def mech(d, n, rng):
        return exponential_mechanism(
            np.tile(d, (n, 1)), 1.0, EPS, monotonic=noise_factor != 1.0, random_state=rng
        )[:, 0]

    return mech


CASES = {
    # name: (factory, d0, d1, true loss of the pair, audit keyword arguments)
    "laplace": (_laplace, 0, 1, EPS, {}),
    "laplace_snapped": (_snapped_laplace, 0, 1, EPS, {}),
    "discrete_laplace": (_discrete_laplace, 0, 1, EPS, {}),
    "randomized_response": (_randomized_response, 0, 1, EPS, {}),
    "exponential": (_exponential, U0, U1, _EM_LOSS, {"bins": np.arange(0.5, 19)}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_audit_stays_within_the_claimed_epsilon(name):
    factory, d0, d1, true_loss, kwargs = CASES[name]
    est = estimate_epsilon(factory(1.0), d0, d1, N, random_state=0, **kwargs)
    assert isinstance(est, EpsilonEstimate)
    assert est.lower_bound <= EPS  # no violation found
    assert est.epsilon <= EPS + 0.15  # the point estimate is near the claim ...
    assert est.epsilon >= 0.85 * true_loss  # ... and the audit is tight enough to matter
    assert est.lower_bound >= 0.75 * true_loss


@pytest.mark.parametrize("name", sorted(CASES))
def test_audit_catches_a_mechanism_with_half_the_noise(name):
    factory, d0, d1, _, kwargs = CASES[name]
    est = estimate_epsilon(factory(0.5), d0, d1, N, random_state=0, **kwargs)
    assert est.lower_bound > 1.5 * EPS


def test_audit_result_fields_and_validation():
    est = estimate_epsilon(_laplace(1.0), 0, 1, 20_000, bins=10, random_state=1)
    assert est.counts.shape == (2, len(est.edges) - 1)
    assert est.counts.sum(axis=1).tolist() == [20_000, 20_000]
    with pytest.raises(DataValidationError, match="mechanism must return 5"):
        estimate_epsilon(lambda d, n, rng: np.zeros(3), 0, 1, 5, bins=np.array([0.0, 1.0]))
    with pytest.raises(ConfigurationError, match="confidence"):
        estimate_epsilon(_laplace(1.0), 0, 1, 100, confidence=1.0)
    with pytest.raises(ConfigurationError, match="bins"):
        estimate_epsilon(_laplace(1.0), 0, 1, 100, bins=np.array([1.0, 0.0]))
