"""Integer-valued mechanisms for counts: exact discrete Laplace and discrete Gaussian noise.

Noise is sampled exactly (see :mod:`avrec.privacy._discrete`), so integer releases
keep their guarantee without floating-point caveats, and counts stay integers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize

from avrec.exceptions import ConfigurationError
from avrec.privacy._checks import (
    check_accountant,
    check_delta,
    check_epsilon,
    check_int_values,
    check_sensitivity,
)
from avrec.privacy._discrete import (
    rational_up,
    sample_discrete_gaussian,
    sample_discrete_laplace,
)
from avrec.privacy._randomness import _as_source

_MAX_SCALE = 2**40  # noise magnitudes stay far inside int64

__all__ = ["discrete_gaussian", "discrete_gaussian_sigma", "discrete_laplace", "noisy_count"]


def discrete_laplace(
    values: Any,
    sensitivity: float,
    epsilon: float,
    *,
    random_state: Any = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Add exact discrete Laplace noise to integer ``values``: epsilon-DP.

    Parameters
    ----------
    values : int or array-like of int, shape (...)
        Exact integer query answers (counts); the whole array is one release.
    sensitivity : float
        L1 sensitivity of the query (over the whole array), ``> 0``; for counts where
        one individual changes one count by at most 1, it is 1.
    epsilon : float
        Privacy parameter, ``> 0``.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom, default=None
        Randomness. None (the default) and ``"secure"`` draw from ``os.urandom``; an
        int or Generator seeds a reproducible PCG64 stream of this release alone,
        fresh whenever anything about the release differs (for research and tests;
        see :class:`~avrec.privacy.SecureRandom`).
    accountant : PrivacyAccountant or None, default=None
        Charged ``(epsilon, 0)`` before sampling.
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (...), dtype int64

    Raises
    ------
    ConfigurationError, DataValidationError, PrivacyBudgetExceeded
        Invalid parameters, non-integer ``values``, or a refused release.

    Notes
    -----
    Guarantee: noise with :math:`P(z) \\propto e^{-|z|/t}` on the integers, with the
    scale :math:`t \\ge \\Delta_1/\\varepsilon` (rounded *up* to a dyadic rational with
    40 significant bits), is :math:`\\varepsilon`-DP, because the ratio of the
    probabilities of any output under neighbouring inputs is at most
    :math:`e^{\\Delta_1/t}`. The sampler is Algorithm 2 of Canonne, Kamath and Steinke
    (2020): exact, with integer arithmetic only.

    References
    ----------
    .. [1] C. L. Canonne, G. Kamath and T. Steinke, "The Discrete Gaussian for
       Differential Privacy", NeurIPS 2020.

    Examples
    --------
    >>> discrete_laplace([10, 0, 7], sensitivity=1, epsilon=1.0, random_state=0).dtype
    dtype('int64')
    """
    eps = check_epsilon(epsilon)
    sens = check_sensitivity(sensitivity)
    x = check_int_values(values)
    source = _as_source(random_state, "discrete_laplace", sens, eps, x)
    check_accountant(accountant)
    scale = rational_up(sens / eps)
    if scale > _MAX_SCALE:
        raise ConfigurationError(
            f"sensitivity / epsilon = {sens / eps:.3g} is too large for int64 outputs "
            f"(at most 2**40)"
        )
    if accountant is not None:
        accountant.spend(eps, 0.0, mechanism="discrete-laplace", note=note)
    out = x + sample_discrete_laplace(scale, x.size, source).reshape(x.shape)
    return out[()] if out.ndim == 0 else out


def _zcdp_epsilon(rho: float, delta: float) -> float:
    """Smallest epsilon of a rho-zCDP mechanism at ``delta`` (CKS 2020, Corollary 13)."""

    def eps_at(t: float) -> float:
        a = 1.0 + math.exp(t)
        return a * rho + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)

    res = optimize.minimize_scalar(
        eps_at, bounds=(-12.0, 40.0), method="bounded", options={"xatol": 1e-10}
    )
    return max(float(res.fun), 0.0)


def discrete_gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """Sigma for which the discrete Gaussian is (epsilon, delta)-DP via its zCDP bound.

    Parameters
    ----------
    epsilon : float
        Privacy parameter, ``> 0``.
    delta : float
        Privacy parameter in ``(0, 1)``.
    sensitivity : float, default=1.0
        L2 sensitivity of the integer-valued query.

    Returns
    -------
    float
        The smallest sigma (to relative 1e-9, rounded up) with
        :math:`\\min_\\alpha \\alpha\\rho + \\log(1-1/\\alpha) - (\\log\\delta +
        \\log\\alpha)/(\\alpha-1) \\le \\varepsilon` for
        :math:`\\rho = \\Delta_2^2/(2\\sigma^2)` (Canonne, Kamath and Steinke 2020,
        Theorem 14 and Corollary 13). It is a few percent larger than the analytic
        continuous sigma of :func:`~avrec.privacy.gaussian_sigma`.

    Examples
    --------
    >>> s = discrete_gaussian_sigma(1.0, 1e-5)
    >>> 3.73 < s < 4.2
    True
    """
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    sens = check_sensitivity(sensitivity)

    def too_small(sigma: float) -> bool:
        return _zcdp_epsilon(sens**2 / (2 * sigma**2), dlt) > eps

    low, high = sens * 1e-3, sens
    while too_small(high):
        high *= 2.0
    while not too_small(low):
        low /= 2.0
    while high - low > 1e-9 * high:
        mid = 0.5 * (low + high)
        if too_small(mid):
            low = mid
        else:
            high = mid
    return high


