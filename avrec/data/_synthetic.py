"""Synthetic interaction logs with popularity bias and latent clusters (known ground truth)."""

from __future__ import annotations

import logging
import numbers
from typing import Literal, overload

import numpy as np
import scipy.sparse as sp

from avrec.data._interactions import Interactions
from avrec.data._vocabulary import Vocabulary
from avrec.exceptions import DataValidationError
from avrec.utils import check_random_state

__all__ = ["make_interactions"]

logger = logging.getLogger(__name__)

_T0 = 1_500_000_000.0  # 2017-07-14, Unix seconds
_SPAN = 3 * 365 * 86_400.0  # three years
_CHUNK_DRAWS = 2_000_000  # users are generated in blocks of about this many draws
_MAX_ROUNDS = 30  # top-up rounds that replace duplicate draws
_MAX_USER_FRACTION = 0.5  # no user consumes more than half of the catalogue


@overload
def make_interactions(
    n_users: int = ...,
    n_items: int = ...,
    density: float = ...,
    n_clusters: int = ...,
    *,
    popularity_exponent: float = ...,
    cluster_strength: float = ...,
    activity_spread: float = ...,
    timestamps: bool = ...,
    return_clusters: Literal[False] = ...,
    random_state: int | np.random.Generator | None = ...,
) -> Interactions: ...


@overload
def make_interactions(
    n_users: int = ...,
    n_items: int = ...,
    density: float = ...,
    n_clusters: int = ...,
    *,
    popularity_exponent: float = ...,
    cluster_strength: float = ...,
    activity_spread: float = ...,
    timestamps: bool = ...,
    return_clusters: Literal[True],
    random_state: int | np.random.Generator | None = ...,
) -> tuple[Interactions, np.ndarray, np.ndarray]: ...


