"""BPR, tuned the same way for avrec and for ``implicit``: default and tuned rows side by side.

Both libraries get the same budget: the same search space (``learning_rate``,
``regularization``, ``iterations``; ``factors`` fixed), the same number of
random draws from :class:`sklearn.model_selection.ParameterSampler` with the
same seed (so both try exactly the same settings), plus each library's own
defaults as one more candidate, each scored by NDCG@10 on a validation split
carved from the training data (``random_split(train, test_size=0.2)``). The
test split is used once per row: the best setting on validation is refitted
on the whole training split and evaluated on test, next to the library's
defaults (implicit at its defaults but ``factors``) and Popularity. Every fit
uses the same seed (implicit's multi-threaded SGD is not bit-reproducible).

Threads: ``implicit`` parallelises itself and wants a single-threaded BLAS, so
``OPENBLAS_NUM_THREADS=1`` is set before numpy loads; both libraries get
``--threads`` compute threads (torch threads for avrec, ``num_threads`` for
implicit).

Examples::

    python benchmarks/bench_bpr_tuning.py --scale 0.5 --draws 8       # ~4 min on 2 cores
    python benchmarks/bench_bpr_tuning.py --draws 10                   # full ML-1M shape
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit requires it; before numpy loads

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, set_threads

#: The search space both libraries share (same meaning in both: SGD step per triple, L2 per
#: touched row, epochs over the interactions); it contains both libraries' defaults.
SPACE = {
    "learning_rate": "log-uniform [0.005, 0.2]",
    "regularization": "log-uniform [0.001, 0.1]",
    "iterations": "one of 10, 20, 40, 80",
}


def parameter_draws(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` settings drawn from :data:`SPACE` (the same list for both libraries)."""
    from scipy.stats import loguniform
    from sklearn.model_selection import ParameterSampler

    dists = {
        "learning_rate": loguniform(0.005, 0.2),
        "regularization": loguniform(0.001, 0.1),
        "iterations": [10, 20, 40, 80],
    }
    draws = ParameterSampler(dists, n_iter=n, random_state=seed)
    return [
        {k: (int(v) if k == "iterations" else round(float(v), 5)) for k, v in d.items()}
        for d in draws
    ]


def build(library: str, params: dict[str, Any], factors: int, threads: int) -> Any:
    if library == "avrec":
        from avrec.recommenders import BPR

        return BPR(factors=factors, device="cpu", random_state=0, verbose=False, **params)
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking(
        factors=factors, num_threads=threads, random_state=0, **params
    )


def defaults(library: str) -> dict[str, Any]:
    if library == "avrec":
        from avrec.recommenders import BPR

        model = BPR()
    else:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        model = BayesianPersonalizedRanking()
    return {k: getattr(model, k) for k in SPACE}


def fit_score(
    library: str, params: dict, train: sp.csr_matrix, held: sp.csr_matrix, args
) -> dict[str, float]:
    """Fit on ``train``, rank unseen items for the users with held-out items, score them."""
    from avrec.evaluation import ndcg_at_k, recall_at_k

    model = build(library, params, args.factors, args.threads)
    began = time.perf_counter()
    if library == "avrec":
        model.fit(train)
    else:
        model.fit(train, show_progress=False)
    fit_s = time.perf_counter() - began
    users = np.flatnonzero(np.diff(held.indptr) > 0)
    if library == "avrec":
        top = model.recommend(users, k=20)[0]
    else:
        top = np.empty((users.size, 20), dtype=np.int64)
        for start in range(0, users.size, 8192):
            rows = users[start : start + 8192]
            top[start : start + rows.size] = model.recommend(
                rows, train[rows], N=20, filter_already_liked_items=True
            )[0]
    return {
        "ndcg10": float(ndcg_at_k(top, held[users], 10)),
        "recall20": float(recall_at_k(top, held[users], 20)),
        "fit_s": fit_s,
    }


def popularity(train: sp.csr_matrix, test: sp.csr_matrix) -> dict[str, float]:
    from avrec.evaluation import ndcg_at_k, recall_at_k
    from avrec.recommenders import Popularity

    model = Popularity().fit(train)
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    top = model.recommend(users, k=20)[0]
    return {
        "ndcg10": float(ndcg_at_k(top, test[users], 10)),
        "recall20": float(recall_at_k(top, test[users], 20)),
        "fit_s": 0.0,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of ML-1M users/items")
    parser.add_argument("--draws", type=int, default=10, help="random settings per library")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="data, split and search seed")
    parser.add_argument("--libraries", default="avrec,implicit")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Method expects CSR input")  # implicit, internal
    set_threads(args.threads, blas=1)
    from avrec.data import make_interactions, random_split

    libraries = [x.strip() for x in args.libraries.split(",") if x.strip()]
    n_users, n_items = round(6_040 * args.scale), round(3_706 * args.scale)
    density = 1_000_209 / (6_040 * 3_706)
    X = make_interactions(n_users, n_items, density=density, n_clusters=20, random_state=args.seed)
    train_i, test_i = random_split(X, test_size=0.2, random_state=args.seed)
    fit_i, valid_i = random_split(train_i, test_size=0.2, random_state=args.seed + 1)
    train, test = sp.csr_matrix(train_i.matrix), sp.csr_matrix(test_i.matrix)
    fit, valid = sp.csr_matrix(fit_i.matrix), sp.csr_matrix(valid_i.matrix)
    draws = parameter_draws(args.draws, args.seed)
    print(f"command: `python {' '.join(sys.argv)}`")
    print(
        f"data: {X.shape[0]:,} users x {X.shape[1]:,} items, {X.nnz:,} interactions; "
        f"train {train.nnz:,} (of which validation {valid.nnz:,}), test {test.nnz:,}; "
        f"factors={args.factors}, threads={args.threads}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}"
    )
    print(
        f"search space: {SPACE}; {len(draws)} draws (seed {args.seed}), the same for both, "
        "plus each library's defaults\n"
    )
    started = time.perf_counter()
    search_rows, test_rows = [], [{"model": "popularity", **popularity(train, test)}]
    for library in libraries:
        best, best_params = -1.0, None
        default = defaults(library)
        for i, params in enumerate([default, *draws]):
            res = fit_score(library, params, fit, valid, args)
            label = f"{library} defaults" if i == 0 else f"{library} #{i}"
            search_rows.append({"model": label, **params, **res})
            print(f"  {library} {params}: validation {res}", file=sys.stderr, flush=True)
            if res["ndcg10"] > best:
                best, best_params = res["ndcg10"], params
        at_default = fit_score(library, default, train, test, args)
        test_rows.append({"model": f"{library} BPR defaults", **default, **at_default})
        tuned = fit_score(library, best_params, train, test, args)
        test_rows.append({"model": f"{library} BPR tuned", **best_params, "valid": best, **tuned})
    columns = [
        ("model", "model", "s"),
        ("learning_rate", "learning_rate", "g"),
        ("regularization", "regularization", "g"),
        ("iterations", "iterations", "d"),
    ]
    metrics = [
        ("ndcg10", "NDCG@10", ".4f"),
        ("recall20", "Recall@20", ".4f"),
        ("fit_s", "fit s", ".1f"),
    ]
    print("Validation (fit on train minus validation):\n")
    print(markdown_table(search_rows, columns + metrics))
    print("\nTest (refitted on the whole training split):\n")
    print(markdown_table(test_rows, [*columns, ("valid", "valid NDCG@10", ".4f"), *metrics]))
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
