"""Randomized response for binary implicit feedback (local differential privacy)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from avrec.exceptions import DataValidationError
from avrec.privacy._checks import check_accountant, check_epsilon
from avrec.privacy._randomness import _as_source

__all__ = ["debias_randomized_response", "randomized_response"]


def _check_bits(bits: Any, name: str) -> np.ndarray:
    arr = np.asarray(bits)
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)):
        raise DataValidationError(f"{name} must be an array of 0/1 values, got dtype {arr.dtype}")
    if arr.dtype != bool and not np.all((arr == 0) | (arr == 1)):
        raise DataValidationError(f"{name} must contain only 0 and 1")
    return arr


def randomized_response(
    bits: Any,
    epsilon: float,
    *,
    random_state: Any = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Report each bit truthfully with probability ``e^eps / (1 + e^eps)``, else flipped.

    Parameters
    ----------
    bits : array-like of {0, 1} or bool, shape (n_users, ...) or (n_bits,)
        True binary feedback (clicked / watched). Each row (the first axis) holds
        one user's bits; a 1-d array (or a scalar) is the bits of a single user.
    epsilon : float
        Local privacy parameter per bit, ``> 0``. A user with ``n`` bits is
        protected with ``n * epsilon`` (basic composition over their bits).
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom, default=None
        Randomness. None (the default) and ``"secure"`` draw from ``os.urandom``; an
        int or Generator seeds a reproducible PCG64 stream of this release alone,
        fresh whenever anything about the release differs (for research and tests;
        see :class:`~avrec.privacy.SecureRandom`).
    accountant : PrivacyAccountant or None, default=None
        Charged ``(n * epsilon, 0)`` before sampling, with ``n`` the number of bits
        per user (``bits[0].size`` for a 2-d or larger array, ``bits.size``
        otherwise): the privacy loss of the user who owns a whole row.
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (...)
        The reports, with the dtype of ``bits``.

    Notes
    -----
    Guarantee: each reported bit is :math:`\\varepsilon`-locally-DP with respect to the
    true bit, since :math:`P(y \\mid x) / P(y \\mid x') \\le p/(1-p) = e^\\varepsilon`
    (Warner 1965; Erlingsson et al. 2014). A user owns a whole row of ``n`` bits, so
    the release protects that user with :math:`n\\varepsilon` (basic composition),
    and that is what the accountant is charged. To protect each user with a total
    :math:`\\varepsilon_u`, pass ``epsilon = eps_u / n``. The keep probability is a
    double; the Bernoulli draw compares it with a 52-bit uniform, an error of order
    :math:`2^{-52}` in the probability.

    References
    ----------
    .. [1] S. L. Warner, "Randomized Response: A Survey Technique for Eliminating
       Evasive Answer Bias", JASA 1965.

    Examples
    --------
    >>> reports = randomized_response(np.array([1, 0, 1, 1]), epsilon=2.0, random_state=0)
    >>> reports.shape
    (4,)
    >>> from avrec.privacy import PrivacyAccountant
    >>> acc = PrivacyAccountant(epsilon=10.0)
    >>> _ = randomized_response(np.zeros((100, 3), dtype=int), 0.5, accountant=acc)
    >>> acc.spent  # three bits per user at 0.5 each
    (1.5, 0.0)
    """
    x = _check_bits(bits, "bits")
    eps = check_epsilon(epsilon)
    source = _as_source(random_state, "randomized_response", eps, x)
    check_accountant(accountant)
    per_user = int(x[0].size) if x.ndim >= 2 else max(int(x.size), 1)
    if accountant is not None:
        accountant.spend(
            eps * per_user,
            0.0,
            mechanism="randomized-response",
            note=note or f"{per_user} bit(s) per user at epsilon={eps:g} each",
        )
    flip = source.uniform_open(x.size).reshape(x.shape) < special.expit(-eps)
    out = np.where(flip, 1 - x.astype(np.int64), x).astype(x.dtype)
    return out[()] if out.ndim == 0 else out


def debias_randomized_response(reports: Any, epsilon: float) -> np.ndarray:
    """Unbiased estimates of the true bits from randomized-response reports.

    Parameters
    ----------
    reports : array-like of {0, 1} or bool, shape (...)
        Output of :func:`randomized_response`.
    epsilon : float
        The epsilon the reports were made with.

    Returns
    -------
    ndarray of shape (...), dtype float64
        :math:`\\hat{x} = (y - (1-p)) / (2p - 1)` with :math:`p = e^\\varepsilon /
        (1 + e^\\varepsilon)`; :math:`E[\\hat{x}] = x`, so sums and means of the
        estimates are unbiased for true counts and rates (individual estimates lie
        outside [0, 1]). Each has variance :math:`p(1-p)/(2p-1)^2`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = (rng.random(200_000) < 0.3).astype(int)
    >>> reports = randomized_response(truth, epsilon=1.0, random_state=1)
    >>> round(float(debias_randomized_response(reports, 1.0).mean()), 2)
    0.3
    """
    y = _check_bits(reports, "reports").astype(np.float64)
    eps = check_epsilon(epsilon)
    p = float(special.expit(eps))
    return (y - (1.0 - p)) / math.tanh(eps / 2.0) if p < 1.0 else y
