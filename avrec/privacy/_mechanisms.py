"""Continuous noise mechanisms: Laplace (optionally snapped) and Gaussian (classic and analytic).

Neighbouring datasets differ in one individual's data. For a query ``f``:

* the **L1 sensitivity** is :math:`\\Delta_1 = \\max \\lVert f(D) - f(D')\\rVert_1` and
* the **L2 sensitivity** is :math:`\\Delta_2 = \\max \\lVert f(D) - f(D')\\rVert_2`,

the maximum over neighbouring pairs, with the whole output array treated as one
vector. Callers supply the sensitivity; the mechanisms cannot check it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from avrec.exceptions import ConfigurationError
from avrec.privacy._checks import (
    check_accountant,
    check_delta,
    check_epsilon,
    check_sensitivity,
    check_values,
)
from avrec.privacy._randomness import _as_source

__all__ = ["gaussian_mechanism", "gaussian_sigma", "laplace_mechanism"]


def _log_gaussian_delta(sigma: float, epsilon: float, sensitivity: float) -> float:
    """Exact delta of the Gaussian mechanism (Balle and Wang 2018, Theorem 8), as a log."""
    a = sensitivity / (2 * sigma)
    b = epsilon * sigma / sensitivity
    first = float(special.log_ndtr(a - b))
    second = epsilon + float(special.log_ndtr(-a - b))
    if second >= first:
        return -math.inf
    return first + math.log(-math.expm1(second - first))


def gaussian_sigma(
    epsilon: float, delta: float, sensitivity: float = 1.0, analytic: bool = True
) -> float:
    """Noise standard deviation that makes the Gaussian mechanism (epsilon, delta)-DP.

    Parameters
    ----------
    epsilon : float
        Privacy parameter, ``> 0`` (``< 1`` when ``analytic=False``).
    delta : float
        Privacy parameter in ``(0, 1)``.
    sensitivity : float, default=1.0
        L2 sensitivity of the query.
    analytic : bool, default=True
        True: the smallest sigma satisfying the exact condition of the analytic
        Gaussian mechanism (Balle and Wang 2018, Theorem 8),
        :math:`\\Phi(\\frac{\\Delta}{2\\sigma} - \\frac{\\varepsilon\\sigma}{\\Delta})
        - e^{\\varepsilon}\\Phi(-\\frac{\\Delta}{2\\sigma} -
        \\frac{\\varepsilon\\sigma}{\\Delta}) \\le \\delta`, found by bisection to a
        relative precision of 1e-12 and rounded up. False: the classic calibration
        :math:`\\sigma = \\sqrt{2\\ln(1.25/\\delta)}\\,\\Delta/\\varepsilon` (Dwork and
        Roth 2014, Theorem A.1), which is only proven for :math:`\\varepsilon < 1`.

    Returns
    -------
    float

    Raises
    ------
    ConfigurationError
        For invalid parameters, or ``epsilon >= 1`` with ``analytic=False``.

    References
    ----------
    .. [1] B. Balle and Y.-X. Wang, "Improving the Gaussian Mechanism for
       Differential Privacy: Analytical Calibration and Optimal Denoising", ICML 2018.
    .. [2] C. Dwork and A. Roth, "The Algorithmic Foundations of Differential
       Privacy", 2014, Theorem A.1.

    Examples
    --------
    >>> round(gaussian_sigma(1.0, 1e-5), 4)
    3.7306
    >>> round(gaussian_sigma(0.5, 1e-5, analytic=False), 4)
    9.6896
    """
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    sens = check_sensitivity(sensitivity)
    if not analytic:
        if eps >= 1.0:
            raise ConfigurationError(
                f"epsilon must be < 1 for the classic Gaussian calibration, got {epsilon!r}; "
                "use analytic=True"
            )
        return math.sqrt(2 * math.log(1.25 / dlt)) * sens / eps
    log_delta = math.log(dlt)
    low, high = sens * 1e-3, sens
    while _log_gaussian_delta(high, eps, sens) > log_delta:
        high *= 2.0
    while _log_gaussian_delta(low, eps, sens) <= log_delta:
        low /= 2.0
    while high - low > 1e-12 * high:
        mid = 0.5 * (low + high)
        if _log_gaussian_delta(mid, eps, sens) > log_delta:
            low = mid
        else:
            high = mid
    return high


def _snap_parameters(
    sensitivity: float, epsilon: float, bound: float
) -> tuple[float, float, float]:
    """``(B, lambda, Lambda)`` of Mironov's snapping mechanism for the rescaled query."""
    b = bound / sensitivity
    # rescaling by 1/sensitivity adds at most 2**-52 * b to the unit sensitivity
    lam = (1.0 + 2.0**-51 * b + 2.0**-49 * b) / epsilon
    b = max(b, 2.0 * lam)  # Mironov's theorem needs lambda < B; a wider clamp is harmless
    if not b < 2.0**46 * lam:
        raise ConfigurationError(
            f"bound={bound} is too large for snapping at this sensitivity/epsilon "
            f"(needs bound / sensitivity < 2**46 * {lam:.3g})"
        )
    mantissa, exponent = math.frexp(lam)
    grid = lam if mantissa == 0.5 else math.ldexp(1.0, exponent)  # smallest 2**k >= lambda
    return b, lam, grid