def discrete_gaussian(
    values: Any,
    sensitivity: float,
    epsilon: float,
    delta: float,
    *,
    random_state: Any = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Add exact discrete Gaussian noise to integer ``values``: (epsilon, delta)-DP.

    Parameters
    ----------
    values : int or array-like of int, shape (...)
        Exact integer query answers; the whole array is one release.
    sensitivity : float
        L2 sensitivity :math:`\\Delta_2` of the query over the whole array, ``> 0``.
    epsilon : float
        Privacy parameter, ``> 0``.
    delta : float
        Privacy parameter in ``(0, 1)``.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom, default=None
        Randomness. None (the default) and ``"secure"`` draw from ``os.urandom``; an
        int or Generator seeds a reproducible PCG64 stream of this release alone,
        fresh whenever anything about the release differs (for research and tests;
        see :class:`~avrec.privacy.SecureRandom`).
    accountant : PrivacyAccountant or None, default=None
        Charged before sampling (``spend_gaussian`` with noise multiplier
        ``sigma / sensitivity``, ``delta`` and ``epsilon``): ``(epsilon, delta)`` under
        basic/advanced composition; under ``"rdp"`` the RDP curve
        :math:`\\alpha\\Delta_2^2/(2\\sigma^2)` too.
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (...), dtype int64

    Raises
    ------
    ConfigurationError, DataValidationError, PrivacyBudgetExceeded
        Invalid parameters, non-integer ``values``, or a refused release.

    Notes
    -----
    Guarantee: i.i.d. noise :math:`P(z) \\propto e^{-z^2/(2\\sigma^2)}` on the integers
    is :math:`\\Delta_2^2/(2\\sigma^2)`-zCDP for integer-valued queries (Canonne, Kamath
    and Steinke 2020, Theorem 14), hence :math:`(\\alpha,
    \\alpha\\Delta_2^2/(2\\sigma^2))`-RDP, and :math:`(\\varepsilon,\\delta)`-DP for
    :math:`\\sigma` from :func:`discrete_gaussian_sigma`. :math:`\\sigma^2` is rounded
    *up* to a dyadic rational with 40 significant bits and sampled exactly (their
    Algorithm 3).

    References
    ----------
    .. [1] C. L. Canonne, G. Kamath and T. Steinke, "The Discrete Gaussian for
       Differential Privacy", NeurIPS 2020.

    Examples
    --------
    >>> discrete_gaussian(np.array([5, 9]), 1.0, 1.0, 1e-5, random_state=0).shape
    (2,)
    """
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    sens = check_sensitivity(sensitivity)
    x = check_int_values(values)
    source = _as_source(random_state, "discrete_gaussian", sens, eps, dlt, x)
    check_accountant(accountant)
    sigma = discrete_gaussian_sigma(eps, dlt, sens)
    if sigma > _MAX_SCALE:
        raise ConfigurationError(
            f"the noise scale sigma = {sigma:.3g} is too large for int64 outputs (at most 2**40)"
        )
    if accountant is not None:
        accountant.spend_gaussian(
            sigma / sens, delta=dlt, epsilon=eps, mechanism="discrete-gaussian", note=note
        )
    noise = sample_discrete_gaussian(rational_up(sigma * sigma), x.size, source)
    out = x + noise.reshape(x.shape)
    return out[()] if out.ndim == 0 else out


def noisy_count(
    counts: Any,
    epsilon: float,
    delta: float = 0.0,
    *,
    sensitivity: float = 1.0,
    random_state: Any = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Privatise integer counts: discrete Laplace when ``delta == 0``, else discrete Gaussian.

    Parameters
    ----------
    counts : int or array-like of int, shape (...)
        Exact counts (e.g. interactions per item).
    epsilon : float
        Privacy parameter, ``> 0``.
    delta : float, default=0.0
        0 for pure epsilon-DP (discrete Laplace, ``sensitivity`` is L1); in ``(0, 1)``
        for the discrete Gaussian (``sensitivity`` is L2).
    sensitivity : float, default=1.0
        How much one individual can change the counts (L1 or L2 as above).
    random_state, accountant, note
        As for :func:`discrete_laplace`.

    Returns
    -------
    ndarray of shape (...), dtype int64
        Noisy counts; may be negative (clip afterwards if needed: post-processing
        keeps the guarantee).

    Examples
    --------
    >>> noisy_count([3, 0, 12], epsilon=1.0, random_state=0).dtype
    dtype('int64')
    """
    if delta == 0.0 and not isinstance(delta, bool):
        return discrete_laplace(
            counts,
            sensitivity,
            epsilon,
            random_state=random_state,
            accountant=accountant,
            note=note,
        )
    return discrete_gaussian(
        counts,
        sensitivity,
        epsilon,
        delta,
        random_state=random_state,
        accountant=accountant,
        note=note,
    )
