"""Empirical privacy auditing: estimate a mechanism's privacy loss from its outputs.

A mechanism that claims :math:`\\varepsilon`-DP must satisfy
:math:`P[M(D_0) \\in S] \\le e^\\varepsilon P[M(D_1) \\in S]` for every set of outputs
``S`` and neighbouring datasets. Sampling the mechanism on a fixed neighbouring pair
and comparing histograms gives an estimate of the largest log ratio, and
Clopper-Pearson intervals turn it into a high-confidence *lower bound* on the true
epsilon: if that lower bound exceeds the claimed epsilon, the implementation is
broken (wrong scale, wrong sensitivity, a bug in a sampler). A passing audit never
proves privacy; it only fails to find a violation on this pair and these bins.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.utils import check_positive_int, check_random_state

__all__ = ["EpsilonEstimate", "estimate_epsilon"]


@dataclass(frozen=True)
class EpsilonEstimate:
    """Result of :func:`estimate_epsilon`.

    Attributes
    ----------
    epsilon : float
        Point estimate: the largest ``|log(p0 / p1)|`` over bins where both datasets
        have at least ``min_count`` samples (biased upwards by taking a maximum).
    lower_bound : float
        A lower confidence bound (level ``confidence``, Clopper-Pearson with a
        Bonferroni correction over bins and directions) on the true privacy loss for
        this pair of datasets; at least 0.
    edges : ndarray of shape (n_bins + 1,)
        The bin edges used.
    counts : ndarray of shape (2, n_bins)
        Samples per bin for ``d0`` and ``d1``.
    """

    epsilon: float
    lower_bound: float
    edges: np.ndarray
    counts: np.ndarray


def _clopper_pearson(counts: np.ndarray, n: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """One-sided (each at level ``alpha``) lower and upper bounds of binomial proportions."""
    c = counts.astype(np.float64)
    with np.errstate(invalid="ignore"):
        lower = np.where(c > 0, stats.beta.ppf(alpha, c, n - c + 1), 0.0)
        upper = np.where(c < n, stats.beta.ppf(1 - alpha, c + 1, n - c), 1.0)
    return lower, upper


def estimate_epsilon(
    mechanism: Callable[[Any, int, np.random.Generator], Any],
    d0: Any,
    d1: Any,
    n_samples: int,
    *,
    bins: int | np.ndarray = 40,
    min_count: int = 100,
    confidence: float = 0.999,
    random_state: Any = None,
) -> EpsilonEstimate:
    """Estimate the privacy loss of ``mechanism`` between neighbouring datasets ``d0``, ``d1``.

    Parameters
    ----------
    mechanism : callable
        ``mechanism(dataset, n, rng)`` returns ``n`` independent scalar outputs
        (array of shape (n,)) of the mechanism run on ``dataset`` with randomness
        ``rng`` (a :class:`numpy.random.Generator`).
    d0, d1 : object
        A pair of neighbouring datasets (anything ``mechanism`` accepts).
    n_samples : int
        Samples drawn per dataset.
    bins : int or ndarray of shape (n_bins + 1,), default=40
        Bin edges, or a number of equal-mass bins whose edges come from a separate
        pilot sample (so that the bins do not depend on the counted samples). For
        integer-valued outputs the edges are moved to half-integers.
    min_count : int, default=100
        Bins with fewer samples (in either dataset) are left out of the point estimate.
    confidence : float, default=0.999
        Level of the lower bound.
    random_state : None, int or numpy.random.Generator, default=None
        Seed for the sampling.

    Returns
    -------
    EpsilonEstimate

    Examples
    --------
    >>> from avrec.privacy import laplace_mechanism
    >>> def mech(d, n, rng):
    ...     return laplace_mechanism(np.full(n, float(d)), 1.0, 1.0, random_state=rng)
    >>> est = estimate_epsilon(mech, 0, 1, 50_000, random_state=0)
    >>> est.lower_bound <= 1.0 < 1.5 * est.epsilon
    True
    """
    n = check_positive_int(n_samples, "n_samples")
    min_count = check_positive_int(min_count, "min_count")
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigurationError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = check_random_state(random_state)

    def draw(dataset: Any, size: int) -> np.ndarray:
        out = np.asarray(mechanism(dataset, size, rng), dtype=np.float64).ravel()
        if out.shape != (size,) or not np.all(np.isfinite(out)):
            raise DataValidationError(
                f"mechanism must return {size} finite scalar outputs, got shape {out.shape}"
            )
        return out

    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        n_bins = check_positive_int(int(bins), "bins", minimum=2)
        pilot = np.concatenate([draw(d0, min(n, 20_000)), draw(d1, min(n, 20_000))])
        inner = np.quantile(pilot, np.linspace(0, 1, n_bins + 1)[1:-1])
        if np.all(pilot == np.round(pilot)):
            inner = np.floor(inner) + 0.5
        edges = np.unique(np.concatenate([[-np.inf], inner, [np.inf]]))
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ConfigurationError("bins must be an int >= 2 or increasing edges")
        edges = np.concatenate([[-np.inf], edges, [np.inf]])
        edges = np.unique(edges)
    counts = np.stack([np.histogram(draw(d, n), bins=edges)[0] for d in (d0, d1)]).astype(np.int64)

    both = (counts >= min_count).all(axis=0)
    with np.errstate(divide="ignore"):
        ratios = np.abs(np.log(counts[0, both]) - np.log(counts[1, both]))
    point = float(ratios.max()) if ratios.size else 0.0

    alpha = (1.0 - float(confidence)) / (4 * counts.shape[1])
    lo, hi = _clopper_pearson(counts, n, alpha)
    with np.errstate(divide="ignore"):
        bound = np.maximum(np.log(lo[0]) - np.log(hi[1]), np.log(lo[1]) - np.log(hi[0]))
    finite = bound[np.isfinite(bound)]
    lower = max(float(finite.max()) if finite.size else 0.0, 0.0)
    return EpsilonEstimate(
        epsilon=point if math.isfinite(point) else math.inf,
        lower_bound=lower,
        edges=edges,
        counts=counts,
    )
