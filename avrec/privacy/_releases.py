"""Differentially private releases of the aggregates recommenders learn from.

Both releases protect one *user* with all their interactions (add/remove-one-user
neighbours). Each bounds contributions first (:func:`bound_contributions`), derives
the sensitivity of the bounded query exactly, and adds noise with a mechanism of
:mod:`avrec.privacy` (which charges the accountant before drawing noise).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.privacy._contribution import bound_contributions, check_max_items
from avrec.privacy._counts import discrete_gaussian, discrete_gaussian_sigma, discrete_laplace
from avrec.privacy._mechanisms import gaussian_mechanism, gaussian_sigma, laplace_mechanism
from avrec.privacy._randomness import SecureRandom
from avrec.recommenders._input import check_interactions
from avrec.utils import check_random_state

__all__ = [
    "cooccurrence_sensitivity",
    "noise_std",
    "dp_item_cooccurrence",
    "dp_item_popularity",
    "popularity_sensitivity",
]

_MECHANISMS = ("discrete_laplace", "laplace", "gaussian", "discrete_gaussian")


def popularity_sensitivity(max_items_per_user: int, n_items: int | None = None) -> dict[str, float]:
    """L1 and L2 sensitivity of per-item counts after bounding each user to ``m`` items.

    A user keeps ``c <= m`` distinct items (also ``c <= n_items``) with weight 1, so
    removing them lowers ``c`` counts by 1: the L1 change is ``c`` and the L2 change
    ``sqrt(c)``, largest at ``c = min(m, n_items)``.

    Parameters
    ----------
    max_items_per_user : int
        The bound ``m``.
    n_items : int, optional
        Catalogue size (public); caps ``c``.

    Returns
    -------
    dict
        ``{"l1": float, "l2": float}``.

    Examples
    --------
    >>> popularity_sensitivity(4)
    {'l1': 4.0, 'l2': 2.0}
    """
    c = _max_items(max_items_per_user, n_items)
    return {"l1": float(c), "l2": math.sqrt(c)}


def cooccurrence_sensitivity(
    max_items_per_user: int, n_items: int | None = None
) -> dict[str, float]:
    """L1 and L2 sensitivity of the upper triangle (with diagonal) of the bounded Gram matrix.

    A user with ``c`` binary items adds the all-ones ``c x c`` block on their
    items to ``X^T X``: ``c`` diagonal entries and ``c (c - 1)`` off-diagonal
    ones, symmetric. Only the upper triangle including the diagonal is noised
    (and mirrored), so the released vector changes in ``c (c + 1) / 2`` entries
    by exactly 1 each: L1 ``c (c + 1) / 2`` and L2 ``sqrt(c (c + 1) / 2)``, largest
    at ``c = min(m, n_items)``.

    Parameters
    ----------
    max_items_per_user : int
        The bound ``m``.
    n_items : int, optional
        Catalogue size (public); caps ``c``.

    Returns
    -------
    dict
        ``{"l1": float, "l2": float}``.

    Examples
    --------
    >>> cooccurrence_sensitivity(3)
    {'l1': 6.0, 'l2': 2.449489742783178}
    """
    c = _max_items(max_items_per_user, n_items)
    entries = c * (c + 1) // 2
    return {"l1": float(entries), "l2": math.sqrt(entries)}


def noise_std(mechanism: str, sensitivity: dict[str, float], epsilon: float, delta: float) -> float:
    """Standard deviation of the noise a release adds to each entry (0 for ``epsilon=inf``).

    Public knowledge (it depends on the parameters only), so post-processing
    may use it, e.g. to threshold noisy counts.

    Parameters
    ----------
    mechanism : {"discrete_laplace", "laplace", "gaussian", "discrete_gaussian"}
    sensitivity : dict
        ``{"l1": ..., "l2": ...}`` as returned by :func:`cooccurrence_sensitivity`.
    epsilon, delta : float

    Returns
    -------
    float

    Examples
    --------
    >>> round(noise_std("laplace", {"l1": 1.0, "l2": 1.0}, 1.0, 0.0), 4)
    1.4142
    """
    if math.isinf(epsilon):
        return 0.0
    if mechanism == "laplace":
        return math.sqrt(2) * sensitivity["l1"] / epsilon
    if mechanism == "discrete_laplace":
        p = math.exp(-epsilon / sensitivity["l1"])
        return math.sqrt(2 * p) / (1 - p)
    if mechanism == "gaussian":
        return gaussian_sigma(epsilon, delta, sensitivity["l2"])
    return discrete_gaussian_sigma(epsilon, delta, sensitivity["l2"])


def dp_item_popularity(
    X: Any,
    epsilon: float,
    *,
    max_items_per_user: int,
    mechanism: str = "discrete_laplace",
    delta: float = 0.0,
    accountant: Any = None,
    random_state: Any = None,
    note: str = "",
) -> np.ndarray:
    """Per-item interaction counts, released with user-level differential privacy.

    Each user keeps at most ``m = max_items_per_user`` interactions, sampled
    uniformly and binarised (:func:`bound_contributions`); the counts of the
    bounded data then have L1 sensitivity ``m`` and L2 sensitivity ``sqrt(m)``
    (:func:`popularity_sensitivity`), and noise is calibrated to them.

    Parameters
    ----------
    X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
        Interactions; weights only matter through being non-zero.
    epsilon : float
        Privacy budget of the release, ``> 0``.
    max_items_per_user : int
        Contribution bound ``m``.
    mechanism : {"discrete_laplace", "laplace", "gaussian", "discrete_gaussian"}, \
