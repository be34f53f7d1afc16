"""CPU extraction throughput of the pretrained backbones, next to the small from-scratch encoders.

Each backbone extracts features of a small corpus written with
:func:`avrec.data.make_av_corpus` through :class:`avrec.features.FeatureExtractor`
(``num_workers=0``, so decode and encode times are both main-process seconds), in its own
fresh process (peak RSS is its own): items/s, wall seconds, decode vs encode seconds,
encode milliseconds per item, parameters, peak RSS, and a re-run served from the cache.
A genre linear probe (logistic regression, stratified k-fold accuracy) on the features
is printed as a quality column; with a handful of items it is noise, so pass ``--items 40``
or more when it matters.

Backbones:

* ``VideoEncoder`` / ``AudioEncoder`` (``init()``): the small encoders, the baseline;
  ``VideoEncoder-trained``: the same trained ``--epochs`` epochs (SimCLR) on the corpus'
  clips first (training not timed), the from-scratch reference for the probe;
* ``FrameBackbone`` EfficientNet-Lite0 with the ImageNet weights of the ``avrec[pretrained]``
  extra, at 224 and 112 px, mean-pooled over ``--frames`` frames;
* ``VideoTransformer`` with the VideoMAE-Base architecture (transformers' default
  ``VideoMAEConfig``: 16 frames, 224 px) and ``AudioTransformer`` with the wav2vec 2.0 Base
  architecture (default ``Wav2Vec2Config``): no weights ship for them, so they run with
  random weights (``init()``); the speed is the architecture's, not the weights'.

Example::

    python benchmarks/bench_pretrained.py                        # 8 items x 2 s, 8 frames
    python benchmarks/bench_pretrained.py --items 4 --skip-videomae
    python benchmarks/bench_pretrained.py --items 40 --backbones \
        VideoEncoder,VideoEncoder-trained,FrameBackbone-224,FrameBackbone-112   # probe
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

from _common import PeakMemory, markdown_table, run_isolated, set_threads

BACKBONES = (
    "VideoEncoder",
    "VideoEncoder-trained",
    "FrameBackbone-224",
    "FrameBackbone-112",
    "VideoMAE-Base",
    "AudioEncoder",
    "wav2vec2-Base",
)


def _encoder(name: str, args: argparse.Namespace, corpus, config_root: Path):
    import torch
    import transformers

    from avrec.features import (
        AudioEncoder,
        AudioTransformer,
        FrameBackbone,
        VideoEncoder,
        VideoTransformer,
        pretrained_weights,
    )

    frames = args.frames
    if name == "VideoEncoder":
        return VideoEncoder(frames=frames, random_state=0).init()
    if name == "VideoEncoder-trained":  # SimCLR on the corpus' own clips (not timed)
        from avrec.media import read_video

        size = (args.frame_size, args.frame_size)
        paths = [p for p, video in zip(corpus.paths, corpus.has_video, strict=True) if video]
        clips = [read_video(p, num_frames=frames, size=size).frames for p in paths]
        encoder = VideoEncoder(frames=frames, epochs=args.epochs, batch_size=16, random_state=0)
        return encoder.fit(torch.stack(clips))
    if name.startswith("FrameBackbone"):
        size = int(name.rsplit("-", 1)[1])
        weights = pretrained_weights("efficientnet_lite0")
        return FrameBackbone(weights=weights, image_size=size, frames=frames).fit()
    if name == "AudioEncoder":
        return AudioEncoder(random_state=0).init()
    folder = config_root / name
    folder.mkdir(parents=True, exist_ok=True)
    if name == "VideoMAE-Base":
        transformers.VideoMAEConfig().save_pretrained(folder)  # the architecture only
        return VideoTransformer(model_dir=folder, frames=frames, random_state=0).init()
    transformers.Wav2Vec2Config().save_pretrained(folder)
    return AudioTransformer(model_dir=folder, random_state=0).init()


def _probe(features: np.ndarray, genres: np.ndarray) -> float | None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = min(5, int(np.bincount(genres).min()) if len(genres) else 0)
    if folds < 2:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    return float(cross_val_score(model, features, genres, cv=cv).mean())


def measure(name: str, root: str, args: argparse.Namespace) -> dict:
    """Extract the corpus with one backbone (twice: the second run is served from the cache)."""
    from avrec.data import AVCorpus
    from avrec.features import FeatureExtractor

    set_threads(args.threads)
    corpus = AVCorpus.load(root)
    with tempfile.TemporaryDirectory() as tmp:
        encoder = _encoder(name, args, corpus, Path(tmp))
        params = sum(p.numel() for p in encoder.model_.parameters())
        extractor = FeatureExtractor(
            {"x": encoder}, frames=args.frames, frame_size=args.frame_size, batch_size=4,
            audio_seconds=args.duration, num_workers=0, cache_dir=Path(tmp) / "cache",
            verbose=False,
        )  # fmt: skip
        warm = corpus.paths[int(np.flatnonzero(corpus.has_video)[0])]
        encoder.transform([warm])  # one-time start-up costs (thread pools, kernels) out
        peak = PeakMemory()
        features = extractor.extract(corpus.catalogue())
        stats = dict(extractor.stats_)
        rss = peak.peak_bytes() / 2**20
        began = time.perf_counter()
        extractor.extract(corpus.catalogue())
        cached = time.perf_counter() - began
    present = ~extractor.missing_["x"]
    n = int(present.sum())
    return {
        "backbone": name,
        "modality": encoder.modality,
        "dim": encoder.n_features_out_,
        "params": params / 1e6,
        "items": n,
        "items_s": n / stats["seconds"],
        "wall": stats["seconds"],
        "decode": stats["decode_seconds"],
        "encode": stats["encode_seconds"],
        "ms_item": 1000 * stats["encode_seconds"] / max(n, 1),
        "rss": rss,
        "cached": cached,
        "probe": _probe(features["x"][present], corpus.genres[present]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--frame-size", type=int, default=64, help="decoded frame side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10, help="of VideoEncoder-trained")
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated")
    parser.add_argument("--skip-videomae", action="store_true")
    parser.add_argument("--root", default=None, help="corpus folder (default: a temporary one)")
    args = parser.parse_args()
    from avrec.data import make_av_corpus

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp) / "corpus"
        corpus = make_av_corpus(
            root, n_items=args.items, n_users=10, duration=args.duration, size=(64, 64),
            random_state=0, verbose=False, overwrite=True,
        )  # fmt: skip
        print(
            f"corpus: {len(corpus)} items x {args.duration} s ({int(corpus.has_video.sum())} "
            f"with video), {args.frames} frames decoded at {args.frame_size} px, "
            f"{args.threads} torch threads, CPU"
        )
        rows = []
        for name in args.backbones.split(","):
            if name not in BACKBONES:
                parser.error(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
            if name == "VideoMAE-Base" and args.skip_videomae:
                continue
            result = run_isolated(measure, name, str(root), args)
            if "error" in result:
                print(f"{name}: {result['error'].splitlines()[0]}")
                continue
            rows.append(result)
    print(
        markdown_table(
            rows,
            [
                ("backbone", "backbone", "s"),
                ("modality", "stream", "s"),
                ("dim", "dim", "d"),
                ("params", "params (M)", ".2f"),
                ("items", "items", "d"),
                ("items_s", "items/s", ".2f"),
                ("wall", "wall s", ".2f"),
                ("decode", "decode s", ".2f"),
                ("encode", "encode s", ".2f"),
                ("ms_item", "encode ms/item", ".0f"),
                ("rss", "peak RSS MiB", ".0f"),
                ("cached", "cached re-run s", ".2f"),
                ("probe", "genre probe acc", ".2f"),
            ],
        )
    )


if __name__ == "__main__":
    main()