def make_interactions(
    n_users: int = 1000,
    n_items: int = 500,
    density: float = 0.02,
    n_clusters: int = 8,
    *,
    popularity_exponent: float = 1.0,
    cluster_strength: float = 0.8,
    activity_spread: float = 1.0,
    timestamps: bool = True,
    return_clusters: bool = False,
    random_state: int | np.random.Generator | None = None,
) -> Interactions | tuple[Interactions, np.ndarray, np.ndarray]:
    """Generate an implicit-feedback log with popular items and user/item clusters.

    Every item gets a Zipf popularity ``rank ** -popularity_exponent`` (ranks
    shuffled) and one of ``n_clusters`` latent clusters (balanced sizes); every
    user gets a cluster and a log-normal activity level. Each of a user's
    interactions is drawn from their cluster's items (weighted by popularity)
    with probability ``cluster_strength``, otherwise from the whole catalogue
    by popularity; repeated draws are replaced, so each (user, item) pair is
    stored once with weight 1. A model that learns the clusters therefore
    beats a popularity ranking, and by how much is set by ``cluster_strength``.

    Generation is vectorised (inverse-CDF sampling with one
    :func:`numpy.searchsorted` per block of users) and streams over blocks of
    about two million draws, so an ML-20M-sized log (138,493 x 26,744, 20M
    pairs) takes seconds and memory close to that of the result.

    Parameters
    ----------
    n_users : int, default=1000
        Rows of the matrix. Every user gets at least one interaction.
    n_items : int, default=500
        Columns of the matrix. Unpopular items may end up with none.
    density : float, default=0.02
        Target ``nnz / (n_users * n_items)``, in ``(0, 0.5]``. The result comes
        close (see Notes).
    n_clusters : int, default=8
        Latent clusters, between 1 and ``n_items``.
    popularity_exponent : float, default=1.0
        Zipf exponent of item popularity (``0``: uniform; larger: heavier head).
    cluster_strength : float, default=0.8
        Probability, in ``[0, 1]``, that an interaction comes from the user's
        cluster rather than from global popularity.
    activity_spread : float, default=1.0
        Standard deviation of the log of users' activity (``0``: every user has
        about the same number of interactions).
    timestamps : bool, default=True
        Attach integral Unix timestamps: each user is active over a random
        window inside three years from July 2017, and their interactions fall
        uniformly inside it.
    return_clusters : bool, default=False
        Also return the ground-truth clusters.
    random_state : None, int or numpy.random.Generator, default=None
        Seed; equal seeds give equal results.

    Returns
    -------
    X : Interactions
        Shape ``(n_users, n_items)``, ids ``0 .. n-1``, weights 1.
    user_clusters : ndarray of shape (n_users,), dtype int64
        Only with ``return_clusters=True``: the cluster of each user.
    item_clusters : ndarray of shape (n_items,), dtype int64
        Only with ``return_clusters=True``: the cluster of each item.

    Raises
    ------
    DataValidationError
        If a size is not a positive int, ``n_clusters > n_items``, or a rate
        is outside its range.
    ConfigurationError
        If ``random_state`` is invalid.

    Notes
    -----
    Per-user counts are log-normal, rescaled to the requested total, at least
    1 and at most half the catalogue. Duplicate draws are replaced in up to
    30 rounds; users who want most of a long-tailed catalogue may still end a
    few items short, so the density lands slightly below the request when
    ``density`` is large.

    Examples
    --------
    >>> X, user_clusters, item_clusters = make_interactions(
    ...     200, 100, density=0.05, n_clusters=4, return_clusters=True, random_state=0
    ... )
    >>> X.shape, user_clusters.shape, item_clusters.shape
    ((200, 100), (200,), (100,))
    >>> round(X.density, 2)
    0.05
    >>> X == make_interactions(200, 100, density=0.05, n_clusters=4, random_state=0)
    True
    """
    n_users = _check_int(n_users, "n_users")
    n_items = _check_int(n_items, "n_items")
    n_clusters = _check_int(n_clusters, "n_clusters")
    if n_clusters > n_items:
        raise DataValidationError(f"n_clusters={n_clusters} exceeds n_items={n_items}")
    density = _check_real(density, "density", 0.0, 0.5, low_open=True)
    popularity_exponent = _check_real(popularity_exponent, "popularity_exponent", 0.0, np.inf)
    cluster_strength = _check_real(cluster_strength, "cluster_strength", 0.0, 1.0)
    activity_spread = _check_real(activity_spread, "activity_spread", 0.0, np.inf)
    rng = check_random_state(random_state)

    item_clusters = rng.permutation(np.arange(n_items) % n_clusters).astype(np.int64)
    user_clusters = rng.permutation(np.arange(n_users) % n_clusters).astype(np.int64)
    popularity = (rng.permutation(n_items) + 1.0) ** -popularity_exponent
    sampler = _ItemSampler(popularity, item_clusters, n_clusters)

    counts = _user_counts(rng, n_users, n_items, density, activity_spread)

    # Users are generated in blocks of ~2M draws, written straight into the CSR arrays:
    # peak memory stays near the size of the result.
    total = int(counts.sum())
    indices = np.empty(total, dtype=np.int32)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    times = np.empty(total) if timestamps else None
    first = _T0 + rng.random(n_users) * 0.8 * _SPAN  # each user's active window
    length = rng.random(n_users) * (_T0 + _SPAN - first)
    bounds = np.searchsorted(
        np.cumsum(counts), np.arange(1, 1 + total // _CHUNK_DRAWS) * _CHUNK_DRAWS
    )
    filled = 0
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, n_users], strict=True):
        if hi == lo:
            continue
        keys = _draw_block(
            rng, sampler, counts[lo:hi], user_clusters[lo:hi], lo, n_items, cluster_strength
        )
        rows = keys // n_items
        end = filled + keys.size
        indices[filled:end] = keys - rows * n_items
        indptr[lo + 1 : hi + 1] = np.bincount(rows - lo, minlength=hi - lo)
        if times is not None:
            times[filled:end] = np.floor(first[rows] + rng.random(keys.size) * length[rows])
        filled = end
    np.cumsum(indptr, out=indptr)
    if filled < total:
        logger.debug(
            "make_interactions: %d draws short after %d rounds", total - filled, _MAX_ROUNDS
        )
        indices = indices[:filled].copy()
        times = None if times is None else times[:filled].copy()
    matrix = sp.csr_matrix(
        (np.ones(filled, dtype=np.float32), indices, indptr), shape=(n_users, n_items)
    )
    X = Interactions(matrix, Vocabulary(np.arange(n_users)), Vocabulary(np.arange(n_items)), times)
    if return_clusters:
        return X, user_clusters, item_clusters
    return X


