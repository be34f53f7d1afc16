"""Accuracy against the privacy budget: DPItemKNN, DPEASE, DPBPR (DPVBPR) vs non-private models.

Synthetic MovieLens-1M-shaped data (``make_interactions``: 6,040 users x
3,706 items, density ~4.47%, 20 clusters; ``--scale`` shrinks both
dimensions), split with ``random_split(test_size=0.2, random_state=0)``.
Every model is judged by ``avrec.evaluation.evaluate`` (NDCG@10 and
Recall@20 over the users with held-out items, training items excluded).

For each ``epsilon`` in ``--epsilons`` (``inf`` = no noise, after the same
contribution bounding) the DP models are fitted with user-level
``(epsilon, delta)``-DP, ``delta`` = ``--delta`` (default ``1 / n_users**1.1``);
the non-private ItemKNN, EASE and BPR (and Popularity, the floor) run in
the same process on the same split. DPItemKNN and DPEASE release one noisy
Gram matrix (Gaussian mechanism, ``max_items_per_user`` interactions per
user); DPBPR trains its item table with DP-SGD (Poisson sampling, per-user
clipping, RDP accounting). DPVBPR (``--models ...,DPVBPR``) trains VBPR's
item-side parameters the same way, with public item content features: the
item's cluster, one-hot, plus Gaussian noise of std ``--feature-noise``; it
is compared with the non-private VBPR on the same features.

Examples::

    python benchmarks/bench_privacy.py                 # full ML-1M shape
    python benchmarks/bench_privacy.py --scale 0.5 --epsilons 1,8,inf
    python benchmarks/bench_privacy.py --scale 0.25 --models DPBPR,DPVBPR
    python benchmarks/bench_privacy.py --scale 0.25 --models DPBPR,DPVBPR \
        --epsilons 1,4,8,inf --split cold     # the DPVBPR cold-item table

``--split cold`` holds out 20 % of the items with all their interactions
(``cold_item_split(0.2, random_state=0)``) and ranks the cold items only.
The DP models take the item vocabulary (fixed by the generator before any
user is drawn) as their public catalogue.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, set_threads

ML1M = (6_040, 3_706, 1_000_209)


def build(name: str, eps: float | None, cfg: dict) -> Any:
    """Model ``name`` at budget ``eps`` (None for the non-private baselines)."""
    from avrec.privacy import DPBPR, DPEASE, DPVBPR, DPItemKNN
    from avrec.recommenders import BPR, EASE, VBPR, ItemKNN, Popularity

    m, delta = cfg["max_items"], cfg["delta"]
    if name == "Popularity":
        return Popularity()
    if name == "ItemKNN":
        return ItemKNN(k=cfg["neighbours"], shrinkage=cfg["shrinkage"])
    if name == "EASE":
        return EASE(l2=cfg["l2"])
    if name == "BPR":
        return BPR(factors=cfg["factors"], device="cpu", random_state=0, verbose=False)
    if name == "DPItemKNN":
        return DPItemKNN(
            k=cfg["neighbours"],
            shrinkage=cfg["shrinkage"],
            epsilon=eps,
            delta=delta,
            max_items_per_user=m,
            random_state=0,
        )
    if name == "DPEASE":
        return DPEASE(l2=cfg["l2"], epsilon=eps, delta=delta, max_items_per_user=m, random_state=0)
    if name == "VBPR":
        return VBPR(factors=cfg["factors"], device="cpu", random_state=0, verbose=False)
    if name in ("DPBPR", "DPVBPR"):
        return (DPBPR if name == "DPBPR" else DPVBPR)(
            factors=cfg["factors"],
            epsilon=eps,
            delta=delta,
            max_items_per_user=m,
            sample_rate=cfg["sample_rate"],
            epochs=cfg["epochs"],
            device="cpu",
            random_state=0,
            verbose=False,
        )
    raise ValueError(name)


def measure(
    model: Any, train: Any, test: Any, features: Any = None, items: Any = None
) -> dict[str, float]:
    from avrec.evaluation import evaluate

    start = time.perf_counter()
    kwargs: dict[str, Any] = {}
    if getattr(model, "_uses_item_features", False):
        kwargs["item_features"] = features
    if hasattr(model, "_released_attributes"):  # DP models: the public catalogue
        kwargs["catalogue"] = train.items
    model.fit(train, **kwargs)
    fit_s = time.perf_counter() - start
    res = evaluate(model, train, test, k=(10, 20), metrics=("ndcg", "recall"), items=items)
    return {"ndcg10": res["ndcg@10"], "recall20": res["recall@20"], "fit_s": fit_s}


def fmt_eps(eps: float) -> str:
    return "inf" if math.isinf(eps) else f"{eps:g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of ML-1M users/items")
    parser.add_argument("--epsilons", default="0.5,1,2,4,8,inf")
    parser.add_argument("--models", default="DPItemKNN,DPEASE,DPBPR")
    parser.add_argument("--delta", type=float, default=None, help="default 1 / n_users**1.1")
    parser.add_argument("--max-items", type=int, default=100, help="max_items_per_user")
    parser.add_argument("--neighbours", type=int, default=100)
    parser.add_argument("--shrinkage", type=float, default=10.0)
    parser.add_argument("--l2", type=float, default=500.0)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--sample-rate", type=float, default=0.1, help="DPBPR Poisson rate")
    parser.add_argument("--epochs", type=float, default=40, help="DPBPR expected epochs")
    parser.add_argument("--feature-noise", type=float, default=0.5, help="DPVBPR features")
    parser.add_argument("--split", choices=("random", "cold"), default="random")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    import numpy as np

    from avrec.data import cold_item_split, make_interactions, random_split

    n_users = max(50, round(ML1M[0] * args.scale))
    n_items = max(30, round(ML1M[1] * args.scale))
    density = ML1M[2] / (ML1M[0] * ML1M[1])
    X, _, item_clusters = make_interactions(
        n_users,
        n_items,
        density=density,
        n_clusters=20,
        return_clusters=True,
        random_state=args.seed,
    )
    rng = np.random.default_rng(args.seed + 1)
    features = np.eye(20, dtype=np.float32)[item_clusters]
    features += args.feature_noise * rng.standard_normal(features.shape).astype(np.float32)
    cold = None
    if args.split == "cold":
        train, test, cold = cold_item_split(X, 0.2, random_state=0)
    else:
        train, test = random_split(X, test_size=0.2, random_state=0)
    delta = args.delta if args.delta is not None else 1.0 / n_users**1.1
    epsilons = [float(e) for e in args.epsilons.split(",")]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    cfg = {
        "max_items": args.max_items,
        "delta": delta,
        "neighbours": args.neighbours,
        "shrinkage": args.shrinkage,
        "l2": args.l2,
        "factors": args.factors,
        "sample_rate": args.sample_rate,
        "epochs": args.epochs,
    }
    print(f"# avrec privacy benchmark\n\ncommand: `python {' '.join(sys.argv)}`\n")
    print(
        f"data: synthetic ML-1M shape x {args.scale:g}: {n_users:,} users x {n_items:,} items, "
        f"{X.nnz:,} interactions (train {train.nnz:,} / test {test.nnz:,}); "
        f"split: {args.split}"
        + ("" if cold is None else f" ({len(cold)} cold items ranked)")
        + "; "
        f"delta = {delta:.3g}; settings: {cfg}\n"
    )
    start = time.perf_counter()
    baseline = {}
    for name in ["Popularity", "ItemKNN", "EASE", "BPR"] + (["VBPR"] if "DPVBPR" in models else []):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        baseline[name] = measure(build(name, None, cfg), train, test, features, cold)
    results: dict[str, dict[float, dict]] = {}
    extra: dict[str, dict[float, str]] = {}
    for name in models:
        results[name], extra[name] = {}, {}
        for eps in epsilons:
            print(f"running {name} epsilon={fmt_eps(eps)} ...", file=sys.stderr, flush=True)
            model = build(name, eps, cfg)
            results[name][eps] = measure(model, train, test, features, cold)
            if name in ("DPBPR", "DPVBPR"):
                extra[name][eps] = f"sigma={model.noise_multiplier_:.3g}"
            print(f"  {results[name][eps]}", file=sys.stderr, flush=True)
    pairs = {"DPItemKNN": "ItemKNN", "DPEASE": "EASE", "DPBPR": "BPR", "DPVBPR": "VBPR"}
    for key, label in (("ndcg10", "NDCG@10"), ("recall20", "Recall@20")):
        rows = []
        for name in models:
            row: dict[str, Any] = {"model": name}
            for eps in epsilons:
                row[fmt_eps(eps)] = results[name][eps][key]
            row["base"] = baseline[pairs[name]][key]
            row["base_name"] = pairs[name]
            rows.append(row)
        cols = [("model", "model", "s")]
        cols += [(fmt_eps(e), f"eps={fmt_eps(e)}", ".4f") for e in epsilons]
        cols += [("base_name", "non-private", "s"), ("base", label, ".4f")]
        print(f"\n### {label}\n")
        print(markdown_table(rows, cols))
    print(
        f"\nPopularity: NDCG@10 {baseline['Popularity']['ndcg10']:.4f}, "
        f"Recall@20 {baseline['Popularity']['recall20']:.4f}"
    )
    fit_rows = [{"model": n, "fit_s": r["fit_s"]} for n, r in baseline.items()]
    for name in models:
        for eps in epsilons:
            note = extra[name].get(eps, "")
            fit_rows.append(
                {
                    "model": f"{name} eps={fmt_eps(eps)} {note}".strip(),
                    "fit_s": results[name][eps]["fit_s"],
                }
            )
    print("\n### fit time\n")
    print(markdown_table(fit_rows, [("model", "model", "s"), ("fit_s", "fit s", ".1f")]))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
