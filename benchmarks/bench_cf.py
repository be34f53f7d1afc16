"""Collaborative filtering side by side: avrec's models against ``implicit`` and plain numpy.

Every model is trained on the same split (``random_split(test_size=0.2,
random_state=0)``) and judged by the same metric code (``avrec.evaluation``:
NDCG@10 and Recall@20 over the users with held-out items, training items
excluded from the lists). Each model runs in its own fresh process, so its
peak memory is its own: the kernel's high-water mark above the RSS before
the phase (see ``_common.py``), reported for ``fit`` and for recommending
top-20 lists to every user (which includes the model's dense score blocks).
Times are wall-clock seconds; ``fit CPU s`` (all threads) is shown too,
because on a shared machine wall time depends on what else runs.

Models (``--models``):

* avrec: ``popularity``, ``itemknn``, ``ease``, ``als``, ``bpr``;
* peers: ``implicit-als`` (``AlternatingLeastSquares``), ``implicit-bpr``
  (``BayesianPersonalizedRanking`` at its defaults but ``factors``),
  ``implicit-bpr-matched`` (at avrec BPR's learning rate, regularisation and
  epochs), ``implicit-cosine`` (``CosineRecommender``), ``numpy-ease`` (float64
  ``np.linalg.inv``), ``scipy-ease`` and ``scipy-ease32`` (the best plain
  scipy solve: ``scipy.linalg.cho_factor`` / ``cho_solve`` of the Gram matrix
  against the identity, float64 and float32). The numpy/scipy EASE baselines are
  skipped at ML-20M shape: a 26,744^2 float64 inverse needs ~17 GB with its Gram
  matrix and copies, and numpy's inverse of a 17k x 17k matrix already
  segfaulted on the development machine.

BPR here runs at each library's defaults (implicit's but ``factors``); for
both tuned with the same budget on a validation split see
``bench_bpr_tuning.py``.

Matched ALS hyperparameters: avrec's confidence is ``1 + alpha * r``, implicit's
(>= 0.5) is ``alpha * r``; implicit is given the matrix ``1 + alpha * r`` with
its ``alpha=1``, so both minimise the same objective. Both get the same
factors, regularisation, iterations, CG steps and threads.

For the ALS models the script also reports the scoring throughput of
``recommend(k=10)`` for all users (GFLOP/s of the ``users x factors x items``
product, top-k included) next to a plain ``torch.matmul`` of the same blocks.

Examples::

    python benchmarks/bench_cf.py --shape ml1m --threads 2
    python benchmarks/bench_cf.py --shape ml20m --models als,implicit-als,popularity
    python benchmarks/bench_cf.py --movielens ~/data/ml-1m --models als,implicit-als
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MiB, PeakMemory, markdown_table, run_isolated, set_threads, timed

SHAPES = {
    # name: (users, items, interactions, clusters)
    "ml1m": (6_040, 3_706, 1_000_209, 20),
    "ml20m": (138_493, 26_744, 20_000_263, 50),
}
AVREC = ["popularity", "itemknn", "ease", "als", "bpr"]
PEERS = [
    "implicit-als",
    "implicit-bpr",
    "implicit-bpr-matched",
    "implicit-cosine",
    "numpy-ease",
    "scipy-ease",
    "scipy-ease32",
]
ALL_MODELS = AVREC + PEERS
# Skipped at ML-20M shape unless --heavy: (reason)
HEAVY_AT_20M = {
    "numpy-ease": "float64 np.linalg.inv of a 26,744^2 Gram matrix needs ~17 GB with its copies "
    "(> the ~8 GB free here) and numpy's inverse segfaulted at 17k items on this machine",
    "ease": "dense 26,744^2 float32 Gram + Cholesky + weights need ~8.6 GB, about all the "
    "memory free on this shared 24 GB machine",
    "scipy-ease": "float64 Cholesky of a 26,744^2 Gram matrix plus the identity it solves "
    "against needs ~17 GB",
    "scipy-ease32": "float32 Gram, identity and solution need ~8.6 GB, about all the memory "
    "free on this shared 24 GB machine",
}
K_SCORING = 10


# ---------------------------------------------------------------------- models
def build(name: str, cfg: dict) -> Any:
    """Instantiate model ``name`` with the benchmark's hyperparameters."""
    threads = cfg["threads"]
    if name == "popularity":
        from avrec.recommenders import Popularity

        return Popularity()
    if name == "itemknn":
        from avrec.recommenders import ItemKNN

        return ItemKNN(k=cfg["neighbours"], similarity="cosine")
    if name == "ease":
        from avrec.recommenders import EASE

        return EASE(l2=cfg["l2"])
    if name == "als":
        from avrec.recommenders import ALS

        return ALS(
            factors=cfg["factors"],
            regularization=cfg["regularization"],
            alpha=cfg["alpha"],
            iterations=cfg["iterations"],
            cg_steps=cfg["cg_steps"],
            random_state=0,
            verbose=False,
        )
    if name == "bpr":
        from avrec.recommenders import BPR

        return BPR(
            factors=cfg["factors"],
            iterations=cfg["bpr_iterations"],
            device="cpu",
            random_state=0,
            verbose=False,
        )
    if name == "implicit-als":
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=cfg["factors"],
            regularization=cfg["regularization"],
            alpha=1.0,
            iterations=cfg["iterations"],
            num_threads=threads,
            random_state=0,
        )
        model.cg_steps = cfg["cg_steps"]  # an attribute, not an __init__ argument, in implicit 0.7
        return model
    if name in ("implicit-bpr", "implicit-bpr-matched"):
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        kw: dict[str, Any] = {"factors": cfg["factors"], "num_threads": threads, "random_state": 0}
        if name == "implicit-bpr-matched":
            from avrec.recommenders import BPR

            ours = BPR()
            kw.update(
                learning_rate=ours.learning_rate,
                regularization=ours.regularization,
                iterations=cfg["bpr_iterations"],
            )
        return BayesianPersonalizedRanking(**kw)
    if name == "implicit-cosine":
        from implicit.nearest_neighbours import CosineRecommender

        return CosineRecommender(K=cfg["neighbours"], num_threads=threads)
    if name == "numpy-ease":
        return NumpyEASE(cfg["l2"])
    if name == "scipy-ease":
        return NumpyEASE(cfg["l2"], solver="cholesky")
    if name == "scipy-ease32":
        return NumpyEASE(cfg["l2"], solver="cholesky", dtype=np.float32)
    raise ValueError(f"unknown model {name!r}")


