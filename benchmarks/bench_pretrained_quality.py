"""Quality bar of the pretrained backbones on the demo corpus: genre probes and cold items.

Uses the corpus and the features of ``avrec demo`` (:func:`avrec.cli._demo.demo_features`
without the backbones: the video and audio encoders trained by audio-visual correspondence
exactly as the demo trains them, plus the tag vectors; cached under ``--cache-dir``), and
adds the demo's pretrained modalities with the weights of the ``avrec[pretrained]`` extra:
``frames`` (EfficientNet-Lite0, ImageNet, the demo's settings) and ``text`` (all-MiniLM-L6-v2
over the item descriptions).

1. Linear genre probe (logistic regression on standardised features, stratified 5-fold
   accuracy, mean +- std over the folds; items with video only for the frame features):
   pretrained frames vs the demo's trained-from-scratch ``VideoEncoder`` vs the same
   ``VideoEncoder`` with random weights vs EfficientNet-Lite0 with random weights; text of
   the descriptions vs chance (the majority genre).
2. Cold items (``cold_item_split``, 20 % of the items, ranking only them; NDCG@10 mean +- std
   over ``--seeds``, each seed a new split and model seed; hyperparameters fixed: the demo's):
   ContentKNN and VBPR on the demo's features without the backbones (video, audio, tags),
   with the text modality added, and with frames and text (the demo with the extra); VBPR
   with learned fusion (``fusion="gated"`` / ``"attention"``, ``modality_dropout=0.1``) vs the
   fixed concatenation on the full feature set; the text and the tags alone for reference.

Example::

    python benchmarks/bench_pretrained_quality.py --cache-dir /tmp/avrec-demo-cache
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import markdown_table, set_threads


def probe(features: np.ndarray, genres: np.ndarray, seed: int) -> tuple[float, float]:
    """Stratified 5-fold accuracy of a logistic-regression genre probe: (mean, std)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    scores = cross_val_score(model, features, genres, cv=folds, scoring="accuracy")
    return float(scores.mean()), float(scores.std())


