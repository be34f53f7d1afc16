"""Cold items on the corpus: VBPR on frozen MiniLM text embeddings vs EndToEndVBPR (LoRA, last-k).

The synthetic corpus (:func:`avrec.data.make_av_corpus`) gives each item a description that
names its genre (a ``text_noise`` share names a wrong one); users play mostly their genres.
A cold-item split holds out 20 % of the items entirely; every model ranks, for each user
with held-out plays, the cold items only (``items=cold``) and NDCG@10 / recall@10 are
computed against the held-out plays. all-MiniLM-L6-v2 (:class:`avrec.features.TextEncoder`,
the ``avrec[pretrained]`` weights) embeds the descriptions.

Rows, measured in the same run with the same seed and hyperparameters:

* ``VBPR`` on the frozen embeddings (``EndToEndVBPR(finetune="frozen")``, which is VBPR on
  the embeddings computed once);
* ``EndToEndVBPR`` with the encoder in the loop: LoRA adapters (query/value) or the last
  transformer block (at the LoRA learning rate and at a usual full fine-tuning one) trained
  on the BPR loss together with the factors;
* popularity restricted to the cold items (all zero: a random order) as the floor.

Example::

    python benchmarks/bench_end_to_end.py                  # 200 items, 300 users, 8 epochs
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import markdown_table, set_threads


def cold_metrics(model, train, test, cold: np.ndarray, k: int = 10) -> dict[str, float]:
    """NDCG@k and recall@k of rankings of the cold items against the held-out plays."""
    from avrec.evaluation import ndcg_at_k, recall_at_k

    truth = test.matrix if hasattr(test, "matrix") else test
    users = np.flatnonzero(np.diff(truth.tocsr().indptr) > 0)
    idx, _ = model.recommend(users, k=k, exclude_seen=False, items=cold)
    held = truth.tocsr()[users]
    return {
        "ndcg": float(np.mean(ndcg_at_k(idx, held, k))),
        "recall": float(np.mean(recall_at_k(idx, held, k))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--standardize", choices=("column", "modality"), default="column")
    args = parser.parse_args()
    set_threads(args.threads)

    from avrec.data import cold_item_split, make_av_corpus
    from avrec.features import FineTuning, TextEncoder, pretrained_weights
    from avrec.recommenders import EndToEndVBPR

    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_av_corpus(
            Path(tmp) / "corpus", n_items=args.items, n_users=args.users, duration=0.5,
            random_state=args.seed, verbose=False,
        )  # fmt: skip
    X = corpus.interactions
    texts = corpus.text(("description",))
    descriptions = [texts[i] for i in X.items.ids]
    train, test, cold = cold_item_split(X, test_size=0.2, random_state=args.seed)
    text = TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2")).fit()
    print(
        f"corpus: {X.n_users} users x {X.n_items} items ({X.nnz} plays), {len(cold)} cold "
        f"items, {args.epochs} epochs, standardize={args.standardize!r}, "
        f"{args.threads} torch thread(s), CPU"
    )
    common = dict(
        encoder=text, factors=32, content_factors=16, learning_rate=0.01, iterations=args.epochs,
        batch_size=1024, standardize=args.standardize, device="cpu", random_state=args.seed,
        verbose=False,
    )  # fmt: skip
    rows = []
    for name, finetune, extra in (
        ("VBPR on frozen MiniLM", "frozen", {}),
        ("EndToEndVBPR, last block, lr 1e-3", FineTuning("last_k", last_k=1), {}),
        ("EndToEndVBPR, last block, lr 2e-5", FineTuning("last_k", last_k=1), {"lr": 2e-5}),
        ("EndToEndVBPR, LoRA r=8, lr 1e-3", FineTuning("lora", lora_rank=8), {}),
    ):
        params = {**common, "encoder_learning_rate": extra.get("lr", 1e-3)}
        began = time.perf_counter()
        model = EndToEndVBPR(finetune=finetune, **params).fit(train, item_inputs=descriptions)
        seconds = time.perf_counter() - began
        rows.append(
            {
                "model": name,
                **cold_metrics(model, train, test, cold),
                "trainable": model.encoder_.n_trainable_parameters() / 1e6,
                "fit_s": seconds,
            }
        )
    rng = np.random.default_rng(args.seed)
    truth = test.matrix.tocsr()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    random_rank = np.full((len(users), 10), -1, dtype=np.int64)
    for row in random_rank:
        pick = rng.permutation(cold)[:10]
        row[: len(pick)] = pick
    from avrec.evaluation import ndcg_at_k, recall_at_k

    rows.append(
        {
            "model": "random order (floor)",
            "ndcg": float(np.mean(ndcg_at_k(random_rank, truth[users], 10))),
            "recall": float(np.mean(recall_at_k(random_rank, truth[users], 10))),
        }
    )
    print(
        markdown_table(
            rows,
            [
                ("model", "model", "s"),
                ("ndcg", "cold NDCG@10", ".3f"),
                ("recall", "cold recall@10", ".3f"),
                ("trainable", "encoder trainable (M)", ".3f"),
                ("fit_s", "fit (s)", ".1f"),
            ],
        )
    )


if __name__ == "__main__":
    main()
