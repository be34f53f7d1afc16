"""Fit recommenders on generated interactions and print their ranking metrics.

Run: ``python examples/quickstart.py`` (about a few seconds on 2 cores).
"""

from __future__ import annotations

import argparse
import time

from avrec.data import make_interactions, random_split
from avrec.evaluation import evaluate
from avrec.recommenders import Popularity


def available_models() -> dict:
    """Popularity plus every collaborative model this release ships."""
    import avrec.recommenders as rec

    models = {"Popularity": Popularity()}
    for name, params in (
        ("ItemKNN", {}),
        ("EASE", {}),
        ("ALS", {"random_state": 0, "verbose": False}),
        ("BPR", {"random_state": 0, "verbose": False}),
    ):
        if hasattr(rec, name):
            models[name] = getattr(rec, name)(**params)
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--density", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    X = make_interactions(
        n_users=args.users, n_items=args.items, density=args.density, random_state=args.seed
    )
    train, test = random_split(X, test_size=0.2, random_state=args.seed)
    print(f"data: {X}")
    print(f"train: {train.nnz} interactions, test: {test.nnz} interactions\n")

    header = (
        f"{'model':<12}{'NDCG@10':>10}{'Recall@20':>11}{'MAP@10':>9}{'coverage@10':>13}{'fit s':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, model in available_models().items():
        start = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - start
        res = evaluate(model, train, test, k=(10, 20))
        print(
            f"{name:<12}{res['ndcg@10']:>10.4f}{res['recall@20']:>11.4f}"
            f"{res['map@10']:>9.4f}{res['coverage@10']:>13.4f}{fit_s:>8.2f}"
        )


if __name__ == "__main__":
    main()