def _snapped_laplace(
    values: np.ndarray, sensitivity: float, epsilon: float, bound: float, source: Any
) -> np.ndarray:
    """Mironov's snapping mechanism on ``values / sensitivity`` (unit sensitivity)."""
    b, lam, grid = _snap_parameters(sensitivity, epsilon, bound)
    y = np.clip(np.clip(values, -bound, bound) / sensitivity, -b, b).ravel()
    sign = np.where(source.bits(y.size), 1.0, -1.0)
    noisy = y + sign * lam * np.log(source.uniform_full(y.size))
    snapped = np.clip(np.round(noisy / grid) * grid, -b, b)
    return (snapped * sensitivity).reshape(values.shape)


def laplace_mechanism(
    values: Any,
    sensitivity: float,
    epsilon: float,
    *,
    random_state: Any = None,
    snap: bool = False,
    bound: float | None = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Release ``values`` with Laplace noise of scale ``sensitivity / epsilon``: epsilon-DP.

    Parameters
    ----------
    values : float or array-like of shape (...)
        Exact query answers :math:`f(D)`; the whole array is one release.
    sensitivity : float
        L1 sensitivity :math:`\\Delta_1` of the query (over the whole array), ``> 0``.
    epsilon : float
        Privacy parameter, ``> 0``.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom, default=None
        Randomness. None (the default) and ``"secure"`` draw from ``os.urandom``; an
        int or Generator seeds a reproducible PCG64 stream of this release alone,
        fresh whenever anything about the release differs (for research and tests;
        see :class:`~avrec.privacy.SecureRandom`).
    snap : bool, default=False
        Use Mironov's snapping mechanism (requires ``bound``), which closes the
        floating-point attack on the textbook Laplace mechanism.
    bound : float or None, default=None
        With ``snap=True``: inputs are clamped to ``[-bound, bound]`` before noise and
        outputs after it.
    accountant : PrivacyAccountant or None, default=None
        Charged ``(epsilon, 0)`` *before* sampling; an overspend raises and releases
        nothing.
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (...), dtype float64
        ``values`` plus noise (a numpy scalar for scalar input).

    Raises
    ------
    ConfigurationError
        Invalid ``sensitivity``, ``epsilon``, ``bound`` or ``random_state``.
    DataValidationError
        Non-finite ``values``.
    PrivacyBudgetExceeded
        If the accountant refuses the release.

    Notes
    -----
    Guarantee: adding i.i.d. :math:`\\mathrm{Lap}(\\Delta_1/\\varepsilon)` noise to each
    coordinate is :math:`\\varepsilon`-DP (Dwork et al. 2006) for real arithmetic.

    With ``snap=True`` the release is
    :math:`\\mathrm{clamp}_B(\\lfloor \\mathrm{clamp}_B(f(D)) + S\\lambda\\ln U
    \\rceil_\\Lambda)` on the rescaled query :math:`f/\\Delta_1` (``B = bound /
    sensitivity``, ``S`` a random sign, ``U`` uniform over all doubles in (0, 1),
    :math:`\\Lambda` the smallest power of two :math:`\\ge\\lambda`), which is
    :math:`(1/\\lambda + 2^{-49}B/\\lambda)`-DP for :math:`\\lambda < B < 2^{46}\\lambda`
    (Mironov 2012, Theorem 1). We choose
    :math:`\\lambda = (1 + 2^{-51}B + 2^{-49}B)/\\varepsilon` (the :math:`2^{-51}B`
    term covers the rounding of the rescaling), so the release is
    :math:`\\varepsilon`-DP; ``B`` is raised to :math:`2\\lambda` when smaller. The
    theorem assumes a correctly rounded logarithm; numpy's ``log`` is accurate to
    within one ulp but not certified correctly rounded. Per coordinate the snapping
    error is at most :math:`\\Lambda/2 \\le \\lambda`.

    References
    ----------
    .. [1] C. Dwork, F. McSherry, K. Nissim and A. Smith, "Calibrating Noise to
       Sensitivity in Private Data Analysis", TCC 2006.
    .. [2] I. Mironov, "On Significance of the Least Significant Bits for
       Differential Privacy", CCS 2012.

    Examples
    --------
    >>> counts = np.array([120.0, 45.0, 3.0])
    >>> noisy = laplace_mechanism(counts, sensitivity=1.0, epsilon=0.5, random_state=0)
    >>> noisy.shape
    (3,)
    >>> snapped = laplace_mechanism(counts, 1.0, 0.5, snap=True, bound=1000.0, random_state=0)
    >>> bool(np.all(snapped % 4.0 == 0))  # lambda is just above 2, so the grid is 4
    True
    """
    eps = check_epsilon(epsilon)
    sens = check_sensitivity(sensitivity)
    x = check_values(values)
    if snap:
        if bound is None:
            raise ConfigurationError("bound is required when snap=True")
        bound = check_epsilon(bound, "bound")
        _snap_parameters(sens, eps, bound)  # refuse an unusable bound before charging
    source = _as_source(random_state, "laplace", sens, eps, snap, bound, x)
    check_accountant(accountant)
    if accountant is not None:
        accountant.spend(eps, 0.0, mechanism="laplace-snapped" if snap else "laplace", note=note)
    if snap:
        out = _snapped_laplace(x, sens, eps, bound, source)  # type: ignore[arg-type]
    else:
        out = x + (sens / eps) * source.laplace(x.size).reshape(x.shape)
    return out[()] if out.ndim == 0 else out


def gaussian_mechanism(
    values: Any,
    sensitivity: float,
    epsilon: float,
    delta: float,
    *,
    analytic: bool = True,
    random_state: Any = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Release ``values`` with Gaussian noise calibrated to (epsilon, delta)-DP.

    Parameters
    ----------
    values : float or array-like of shape (...)
        Exact query answers; the whole array is one release.
    sensitivity : float
        L2 sensitivity :math:`\\Delta_2` of the query (over the whole array), ``> 0``.
    epsilon : float
        Privacy parameter, ``> 0`` (``< 1`` when ``analytic=False``).
    delta : float
        Privacy parameter in ``(0, 1)``.
    analytic : bool, default=True
        Calibrate with the analytic Gaussian mechanism (tight, any epsilon) or the
        classic formula; see :func:`gaussian_sigma`.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom, default=None
        Randomness. None (the default) and ``"secure"`` draw from ``os.urandom``; an
        int or Generator seeds a reproducible PCG64 stream of this release alone,
        fresh whenever anything about the release differs (for research and tests;
        see :class:`~avrec.privacy.SecureRandom`).
    accountant : PrivacyAccountant or None, default=None
        Charged *before* sampling (``spend_gaussian`` with noise multiplier
        ``sigma / sensitivity``, ``delta`` and ``epsilon``): ``(epsilon, delta)`` under
        basic/advanced composition; under ``"rdp"`` the RDP curve too.
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (...), dtype float64

    Raises
    ------
    ConfigurationError, DataValidationError, PrivacyBudgetExceeded
        As for :func:`laplace_mechanism`.

    Notes
    -----
    Guarantee: adding i.i.d. :math:`N(0, \\sigma^2)` noise with :math:`\\sigma` from
    :func:`gaussian_sigma` is :math:`(\\varepsilon, \\delta)`-DP; it is also
    :math:`(\\alpha, \\alpha\\Delta_2^2/(2\\sigma^2))`-RDP for every order
    :math:`\\alpha > 1`. Normal variates are floating-point (Box-Muller on 52-bit
    uniforms for the secure source); prefer :func:`~avrec.privacy.discrete_gaussian`
    for integer data when floating-point leakage matters.

    References
    ----------
    .. [1] B. Balle and Y.-X. Wang, "Improving the Gaussian Mechanism for
       Differential Privacy", ICML 2018.

    Examples
    --------
    >>> means = np.zeros(4)
    >>> out = gaussian_mechanism(means, sensitivity=1.0, epsilon=1.0, delta=1e-5,
    ...                          random_state=0)
    >>> out.shape
    (4,)
    """
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    sens = check_sensitivity(sensitivity)
    x = check_values(values)
    sigma = gaussian_sigma(eps, dlt, sens, analytic=analytic)
    source = _as_source(random_state, "gaussian", sens, eps, dlt, analytic, x)
    check_accountant(accountant)
    if accountant is not None:
        accountant.spend_gaussian(
            sigma / sens, delta=dlt, epsilon=eps, mechanism="gaussian", note=note
        )
    out = x + sigma * source.normal(x.size).reshape(x.shape)
    return out[()] if out.ndim == 0 else out