default="discrete_laplace"
        Integer noise (exact discrete Laplace or discrete Gaussian, counts stay
        integers) or continuous noise. The Gaussian ones need ``delta > 0``.
    delta : float, default=0.0
        ``delta`` of the Gaussian mechanisms.
    accountant : PrivacyAccountant, optional
        Charged before any noise is drawn; an overspend raises
        :class:`~avrec.exceptions.PrivacyBudgetExceeded` and releases nothing.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom
        Randomness of the bounding and the noise. None (the default) and
        ``"secure"`` draw the noise from ``os.urandom``; an int or Generator gives
        this release a reproducible stream of its own (research and tests only).
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (n_items,)
        Noisy counts: int64 for the discrete mechanisms, float64 otherwise.
        They can be negative; clipping at 0 or ranking them is post-processing
        and costs no privacy.

    Raises
    ------
    ConfigurationError
        For an invalid ``epsilon``, ``delta``, ``mechanism`` or bound.
    PrivacyBudgetExceeded
        If ``accountant`` refuses the release.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.kron(np.ones((50, 1)), np.array([[1, 1, 0, 1]]))
    >>> counts = dp_item_popularity(X, 1.0, max_items_per_user=2, random_state=0)
    >>> counts.dtype, counts.shape
    (dtype('int64'), (4,))
    """
    mechanism, eps, delta = _check_release(epsilon, delta, mechanism)
    m = check_max_items(max_items_per_user)
    csr, _ = check_interactions(X, allow_empty=True)
    rng = _bounding_rng(random_state)
    bounded = bound_contributions(csr, m, random_state=rng)
    counts = np.bincount(bounded.indices, minlength=csr.shape[1]).astype(np.int64)
    sens = popularity_sensitivity(m, csr.shape[1])
    noise_state = random_state
    return _release(counts, sens, eps, delta, mechanism, accountant, noise_state, note)


def dp_item_cooccurrence(
    X: Any,
    epsilon: float,
    delta: float = 0.0,
    *,
    max_items_per_user: int,
    mechanism: str = "discrete_laplace",
    accountant: Any = None,
    random_state: Any = None,
    note: str = "",
) -> np.ndarray:
    """Item-item co-occurrence counts ``X^T X``, released with user-level differential privacy.

    Each user keeps at most ``m = max_items_per_user`` interactions, sampled
    uniformly and binarised; the upper triangle (diagonal included) of the Gram
    matrix of the bounded data is released with noise and mirrored, so the
    result is symmetric. Its diagonal holds the noisy item counts.

    Parameters
    ----------
    X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
        Interactions; weights only matter through being non-zero.
    epsilon : float
        Privacy budget of the release, ``> 0``; ``float("inf")`` releases the
        exact Gram matrix of the bounded data (a baseline; an accountant is
        charged ``inf``, which only an infinite budget allows).
    delta : float, default=0.0
        ``delta`` of the Gaussian mechanisms (needed > 0 by them).
    max_items_per_user : int
        Contribution bound ``m``.
    mechanism : {"discrete_laplace", "laplace", "gaussian", "discrete_gaussian"}, \
