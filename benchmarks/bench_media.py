"""Benchmark avrec.media against the obvious baselines, measured in the same run.

1. Sampling ``--frames`` frames from a long 720p H.264 video with :func:`avrec.media.read_video`
   vs decoding every frame with PyAV (same threading): time ratio, and peak memory of
   ``read_video`` (in a fresh subprocess) for a long and a short video.
2. Audio decode + resample (44.1 kHz stereo -> 16 kHz mono) on one core with
   :func:`avrec.media.read_audio`, as a real-time factor, vs PyAV's stock ``AudioResampler``.
3. The same tasks with the ``ffmpeg`` command-line tool, if one is installed.
4. Damaged input (``--fuzz-cases``): seeded byte flips, truncations, zeroed and shuffled
   blocks of a small MP4 and WAV (the mutations of ``tests/test_media_robustness.py``), each
   decoded strictly or leniently: the slowest case and the total, against decoding the
   intact file the same number of times. (The test checks outcomes; wall-clock limits live
   here, where a loaded machine cannot fail the suite.)

Every avrec timing and its baseline use the same number of repeats (best of ``--repeats``).

All media are synthetic and written into a temporary folder (or ``--workdir``, where files
from an earlier run with the same parameters are reused).

Example::

    python benchmarks/bench_media.py                      # 10 min + 2 min 720p, 10 min audio
    python benchmarks/bench_media.py --minutes 2 --short-minutes 0.5 --audio-seconds 120
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from avrec.media import probe, read_audio, read_video, write_audio, write_video

MEMORY_SCRIPT = """
import json, sys
from pathlib import Path
from avrec.media import read_video

def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
read_video(sys.argv[1], num_frames=2)  # warm up: libraries, codec tables
try:
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    reset = True
except OSError:
    reset = False
before = status("VmRSS")
clip = read_video(sys.argv[1], num_frames=int(sys.argv[2]))
print(json.dumps({"before": before, "peak": status("VmHWM"), "reset": reset,
                  "output": clip.frames.numel() / 2**20}))
"""


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def make_video(path: Path, minutes: float, args) -> float:
    """Write a moving-gradient H.264 video; return seconds spent (0 if reused)."""
    if path.exists():
        return 0.0
    n = round(minutes * 60 * args.fps)
    height, width = args.height, args.width
    y, x = np.mgrid[0:height, 0 : 2 * width]
    canvas = np.stack([np.sin(x / 97 + y / 151), np.sin(x / 53), np.cos(y / 71 + x / 211)], axis=-1)
    canvas = (128 + 100 * canvas).astype(np.uint8)

    def frames():  # a smooth pattern panning 2 pixels per frame
        for i in range(n):
            offset = (2 * i) % width
            yield canvas[:, offset : offset + width]

    began = time.perf_counter()
    options = {"preset": "ultrafast", "g": str(args.gop), "keyint_min": str(args.gop)}
    write_video(path, frames(), args.fps, options=options)
    return time.perf_counter() - began


def decode_all(path: Path, rgb: bool = False) -> int:
    """Baseline: decode every frame with PyAV (threaded like read_video), keep nothing.

    With ``rgb=True`` every frame is also converted to an RGB array, as a reader that
    decodes everything and then indexes the frames it wants would do.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = len(os.sched_getaffinity(0))
        if rgb:
            return sum(1 for f in container.decode(stream) if f.to_ndarray(format="rgb24").size)
        return sum(1 for _ in container.decode(stream))