def _user_counts(
    rng: np.random.Generator, n_users: int, n_items: int, density: float, spread: float
) -> np.ndarray:
    """Log-normal interactions per user, in ``[1, n_items / 2]``, summing to the target."""
    target = density * n_users * n_items
    cap = max(1, int(_MAX_USER_FRACTION * n_items))
    wanted = rng.lognormal(0.0, spread, size=n_users)
    wanted *= target / wanted.sum()
    for _ in range(10):  # hand what the bounds cut off (or add) to the users inside them
        clipped = np.clip(wanted, 1, cap)
        free = (wanted > 1) & (wanted < cap)
        gap = target - clipped.sum()
        if abs(gap) < 0.5 or not free.any():
            break
        wanted = clipped
        wanted[free] *= 1 + gap / wanted[free].sum()
    counts = np.floor(np.clip(wanted, 1, cap) + rng.random(n_users))  # unbiased rounding
    return np.minimum(counts, cap).astype(np.int64)


class _ItemSampler:
    """Inverse-CDF samplers for global popularity and for each cluster's items."""

    def __init__(self, popularity: np.ndarray, item_clusters: np.ndarray, n_clusters: int) -> None:
        n_items = popularity.size
        self.global_cdf = np.cumsum(popularity) / popularity.sum()
        self.global_cdf[-1] = 1.0
        # items ordered by cluster; within cluster c the CDF runs over (c, c + 1], so all
        # clusters share one increasing array and one searchsorted samples them all
        self.order = np.argsort(item_clusters, kind="stable")
        sizes = np.bincount(item_clusters, minlength=n_clusters)
        ends = np.cumsum(sizes)
        starts = ends - sizes
        pop = popularity[self.order]
        csum = np.cumsum(pop)
        before = np.r_[0.0, csum][starts]
        total = csum[ends - 1] - before
        cluster_of = np.repeat(np.arange(n_clusters), sizes)
        within = (csum - before[cluster_of]) / total[cluster_of]
        within[ends - 1] = 1.0
        self.cluster_cdf = cluster_of + within
        self.n_items = n_items

    def draw_global(self, u: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.global_cdf, u, side="right")
        return np.minimum(pos, self.n_items - 1)

    def draw_cluster(self, clusters: np.ndarray, u: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.cluster_cdf, clusters + u, side="right")
        return self.order[np.minimum(pos, self.n_items - 1)]


def _draw_block(
    rng: np.random.Generator,
    sampler: _ItemSampler,
    counts: np.ndarray,
    clusters: np.ndarray,
    first_user: int,
    n_items: int,
    cluster_strength: float,
) -> np.ndarray:
    """Sorted unique keys ``user * n_items + item`` for one block of consecutive users.

    Round 0 draws each user's count; duplicates are then replaced in later rounds
    that over-draw (x2, x4 ...) and keep a random subset of the new distinct items,
    so heavy users of a long-tailed catalogue fill up in a few rounds.
    """
    keys = np.zeros(0, dtype=np.int64)
    need = counts
    local = np.arange(counts.size)
    for round_ in range(_MAX_ROUNDS):
        if not need.any():
            break
        factor = min(2**round_, 64)
        user = np.repeat(local, need * factor)
        total = user.size
        items = np.empty(total, dtype=np.int64)
        from_cluster = rng.random(total) < cluster_strength
        u = rng.random(total)
        items[from_cluster] = sampler.draw_cluster(clusters[user[from_cluster]], u[from_cluster])
        items[~from_cluster] = sampler.draw_global(u[~from_cluster])
        new = np.sort((user + first_user) * np.int64(n_items) + items)
        del user, items, from_cluster, u
        new = new[np.r_[True, new[1:] != new[:-1]]]  # sort + mask: faster than np.unique
        if keys.size:
            pos = np.minimum(np.searchsorted(keys, new), keys.size - 1)
            new = new[keys[pos] != new]
        if factor > 1:  # keep at most need[user] of each user's new items, chosen at random
            owner = new // n_items - first_user
            order = np.lexsort((rng.random(new.size), owner))
            group_start = np.searchsorted(owner, owner)  # owner is sorted (new is)
            rank = np.empty(new.size, dtype=np.int64)
            rank[order] = np.arange(new.size) - group_start[order]
            new = new[rank < need[owner]]
        keys = np.sort(np.concatenate([keys, new]), kind="stable")  # merges two sorted runs
        need = counts - np.bincount(keys // n_items - first_user, minlength=counts.size)
    return keys


def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise DataValidationError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_real(
    value: object, name: str, low: float, high: float, *, low_open: bool = False
) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        x = float(value)  # type: ignore[arg-type]
        ok = np.isfinite(x) and (x > low if low_open else x >= low) and x <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise DataValidationError(f"{name} must be a real number in {interval}, got {value!r}")
    return float(value)  # type: ignore[arg-type]
