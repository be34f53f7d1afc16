"""Throughput of feature extraction and training time of the encoders, on synthetic corpora.

1. Extraction with :class:`avrec.features.FeatureExtractor` (a VideoEncoder and an
   AudioEncoder, random weights from ``init()``) over two catalogues written with
   :func:`avrec.data.make_av_corpus`: the short-clip corpus (``--items`` x ``--duration`` s)
   and a long-clip one (``--long-items`` x ``--long-seconds`` s), with ``num_workers`` 0 and
   2: items/s, wall time, decode seconds (summed over workers, so it can exceed the wall
   time) vs encode seconds (main process), peak RSS, and a re-run served from the cache.
   Baseline, measured in the same run: the same encoders called item by item on paths
   (``encoder.transform([path])``: decode and embed one file at a time, no workers, no
   batching).
2. Training: seconds per epoch of each encoder (VideoEncoder and AudioEncoder with SimCLR,
   AVCorrespondence, GANEncoder on frames and on log-mel patches) on the short-clip corpus,
   and the genre linear-probe accuracy (50/50 splits) after ``--epochs`` epochs next to the
   same architecture untrained (mean over 5 fixed stratified splits).

Example::

    python benchmarks/bench_features.py                       # 120 x 2 s and 20 x 30 s
    python benchmarks/bench_features.py --items 40 --long-items 4 --epochs 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from avrec.data import make_av_corpus
from avrec.features import (
    AudioEncoder,
    AVCorrespondence,
    FeatureExtractor,
    GANEncoder,
    VideoEncoder,
)
from avrec.media import read_audio, read_video

MiB = 2**20


def reset_peak() -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> float:
    """Peak RSS in MiB (since the last reset where Linux allows it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MiB


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def probe(features: np.ndarray, genres: np.ndarray) -> float:
    """Linear-probe accuracy, mean over 5 fixed 50/50 stratified splits (as the quality tests)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for seed in range(5):
        idx = np.arange(len(genres))
        train, test = train_test_split(idx, test_size=0.5, random_state=seed, stratify=genres)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(features[train], genres[train])
        scores.append(model.score(features[test], genres[test]))
    return float(np.mean(scores))


def encoders(args) -> dict:
    return {
        "video": VideoEncoder(
            frames=args.frames, frame_size=args.frame_size, random_state=0
        ).init(),
        "audio": AudioEncoder(random_state=0).init(),
    }


# ------------------------------------------------------------------------------ extraction
def extraction_rows(name: str, corpus, args, work: Path) -> list[list[str]]:
    catalogue = corpus.catalogue()
    n = len(catalogue)
    rows = []
    enc = encoders(args)
    reset_peak()
    began = time.perf_counter()
    for path, has_video in zip(corpus.paths, corpus.has_video, strict=True):
        if has_video:
            enc["video"].transform([path])
        enc["audio"].transform([path])
    wall = time.perf_counter() - began
    rows.append([name, "baseline: transform([path]) per item", "-", f"{n / wall:.1f}",
                 f"{wall:.2f}", "-", "-", f"{peak_rss():.0f}"])  # fmt: skip
    for workers in args.workers:
        cache = work / f"cache-{name}-{workers}"
        shutil.rmtree(cache, ignore_errors=True)
        extractor = FeatureExtractor(
            enc, frames=args.frames, frame_size=args.frame_size, batch_size=args.batch_size,
            num_workers=workers, cache_dir=cache, verbose=False,
        )  # fmt: skip
        for run in ("first run", "cached re-run"):
            reset_peak()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DataLoader's worker-count advice
                extractor.extract(catalogue)
            s = extractor.stats_
            rows.append([
                name, f"FeatureExtractor, {run}", str(workers), f"{n / s['seconds']:.1f}",
                f"{s['seconds']:.2f}", f"{s['decode_seconds']:.2f}",
                f"{s['encode_seconds']:.2f}", f"{peak_rss():.0f}",
            ])  # fmt: skip
    return rows


# ------------------------------------------------------------------------------ training
def training_rows(corpus, args) -> list[list[str]]:
    paths = [p for p, v in zip(corpus.paths, corpus.has_video, strict=True) if v]
    genres = corpus.genres[corpus.has_video]
    size = (args.frame_size, args.frame_size)
    frames = torch.stack([read_video(p, args.frames, size=size).frames for p in paths])
    sounds = [read_audio(p).samples[0] for p in paths]
    common = {"epochs": args.epochs, "random_state": 0}
    video_arch = {"frames": args.frames, "frame_size": args.frame_size}
    jobs = [
        ("VideoEncoder (SimCLR)", VideoEncoder(**video_arch, **common), frames),
        ("AudioEncoder (SimCLR)", AudioEncoder(**common), sounds),
        ("GANEncoder (video)", GANEncoder(image_size=args.frame_size, **common), frames),
        ("GANEncoder (audio)", GANEncoder(modality="audio", **common), sounds),
    ]
    rows = []
    for name, encoder, data in jobs:
        untrained = probe(encoder.init().transform(data), genres)
        began = time.perf_counter()
        encoder.fit(data)
        per_epoch = (time.perf_counter() - began) / args.epochs
        trained = probe(encoder.transform(data), genres)
        rows.append([name, f"{per_epoch:.2f}", f"{untrained:.3f}", f"{trained:.3f}"])
    templates = (VideoEncoder(**video_arch, random_state=0), AudioEncoder(random_state=0))
    av = AVCorrespondence(*templates, **common)
    untrained_v = probe(av.video_encoder.init().transform(frames), genres)
    untrained_a = probe(av.audio_encoder.init().transform(sounds), genres)
    began = time.perf_counter()
    av.fit(frames, sounds)
    per_epoch = (time.perf_counter() - began) / args.epochs
    trained_v = probe(av.video_encoder_.transform(frames), genres)
    trained_a = probe(av.audio_encoder_.transform(sounds), genres)
    rows.append(["AVCorrespondence -> video", f"{per_epoch:.2f}", f"{untrained_v:.3f}",
                 f"{trained_v:.3f}"])  # fmt: skip
    rows.append(["AVCorrespondence -> audio", "(same)", f"{untrained_a:.3f}", f"{trained_a:.3f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--long-items", type=int, default=20)
    parser.add_argument("--long-seconds", type=float, default=30.0)
    parser.add_argument("--size", type=int, default=64, help="frame side of the corpus")
    parser.add_argument("--frames", type=int, default=8, help="frames decoded per video")
    parser.add_argument("--frame-size", type=int, default=32, help="frame side for encoders")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default all)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_features_"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"{os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} "
        f"threads; encoders see {args.frames} frames of {args.frame_size}px and all the sound"
    )
    try:
        common = {"n_users": 50, "size": (args.size, args.size), "random_state": 0,
                  "verbose": False}  # fmt: skip
        began = time.perf_counter()
        short = make_av_corpus(work / "short", n_items=args.items, duration=args.duration, **common)
        long = make_av_corpus(
            work / "long",
            n_items=args.long_items,
            duration=args.long_seconds,
            n_genres=min(args.genres, args.long_items),
            **common,
        )
        print(f"corpora written in {time.perf_counter() - began:.1f} s\n")
        rows = extraction_rows(f"{args.items} x {args.duration:g} s", short, args, work)
        rows += extraction_rows(f"{args.long_items} x {args.long_seconds:g} s", long, args, work)
        print_table(
            ["catalogue", "run", "workers", "items/s", "wall s", "decode s", "encode s",
             "peak RSS MiB"],
            rows,
        )  # fmt: skip
        if not args.skip_training:
            print(f"\ntraining on {args.items} x {args.duration:g} s, {args.epochs} epochs; "
                  f"genre probe accuracy (chance {1 / args.genres:.3f})\n")  # fmt: skip
            print_table(
                ["encoder", "s / epoch", "untrained acc", "trained acc"], training_rows(short, args)
            )
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