default="discrete_laplace"
        The Laplace ones are calibrated to the L1 sensitivity ``m (m + 1) / 2``,
        the Gaussian ones to the L2 sensitivity ``sqrt(m (m + 1) / 2)``; for
        ``m`` beyond a few, Gaussian noise is much smaller. The exact discrete
        samplers are slow for large catalogues (``n (n + 1) / 2`` draws).
    accountant : PrivacyAccountant, optional
        Charged before any noise is drawn.
    random_state : None, int, numpy.random.Generator, "secure" or SecureRandom
        Randomness of the bounding and the noise. None (the default) and
        ``"secure"`` draw the noise from ``os.urandom``; an int or Generator gives
        this release a reproducible stream of its own (research and tests only).
    note : str, default=""
        Stored in the accountant's record.

    Returns
    -------
    ndarray of shape (n_items, n_items)
        Symmetric noisy counts: int64 for the discrete mechanisms, float64
        otherwise (float64 also for ``epsilon=inf``). Entries can be negative.

    Raises
    ------
    ConfigurationError
        For an invalid ``epsilon``, ``delta``, ``mechanism`` or bound.
    PrivacyBudgetExceeded
        If ``accountant`` refuses the release.

    Notes
    -----
    Sensitivity. Removing a user with ``c <= m`` binary items (after bounding)
    subtracts the all-ones block on their items: ``c^2`` entries of 1 in
    ``X^T X`` (``c`` on the diagonal, ``c (c - 1)`` off it, in symmetric
    pairs). The released vector is the upper triangle with the diagonal, where
    the block has ``c + c (c - 1) / 2 = c (c + 1) / 2`` entries of 1, so the
    L1 change is ``c (c + 1) / 2`` and the L2 change its square root, both
    largest at ``c = min(m, n_items)`` (:func:`cooccurrence_sensitivity`).
    Noising the full matrix independently would count every off-diagonal pair
    twice (L1 ``m^2``) for no gain; mirroring the noised triangle is
    post-processing.

    Memory: a dense ``n_items x n_items`` matrix (plus the noise of its upper
    triangle).

    References
    ----------
    .. [1] F. McSherry and I. Mironov, "Differentially Private Recommender
       Systems: Building Privacy into the Netflix Prize Contenders", KDD 2009.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.kron(np.ones((40, 1)), np.array([[1, 1, 0]]))
    >>> G = dp_item_cooccurrence(X, 2.0, max_items_per_user=2, random_state=0)
    >>> G.shape, bool((G == G.T).all())
    ((3, 3), True)
    """
    mechanism, eps, delta = _check_release(epsilon, delta, mechanism)
    m = check_max_items(max_items_per_user)
    csr, _ = check_interactions(X, allow_empty=True)
    rng = _bounding_rng(random_state)
    bounded = bound_contributions(csr, m, random_state=rng)
    n_items = csr.shape[1]
    gram = bounded_gram(bounded)
    upper = np.triu_indices(n_items)
    sens = cooccurrence_sensitivity(m, n_items)
    noise_state = random_state
    if math.isinf(eps):
        _release(gram[upper], sens, eps, delta, mechanism, accountant, noise_state, note)
        return gram
    values = gram[upper].astype(np.int64)
    noisy = _release(values, sens, eps, delta, mechanism, accountant, noise_state, note)
    out = np.empty((n_items, n_items), dtype=noisy.dtype)
    out[upper] = noisy
    out.T[upper] = noisy
    return out


def bounded_gram(bounded: sp.csr_matrix) -> np.ndarray:
    """Exact dense ``X^T X`` (float64) of a (bounded, binary) interaction matrix.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> bounded_gram(sp.csr_matrix([[1.0, 1.0], [0.0, 1.0]])).tolist()
    [[1.0, 1.0], [1.0, 2.0]]
    """
    Xb = sp.csr_matrix(bounded, dtype=np.float64)
    return np.asarray((Xb.T @ Xb).toarray(), dtype=np.float64)


def _release(
    values: np.ndarray,
    sens: dict[str, float],
    eps: float,
    delta: float,
    mechanism: str,
    accountant: Any,
    random_state: Any,
    note: str,
) -> np.ndarray:
    if math.isinf(eps):
        if accountant is not None:  # an exact release is infinitely expensive
            accountant.spend(math.inf, 0.0, mechanism="exact (epsilon=inf)", note=note)
        return values
    if mechanism == "discrete_laplace":
        return discrete_laplace(
            values, sens["l1"], eps, random_state=random_state, accountant=accountant, note=note
        )
    if mechanism == "laplace":
        return laplace_mechanism(
            values.astype(np.float64),
            sens["l1"],
            eps,
            random_state=random_state,
            accountant=accountant,
            note=note,
        )
    if mechanism == "gaussian":
        return gaussian_mechanism(
            values.astype(np.float64),
            sens["l2"],
            eps,
            delta,
            random_state=random_state,
            accountant=accountant,
            note=note,
        )
    return discrete_gaussian(
        values, sens["l2"], eps, delta, random_state=random_state, accountant=accountant, note=note
    )


def _check_release(epsilon: Any, delta: Any, mechanism: Any) -> tuple[str, float, float]:
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    return check_mechanism(mechanism, dlt, eps), eps, dlt


def check_epsilon(value: Any, name: str = "epsilon") -> float:
    """Validate a privacy parameter ``epsilon > 0`` (``inf`` allowed) and return it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or math.isnan(value)
        or not value > 0
    ):
        raise ConfigurationError(
            f"{name} must be a number > 0 (float('inf') for no noise), got {value!r}"
        )
    return float(value)


