"""Speed of :func:`avrec.data.make_av_corpus`, and how separable its genres are.

1. Generation: wall time, items/s, bytes written and peak RSS for the default threaded
   run, for ``n_jobs=1`` (must give the same bytes), and for a second call that finds
   the corpus cached. Baseline, measured in the same run: encoding the same number of
   clips of constant frames and silence with the same encoder settings (what
   generation would cost if synthesising the content were free).
2. Genre separability (skip with ``--skip-probe``), on a 50/50 split stratified by genre:
   logistic regression on hand-crafted global statistics of the *decoded* media (mean
   colour, saturation-weighted hue histogram, average log spectrum, all of them) versus
   a small CNN trained on decoded frames and on log-mel spectrograms.

Example::

    python benchmarks/bench_av_corpus.py                      # 200 items x 3 s, 64x64, 10 fps
    python benchmarks/bench_av_corpus.py --items 40 --skip-probe
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import numpy as np

from avrec.data import make_av_corpus
from avrec.media import read_audio, read_video, write_audio, write_video

MiB = 2**20


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


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


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def timed(fn):
    reset_peak()
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start, peak_rss()


def encode_only(folder: Path, n_items: int, args) -> None:
    """The baseline: constant frames and silence through the same encoders."""
    height, width = args.size
    n_frames = max(1, round(args.duration * args.fps))
    frames = np.full((n_frames, height, width, 3), 96, np.uint8)
    silence = np.zeros((1, round(args.duration * 16000)), np.float32)
    options = {"preset": "ultrafast", "crf": "23", "threads": "1"}
    n_audio_only = round(0.1 * n_items)
    for i in range(n_items):
        if i < n_audio_only:
            write_audio(folder / f"{i}.wav", silence, 16000)
        else:
            write_video(folder / f"{i}.mp4", frames, args.fps, options=options, audio=silence,
                        sample_rate=16000)  # fmt: skip


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


# ------------------------------------------------------------------------------- probe
def hue_histogram(frames: np.ndarray, bins: int = 12) -> np.ndarray:
    """Saturation-weighted hue histogram of ``(T, 3, H, W)`` frames in [0, 1]."""
    r, g, b = frames[:, 0], frames[:, 1], frames[:, 2]
    high, low = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    span = high - low + 1e-6
    hue = np.where(
        high == r, ((g - b) / span) % 6, np.where(high == g, (b - r) / span + 2, (r - g) / span + 4)
    )
    hist, _ = np.histogram(hue / 6, bins=bins, range=(0, 1), weights=span / (high + 1e-6))
    return hist / max(hist.sum(), 1e-9)


def small_cnn(in_channels: int, n_classes: int):
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_channels, 16), nn.MaxPool2d(2), *block(16, 32), nn.MaxPool2d(2),
        *block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, n_classes),
    )  # fmt: skip


def train_cnn(x_train, y_train, x_test, y_test, n_classes, epochs, seed) -> float:
    """Accuracy of a small CNN; ``x_*`` of shape (n, views, C, H, W): views are averaged."""
    import torch

    torch.manual_seed(seed)
    net = small_cnn(x_train.shape[2], n_classes)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    views = x_train.shape[1]
    xs = torch.tensor(x_train.reshape(-1, *x_train.shape[2:]))
    ys = torch.tensor(np.repeat(y_train, views))
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(xs))
        for i in range(0, len(order), 32):
            batch = order[i : i + 32]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xs[batch]), ys[batch]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        test = torch.tensor(x_test.reshape(-1, *x_test.shape[2:]))
        logits = net(test).reshape(len(x_test), -1, n_classes).mean(1)
    return float((logits.argmax(1).numpy() == y_test).mean())


def probe(corpus, args) -> list[list[str]]:
    import torch
    import torchaudio
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    torch.set_num_threads(os.cpu_count() or 1)
    video = np.flatnonzero(corpus.has_video)
    y = corpus.genres
    n_classes = corpus.n_genres
    frames = (
        np.stack([read_video(corpus.paths[i], num_frames=8).frames.numpy() for i in video]).astype(
            np.float32
        )
        / 255
    )  # (n_video, 8, 3, H, W)
    n_samples = round(args.duration * 16000)
    waves = np.stack(
        [
            np.resize(read_audio(p, sample_rate=16000).samples.numpy()[0], n_samples)
            for p in corpus.paths
        ]
    )
    spectrum = np.abs(np.fft.rfft(waves * np.hanning(n_samples), axis=1))
    freqs = np.fft.rfftfreq(n_samples, 1 / 16000)
    edges = np.geomspace(60, 7900, 25)
    bands = np.stack(
        [np.log(spectrum[:, (freqs >= a) & (freqs < b)].sum(1) + 1e-9) for a, b in pairwise(edges)],
        axis=1,
    )
    mel = torchaudio.transforms.MelSpectrogram(
        16000, n_fft=400, hop_length=160, n_mels=64, f_min=125, f_max=7500
    )
    logmel = torch.log(mel(torch.tensor(waves)) + 1e-6)
    logmel = ((logmel - logmel.mean()) / logmel.std()).numpy()[:, None, None]  # (n, 1, 1, 64, T)

    def split(index):
        return train_test_split(index, test_size=0.5, stratify=y[index], random_state=0)

    def logreg(features, index):
        train, test = split(index)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(features[np.searchsorted(index, train)], y[train])
        return float(model.score(features[np.searchsorted(index, test)], y[test]))

    everything = np.arange(len(y))
    mean_colour = frames.mean(axis=(1, 3, 4))
    hues = np.stack([hue_histogram(f) for f in frames])
    rows = [
        ["mean colour (video items)", f"{logreg(mean_colour, video):.3f}"],
        ["hue histogram (video items)", f"{logreg(hues, video):.3f}"],
        ["average log spectrum, 24 bands", f"{logreg(bands, everything):.3f}"],
        [
            "all hand-crafted above (video items)",
            f"{logreg(np.c_[mean_colour, hues, bands[video]], video):.3f}",
        ],
    ]
    started = time.perf_counter()
    train, test = split(video)
    pos = {item: k for k, item in enumerate(video)}
    acc = train_cnn(
        frames[[pos[i] for i in train]], y[train], frames[[pos[i] for i in test]], y[test],
        n_classes, args.video_epochs, 0,
    )  # fmt: skip
    rows.append([f"small CNN on 8 frames ({time.perf_counter() - started:.0f} s)", f"{acc:.3f}"])
    started = time.perf_counter()
    train, test = split(everything)
    acc = train_cnn(logmel[train], y[train], logmel[test], y[test], n_classes, args.audio_epochs, 0)
    rows.append([f"small CNN on log-mel ({time.perf_counter() - started:.0f} s)", f"{acc:.3f}"])
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--genres", type=int, default=4)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--jobs", type=int, default=None, help="n_jobs of the threaded run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--skip-probe", action="store_true")
    parser.add_argument("--video-epochs", type=int, default=6)
    parser.add_argument("--audio-epochs", type=int, default=25)
    args = parser.parse_args(argv)

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_av_corpus_"))
    work.mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        n_items=args.items,
        n_users=args.users,
        n_genres=args.genres,
        duration=args.duration,
        fps=args.fps,
        size=tuple(args.size),
        random_state=args.seed,
        verbose=False,
    )
    print(
        f"{args.items} items x {args.duration:g} s, {args.size[0]}x{args.size[1]} at "
        f"{args.fps:g} fps, {args.users} users, {os.cpu_count()} cores"
    )
    try:
        for name in ("threaded", "serial", "baseline"):
            shutil.rmtree(work / name, ignore_errors=True)
        corpus, t_threaded, m_threaded = timed(
            lambda: make_av_corpus(work / "threaded", n_jobs=args.jobs, **kwargs)
        )
        _, t_serial, m_serial = timed(lambda: make_av_corpus(work / "serial", n_jobs=1, **kwargs))
        _, t_cached, m_cached = timed(lambda: make_av_corpus(work / "threaded", **kwargs))
        (work / "baseline").mkdir()
        _, t_base, m_base = timed(lambda: encode_only(work / "baseline", args.items, args))
        same = digests(work / "threaded") == digests(work / "serial")
        size = folder_bytes(work / "threaded")
        n = args.items
        rows = [
            [f"make_av_corpus (n_jobs={args.jobs or 'auto'})", f"{t_threaded:.2f}",
             f"{n / t_threaded:.1f}", f"{size / MiB:.2f}", f"{m_threaded:.0f}"],
            ["make_av_corpus (n_jobs=1)", f"{t_serial:.2f}", f"{n / t_serial:.1f}",
             f"{folder_bytes(work / 'serial') / MiB:.2f}", f"{m_serial:.0f}"],
            ["make_av_corpus, cached (2nd call)", f"{t_cached:.3f}", "-", "-", f"{m_cached:.0f}"],
            ["baseline: encode constant clips", f"{t_base:.2f}", f"{n / t_base:.1f}",
             f"{folder_bytes(work / 'baseline') / MiB:.2f}", f"{m_base:.0f}"],
        ]  # fmt: skip
        print()
        print_table(["run", "seconds", "items/s", "MiB written", "peak RSS MiB"], rows)
        print(f"\nthreaded and serial runs byte-identical: {same}")
        if not args.skip_probe:
            print(f"\ngenre accuracy, 50/50 split, chance {1 / args.genres:.3f}\n")
            print_table(["features", "accuracy"], probe(corpus, args))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
