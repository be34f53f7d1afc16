"""Peak memory and wall time of ``avrec.evaluation.evaluate`` on a large synthetic split.

The baseline, measured in the same run, is the model's ``recommend`` calls alone over the
same user batches: the difference is what ``evaluate`` itself costs.

Peak RSS is measured per phase: on Linux the kernel's high-water mark (VmHWM) is reset
through ``/proc/self/clear_refs`` before each phase, so each phase reports its own peak;
elsewhere ``ru_maxrss`` is used (a process-lifetime peak, so only increases show).
``--tracemalloc`` adds the peak of traced Python/numpy allocations (slower).

Example::

    python benchmarks/bench_evaluate_memory.py --users 100000 --items 20000 --k 20
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.evaluation import evaluate

MiB = 2**20


def rss_bytes() -> int:
    """Current resident set size."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter; False where that is not supported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes(resettable: bool) -> int:
    if resettable:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def make_split(
    n_users: int, n_items: int, low: int, high: int, test_frac: float, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Zipf-skewed interactions, ``low..high`` per user, ``test_frac`` of them held out."""
    rng = np.random.default_rng(seed)
    per_user = rng.integers(low, high + 1, size=n_users)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity /= popularity.sum()
    items = rng.permutation(n_items)[
        rng.choice(n_items, size=int(per_user.sum()), p=popularity)
    ].astype(np.int32)
    rows = np.repeat(np.arange(n_users, dtype=np.int32), per_user)
    data = np.ones(items.size, dtype=np.float32)
    full = sp.csr_matrix((data, (rows, items)), shape=(n_users, n_items))
    full.sum_duplicates()
    full.data[:] = 1.0
    held = rng.random(full.nnz) < test_frac
    test = full.copy()
    test.data = held.astype(np.float32)
    test.eliminate_zeros()
    train = full.copy()
    train.data = (~held).astype(np.float32)
    train.eliminate_zeros()
    return train, test


class RandomScores:
    """Dense random float32 scores per batch, excluding ``exclude``: top-k by argpartition.

    Allocates what a dense-scoring recommender allocates: a (batch, n_items) float32
    block (and argpartition's (batch, n_items) int64 index array).
    """

    def __init__(self, n_items: int, seed: int = 0) -> None:
        self.n_items_ = n_items
        self.rng = np.random.default_rng(seed)

    def recommend(
        self, users: Any, k: int = 10, exclude_seen: bool = True, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.rng.random((len(users), self.n_items_), dtype=np.float32)
        if exclude is not None:
            scores[exclude.nonzero()] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(scores, part, axis=1)
        order = np.argsort(-top, axis=1)
        items = np.take_along_axis(part, order, axis=1)
        top = np.take_along_axis(top, order, axis=1)
        return np.where(np.isfinite(top), items, -1), top


class PopularityLike:
    """Global popularity ranking minus ``exclude``, without dense scores (cheap)."""

    def __init__(self, train: sp.csr_matrix) -> None:
        self.n_items_ = train.shape[1]
        counts = np.bincount(train.indices, minlength=self.n_items_).astype(np.float32)
        self.order = np.argsort(-counts, kind="stable")
        self.counts = counts

    def recommend(
        self, users: Any, k: int = 10, exclude_seen: bool = True, exclude: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(users)
        depth = min(self.n_items_, k + int(np.diff(exclude.indptr).max(initial=0)))
        cand = np.broadcast_to(self.order[:depth], (n, depth))
        keys = np.repeat(np.arange(n, dtype=np.int64) * self.n_items_, np.diff(exclude.indptr))
        keys = keys + exclude.indices
        query = cand + (np.arange(n, dtype=np.int64) * self.n_items_)[:, None]
        pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
        banned = (keys[pos] == query) if keys.size else np.zeros(cand.shape, dtype=bool)
        first = np.argsort(banned, axis=1, kind="stable")[:, :k]  # allowed items keep order
        items = np.take_along_axis(cand, first, axis=1)
        ok = ~np.take_along_axis(banned, first, axis=1)
        items = np.where(ok, items, -1)
        scores = np.where(ok, self.counts[items], -np.inf).astype(np.float32)
        return items, scores


def measure(fn: Callable[[], Any], resettable: bool, trace: bool) -> dict[str, float]:
    base = rss_bytes()
    reset_peak()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] if trace else float("nan")
    if trace:
        tracemalloc.stop()
    peak = peak_rss_bytes(resettable)
    return {"wall": wall, "peak": peak, "delta": peak - base, "traced": traced, "out": out}


def recommend_only(model: Any, train: sp.csr_matrix, test: sp.csr_matrix, k: int, bs: int) -> int:
    users = np.flatnonzero(np.diff(test.indptr))
    n = 0
    for start in range(0, users.size, bs):
        batch = users[start : start + bs]
        items, _ = model.recommend(batch, k=k, exclude_seen=False, exclude=train[batch])
        n += items.shape[0]
    return n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--min-per-user", type=int, default=20)
    parser.add_argument("--max-per-user", type=int, default=50)
    parser.add_argument("--test-frac", type=float, default=0.2)
    parser.add_argument(
        "--model",
        choices=("avrec-popularity", "random", "popularity"),
        default="avrec-popularity",
        help="avrec-popularity: avrec.recommenders.Popularity through the Recommender base "
        "(dense scores per batch, torch top-k); random/popularity: stand-alone fakes",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: evaluate's own")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    train, test = make_split(
        args.users, args.items, args.min_per_user, args.max_per_user, args.test_frac, args.seed
    )
    make_s = time.perf_counter() - t0
    if args.model == "avrec-popularity":
        from avrec.recommenders import Popularity

        model = Popularity().fit(train)
    elif args.model == "random":
        model = RandomScores(args.items, args.seed)
    else:
        model = PopularityLike(train)
    resettable = reset_peak()
    from avrec.evaluation._evaluate import _default_batch_size

    bs = args.batch_size or _default_batch_size(args.items)
    cutoffs = (10, args.k) if args.k > 10 else (args.k,)
    metrics = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate", "coverage", "novelty")

    base = measure(lambda: recommend_only(model, train, test, args.k, bs), resettable, False)
    ev = measure(
        lambda: evaluate(model, train, test, k=cutoffs, metrics=metrics, batch_size=bs),
        resettable,
        args.tracemalloc,
    )
    result = ev["out"]
    print(
        f"data: {args.users} users x {args.items} items, train nnz {train.nnz}, test nnz "
        f"{test.nnz} ({make_s:.1f} s to build); model={args.model}, batch_size={bs}, "
        f"k={cutoffs}; peak RSS {'per phase (VmHWM reset)' if resettable else 'ru_maxrss'}"
    )
    print(f"RSS after data creation: {rss_bytes() / MiB:.0f} MiB\n")
    print(
        "| phase                     | wall (s) | peak RSS (MiB) | peak - start (MiB) |"
        " traced peak (MiB) | ndcg@k |"
    )
    print(
        "|:--------------------------|---------:|---------------:|-------------------:|"
        "------------------:|-------:|"
    )
    for name, row, ndcg in (
        ("recommend only (baseline)", base, float("nan")),
        ("evaluate", ev, result[f"ndcg@{args.k}"]),
    ):
        print(
            f"| {name:<25} | {row['wall']:8.1f} | {row['peak'] / MiB:14.0f} | "
            f"{row['delta'] / MiB:18.0f} | {row['traced'] / MiB:17.0f} | {ndcg:6.4f} |"
        )
    print(f"\nevaluated {result.n_users} users, skipped {result.n_skipped}")
    print(result.to_markdown())


if __name__ == "__main__":
    main()
