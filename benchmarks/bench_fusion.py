"""Learned fusion of modalities against fixed modality weights, on cold items of the AV corpus.

Data: the synthetic audio-video corpus of ``avrec demo`` (:func:`avrec.data.make_av_corpus`)
with the demo's features (:func:`avrec.cli._demo.build_features`: audio and video encoders
trained by audio-visual correspondence, plus tag TF-IDF vectors; cached under
``--cache-dir``). Audio-only items of the corpus *lack* the video modality: they are marked
absent (``ItemFeatures(present=...)``) instead of carrying a zero row. ``--modalities``
chooses the feature set (``text`` once the demo features include it).

Protocol, for each seed: ``cold_item_split(test_size=0.2)`` makes the test items cold;
inside the training part a second cold split (also 20 %) is the validation set.
Hyperparameters (ContentKNN's fixed modality weights on a grid over the simplex, VBPR's
``modality_dropout``) are chosen by cold NDCG@10 on the validation split only, then the
model is refitted on the whole training part and scored on the test cold items
(candidates: the cold items). Reported: mean ± std over the seeds of cold NDCG@10 and
Recall@20, and the same NDCG@10 restricted to the test users of audio-only cold items.

Models:

* ``ContentKNN fixed``: cosine kNN over modalities with tuned fixed weights;
* ``VBPR concat``: VBPR on the concatenated features (one linear projection: a fixed
  weighting of the modalities for every item);
* ``VBPR gated`` / ``VBPR attention``: VBPR with a learned
  :class:`~avrec.features.nn.GatedFusion` / :class:`~avrec.features.nn.AttentionFusion`;
* ``F2F concat`` / ``F2F gated`` / ``F2F attention``: FeatureToFactor (ALS factors of the
  cold items predicted from content by an MLP) whose hidden layer is one linear layer over
  the concatenated features (fixed) or a learned fusion.

Examples::

    # features: about 5 min the first time (encoder training, then cached under --cache-dir);
    # models, measured on 2 heavily shared cores: ~3 min for ContentKNN + the 3 VBPRs,
    # ~8.5 min for the 3 FeatureToFactor variants (pick some with --models)
    python benchmarks/bench_fusion.py
    python benchmarks/bench_fusion.py --modalities video,audio,tags,text --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table, set_threads

logger = logging.getLogger("bench_fusion")

#: ``--pretrained`` -> ``DemoConfig.pretrained``; "no" is what RESULTS.md was measured with.
PRETRAINED = {"no": False, "auto": "auto", "yes": True}
DROPOUTS = (0.0, 0.25)


def load_data(args: argparse.Namespace) -> tuple[Any, Any]:
    """The corpus's interactions and its features (with presence masks), aligned."""
    from avrec.cli._demo import DemoConfig, build_features
    from avrec.data import ItemFeatures, make_av_corpus

    cache = Path(args.cache_dir)
    config = DemoConfig(
        n_items=args.items,
        n_users=args.users,
        n_genres=args.genres,
        epochs=args.epochs,
        seed=0,
        cache_dir=cache,
        verbose=False,
        pretrained=PRETRAINED[args.pretrained],
    )
    name = f"{config.n_items}x{config.n_users}-g{config.n_genres}-d{config.duration:g}-s0"
    corpus = make_av_corpus(
        cache / "corpus" / name,
        n_items=config.n_items,
        n_users=config.n_users,
        n_genres=config.n_genres,
        duration=config.duration,
        random_state=0,
        verbose=False,
    )
    features = build_features(corpus, config, cache)
    X = corpus.interactions
    if features.items != X.items:
        keep = X.items.index(features.items.ids)
        X = X.subset(items=keep[keep >= 0])
    features = features.align(X.items)
    wanted = [m.strip() for m in args.modalities.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in features]
    if unknown:
        raise SystemExit(f"--modalities: {unknown} not in the features {features.modalities}")
    has_video = np.asarray(corpus.has_video, dtype=bool)[
        corpus.interactions.items.index(X.items.ids)
    ]
    present = {"video": has_video} if "video" in wanted else None
    data = {m: features[m] for m in wanted}
    return X, ItemFeatures(data, X.items, present=present)


def weight_grid(names: list[str]) -> list[dict[str, float]]:
    """Fixed modality weights on a simplex grid (steps of 0.25), each with a weight > 0."""
    steps = (0.0, 0.25, 0.5, 0.75, 1.0)
    grid = []
    for combo in itertools.product(steps, repeat=len(names)):
        if abs(sum(combo) - 1.0) < 1e-9:
            grid.append(dict(zip(names, combo, strict=True)))
    return grid


