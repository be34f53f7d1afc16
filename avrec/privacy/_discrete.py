"""Exact samplers of the discrete Laplace and discrete Gaussian distributions.

These follow Canonne, Kamath and Steinke (2020), Algorithms 1-3: every probability
is a rational number, every comparison is made on integers, and the only
randomness consumed is uniform random bits and uniform integers, so the output
distribution is *exactly* the stated one (no floating-point error for an adversary
to exploit). The algorithms are vectorised by running each rejection round over all
samples still pending. Integers are int64 while they fit and Python ints (object
arrays) beyond, so no intermediate can overflow.

References
----------
.. [1] C. L. Canonne, G. Kamath and T. Steinke, "The Discrete Gaussian for
   Differential Privacy", NeurIPS 2020, arXiv:2004.00010.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from avrec.privacy._randomness import _Source

__all__: list[str] = []

_INT64_SAFE = 2**61  # 2 * value must still fit in int64


def _widen(a: np.ndarray, largest: int) -> np.ndarray:
    """Return ``a`` as Python-int objects when ``largest`` would overflow int64 arithmetic."""
    if a.dtype != object and largest > _INT64_SAFE:
        return a.astype(object)
    return a


def _bernoulli_frac(num: np.ndarray, den: np.ndarray, source: _Source) -> np.ndarray:
    """Exact Bernoulli(num / den) for integer arrays with ``0 <= num <= den``, ``den > 0``.

    Compares a uniform random binary expansion with that of ``num / den`` bit by
    bit; each round decides half of the pending samples on average.
    """
    out = np.zeros(len(num), dtype=bool)
    if len(num) == 0:
        return out
    largest = int(den.max())
    rem, den = _widen(num.copy(), largest), _widen(den, largest)
    pending = np.arange(len(num))
    while pending.size:
        rem = rem * 2
        p_bit = np.asarray(rem >= den, dtype=bool)
        rem = np.where(p_bit, rem - den, rem)
        u_bit = source.bits(pending.size)
        decided = u_bit != p_bit  # u_bit 0 < p_bit 1 means U < p
        out[pending[decided]] = p_bit[decided]
        keep = ~decided
        pending, rem, den = pending[keep], rem[keep], den[keep]
    return out


def _bernoulli_exp_unit(num: np.ndarray, den: np.ndarray, source: _Source) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) for ``0 <= num/den <= 1`` (CKS Algorithm 1, first part)."""
    out = np.zeros(len(num), dtype=bool)
    pending = np.arange(len(num))
    k = 1
    while pending.size:
        dk = _widen(den, int(den.max()) * k) * k
        a = _bernoulli_frac(num, dk, source)
        stopped = ~a
        out[pending[stopped]] = k % 2 == 1
        pending, num, den = pending[a], num[a], den[a]
        k += 1
    return out


def _bernoulli_exp(num: np.ndarray, den: np.ndarray, source: _Source) -> np.ndarray:
    """Exact Bernoulli(exp(-num/den)) for any rational ``num/den >= 0`` (CKS Algorithm 1)."""
    n = len(num)
    whole = num // den
    frac = num - whole * den
    out = np.ones(n, dtype=bool)
    remaining = whole.copy()
    alive = np.flatnonzero(np.asarray(whole > 0, dtype=bool))
    ones = np.ones(n, dtype=np.int64)
    while alive.size:  # exp(-floor(gamma)): floor(gamma) successes of Bernoulli(exp(-1))
        b = _bernoulli_exp_unit(ones[: alive.size], ones[: alive.size], source)
        out[alive[~b]] = False
        remaining[alive] = remaining[alive] - 1
        alive = alive[b]
        alive = alive[np.asarray(remaining[alive] > 0, dtype=bool)]
    idx = np.flatnonzero(out)
    out[idx] = _bernoulli_exp_unit(frac[idx], den[idx], source)
    return out


def _geometric_exp_one(size: int, source: _Source) -> np.ndarray:
    """Number of Bernoulli(exp(-1)) successes before the first failure."""
    count = np.zeros(size, dtype=np.int64)
    pending = np.arange(size)
    ones = np.ones(size, dtype=np.int64)
    while pending.size:
        b = _bernoulli_exp_unit(ones[: pending.size], ones[: pending.size], source)
        count[pending[b]] += 1
        pending = pending[b]
    return count


def _geometric_exp(n: int, d: int, size: int, source: _Source) -> np.ndarray:
    """Exact geometric variates with ``P(k) = (1 - e^{-x}) e^{-kx}``, ``x = n/d`` (CKS Alg. 2)."""
    u = np.zeros(size, dtype=np.int64 if d <= _INT64_SAFE else object)
    pending = np.arange(size)
    while pending.size:  # U uniform on {0..d-1}, kept with probability exp(-U/d)
        cand = source.randbelow(d, pending.size)
        ok = _bernoulli_exp_unit(cand, np.full(pending.size, d, dtype=cand.dtype), source)
        u[pending[ok]] = cand[ok]
        pending = pending[~ok]
    v = _geometric_exp_one(size, source)
    if max(d * (int(v.max(initial=0)) + 1), n) > _INT64_SAFE:
        v, u = v.astype(object), u.astype(object)
    value = (v * d + u) // n
    return value


def sample_discrete_laplace(scale: Fraction, size: int, source: _Source) -> np.ndarray:
    """Exact discrete Laplace: ``P(x) ∝ exp(-|x| / scale)`` on the integers (CKS Algorithm 2).

    Returns an int64 array (object only if a magnitude exceeds int64, which has
    negligible probability for any practical scale).
    """
    scale = Fraction(scale)
    out = np.zeros(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        negative = source.bits(pending.size)
        magnitude = _geometric_exp(scale.denominator, scale.numerator, pending.size, source)
        ok = ~(negative & np.asarray(magnitude == 0, dtype=bool))
        signed = np.where(negative, -magnitude, magnitude)
        out[pending[ok]] = signed[ok]
        pending = pending[~ok]
    return out


def sample_discrete_gaussian(sigma2: Fraction, size: int, source: _Source) -> np.ndarray:
    """Exact discrete Gaussian: ``P(x) ∝ exp(-x**2 / (2 sigma2))`` on the integers (CKS Alg. 3).

    Proposes discrete Laplace variates of scale ``t = floor(sigma) + 1`` and keeps
    each with probability ``exp(-(|y| - sigma2/t)**2 / (2 sigma2))``.
    """
    sigma2 = Fraction(sigma2)
    p, q = sigma2.numerator, sigma2.denominator
    t = math.isqrt(p // q) + 1
    out = np.zeros(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        y = sample_discrete_laplace(Fraction(t), pending.size, source)
        a = np.abs(y).astype(object)
        num = (a * (t * q) - p) ** 2  # bias = (|y| t q - p)^2 / (2 p q t^2)
        den = np.full(pending.size, 2 * p * q * t * t, dtype=object)
        ok = _bernoulli_exp(num, den, source)
        out[pending[ok]] = y[ok]
        pending = pending[~ok]
    return out


def rational_up(x: float, bits: int = 40) -> Fraction:
    """Smallest multiple of ``2**(e - bits)`` that is >= ``x`` (``2**e`` near ``x``); exact."""
    _, e = math.frexp(x)  # x = m 2**e with 0.5 <= m < 1
    shift = bits - e
    k = math.ceil(Fraction(x) * Fraction(2) ** shift)
    return Fraction(k) / Fraction(2) ** shift
