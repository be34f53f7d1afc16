"""Evaluate recommenders on a MovieLens ratings file that is already on disk.

avrec never downloads data: get a MovieLens dataset from GroupLens
(https://grouplens.org/datasets/movielens/), unzip it, and pass the folder or the ratings
file (``u.data``, ``ratings.dat`` or ``ratings.csv``)::

    python examples/movielens_local.py ~/data/ml-1m --min-rating 4

With no path, a small synthetic file in the ml-100k ``u.data`` layout (tab-separated
``user item rating timestamp``) is written to a temporary folder first, so the script
always runs. It then keeps the ratings >= ``--min-rating`` as implicit feedback, holds
out each user's most recent interaction (leave-last-out), fits Popularity, ItemKNN, EASE
(and ALS/BPR where this release has them) and prints their ranking metrics.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from avrec.data import leave_last_out, load_movielens, make_interactions
from avrec.evaluation import evaluate


def write_fake_ml100k(folder: Path, n_users: int, n_items: int, density: float, seed: int) -> Path:
    """Write ``ml-100k/u.data``: clustered user-item pairs with 1-5 star ratings and times."""
    X = make_interactions(n_users=n_users, n_items=n_items, density=density, random_state=seed)
    rng = np.random.default_rng(seed)
    users, items, _, _ = X.to_indices()  # 0-based rows and columns
    ratings = rng.choice([1, 2, 3, 4, 5], size=users.size, p=[0.05, 0.1, 0.25, 0.35, 0.25])
    times = 880_000_000 + rng.integers(0, 10_000_000, size=users.size)  # seconds, 1997-ish
    path = folder / "ml-100k" / "u.data"
    path.parent.mkdir(parents=True)
    rows = np.column_stack([users + 1, items + 1, ratings, times])  # MovieLens ids start at 1
    np.savetxt(path, rows, fmt="%d", delimiter="\t")
    return path


def models() -> dict:
    """The collaborative models of this release, with small settings."""
    import avrec.recommenders as rec

    out = {"Popularity": rec.Popularity(), "ItemKNN": rec.ItemKNN(k=50), "EASE": rec.EASE()}
    for name, params in (("ALS", {"factors": 32}), ("BPR", {"factors": 32})):
        if hasattr(rec, name):  # ALS and BPR are newer than this example
            out[name] = getattr(rec, name)(**params, random_state=0, verbose=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", nargs="?", help="MovieLens folder or ratings file (optional)")
    parser.add_argument("--min-rating", type=float, default=4.0, help="keep ratings >= this")
    parser.add_argument("--users", type=int, default=600, help="users of the generated file")
    parser.add_argument("--items", type=int, default=400, help="items of the generated file")
    parser.add_argument("--density", type=float, default=0.05, help="of the generated file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = args.path
        if path is None:
            path = write_fake_ml100k(Path(tmp), args.users, args.items, args.density, args.seed)
            print(f"no path given: wrote a synthetic MovieLens file to {path}")
        X = load_movielens(path, min_rating=args.min_rating, binary=True)

    X = X.k_core(min_user_interactions=2, min_item_interactions=1)  # 1 to hold out, 1 to learn
    print(f"loaded: {X}")
    train, test = leave_last_out(X, n=1)
    print(f"leave-last-out: {train.nnz} train / {test.nnz} test interactions\n")

    header = f"{'model':<12}{'NDCG@10':>10}{'HR@10':>9}{'Recall@20':>11}{'fit s':>8}"
    print(header)
    print("-" * len(header))
    for name, model in models().items():
        start = time.perf_counter()
        model.fit(train)
        fit_s = time.perf_counter() - start
        res = evaluate(model, train, test, k=(10, 20), metrics=("ndcg", "hit_rate", "recall"))
        print(
            f"{name:<12}{res['ndcg@10']:>10.4f}{res['hit_rate@10']:>9.4f}"
            f"{res['recall@20']:>11.4f}{fit_s:>8.2f}"
        )


if __name__ == "__main__":
    main()
