"""Bring your own media folder and interaction CSV: load, decode, embed, recommend.

The layout this example expects of your own data::

    media/           one file per item, named <item id>.<suffix> (mp4, mkv, wav, m4a ...)
    plays.csv        user,video,seconds,ts    one row per play (ts in Unix seconds)

Pass ``--media`` and ``--csv`` to use yours; by default the script first writes a few
tiny clips (videos with sound, audio-only tracks and one corrupt file) and a matching
CSV into a temporary folder. It then

1. reads the log with :meth:`avrec.data.Interactions.from_csv`;
2. probes every media file and decodes a few frames / a second of sound with
   :mod:`avrec.media` (a corrupt file is reported, not fatal);
3. if this release has :class:`avrec.features.FeatureExtractor`, embeds the catalogue
   with a video and an audio encoder (random weights by default, ``--epochs N`` trains
   them self-supervised first) into :class:`avrec.data.ItemFeatures` aligned to the log's
   items; otherwise it stops after decoding and says so;
   and lists the items whose content is closest to the first one;
4. recommends with ItemKNN fitted on the log and maps the indices back to your ids.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import warnings
from pathlib import Path

import numpy as np

from avrec.data import Interactions
from avrec.exceptions import MediaDecodeError
from avrec.media import probe, read_audio, read_video, write_audio, write_video
from avrec.recommenders import ItemKNN

SAMPLE_RATE = 16000


def write_demo_data(root: Path, n_items: int, n_users: int, seconds: float, seed: int) -> None:
    """Tiny clips (two 'looks' and 'sounds') and a play log where users stick to one kind."""
    rng = np.random.default_rng(seed)
    media = root / "media"
    media.mkdir(parents=True)
    fps, size = 8, 32
    n_frames = max(2, int(seconds * fps))
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    kinds = np.arange(n_items) % 2  # kind 0: dark, low tone; kind 1: bright, high tone
    for i in range(n_items):
        tone = 0.3 * np.sin(2 * np.pi * (220 if kinds[i] == 0 else 880) * t)[None]
        if i % 4 == 3:  # every fourth item is audio only
            write_audio(media / f"item{i:03d}.wav", tone.astype(np.float32), SAMPLE_RATE)
            continue
        level = 40 if kinds[i] == 0 else 200
        frames = np.clip(rng.normal(level, 20, (n_frames, size, size, 3)), 0, 255)
        write_video(
            media / f"item{i:03d}.mp4",
            frames.astype(np.uint8),
            fps,
            audio=tone,
            sample_rate=SAMPLE_RATE,
            options={"preset": "ultrafast"},
        )
    (media / "broken.mp4").write_bytes(b"this is not a video")  # a file that fails to decode

    with open(root / "plays.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["user", "video", "seconds", "ts"])
        for u in range(n_users):
            liked = np.flatnonzero(kinds == u % 2)  # each user prefers one kind
            for i in rng.choice(liked, size=min(4, liked.size), replace=False):
                out.writerow(
                    [
                        f"user{u}",
                        f"item{i:03d}",
                        int(rng.integers(5, 300)),
                        1_700_000_000 + int(rng.integers(0, 86_400)),
                    ]
                )


def decode_catalogue(catalogue: dict[str, Path]) -> dict[str, Path]:
    """Probe and decode every file; return the ones that decode."""
    ok = {}
    for item_id, path in catalogue.items():
        try:
            info = probe(path)
            parts = []
            if info.has_video:
                clip = read_video(path, num_frames=4, size=(32, 32))
                parts.append(f"video {tuple(clip.frames.shape)} at {info.fps:.0f} fps")
            if info.has_audio:
                sound = read_audio(path, sample_rate=SAMPLE_RATE, duration=1.0)
                parts.append(f"audio {tuple(sound.samples.shape)} at {sound.sample_rate} Hz")
            print(f"  {item_id:<10} {info.format:<24} {', '.join(parts)}")
            ok[item_id] = path
        except MediaDecodeError as exc:
            print(f"  {item_id:<10} skipped: {exc}")
    return ok


def extract_features(catalogue: dict[str, Path], X: Interactions, epochs: int, seed: int):
    """Embed the catalogue with a small video and audio encoder, or None without them."""
    try:
        from avrec.features import AudioEncoder, FeatureExtractor, VideoEncoder
    except ImportError:
        print("\nthis release has no avrec.features.FeatureExtractor: stopping after decoding")
        return None
    small = {"epochs": epochs, "batch_size": 8, "random_state": seed}
    video = VideoEncoder(frames=4, frame_size=16, widths=(8, 16), embedding_dim=16, **small)
    audio = AudioEncoder(widths=(8, 16), embedding_dim=16, **small)
    extractor = FeatureExtractor(
        {"video": video if epochs else video.init(), "audio": audio if epochs else audio.init()},
        frames=4,
        frame_size=16,
        audio_seconds=1.0,
        verbose=False,
    )
    with warnings.catch_warnings(record=True) as caught:  # undecodable files are reported
        warnings.simplefilter("always")
        features = extractor.fit_extract(catalogue) if epochs else extractor.extract(catalogue)
    for w in caught:
        print(f"  warning: {w.message}")
    print(f"\nfeatures: {features}  (audio-only items have a zero video row: missing_)")
    aligned = features.align(X.items, missing="zero")  # rows follow the log's item order
    print(f"aligned to the log's {len(X.items)} items: {aligned}")
    emb = aligned.concat(normalize="l2")  # (n_items, 32): unit video and audio parts side by side
    similar = np.argsort(-(emb @ emb[0]))[1:4]
    print(f"most similar content to {X.items.ids[0]}: {X.items.to_ids(similar).tolist()}")
    return aligned


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--media", type=Path, help="folder of media files named <item id>.*")
    parser.add_argument("--csv", type=Path, help="CSV with columns user,video,seconds,ts")
    parser.add_argument("--items", type=int, default=12, help="demo clips to write")
    parser.add_argument("--users", type=int, default=20, help="demo users to write")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each demo clip")
    parser.add_argument("--epochs", type=int, default=0, help="encoder training (0: random)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.media is None or args.csv is None:
            write_demo_data(Path(tmp), args.items, args.users, args.seconds, args.seed)
            args.media, args.csv = Path(tmp) / "media", Path(tmp) / "plays.csv"
            print(f"wrote demo media and plays.csv to {tmp}")

        X = Interactions.from_csv(
            args.csv, user_col="user", item_col="video", weight_col="seconds", timestamp_col="ts"
        )
        print(f"interactions: {X}")

        catalogue = {p.stem: p for p in sorted(args.media.iterdir()) if p.is_file()}
        print(f"\ndecoding {len(catalogue)} media files:")
        decodable = decode_catalogue(catalogue)
        print(f"decoded {len(decodable)} of {len(catalogue)} files")

        extract_features(catalogue, X, args.epochs, args.seed)

    model = ItemKNN(k=20).fit(X)
    items, _ = model.recommend([0], k=3)
    print(f"\nItemKNN recommends to {X.users.ids[0]}: {X.items.to_ids(items[0]).tolist()}")


if __name__ == "__main__":
    main()