def check_delta(value: Any, *, positive: bool = False) -> float:
    """Validate ``delta`` in ``[0, 1)`` (``(0, 1)`` with ``positive``) and return it."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (0 <= value < 1) or (positive and value == 0):
        need = "in (0, 1)" if positive else "in [0, 1)"
        raise ConfigurationError(f"delta must be a number {need}, got {value!r}")
    return float(value)


def check_mechanism(value: Any, delta: float, epsilon: float = 1.0) -> str:
    """Validate the ``mechanism`` name against ``delta`` (Gaussian ones need ``delta > 0``)."""
    if value not in _MECHANISMS:
        raise ConfigurationError(f"mechanism must be one of {list(_MECHANISMS)}, got {value!r}")
    if "gaussian" in value and delta == 0 and not math.isinf(epsilon):
        raise ConfigurationError(f"mechanism={value!r} needs delta > 0")
    return str(value)


def _is_seeded(random_state: Any) -> bool:
    return isinstance(random_state, (int, np.integer, np.random.Generator)) and not isinstance(
        random_state, bool
    )


def _bounding_rng(random_state: Any) -> np.random.Generator:
    """Generator for the contribution bounding: the seeded one, or fresh OS entropy.

    The noise is drawn separately by the mechanism, from ``random_state`` itself: the
    secure source by default, else a stream of that release's own.
    """
    if _is_seeded(random_state):
        return check_random_state(random_state)
    if random_state is not None and not isinstance(random_state, (str, SecureRandom)):
        check_random_state(random_state)  # refuses bad types with the standard message
    return np.random.default_rng()


def _max_items(max_items_per_user: int, n_items: int | None) -> int:
    m = check_max_items(max_items_per_user)
    return m if n_items is None else max(1, min(m, int(n_items)))
