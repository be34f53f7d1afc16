"""The exponential mechanism for private top-k selection, via Gumbel noise."""

from __future__ import annotations

from typing import Any

import numpy as np

from avrec.exceptions import DataValidationError
from avrec.privacy._checks import check_accountant, check_epsilon, check_sensitivity
from avrec.utils import check_top_k

__all__ = ["exponential_mechanism"]

from avrec.privacy._randomness import _as_source


def exponential_mechanism(
    scores: Any,
    sensitivity: float,
    epsilon: float,
    k: int = 1,
    *,
    monotonic: bool = False,
    random_state: Any = None,
    accountant: Any = None,
    note: str = "",
) -> np.ndarray:
    """Privately select the ``k`` best candidates: k exponential-mechanism rounds of eps/k.

    Parameters
    ----------
    scores : array-like of shape (n_candidates,) or (n_rows, n_candidates)
        Utility of each candidate (e.g. item popularity). ``-inf`` excludes a candidate
        (the exclusion must not depend on private data). Each row is selected from
        independently.
    sensitivity : float
        Largest change of any one score between neighbouring datasets, ``> 0``.
    epsilon : float
        Total privacy parameter of one row's selection, ``> 0``.
    k : int, default=1
        Number of candidates to select.
    monotonic : bool, default=False
        True when, between neighbouring datasets, all scores move in the same
        direction (e.g. counts when adding a user); halves the noise.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom, default=None
        Randomness. None (the default) and ``"secure"`` draw from ``os.urandom``; an
        int or Generator seeds a reproducible PCG64 stream of this release alone,
        fresh whenever anything about the release differs (for research and tests;
        see :class:`~avrec.privacy.SecureRandom`).
    accountant : PrivacyAccountant or None, default=None
        Charged ``(epsilon, 0)`` once, before sampling.
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (k,) or (n_rows, k), dtype int64
        Selected candidate indices, in the order the peeling rounds would pick them.

    Notes
    -----
    Guarantee: each round is the exponential mechanism of McSherry and Talwar (2007)
    with :math:`\\varepsilon/k`, which picks candidate ``i`` with probability
    :math:`\\propto \\exp(\\varepsilon u_i / (2k\\Delta))` (:math:`\\exp(\\varepsilon u_i /
    (k\\Delta))` when ``monotonic``) and is :math:`\\varepsilon/k`-DP; the ``k`` rounds
    without replacement compose (basic composition) to :math:`\\varepsilon`-DP. The
    rounds are run at once: adding i.i.d. Gumbel noise of scale :math:`2k\\Delta/
    \\varepsilon` (:math:`k\\Delta/\\varepsilon` when ``monotonic``) and taking the
    top ``k`` has exactly the distribution of the peeling procedure (Durfee and Rogers
    2019, Lemma 4.2), who also give tighter :math:`(\\varepsilon, \\delta)` bounds for
    large ``k``. With several rows, the accountant is charged once, which is right only
    when the rows are computed from disjoint individuals' data (parallel composition);
    otherwise charge it once per row. Gumbel variates are floating-point
    (``-log(-log(U))`` on 52-bit uniforms).

    References
    ----------
    .. [1] F. McSherry and K. Talwar, "Mechanism Design via Differential Privacy",
       FOCS 2007.
    .. [2] D. Durfee and R. Rogers, "Practical Differentially Private Top-k
       Selection with Pay-what-you-get Composition", NeurIPS 2019.

    Examples
    --------
    >>> popularity = np.array([500.0, 20.0, 480.0, 3.0, 250.0])
    >>> exponential_mechanism(popularity, sensitivity=1.0, epsilon=10.0, k=2, random_state=0)
    array([0, 2])
    """
    try:
        u = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"scores must be an array of numbers, got {scores!r}") from exc
    if u.ndim not in (1, 2) or u.shape[-1] == 0:
        raise DataValidationError(
            f"scores must have shape (n_candidates,) or (n_rows, n_candidates), got {u.shape}"
        )
    if np.any(np.isnan(u)) or np.any(u == np.inf):
        raise DataValidationError("scores must not contain NaN or +inf")
    sens = check_sensitivity(sensitivity)
    eps = check_epsilon(epsilon)
    k = check_top_k(k)
    rows = np.atleast_2d(u)
    available = np.isfinite(rows).sum(axis=1)
    if np.any(available < k):
        raise DataValidationError(
            f"k={k} exceeds the number of finite scores in a row ({int(available.min())})"
        )
    source = _as_source(random_state, "exponential", sens, eps, k, monotonic, rows)
    check_accountant(accountant)
    if accountant is not None:
        accountant.spend(eps, 0.0, mechanism="exponential", note=note)
    scale = (1.0 if monotonic else 2.0) * sens * k / eps
    noisy = rows + scale * source.gumbel(rows.size).reshape(rows.shape)
    n = rows.shape[1]
    if k < n:
        part = np.argpartition(-noisy, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(n), (rows.shape[0], 1))
    order = np.argsort(-np.take_along_axis(noisy, part, axis=1), axis=1, kind="stable")
    chosen = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return chosen[0] if u.ndim == 1 else chosen
