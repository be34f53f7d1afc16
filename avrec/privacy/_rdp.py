"""Rényi differential privacy of the (Poisson-subsampled) Gaussian mechanism.

A mechanism is :math:`(\\alpha, \\rho)`-RDP when the Rényi divergence of order
:math:`\\alpha` between its output distributions on any two neighbouring datasets
is at most :math:`\\rho` (Mironov 2017). RDP composes by adding :math:`\\rho` order
by order, and converts to :math:`(\\varepsilon, \\delta)`-DP at the end.

* Gaussian mechanism with noise multiplier :math:`\\sigma` (noise standard deviation
  divided by the L2 sensitivity): :math:`\\rho(\\alpha) = \\alpha / (2\\sigma^2)`.
* Poisson-subsampled Gaussian (each record enters a step independently with
  probability ``sample_rate``, as in DP-SGD): the numerically stable series of
  Mironov, Talwar and Zhang (2019), Section 3.3, at integer and fractional orders.
  This is the computation of TF-Privacy's ``compute_rdp`` and Opacus's
  ``opacus.accountants.analysis.rdp``, re-implemented here.

References
----------
.. [1] I. Mironov, "Rényi Differential Privacy", CSF 2017, arXiv:1702.07476.
.. [2] I. Mironov, K. Talwar and L. Zhang, "Rényi Differential Privacy of the
   Sampled Gaussian Mechanism", arXiv:1908.10530, 2019.
.. [3] B. Balle, G. Barthe, M. Gaboardi, J. Hsu and T. Sato, "Hypothesis Testing
   Interpretations and Rényi Differential Privacy", AISTATS 2020, Theorem 21.
.. [4] C. L. Canonne, G. Kamath and T. Steinke, "The Discrete Gaussian for
   Differential Privacy", NeurIPS 2020, Proposition 12.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
from scipy import special

from avrec.exceptions import ConfigurationError

__all__ = [
    "DEFAULT_RDP_ORDERS",
    "dpsgd_epsilon",
    "dpsgd_noise_multiplier",
    "gaussian_rdp",
    "rdp_to_epsilon",
]

#: Orders used by default (those of TF-Privacy's tutorials and Opacus's
#: ``DEFAULT_ALPHAS``): 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63.
DEFAULT_RDP_ORDERS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)] + [float(a) for a in range(12, 64)]
)

_CONVERSIONS = ("balle2020", "classic")


# ----------------------------------------------------------------------------- checks
def _check_real(
    value: object,
    name: str,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = True,
    high_open: bool = True,
) -> float:
    ok_type = isinstance(value, numbers.Real) and not isinstance(value, bool)
    v = float(value) if ok_type else math.nan  # type: ignore[arg-type]
    inside = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok_type or not math.isfinite(v) or not inside:
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ConfigurationError(
            f"{name} must be a finite number in {lo}{low}, {high}{hi}, got {value!r}"
        )
    return v


def _check_steps(steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or int(steps) < 1:
        raise ConfigurationError(f"steps must be an int >= 1, got {steps!r}")
    return int(steps)


def _check_orders(orders: Sequence[float] | np.ndarray | None) -> np.ndarray:
    if orders is None:
        return np.asarray(DEFAULT_RDP_ORDERS, dtype=np.float64)
    arr = np.atleast_1d(np.asarray(orders, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 1):
        raise ConfigurationError(
            f"orders must be a non-empty 1-d sequence of finite numbers > 1, got {orders!r}"
        )
    return arr


def _check_conversion(conversion: str) -> str:
    if conversion not in _CONVERSIONS:
        raise ConfigurationError(f"conversion must be one of {_CONVERSIONS}, got {conversion!r}")
    return conversion


# ------------------------------------------------------------------ log-space helpers
def _log_add(a: float, b: float) -> float:
    lo, hi = min(a, b), max(a, b)
    if lo == -math.inf:
        return hi
    return math.log1p(math.exp(lo - hi)) + hi


def _log_sub(a: float, b: float) -> float:
    """log(exp(a) - exp(b)) for a >= b."""
    if b == -math.inf:
        return a
    if a <= b:
        return -math.inf
    try:
        return math.log(math.expm1(a - b)) + b
    except OverflowError:
        return a


def _log_a_integer(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha for integer alpha: a binomial mixture of Gaussian moments (MTZ19, eq. 3.3)."""
    i = np.arange(alpha + 1, dtype=np.float64)
    log_binom = special.gammaln(alpha + 1) - special.gammaln(i + 1) - special.gammaln(alpha - i + 1)
    terms = (
        log_binom + i * math.log(q) + (alpha - i) * math.log1p(-q) + (i * i - i) / (2 * sigma**2)
    )
    return float(special.logsumexp(terms))


def _log_erfc(x: float) -> float:
    return math.log(2.0) + float(special.log_ndtr(-x * math.sqrt(2.0)))