def extract(encoders: dict, corpus, text=None) -> tuple:
    """Embed the corpus with the demo's decoding settings: (features, seconds)."""
    import warnings

    from avrec.features import FeatureExtractor

    extractor = FeatureExtractor(
        encoders, frames=4, frame_size=32, audio_seconds=corpus.params["duration"],
        batch_size=32, verbose=False,
    )  # fmt: skip
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # audio-only items have no frames: zero rows, flagged
        feats = extractor.extract(corpus.catalogue(), text=text)
    return feats, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="demo cache (corpus, features)"
    )
    parser.add_argument("--items", type=int, default=240)
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=20, help="of the demo's encoders")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    set_threads(args.threads)

    from avrec.cli._demo import FRAME_SETTINGS, DemoConfig, default_cache_dir, demo_features
    from avrec.data import ItemFeatures, cold_item_split, make_av_corpus
    from avrec.evaluation import evaluate
    from avrec.features import FrameBackbone, TextEncoder, VideoEncoder, pretrained_weights
    from avrec.recommenders import VBPR, ContentKNN

    began = time.perf_counter()
    cache = args.cache_dir or default_cache_dir()
    config = DemoConfig(
        n_items=args.items, n_users=args.users, n_genres=args.genres, epochs=args.epochs,
        cache_dir=cache, verbose=False, pretrained=False,
    )  # fmt: skip
    name = f"{config.n_items}x{config.n_users}-g{config.n_genres}-d{config.duration:g}-s0"
    corpus = make_av_corpus(
        cache / "corpus" / name, n_items=config.n_items, n_users=config.n_users,
        n_genres=config.n_genres, duration=config.duration, random_state=0, verbose=False,
    )  # fmt: skip
    start = time.perf_counter()
    base, _ = demo_features(corpus, config, cache)
    print(f"demo features (video, audio trained {args.epochs} epochs; tags): "
          f"{time.perf_counter() - start:.1f} s (cached after the first run)")  # fmt: skip
    frame_params = {k: FRAME_SETTINGS[k] for k in ("arch", "image_size", "frames")}
    encoders = {
        "frames": FrameBackbone(
            weights=pretrained_weights("efficientnet_lite0"), batch_size=32, **frame_params
        ).fit(),
        "text": TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2"), batch_size=64).fit(),
        "frames_random": FrameBackbone(batch_size=32, random_state=0, **frame_params).init(),
        "video_random": VideoEncoder(
            frames=4, frame_size=32, widths=(16, 32), embedding_dim=32, random_state=0
        ).init(),
    }
    extra, seconds = extract(encoders, corpus, text=corpus.text(("description",)))
    print(f"pretrained + random-init features: {seconds:.1f} s\n")
    extra = extra.align(base.items)
    genres = corpus.genres[corpus.interactions.items.index(base.items.ids)]
    video = base.mask("video")

    rows = []
    for label, arr, rows_kept in (
        ("EfficientNet-Lite0 ImageNet (frames, 64 px, 4 frames)", extra["frames"], video),
        (f"VideoEncoder trained (demo: AV correspondence, {args.epochs} ep)", base["video"], video),
        ("VideoEncoder random init", extra["video_random"], video),
        ("EfficientNet-Lite0 random init (64 px, 4 frames)", extra["frames_random"], video),
        ("all-MiniLM-L6-v2 (text of the descriptions)", extra["text"], np.ones_like(video)),
    ):
        mean, std = probe(arr[rows_kept], genres[rows_kept], 0)
        rows.append({"features": label, "items": int(rows_kept.sum()), "dim": arr.shape[1],
                     "acc": mean, "std": std})  # fmt: skip
    counts = np.bincount(genres)
    rows.append({"features": "chance (majority genre)", "items": len(genres),
                 "acc": counts.max() / counts.sum()})  # fmt: skip
    print("Genre probe (logistic regression, stratified 5-fold accuracy):\n")
    print(markdown_table(rows, [
        ("features", "features", "s"), ("items", "items", "d"), ("dim", "dim", "d"),
        ("acc", "accuracy", ".3f"), ("std", "+- (5 folds)", ".3f"),
    ]))  # fmt: skip

    def subset(names: list[str]) -> ItemFeatures:
        data = {n: (base[n] if n in base.modalities else extra[n]) for n in names}
        present = {n: video for n in names if n in ("video", "frames")}
        return ItemFeatures(data, base.items, present=present)

    sets = {
        "video + audio + tags (demo without the extra)": ["video", "audio", "tags"],
        "+ text": ["video", "audio", "tags", "text"],
        "+ frames + text (demo with the extra)": ["video", "audio", "frames", "text", "tags"],
        "text only": ["text"],
        "tags only": ["tags"],
    }
    vbpr = {"factors": 32, "iterations": 30, "verbose": False}  # the demo's settings
    models = []
    for label, names in sets.items():
        models.append(("ContentKNN", label, names, lambda s: ContentKNN()))
        models.append(("VBPR", label, names, lambda s: VBPR(**vbpr, random_state=s)))
    full = sets["+ frames + text (demo with the extra)"]
    for fusion in ("gated", "attention"):
        models.append((
            f"VBPR fusion={fusion!r} (learned), modality_dropout 0.1",
            "+ frames + text (demo with the extra)", full,
            lambda s, f=fusion: VBPR(**vbpr, fusion=f, modality_dropout=0.1, random_state=s),
        ))  # fmt: skip
    X = corpus.interactions.subset(items=corpus.interactions.items.index(base.items.ids))
    seeds = [int(s) for s in args.seeds.split(",")]
    splits = [cold_item_split(X, test_size=0.2, random_state=s) for s in seeds]
    results = []
    for model_name, label, names, factory in models:
        feats = subset(names)
        scores, fit_s = [], []
        for seed, (train, test, cold) in zip(seeds, splits, strict=True):
            model = factory(seed)
            start = time.perf_counter()
            model.fit(train, item_features=feats)
            fit_s.append(time.perf_counter() - start)
            res = evaluate(model, train, test, k=10, metrics=("ndcg",), items=cold)
            scores.append(float(res["ndcg@10"]))
        results.append({"model": model_name, "features": label, "ndcg": np.mean(scores),
                        "std": np.std(scores), "fit": np.mean(fit_s)})  # fmt: skip
    print(f"\nCold items (cold_item_split 20 %, seeds {seeds}; NDCG@10 over the cold items):\n")
    print(markdown_table(results, [
        ("model", "model", "s"), ("features", "features", "s"),
        ("ndcg", "cold NDCG@10", ".4f"), ("std", f"+- ({len(seeds)} seeds)", ".4f"),
        ("fit", "fit s", ".2f"),
    ]))  # fmt: skip
    print(f"\n{time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