class _Stats(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        if "seeks" in record.getMessage():
            self.message = record.getMessage()


def sample_stats(path: Path, frames: int) -> str:
    logger = logging.getLogger("avrec.media._sampling")
    handler, level = _Stats(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        read_video(path, num_frames=frames)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return handler.message.split(": ", 1)[-1]


def peak_memory(path: Path, frames: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(path), str(frames)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def baseline_audio(path: Path) -> int:
    """Baseline: PyAV's stock AudioResampler to 16 kHz mono, frame by frame."""
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray() for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray() for f in resampler.resample(None))
    return int(np.concatenate(chunks, axis=1).shape[1])


def make_audio(folder: Path, seconds: float, suffixes: list[str]) -> dict[str, Path]:
    rate = 44100
    t = np.arange(round(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3 * t)
    right = 0.3 * np.sin(2 * np.pi * 660 * t)
    samples = np.stack([left, right]).astype(np.float32)
    paths = {}
    for suffix in suffixes:
        codec = {"wav": "pcm_s16le", "flac": "flac", "mp3": "libmp3lame", "m4a": "aac"}[suffix]
        if codec not in av.codecs_available:
            continue
        paths[suffix] = folder / f"audio_{seconds:g}s.{suffix}"
        if not paths[suffix].exists():
            write_audio(paths[suffix], samples, rate)
    return paths


def ffmpeg_rows(ffmpeg: str, video: Path, frames: int, audio: dict, repeats: int) -> list:
    duration = probe(video).duration or 0.0
    targets = (np.arange(frames) + 0.5) * duration / frames

    def seek_frames():
        for t in targets:
            subprocess.run(
                [
                    ffmpeg,
                    "-v",
                    "error",
                    "-ss",
                    f"{t:.3f}",
                    "-i",
                    str(video),
                    "-frames:v",
                    "1",
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    "rgb24",
                    "-",
                ],
                check=True,
                capture_output=True,
            )

    rows = [("ffmpeg CLI: 16 seeks (one process per frame)", best_time(seek_frames, 1), "")]
    for suffix, path in audio.items():
        cmd = [ffmpeg, "-v", "error", "-threads", "1", "-i", str(path), "-ac", "1", "-ar"]
        cmd += ["16000", "-f", "f32le", "-"]
        seconds = best_time(lambda c=cmd: subprocess.run(c, check=True, capture_output=True), 1)
        rows.append((f"ffmpeg CLI: {suffix} -> 16 kHz mono", seconds, ""))
    return rows


def mutations(data: bytes, count: int, seed: int):
    """Seeded damaged variants: byte flips, truncations, zeroed or shuffled blocks.

    The same generator as ``_mutations`` in ``tests/test_media_robustness.py``.
    """
    rng = np.random.default_rng(seed)
    for i in range(count):
        buf = bytearray(data)
        kind = i % 4
        if kind == 0:
            span = 256 if i % 8 == 0 else len(buf)  # every other flip case hits the header
            for pos in rng.integers(0, span, size=rng.integers(1, 20)):
                buf[pos] = int(rng.integers(0, 256))
        elif kind == 1:
            buf = buf[: int(rng.integers(1, len(buf)))]
        elif kind == 2:
            start = int(rng.integers(0, len(buf)))
            length = int(rng.integers(1, 2000))
            buf[start : start + length] = bytes(len(buf[start : start + length]))
        else:
            start = int(rng.integers(0, max(1, len(buf) - 64)))
            block = bytearray(buf[start : start + 64])
            rng.shuffle(block)
            buf[start : start + 64] = block
            buf = buf[: int(rng.integers(len(buf) // 2, len(buf) + 1))]
        yield bytes(buf)


def fuzz_rows(folder: Path, cases: int, repeats: int) -> list[tuple[str, str, str, str, str]]:
    """Decode ``cases`` damaged MP4s and WAVs (as the robustness test does), timed per case."""
    import warnings

    from avrec.exceptions import DataWarning, MediaDecodeError

    y, x = np.mgrid[0:32, 0:48]
    frames = np.stack(
        [np.stack([(x * 4 + y * 2 + 7 * i) % 256] * 3, axis=-1) for i in range(30)]
    ).astype(np.uint8)
    write_video(folder / "fuzz.mp4", frames, 15, options={"g": "10"})
    rng = np.random.default_rng(0)
    write_audio(folder / "fuzz.wav", rng.uniform(-0.5, 0.5, (1, 8000)).astype(np.float32), 16000)
    readers = {
        "mp4": lambda d, strict: read_video(d, num_frames=4, size=(16, 16), strict=strict),
        "wav": lambda d, strict: read_audio(d, sample_rate=8000, strict=strict),
    }
    rows = []
    for kind, read in readers.items():
        data = (folder / f"fuzz.{kind}").read_bytes()
        times, errors = [], 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)  # lenient mode reports the damage
            for i, mutated in enumerate(mutations(data, cases, seed=2024)):
                began = time.perf_counter()
                try:
                    read(mutated, i % 2 == 0)
                except MediaDecodeError:
                    errors += 1
                times.append(time.perf_counter() - began)
        intact = best_time(lambda d=data, r=read: [r(d, True) for _ in range(cases)], repeats)
        rows.append(
            (
                f"{cases} damaged {kind} files ({errors} MediaDecodeError), slowest case",
                f"{max(times):.3f} s",
                f"{intact / cases:.4f} s (intact file, mean of {cases})",
                f"{max(times) / (intact / cases):.1f}x slower",
                "-",
            )
        )
        rows.append(
            (
                f"  same, all {cases} cases",
                f"{sum(times):.2f} s",
                f"{intact:.2f} s ({cases} intact decodes)",
                f"{sum(times) / intact:.2f}x",
                "-",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="long video length")
    parser.add_argument("--short-minutes", type=float, default=2.0, help="short video length")
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval (frames)")
    parser.add_argument("--frames", type=int, default=16, help="frames sampled by read_video")
    parser.add_argument("--audio-seconds", type=float, default=600.0)
    parser.add_argument("--audio-formats", default="wav,flac,mp3,m4a")
    parser.add_argument("--repeats", type=int, default=3, help="best of N for fast timings")
    parser.add_argument(
        "--no-rgb-baseline",
        dest="rgb_baseline",
        action="store_false",
        help="skip the decode-and-convert-every-frame baseline (slow)",
    )
    parser.add_argument("--workdir", type=Path, help="keep/reuse media here (default: temp)")
    parser.add_argument(
        "--fuzz-cases", type=int, default=100, help="damaged variants per format (0: skip)"
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        rows: list[tuple[str, str, str, str, str]] = []
        print(f"PyAV {av.__version__}, FFmpeg {av.ffmpeg_version_info}, cores {os.cpu_count()}")

        # 1. sparse sampling vs decoding everything
        size = f"{args.height}p{args.fps}_g{args.gop}"
        lengths = {"long": args.minutes, "short": args.short_minutes}
        for label, minutes in lengths.items():
            path = folder / f"video_{minutes:g}min_{size}.mp4"
            spent = make_video(path, minutes, args)
            n = round(minutes * 60 * args.fps)
            print(f"{label} video: {path.name} ({n} frames), generated in {spent:.1f} s")
            sample = best_time(lambda p=path: read_video(p, num_frames=args.frames), args.repeats)
            decoded = decode_all(path)
            full = best_time(lambda p=path: decode_all(p), args.repeats)
            memory = peak_memory(path, args.frames)
            extra = memory["peak"] - memory["before"]
            stats = sample_stats(path, args.frames)
            rows.append(
                (
                    f"read_video {args.frames} frames, {minutes:g} min {size} ({stats})",
                    f"{sample:.3f} s",
                    f"{full:.2f} s (decode all {decoded} frames)",
                    f"{full / sample:.1f}x" + (" (target >= 10x)" if label == "long" else ""),
                    f"+{extra:.0f} MB peak RSS (frames {memory['output']:.0f} MB)",
                )
            )
            fast = best_time(
                lambda p=path: read_video(p, num_frames=args.frames, seek="keyframe"),
                args.repeats,
            )
            rows.append(
                (
                    "  same, read_video(seek='keyframe')",
                    f"{fast:.3f} s",
                    f"{full:.2f} s (decode all {decoded} frames)",
                    f"{full / fast:.1f}x",
                    "-",
                )
            )
            if args.rgb_baseline:
                full = best_time(lambda p=path: decode_all(p, rgb=True), args.repeats)
                rows.append(
                    (
                        "  same, baseline also converts every frame to RGB",
                        f"{sample:.3f} s",
                        f"{full:.2f} s (decode + RGB all frames)",
                        f"{full / sample:.1f}x",
                        "-",
                    )
                )

        # 2. audio throughput on one core
        affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(affinity)})
        try:
            formats = args.audio_formats.split(",")
            audio = make_audio(folder, args.audio_seconds, formats)
            for suffix, path in audio.items():
                ours = best_time(lambda p=path: read_audio(p, sample_rate=16000), args.repeats)
                base = best_time(lambda p=path: baseline_audio(p), args.repeats)
                rows.append(
                    (
                        f"read_audio {suffix} 44.1 kHz stereo -> 16 kHz mono, 1 core",
                        f"{args.audio_seconds / ours:.0f}x real time ({ours:.2f} s)",
                        f"{args.audio_seconds / base:.0f}x (AudioResampler, {base:.2f} s)",
                        f"{base / ours:.2f}x (target >= 500x real time)",
                        "-",
                    )
                )
        finally:
            os.sched_setaffinity(0, affinity)

        # 3. the ffmpeg command-line tool
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            note = "no ffmpeg binary on PATH: command-line comparison skipped"
        else:
            long_path = folder / f"video_{args.minutes:g}min_{size}.mp4"
            for name, seconds, _ in ffmpeg_rows(ffmpeg, long_path, args.frames, audio, 1):
                rows.append((name, f"{seconds:.2f} s", "-", "-", "-"))
            note = f"ffmpeg binary: {ffmpeg}"

        # 4. damaged input
        if args.fuzz_cases:
            rows += fuzz_rows(folder, args.fuzz_cases, args.repeats)

    header = ("task", "avrec", "baseline (same run)", "speed-up", "memory")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n{note}")


if __name__ == "__main__":
    main()