def _log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    """log A_alpha for fractional alpha: the two-sided series of MTZ19, Section 3.3."""
    log_a0 = log_a1 = -math.inf
    z0 = sigma**2 * math.log(1 / q - 1) + 0.5
    log_q, log_1q = math.log(q), math.log1p(-q)
    i = 0
    while True:
        coef = float(special.binom(alpha, i))
        log_coef = math.log(abs(coef))
        j = alpha - i
        log_t0 = log_coef + i * log_q + j * log_1q
        log_t1 = log_coef + j * log_q + i * log_1q
        log_e0 = math.log(0.5) + _log_erfc((i - z0) / (math.sqrt(2) * sigma))
        log_e1 = math.log(0.5) + _log_erfc((z0 - j) / (math.sqrt(2) * sigma))
        log_s0 = log_t0 + (i * i - i) / (2 * sigma**2) + log_e0
        log_s1 = log_t1 + (j * j - j) / (2 * sigma**2) + log_e1
        if coef > 0:
            log_a0, log_a1 = _log_add(log_a0, log_s0), _log_add(log_a1, log_s1)
        else:
            log_a0, log_a1 = _log_sub(log_a0, log_s0), _log_sub(log_a1, log_s1)
        i += 1
        if max(log_s0, log_s1) < -30:
            break
    return _log_add(log_a0, log_a1)


def _rdp_one(q: float, sigma: float, alpha: float) -> float:
    if q == 1.0:
        return alpha / (2 * sigma**2)
    if float(alpha).is_integer():
        return _log_a_integer(q, sigma, int(alpha)) / (alpha - 1)
    return _log_a_fractional(q, sigma, alpha) / (alpha - 1)


# ---------------------------------------------------------------------------- public
def gaussian_rdp(
    noise_multiplier: float,
    orders: Sequence[float] | np.ndarray | None = None,
    *,
    sample_rate: float = 1.0,
    steps: int = 1,
) -> np.ndarray:
    """RDP of ``steps`` compositions of the Poisson-subsampled Gaussian mechanism.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by the L2 sensitivity, ``> 0``.
    orders : sequence of float of shape (n_orders,), default=None
        Rényi orders ``> 1``; None uses :data:`DEFAULT_RDP_ORDERS`.
    sample_rate : float, default=1.0
        Poisson sampling probability ``q`` in ``(0, 1]``; 1 means no subsampling.
    steps : int, default=1
        Number of compositions.

    Returns
    -------
    ndarray of shape (n_orders,)
        The RDP :math:`\\rho(\\alpha)` at each order (``steps`` times one step's).

    Notes
    -----
    Without subsampling :math:`\\rho(\\alpha) = \\alpha / (2\\sigma^2)` exactly
    (Mironov 2017, Proposition 7). With subsampling the value is
    :math:`\\log A_\\alpha / (\\alpha - 1)` computed by the series of Mironov, Talwar
    and Zhang (2019), which is exact for integer orders and converges for fractional
    ones (terms are summed until they fall below :math:`e^{-30}`).

    References
    ----------
    .. [1] I. Mironov, K. Talwar and L. Zhang, "Rényi Differential Privacy of the
       Sampled Gaussian Mechanism", arXiv:1908.10530, 2019.

    Examples
    --------
    >>> gaussian_rdp(2.0, [2.0, 8.0])
    array([0.25, 1.  ])
    >>> float(gaussian_rdp(1.0, [2.0], sample_rate=0.01)[0]) < 1.0
    True
    """
    sigma = _check_real(noise_multiplier, "noise_multiplier", low=0.0)
    q = _check_real(sample_rate, "sample_rate", low=0.0, high=1.0, high_open=False)
    steps = _check_steps(steps)
    alphas = _check_orders(orders)
    return np.array([_rdp_one(q, sigma, float(a)) for a in alphas]) * steps


def rdp_to_epsilon(
    orders: Sequence[float] | np.ndarray,
    rdp: Sequence[float] | np.ndarray,
    delta: float,
    *,
    conversion: str = "balle2020",
) -> tuple[float, float]:
    """Convert an RDP curve to the smallest :math:`\\varepsilon` at ``delta``.

    Parameters
    ----------
    orders : sequence of float of shape (n_orders,)
        Rényi orders ``> 1``.
    rdp : sequence of float of shape (n_orders,)
        RDP values at ``orders`` (may contain ``inf``).
    delta : float
        Target :math:`\\delta` in ``(0, 1)``.
    conversion : {"balle2020", "classic"}, default="balle2020"
        ``"balle2020"``: :math:`\\varepsilon = \\rho(\\alpha) + \\log((\\alpha-1)/\\alpha)
        - (\\log\\delta + \\log\\alpha)/(\\alpha-1)` (Balle et al. 2020, Theorem 21;
        the same bound as Canonne, Kamath and Steinke 2020, Proposition 12; what Opacus
        uses). ``"classic"``: :math:`\\varepsilon = \\rho(\\alpha) +
        \\log(1/\\delta)/(\\alpha-1)` (Mironov 2017, Proposition 3; what TF-Privacy's
        tutorials reported).

    Returns
    -------
    epsilon : float
        The minimum over ``orders`` (``inf`` when every order is ``inf``), at least 0.
    order : float
        The order attaining it.

    Examples
    --------
    >>> eps, order = rdp_to_epsilon([2.0, 4.0, 8.0], [0.1, 0.2, 0.4], 1e-5, conversion="classic")
    >>> round(eps, 3), order
    (2.045, 8.0)
    """
    alphas = _check_orders(orders)
    values = np.atleast_1d(np.asarray(rdp, dtype=np.float64))
    if values.shape != alphas.shape or np.any(np.isnan(values)):
        raise ConfigurationError(
            f"rdp must be a sequence of {alphas.size} numbers (one per order), got {rdp!r}"
        )
    d = _check_real(delta, "delta", low=0.0, high=1.0)
    _check_conversion(conversion)
    with np.errstate(invalid="ignore", over="ignore"):
        if conversion == "classic":
            eps = values + math.log(1 / d) / (alphas - 1)
        else:
            eps = values + np.log1p(-1 / alphas) - (math.log(d) + np.log(alphas)) / (alphas - 1)
    if not np.any(np.isfinite(eps)):
        return math.inf, float(alphas[0])
    best = int(np.nanargmin(np.where(np.isfinite(eps), eps, np.inf)))
    return max(float(eps[best]), 0.0), float(alphas[best])


