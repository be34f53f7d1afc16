"""Does the best hybrid beat the best CF model on the ``avrec demo`` corpus? Mean +- std over seeds.

For each seed, the demo pipeline is rebuilt with that seed (corpus, encoders, split and
models: ``DemoConfig(seed=s)``, cached under ``--cache-dir``), and the warm split
(``random_split(test_size=0.2)``) is made. A validation split is carved from the *training*
part (``random_split(train, test_size=0.2)``); every candidate is fitted on the rest and
scored on it, and the best model of each family (CF: ALS, EASE; hybrid: VBPR, HybridBlend;
content: ContentKNN) is picked by validation NDCG@10. HybridBlend picks its own blend weights
on a validation split of whatever it is fitted on (``weights="fit"``). Only then is every
model refitted on the whole training part and scored on the test part, once. The table
reports test NDCG@10 as mean +- standard deviation (ddof=1) over the seeds, per model and for
the validation-picked best of each family, plus the paired hybrid - CF difference.

Example::

    python benchmarks/bench_demo_seeds.py --seeds 0,1,2,3,4 --cache-dir /tmp/demo-seeds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

#: ``--pretrained`` -> ``DemoConfig.pretrained``; "no" is what RESULTS.md was measured with.
PRETRAINED = {"no": False, "auto": "auto", "yes": True}
FAMILIES = {"cf": ["ALS", "EASE"], "hybrid": ["VBPR", "HybridBlend"], "content": ["ContentKNN"]}


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Validation and test NDCG@10 of every candidate, and the validation picks, for one seed."""
    from avrec.cli._demo import DemoConfig, build_features, demo_models, evaluate_models
    from avrec.data import make_av_corpus, random_split

    cache_dir = args.cache_dir
    config = DemoConfig(
        n_items=args.items,
        n_users=args.users,
        duration=args.duration,
        epochs=args.epochs,
        seed=seed,
        cache_dir=cache_dir,
        verbose=False,
        pretrained=PRETRAINED[args.pretrained],
    )
    name = (
        f"{config.n_items}x{config.n_users}-g{config.n_genres}-d{config.duration:g}-s{config.seed}"
    )
    corpus = make_av_corpus(
        cache_dir / "corpus" / name,
        n_items=config.n_items,
        n_users=config.n_users,
        n_genres=config.n_genres,
        duration=config.duration,
        random_state=config.seed,
        verbose=False,
    )
    features = build_features(corpus, config, cache_dir)
    X = corpus.interactions
    if features.items != X.items:  # an undecodable file: keep the items that have features
        keep = X.items.index(features.items.ids)
        X = X.subset(items=keep[keep >= 0])
    features = features.align(X.items)
    candidates = {m for names in FAMILIES.values() for m in names}
    models = {k: v for k, v in demo_models(seed).items() if k in candidates}
    train, test = random_split(X, test_size=0.2, random_state=seed)
    fit, valid = random_split(train, test_size=0.2, random_state=seed + 10_000)
    on_valid, _, _ = evaluate_models(models, fit, valid, features, seed=seed, verbose=False)
    on_test, _, _ = evaluate_models(models, train, test, features, seed=seed, verbose=False)
    out = {"valid": {}, "test": {}, "pick": {}}
    for model in models:
        out["valid"][model] = on_valid[model]["ndcg@10"]
        out["test"][model] = on_test[model]["ndcg@10"]
    for family, names in FAMILIES.items():
        best = max(names, key=lambda m: out["valid"][m])
        out["pick"][family] = best
        out["test"][f"best {family} (picked on validation)"] = out["test"][best]
    return out


def mean_std(values: list[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return f"{arr.mean():.4f} +- {std:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (at least 2)")
    parser.add_argument("--epochs", type=int, default=20, help="encoder training epochs")
    parser.add_argument("--items", type=int, default=240, help="as `avrec demo --items`")
    parser.add_argument("--users", type=int, default=600, help="as `avrec demo --users`")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per clip")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/avrec-demo-seeds"))
    parser.add_argument(
        "--pretrained",
        choices=sorted(PRETRAINED),
        default="no",
        help="add the demo's pretrained frames/text modalities (DemoConfig.pretrained): "
        "no (default, as in RESULTS.md), auto (when the extra is installed) or yes",
    )
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if len(seeds) < 2:
        parser.error("--seeds needs at least two seeds for a standard deviation")
    print(f"command: `python {' '.join(sys.argv)}`\n")
    started = time.perf_counter()
    runs = []
    for seed in seeds:
        began = time.perf_counter()
        runs.append(run_seed(seed, args))
        picks = ", ".join(f"{f}: {m}" for f, m in runs[-1]["pick"].items())
        print(f"seed {seed}: {time.perf_counter() - began:.0f} s; validation picks {picks}")
        print(f"  test NDCG@10 {runs[-1]['test']}", file=sys.stderr, flush=True)
    rows = list(runs[0]["test"])
    print(f"\nTest NDCG@10 over seeds {seeds} (mean +- std, ddof=1):\n")
    print("| model | NDCG@10 | per seed |")
    print("|---|---:|---|")
    for row in rows:
        values = [r["test"][row] for r in runs]
        print(f"| {row} | {mean_std(values)} | {', '.join(f'{v:.4f}' for v in values)} |")
    diff = [
        r["test"]["best hybrid (picked on validation)"]
        - r["test"]["best cf (picked on validation)"]
        for r in runs
    ]
    wins = sum(d > 0 for d in diff)
    print(
        f"\nbest hybrid - best CF (paired, picked on validation): {mean_std(diff)}; "
        f"hybrid ahead in {wins} of {len(diff)} seeds"
    )
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
