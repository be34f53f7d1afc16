"""Top-k selection: ``avrec.recommenders.top_k`` against ``numpy.argpartition``.

One process, one score matrix (float32, uniform in [0, 1), seeded), the same
number of timed repeats for every method after one untimed warm-up call; the
table gives the best and the median of the repeats. Methods:

- ``top_k``: :func:`avrec.recommenders.top_k` (``torch.topk`` of k + 1
  candidates, a tie check at the cut, the k winners sorted);
- ``argpartition``: ``np.argpartition(-scores, k - 1, axis=1)[:, :k]`` alone
  (no sort of the winners, no tie handling): a lower bound for numpy;
- ``argpartition + sort``: the same plus sorting the k winners of each row
  (what a recommender needs; ties still unordered);
- ``top_k``, all tied: every score equal, so every row has ties straddling the
  cut and takes the exact (slower) path: the worst case.

Usage::

    python benchmarks/bench_topk.py                       # 1,200 x 27,000, k=10, 5 repeats
    python benchmarks/bench_topk.py --rows 1200 --items 27000 --k 10 --repeats 5 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from _common import markdown_table, set_threads


def time_repeats(fn: Callable[[], object], repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of ``fn`` after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def argpartition_top(scores: np.ndarray, k: int) -> np.ndarray:
    """Unsorted indices of the k largest scores per row."""
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def argpartition_sorted(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores per row, sorted by decreasing score."""
    part = argpartition_top(scores, k)
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1200, help="rows (users) of the scores")
    parser.add_argument("--items", type=int, default=27000, help="columns (items)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per method")
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    set_threads(args.threads)

    from avrec.recommenders import top_k

    rng = np.random.default_rng(args.seed)
    scores = rng.random((args.rows, args.items), dtype=np.float32)
    tied = np.full_like(scores, 0.5)
    k = args.k

    # Same selected scores (float32 draws do tie now and then; only the index order may differ).
    ref = np.take_along_axis(scores, argpartition_sorted(scores, k), axis=1)
    if not np.array_equal(top_k(scores, k)[1], ref):
        raise SystemExit("top_k and argpartition + sort select different scores")
    if not np.array_equal(top_k(tied, k)[0], np.broadcast_to(np.arange(k), (args.rows, k))):
        raise SystemExit("top_k does not break ties towards the lower index")

    methods: list[tuple[str, Callable[[], object]]] = [
        ("`avrec.recommenders.top_k` (torch.topk + tie check)", lambda: top_k(scores, k)),
        ("`numpy.argpartition` alone (no sort, no ties)", lambda: argpartition_top(scores, k)),
        ("`numpy.argpartition` + sort of the k winners", lambda: argpartition_sorted(scores, k)),
        (
            "`avrec.recommenders.top_k`, every row tied at the cut (worst case)",
            lambda: top_k(tied, k),
        ),
    ]
    rows = []
    for name, fn in methods:
        times = time_repeats(fn, args.repeats)
        rows.append({"method": name, "best": min(times), "median": statistics.median(times)})
    print(
        f"{args.rows:,} x {args.items:,} float32 scores, k={k}, {args.threads} threads, "
        f"{args.repeats} timed repeats per method after one warm-up call"
    )
    columns = [("method", "method", "s"), ("best", "best s", ".3f"), ("median", "median s", ".3f")]
    print(markdown_table(rows, columns))


if __name__ == "__main__":
    main()