class NumpyEASE:
    """Plain EASE: dense Gram matrix, its inverse, dense weights; numpy top-k.

    ``solver="inv"``: ``np.linalg.inv``; ``solver="cholesky"``:
    ``scipy.linalg.cho_factor`` then ``cho_solve`` against the identity (in place,
    no extra copies), in ``dtype``.
    """

    def __init__(self, l2: float, solver: str = "inv", dtype: Any = np.float64) -> None:
        self.l2 = l2
        self.solver = solver
        self.dtype = dtype

    def fit(self, X: sp.csr_matrix) -> NumpyEASE:
        G = (X.T @ X).toarray().astype(self.dtype)
        G[np.diag_indices_from(G)] += self.l2
        if self.solver == "inv":
            P = np.linalg.inv(G)
        else:
            from scipy.linalg import cho_factor, cho_solve

            factor = cho_factor(G, lower=True, overwrite_a=True, check_finite=False)
            P = cho_solve(
                factor, np.eye(G.shape[0], dtype=self.dtype), overwrite_b=True, check_finite=False
            )
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.B = B
        return self

    def recommend(self, X: sp.csr_matrix, users: np.ndarray, k: int) -> np.ndarray:
        out = np.empty((users.size, k), dtype=np.int64)
        for start in range(0, users.size, 1024):
            rows = users[start : start + 1024]
            hist = X[rows]
            scores = np.asarray(hist @ self.B)
            scores[np.repeat(np.arange(rows.size), np.diff(hist.indptr)), hist.indices] = -np.inf
            part = np.argpartition(-scores, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
            out[start : start + rows.size] = np.take_along_axis(part, order, 1)
        return out


def recommend_all(name: str, model: Any, train: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-``k`` unseen items for every user, as an ``(n_users, k)`` index array."""
    users = np.arange(train.shape[0])
    if name.startswith("implicit"):
        out = np.empty((users.size, k), dtype=np.int64)
        for start in range(0, users.size, 8192):
            rows = users[start : start + 8192]
            ids, _ = model.recommend(rows, train[rows], N=k, filter_already_liked_items=True)
            out[start : start + rows.size] = ids
        return out
    if name in ("numpy-ease", "scipy-ease", "scipy-ease32"):
        return model.recommend(train, users, k)
    return model.recommend(users, k=k)[0]


def scoring_throughput(model: Any, train: sp.csr_matrix) -> dict[str, float]:
    """GFLOP/s of ALS ``recommend(k=10)`` for all users vs plain torch.matmul of the same blocks."""
    import torch

    from avrec.recommenders._base import SCORE_BLOCK_BYTES

    U, V = model.user_factors_, model.item_factors_
    n_users, n_items, f = U.shape[0], V.shape[0], U.shape[1]
    gflop = 2.0 * n_users * n_items * f / 1e9
    with timed() as t_rec:
        model.recommend(np.arange(n_users), k=K_SCORING)
    block = max(1, SCORE_BLOCK_BYTES // (4 * n_items))
    with timed() as t_score:  # the model's own scoring (fresh float32 blocks), no top-k
        for start in range(0, n_users, block):
            users = np.arange(start, min(start + block, n_users))
            model._score(users, train[users])
    Ut, Vt = torch.from_numpy(U), torch.from_numpy(V)
    out = torch.empty(block, n_items)
    with timed() as t_mm:
        for start in range(0, n_users, block):
            rows = Ut[start : start + block]
            torch.matmul(rows, Vt.T, out=out[: rows.shape[0]])
    return {
        "gflop": gflop,
        "rec10_s": t_rec["wall"],
        "rec10_gflops": gflop / t_rec["wall"],
        "score_s": t_score["wall"],
        "score_gflops": gflop / t_score["wall"],
        "matmul_s": t_mm["wall"],
        "matmul_gflops": gflop / t_mm["wall"],
    }


def run_model(name: str, data_path: str, cfg: dict) -> dict:
    """Fit, recommend and score one model; runs in a fresh process (see ``run_isolated``)."""
    logging.basicConfig(level=logging.WARNING)
    import warnings

    # implicit's own internal conversion warns; nothing to act on
    warnings.filterwarnings("ignore", message="Method expects CSR input")
    from avrec.evaluation import ndcg_at_k, recall_at_k

    # implicit wants a single-threaded BLAS (it parallelises itself); avrec uses BLAS threads
    set_threads(cfg["threads"], blas=1 if name.startswith("implicit") else cfg["threads"])
    with np.load(data_path) as d:
        train = sp.csr_matrix(
            (d["tr_data"], d["tr_indices"], d["tr_indptr"]), shape=tuple(d["shape"])
        )
        test = sp.csr_matrix(
            (d["te_data"], d["te_indices"], d["te_indptr"]), shape=tuple(d["shape"])
        )
    fit_input = train
    if name == "implicit-als":  # same objective as avrec: confidence 1 + alpha * r
        fit_input = train.copy()
        fit_input.data = 1.0 + cfg["alpha"] * fit_input.data
    mem = PeakMemory()
    fit_wall, fit_cpu = [], []
    for _ in range(cfg["repeat"]):
        model = build(name, cfg)
        with timed() as t_fit:
            if name.startswith("implicit"):
                model.fit(fit_input, show_progress=False)
            else:
                model.fit(fit_input)
        fit_wall.append(t_fit["wall"])
        fit_cpu.append(t_fit["cpu"])
    fit_peak = mem.peak_bytes()
    mem.reset()
    with timed() as t_rec:
        top = recommend_all(name, model, train, 20)
    rec_peak = mem.peak_bytes()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    result = {
        "model": name,
        "ndcg10": float(ndcg_at_k(top[users], test[users], 10)),
        "recall20": float(recall_at_k(top[users], test[users], 20)),
        "fit_s": min(fit_wall),
        "fit_cpu_s": fit_cpu[int(np.argmin(fit_wall))],
        "rec_s": t_rec["wall"],
        "fit_peak_mib": fit_peak / MiB,
        "rec_peak_mib": rec_peak / MiB,
    }
    if name == "als" and cfg["scoring"]:
        result.update(scoring_throughput(model, train))
    return result


# ---------------------------------------------------------------------- data
def make_split(
    shape: str, movielens: str | None, seed: int
) -> tuple[sp.csr_matrix, sp.csr_matrix, str]:
    from avrec.data import load_movielens, make_interactions, random_split

    if movielens:
        X = load_movielens(movielens, binary=True)
        label = f"MovieLens ({Path(movielens).name})"
    else:
        n_users, n_items, nnz, clusters = SHAPES[shape]
        X = make_interactions(
            n_users,
            n_items,
            density=nnz / (n_users * n_items),
            n_clusters=clusters,
            random_state=seed,
        )
        label = f"synthetic {shape} shape"
    train, test = random_split(X, test_size=0.2, random_state=0)
    tr, te = sp.csr_matrix(train.matrix), sp.csr_matrix(test.matrix)
    return tr, te, f"{label}: {X.shape[0]:,} users x {X.shape[1]:,} items, {X.nnz:,} interactions"


def save_split(train: sp.csr_matrix, test: sp.csr_matrix, path: str) -> None:
    np.savez(
        path,
        shape=np.array(train.shape),
        tr_data=train.data,
        tr_indices=train.indices,
        tr_indptr=train.indptr,
        te_data=test.data,
        te_indices=test.indices,
        te_indptr=test.indptr,
    )


def importable(name: str) -> str | None:
    """None if the model can run here, else why not."""
    try:
        if name.startswith("implicit"):
            import implicit  # noqa: F401
        elif name in ("itemknn", "ease"):
            from avrec import recommenders

            getattr(recommenders, "ItemKNN" if name == "itemknn" else "EASE")
    except (ImportError, AttributeError) as exc:
        return f"not importable ({exc})"
    return None


def run_shape(shape: str, args: argparse.Namespace, cfg: dict) -> None:
    start = time.perf_counter()
    train, test, label = make_split(shape, args.movielens, args.seed)
    print(f"\n## {label}\n")
    print(
        f"train {train.nnz:,} / test {test.nnz:,} interactions; threads={cfg['threads']}; "
        f"data prepared in {time.perf_counter() - start:.1f} s\n"
    )
    skipped = []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "split.npz")
        save_split(train, test, path)
        del train, test
        for name in args.models:
            why = importable(name)
            if (
                why is None
                and shape == "ml20m"
                and not args.movielens
                and name in HEAVY_AT_20M
                and not args.heavy
            ):
                why = HEAVY_AT_20M[name]
            if why:
                skipped.append((name, why))
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            cap = int(args.max_rss_gb * 2**30) if args.max_rss_gb else None
            res = run_isolated(run_model, name, path, cfg, timeout=args.timeout, max_rss_bytes=cap)
            if "error" in res:
                skipped.append((name, "failed: " + res["error"].strip().splitlines()[0]))
                print(res["error"], file=sys.stderr)
                continue
            rows.append(res)
            print(f"  {res}", file=sys.stderr, flush=True)
    print(
        markdown_table(
            rows,
            [
                ("model", "model", "s"),
                ("ndcg10", "NDCG@10", ".4f"),
                ("recall20", "Recall@20", ".4f"),
                ("fit_s", "fit s", ".2f"),
                ("fit_cpu_s", "fit CPU s", ".2f"),
                ("rec_s", "recommend all users s", ".2f"),
                ("fit_peak_mib", "fit peak MiB", ".0f"),
                ("rec_peak_mib", "recommend peak MiB", ".0f"),
            ],
        )
    )
    by_name = {r["model"]: r for r in rows}
    if "als" in by_name and "implicit-als" in by_name:
        a, b = by_name["als"], by_name["implicit-als"]
        wall, cpu = a["fit_s"] / b["fit_s"], a["fit_cpu_s"] / b["fit_cpu_s"]
        print(
            f"\nALS fit time vs implicit (factors={cfg['factors']}, "
            f"iterations={cfg['iterations']}, cg_steps={cfg['cg_steps']}, "
            f"threads={cfg['threads']}): "
            f"{a['fit_s']:.2f} s / {b['fit_s']:.2f} s = **{wall:.2f}x** "
            f"(CPU time {a['fit_cpu_s']:.2f} / {b['fit_cpu_s']:.2f} = {cpu:.2f}x); "
            f"NDCG@10 {a['ndcg10']:.4f} vs {b['ndcg10']:.4f}"
        )
    if "als" in by_name and "rec10_gflops" in by_name["als"]:
        a = by_name["als"]
        print(
            f"\nALS scoring, recommend(k={K_SCORING}) for all users: {a['gflop']:.0f} GFLOP in "
            f"{a['rec10_s']:.2f} s = {a['rec10_gflops']:.1f} GFLOP/s (top-k and masking included); "
            f"scores alone (ALS._score per block): {a['score_s']:.2f} s = "
            f"{a['score_gflops']:.1f} GFLOP/s; "
            f"plain torch.matmul of the same blocks: {a['matmul_s']:.2f} s = "
            f"{a['matmul_gflops']:.1f} GFLOP/s"
        )
    for name, why in skipped:
        print(f"\n- skipped `{name}`: {why}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=["ml1m", "ml20m", "both"], default="ml1m")
    parser.add_argument(
        "--movielens", help="a MovieLens ratings file or folder (replaces the synthetic data)"
    )
    parser.add_argument(
        "--models", default=",".join(ALL_MODELS), help="comma-separated; default: all"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15, help="ALS iterations")
    parser.add_argument("--regularization", type=float, default=None, help="ALS; default: avrec's")
    parser.add_argument("--alpha", type=float, default=None, help="ALS; default: avrec's")
    parser.add_argument("--cg-steps", type=int, default=3)
    parser.add_argument("--bpr-iterations", type=int, default=None, help="default: avrec BPR's")
    parser.add_argument("--neighbours", type=int, default=100, help="ItemKNN / CosineRecommender K")
    parser.add_argument("--l2", type=float, default=500.0, help="EASE regularisation")
    parser.add_argument(
        "--repeat", type=int, default=1, help="fits per model; the fastest is reported"
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--heavy", action="store_true", help="also run models skipped at ML-20M shape"
    )
    parser.add_argument(
        "--no-scoring", action="store_true", help="skip the ALS GFLOP/s measurement"
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per model")
    parser.add_argument(
        "--max-rss-gb",
        type=float,
        default=8.0,
        help="kill a model's process whose resident memory passes this (0: no limit)",
    )
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(ALL_MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {ALL_MODELS}")
    from avrec.recommenders import ALS, BPR

    als, bpr = ALS(), BPR()
    cfg = {
        "threads": args.threads,
        "factors": args.factors,
        "iterations": args.iterations,
        "regularization": als.regularization
        if args.regularization is None
        else args.regularization,
        "alpha": als.alpha if args.alpha is None else args.alpha,
        "cg_steps": args.cg_steps,
        "bpr_iterations": bpr.iterations if args.bpr_iterations is None else args.bpr_iterations,
        "neighbours": args.neighbours,
        "l2": args.l2,
        "repeat": args.repeat,
        "scoring": not args.no_scoring,
    }
    print(f"# avrec CF benchmark\n\ncommand: `python {' '.join(sys.argv)}`\n\nsettings: {cfg}")
    shapes = ["ml1m", "ml20m"] if args.shape == "both" else [args.shape]
    if args.movielens:
        shapes = [args.shape if args.shape != "both" else "ml1m"]
    for shape in shapes:
        run_shape(shape, args, cfg)


if __name__ == "__main__":
    main()
