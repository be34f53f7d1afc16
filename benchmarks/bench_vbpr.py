"""VBPR against BPR on synthetic data whose item clusters show in the item features.

Data: :func:`avrec.data.make_interactions` with ``return_clusters=True`` gives
every item a latent cluster; its content features are two modalities,
``audio`` and ``video``, each ``centre[cluster] + noise * N(0, 1)`` with
random Gaussian centres per modality (``video`` also carries pure-noise
dimensions). So content tells the clusters apart, more or less clearly
depending on ``--noise``, but says nothing about an item's popularity.

Two protocols, every model judged by the same metric code
(``avrec.evaluation``: NDCG@10 and Recall@20 over the users with held-out
items):

* **warm**: ``random_split(test_size=0.2, random_state=0)``; every item not in
  the user's training history is a candidate.
* **cold**: ``cold_item_split(test_size=0.2, random_state=0)``: 20 % of the
  items lose every interaction in training and hold all of the test set.
  Candidates are the cold items only (the usual cold-start protocol);
  ``cold R@20 all`` ranks the whole catalogue instead, where the cold items
  compete with warm ones (so ``cold_item_bias`` matters).

Models: ``popularity``; ``bpr`` (avrec BPR: SGD at its default learning rate
and regularisation); ``vbpr`` (Adam at its defaults, with the features);
``vbpr-cf`` (the same VBPR without features: the content terms are absent);
``vbpr-cf-sgd`` (VBPR without features at BPR's optimiser, learning rate and
regularisation: it should match ``bpr``).
Factors, epochs and batch size are the same for all three (``--batch-size``
1024 rather than BPR's default 4096: at this size 4096 leaves BPR with
too few steps). Each model runs in a fresh process (``_common.run_isolated``);
``fit s`` is wall time, ``fit peak MiB`` the kernel's high-water mark above
the RSS before fitting.

Examples::

    python benchmarks/bench_vbpr.py                        # small: about a minute on 2 cores
    python benchmarks/bench_vbpr.py --users 6000 --items 3000 --density 0.01 --threads 2
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

MODELS = ["popularity", "bpr", "vbpr", "vbpr-cf", "vbpr-cf-sgd"]


def build(name: str, cfg: dict) -> Any:
    """Instantiate model ``name`` with the benchmark's hyperparameters."""
    from avrec.recommenders import BPR, VBPR, Popularity

    if name == "popularity":
        return Popularity()
    if name == "bpr":
        return BPR(
            factors=cfg["factors"],
            iterations=cfg["iterations"],
            batch_size=cfg["batch_size"],
            device="cpu",
            random_state=0,
            verbose=False,
        )
    if name == "vbpr-cf-sgd":  # BPR's optimiser, learning rate and regularisation
        ours = BPR()
        return VBPR(
            factors=cfg["factors"],
            learning_rate=ours.learning_rate,
            regularization=ours.regularization,
            optimizer="sgd",
            iterations=cfg["iterations"],
            batch_size=cfg["batch_size"],
            device="cpu",
            random_state=0,
            verbose=False,
        )
    if name in ("vbpr", "vbpr-cf"):
        return VBPR(
            factors=cfg["factors"],
            content_factors=cfg["content_factors"],
            iterations=cfg["iterations"],
            batch_size=cfg["batch_size"],
            device="cpu",
            random_state=0,
            verbose=False,
        )
    raise ValueError(f"unknown model {name!r}")