def candidates(name: str, names: list[str], args: argparse.Namespace, seed: int) -> list[Any]:
    from avrec.recommenders import ALS, VBPR, ContentKNN, FeatureToFactor

    if name == "ContentKNN fixed":
        return [ContentKNN(modality_weights=w) for w in weight_grid(names)]
    fusion = name.split()[1]
    if name.startswith("F2F"):
        return [
            FeatureToFactor(
                base=ALS(
                    factors=32, regularization=5.0, iterations=15, random_state=seed, verbose=False
                ),
                mapper="mlp",
                fusion=fusion,
                modality_dropout=p,
                hidden_size=64,
                epochs=300,
                random_state=seed,
            )
            for p in (DROPOUTS if fusion != "concat" else (0.0,))
        ]
    return [
        VBPR(
            factors=32,
            content_factors=args.content_factors,
            iterations=args.iterations,
            fusion=fusion,
            modality_dropout=p,
            device="cpu",
            random_state=seed,
            verbose=False,
        )
        for p in DROPOUTS
    ]


def cold_scores(model: Any, train: Any, test: Any, cold: np.ndarray, features: Any) -> dict:
    from avrec.evaluation import evaluate

    model.fit(train, item_features=features)
    res = evaluate(model, train, test, k=(10, 20), metrics=("ndcg", "recall"), items=cold)
    return {"ndcg@10": float(res["ndcg@10"]), "recall@20": float(res["recall@20"])}


def describe(model: Any) -> str:
    params = model.get_params()
    if "modality_weights" in params:
        return ",".join(f"{k}={v:g}" for k, v in params["modality_weights"].items())
    return f"dropout={params['modality_dropout']:g}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modalities", default="video,audio,tags")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--items", type=int, default=240)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20, help="encoder training epochs")
    parser.add_argument("--iterations", type=int, default=30, help="VBPR epochs")
    parser.add_argument("--content-factors", type=int, default=32)
    parser.add_argument(
        "--models",
        default="ContentKNN fixed,VBPR concat,VBPR gated,VBPR attention,"
        "F2F concat,F2F gated,F2F attention",
    )
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "avrec"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--pretrained",
        choices=sorted(PRETRAINED),
        default="no",
        help="add the demo's pretrained frames/text modalities (DemoConfig.pretrained): "
        "no (default, as in RESULTS.md), auto (when the extra is installed) or yes",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    set_threads(args.threads)

    from avrec.data import cold_item_split

    start = time.perf_counter()
    X, features = load_data(args)
    t_data = time.perf_counter() - start
    names = features.modalities
    models = [m.strip() for m in args.models.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    video_missing = ~features.mask("video") if "video" in names else np.zeros(X.n_items, bool)
    print(
        f"{X.n_users} users x {X.n_items} items, modalities {features.dims}, "
        f"{int(video_missing.sum())} items without video; data {t_data:.0f} s"
    )
    results: dict[str, list[dict]] = {m: [] for m in models}
    for seed in seeds:
        train, test, cold = cold_item_split(X, test_size=0.2, random_state=seed)
        inner, val, val_cold = cold_item_split(train, test_size=0.2, random_state=seed + 100)
        audio_only = cold[video_missing[cold]]
        for name in models:
            t0 = time.perf_counter()
            options = candidates(name, names, args, seed)
            val_ndcg = [cold_scores(m, inner, val, val_cold, features)["ndcg@10"] for m in options]
            best = options[int(np.argmax(val_ndcg))]
            row = cold_scores(best, train, test, cold, features)
            if audio_only.size:
                from avrec.evaluation import evaluate

                sub = evaluate(best, train, test, k=(10,), metrics=("ndcg",), items=audio_only)
                row["ndcg@10 audio-only"] = float(sub["ndcg@10"])
            row.update(chosen=describe(best), seconds=time.perf_counter() - t0)
            results[name].append(row)
            print(f"seed {seed} {name}: {row}", flush=True)
    table = []
    for name in models:
        rows = results[name]
        out: dict[str, Any] = {"model": name}
        for key in ("ndcg@10", "recall@20", "ndcg@10 audio-only"):
            vals = np.array([r[key] for r in rows if key in r])
            if vals.size:
                out[key] = f"{vals.mean():.4f} ± {vals.std():.4f}"
        out["chosen"] = "; ".join(r["chosen"] for r in rows)
        out["seconds"] = float(np.mean([r["seconds"] for r in rows]))
        table.append(out)
    print()
    print(
        markdown_table(
            table,
            [
                ("model", "model", "s"),
                ("ndcg@10", "cold NDCG@10", "s"),
                ("recall@20", "cold R@20", "s"),
                ("ndcg@10 audio-only", "NDCG@10 audio-only cold", "s"),
                ("chosen", "chosen on validation (per seed)", "s"),
                ("seconds", "s / seed (tuning + fit)", ".1f"),
            ],
        )
    )
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