def dpsgd_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    orders: Sequence[float] | np.ndarray | None = None,
    conversion: str = "balle2020",
) -> float:
    """Epsilon of DP-SGD (``steps`` Poisson-subsampled Gaussian steps) at ``delta``, by RDP.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by the clipping norm.
    sample_rate : float
        Poisson sampling probability per step (batch size / dataset size).
    steps : int
        Number of optimisation steps.
    delta : float
        Target :math:`\\delta`, in ``(0, 1)``.
    orders : sequence of float, default=None
        Rényi orders; None uses :data:`DEFAULT_RDP_ORDERS`.
    conversion : {"balle2020", "classic"}, default="balle2020"
        RDP to DP conversion, see :func:`rdp_to_epsilon`.

    Returns
    -------
    float

    References
    ----------
    .. [1] M. Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.

    Examples
    --------
    The first row of TF-Privacy's MNIST tutorial table (noise multiplier 1.12,
    batch 256 of 60,000, 60 epochs), reported there as epsilon 2.92 at delta 1e-5
    with the classic conversion; the tighter default conversion gives less:

    >>> steps = 60 * 60000 // 256
    >>> round(dpsgd_epsilon(1.12, 256 / 60000, steps, 1e-5, conversion="classic"), 2)
    2.92
    >>> round(dpsgd_epsilon(1.12, 256 / 60000, steps, 1e-5), 2)
    2.52
    """
    rdp = gaussian_rdp(noise_multiplier, orders, sample_rate=sample_rate, steps=steps)
    return rdp_to_epsilon(_check_orders(orders), rdp, delta, conversion=conversion)[0]


def dpsgd_noise_multiplier(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    orders: Sequence[float] | np.ndarray | None = None,
    conversion: str = "balle2020",
    rtol: float = 1e-4,
) -> float:
    """Smallest noise multiplier (within ``rtol``) whose DP-SGD epsilon is <= ``target_epsilon``.

    Parameters
    ----------
    target_epsilon : float
        Epsilon to reach, ``> 0``.
    delta : float
        Target :math:`\\delta` in ``(0, 1)``.
    sample_rate : float
        Poisson sampling probability per step.
    steps : int
        Number of steps.
    orders : sequence of float, default=None
        Rényi orders; None uses :data:`DEFAULT_RDP_ORDERS`.
    conversion : {"balle2020", "classic"}, default="balle2020"
        RDP to DP conversion, see :func:`rdp_to_epsilon`.
    rtol : float, default=1e-4
        Relative width of the final bisection bracket.

    Returns
    -------
    float
        A noise multiplier for which :func:`dpsgd_epsilon` is at most
        ``target_epsilon`` (the upper end of the bisection bracket).

    Examples
    --------
    >>> sigma = dpsgd_noise_multiplier(1.0, 1e-5, 0.01, 1000)
    >>> dpsgd_epsilon(sigma, 0.01, 1000, 1e-5) <= 1.0
    True
    """
    target = _check_real(target_epsilon, "target_epsilon", low=0.0)
    _check_real(rtol, "rtol", low=0.0, high=1.0)

    def eps(sigma: float) -> float:
        return dpsgd_epsilon(sigma, sample_rate, steps, delta, orders=orders, conversion=conversion)

    high = 1.0
    while eps(high) > target:
        high *= 2.0
        if high > 1e6:
            raise ConfigurationError(
                f"target_epsilon={target_epsilon} is unreachable with noise multipliers <= 1e6"
            )
    low = high / 2.0
    while low > 1e-3 and eps(low) <= target:
        high, low = low, low / 2.0
    while high - low > rtol * high:
        mid = 0.5 * (low + high)
        if eps(mid) <= target:
            high = mid
        else:
            low = mid
    return high