def run_model(name: str, path: str, cfg: dict) -> dict:
    """Fit ``name`` on both splits and score it; runs in a fresh process."""
    logging.basicConfig(level=logging.WARNING)
    from avrec.evaluation import ndcg_at_k, recall_at_k

    set_threads(cfg["threads"])
    with np.load(path) as d:
        arrays = {key: d[key] for key in d.files}
    shape = tuple(arrays["shape"])

    def matrix(prefix: str) -> sp.csr_matrix:
        return sp.csr_matrix(
            (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
            shape=shape,
        )

    features = arrays["features"] if name == "vbpr" else None
    result: dict[str, Any] = {"model": name}
    mem = PeakMemory()
    for split in ("warm", "cold"):
        train, test = matrix(f"{split}_train"), matrix(f"{split}_test")
        model = build(name, cfg)
        mem.reset()
        with timed() as t_fit:
            if features is None:
                model.fit(train)
            else:
                model.fit(train, item_features=features)
        result[f"{split}_fit_s"] = t_fit["wall"]
        result[f"{split}_fit_cpu_s"] = t_fit["cpu"]
        result[f"{split}_peak_mib"] = mem.peak_bytes() / MiB
        users = np.flatnonzero(np.diff(test.indptr) > 0)
        truth = test[users]
        items = arrays["cold_items"] if split == "cold" else None
        top, _ = model.recommend(users, k=20, items=items)
        result[f"{split}_ndcg10"] = float(ndcg_at_k(top, truth, 10))
        result[f"{split}_recall20"] = float(recall_at_k(top, truth, 20))
        if split == "cold":
            top_all, _ = model.recommend(users, k=20)
            result["cold_recall20_all"] = float(recall_at_k(top_all, truth, 20))
    return result


def make_data(args: argparse.Namespace, path: str) -> str:
    """Generate the log, the features and both splits; save them to ``path``."""
    from avrec.data import cold_item_split, make_interactions, random_split

    X, _, item_clusters = make_interactions(
        args.users,
        args.items,
        density=args.density,
        n_clusters=args.clusters,
        return_clusters=True,
        random_state=args.seed,
    )
    rng = np.random.default_rng(args.seed + 1)
    blocks = []
    for dim, distractors in ((16, 0), (24, 8)):  # audio; video with pure-noise dimensions
        centres = rng.normal(size=(args.clusters, dim))
        block = centres[item_clusters] + args.noise * rng.normal(size=(args.items, dim))
        blocks.append(np.hstack([block, rng.normal(size=(args.items, distractors))]))
    features = np.hstack(blocks).astype(np.float32)
    warm_train, warm_test = random_split(X, test_size=0.2, random_state=0)
    cold_train, cold_test, cold = cold_item_split(X, test_size=0.2, random_state=0)
    out: dict[str, np.ndarray] = {
        "shape": np.array(X.shape),
        "features": features,
        "cold_items": cold,
    }
    for prefix, part in (
        ("warm_train", warm_train),
        ("warm_test", warm_test),
        ("cold_train", cold_train),
        ("cold_test", cold_test),
    ):
        csr = part.matrix
        out[f"{prefix}_data"], out[f"{prefix}_indices"] = csr.data, csr.indices
        out[f"{prefix}_indptr"] = csr.indptr
    np.savez(path, **out)
    return (
        f"synthetic: {X.shape[0]:,} users x {X.shape[1]:,} items, {X.nnz:,} interactions, "
        f"{args.clusters} clusters; features {features.shape[1]} dims (noise {args.noise}); "
        f"{len(cold)} cold items"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--density", type=float, default=0.01)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--noise", type=float, default=1.0, help="feature noise per dimension")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--content-factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=1024, help="BPR's and VBPR's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    args = parser.parse_args(argv)
    cfg = {
        "factors": args.factors,
        "content_factors": args.content_factors,
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "threads": args.threads,
    }
    start = time.perf_counter()
    rows, failed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        label = make_data(args, path)
        print(f"\n## {label}\n")
        print(
            f"factors={args.factors}, content_factors={args.content_factors}, "
            f"iterations={args.iterations}, batch_size={args.batch_size}, "
            f"threads={args.threads}\n"
        )
        for name in args.models.split(","):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            res = run_isolated(run_model, name, path, cfg, timeout=args.timeout)
            if "error" in res:
                failed.append((name, res["error"].strip().splitlines()[0]))
                print(res["error"], file=sys.stderr)
                continue
            rows.append(res)
    print(
        markdown_table(
            rows,
            [
                ("model", "model", "s"),
                ("warm_ndcg10", "warm NDCG@10", ".4f"),
                ("warm_recall20", "warm Recall@20", ".4f"),
                ("warm_fit_s", "warm fit s", ".2f"),
                ("warm_fit_cpu_s", "warm fit CPU s", ".2f"),
                ("warm_peak_mib", "fit peak MiB", ".0f"),
                ("cold_ndcg10", "cold NDCG@10", ".4f"),
                ("cold_recall20", "cold Recall@20", ".4f"),
                ("cold_recall20_all", "cold R@20 all", ".4f"),
                ("cold_fit_s", "cold fit s", ".2f"),
            ],
        )
    )
    for name, why in failed:
        print(f"\n- `{name}` failed: {why}")
    print(f"\ntotal {time.perf_counter() - start:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
