"""Bad input to avrec.media: missing, empty, random, truncated, damaged and mismatched files.

Every failure must be a ``FileNotFoundError`` (missing path) or a ``MediaDecodeError`` that
names the file; nothing may crash, hang or emit stray warnings.
"""

from __future__ import annotations

import io
import warnings

import av
import numpy as np
import pytest
import torch
from av.stream import Disposition

from avrec.exceptions import AvrecWarning, DataWarning, MediaDecodeError
from avrec.media import (
    iter_audio_chunks,
    iter_frames,
    probe,
    read_audio,
    read_video,
    write_audio,
    write_video,
)


def gradient_frames(n: int, height: int = 32, width: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    frames = [(x * 4 + y * 2 + 7 * i) % 256 for i in range(n)]
    return np.stack([np.stack([f, 255 - f, (f * 3) % 256], axis=-1) for f in frames]).astype(
        np.uint8
    )


def noise(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-0.5, 0.5, (channels, round(seconds * rate))).astype(np.float32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    paths = {
        "mp4": folder / "video.mp4",
        "mkv": folder / "video.mkv",
        "wav": folder / "sound.wav",
        "flac": folder / "sound.flac",
    }
    write_video(paths["mp4"], gradient_frames(30), 15, options={"g": "10"})
    write_video(paths["mkv"], gradient_frames(60), 15, options={"g": "10"})
    write_audio(paths["wav"], noise(0.5), 16000)
    write_audio(paths["flac"], noise(2.0), 16000)
    return paths


READERS = {
    "probe": probe,
    "read_video": read_video,
    "read_audio": read_audio,
    "iter_frames": lambda s: list(iter_frames(s)),
    "iter_audio_chunks": lambda s: list(iter_audio_chunks(s)),
}


@pytest.mark.parametrize("reader", list(READERS))
def test_missing_path_raises_file_not_found(tmp_path, reader):
    path = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match=r"nope\.mp4") as info:
        READERS[reader](path)
    assert info.value.filename == str(path)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("content", [b"", b"\x00", b"not a media file at all" * 20, "random"])
def test_garbage_raises_media_decode_error(tmp_path, reader, content):
    if content == "random":
        content = np.random.default_rng(1).bytes(20_000)
    path = tmp_path / "garbage.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaDecodeError, match=r"garbage\.mp4"):
        READERS[reader](path)
    with pytest.raises(MediaDecodeError, match="bytes"):
        READERS[reader](content)


def test_directory_and_wrong_types(tmp_path):
    with pytest.raises(MediaDecodeError, match="directory"):
        read_video(tmp_path)
    with pytest.raises(TypeError, match="source"):
        read_audio(12)
    with pytest.raises(TypeError, match="binary"):
        probe(io.StringIO("text"))


def test_missing_streams(files):
    with pytest.raises(MediaDecodeError, match=r"sound\.wav has no video stream"):
        read_video(files["wav"])
    with pytest.raises(MediaDecodeError, match=r"video\.mp4 has no audio stream"):
        read_audio(files["mp4"])
    with pytest.raises(MediaDecodeError, match=r"no audio stream"):
        list(iter_audio_chunks(files["mp4"]))
    with pytest.raises(MediaDecodeError, match=r"1 video stream\(s\); video stream 1"):
        read_video(files["mp4"], stream=1)
    with pytest.raises(MediaDecodeError, match="no video stream"):
        next(iter_frames(files["flac"]))


def test_cover_art_is_not_video(tmp_path):
    path = tmp_path / "song.mp3"
    with av.open(str(path), "w") as container:  # mp3 with album art, as music files have
        sound = container.add_stream("libmp3lame", rate=16000, layout="mono")
        art = container.add_stream("mjpeg", rate=1)
        art.width, art.height, art.pix_fmt = 32, 32, "yuvj420p"
        art.disposition = Disposition.attached_pic
        picture = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
        picture.pts = 0
        container.mux(art.encode(picture))
        container.mux(art.encode(None))
        frame = av.AudioFrame.from_ndarray(noise(1.0), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        container.mux(sound.encode(frame))
        container.mux(sound.encode(None))
    info = probe(path)
    assert info.has_audio and not info.has_video and info.width is None
    assert [(s.kind, s.cover_art) for s in info.streams] == [("audio", False), ("video", True)]
    with pytest.raises(MediaDecodeError, match=r"no video stream .*video:1 \(cover art\)"):
        read_video(path)
    assert read_audio(path).num_samples == pytest.approx(16000, abs=800)


def test_truncated_mp4_without_index(tmp_path, files):
    data = files["mp4"].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])  # the moov index is at the end
    for strict in (True, False):
        with pytest.raises(MediaDecodeError, match=r"cut\.mp4"):
            read_video(path, strict=strict)


def test_truncated_video_strict_and_lenient(tmp_path, files):
    data = files["mkv"].read_bytes()
    path = tmp_path / "cut.mkv"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaDecodeError, match=r"cut\.mkv.*truncated"):
        read_video(path, num_frames=8)
    with pytest.warns(DataWarning, match=r"cut\.mkv"):
        clip = read_video(path, num_frames=8, strict=False)
    assert clip.num_frames == 8 and clip.frames.dtype == torch.uint8
    assert np.all(np.diff(clip.timestamps) >= 0)
    assert clip.timestamps[-1] < 3.5  # the declared 4 s were not all there
    assert issubclass(DataWarning, AvrecWarning)


def test_truncated_audio_strict_and_lenient(tmp_path, files):
    data = files["flac"].read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaDecodeError, match=r"cut\.flac: .*(truncated|Invalid data)"):
        read_audio(path)
    with pytest.warns(DataWarning, match=r"cut\.flac: .*returning what decoded"):
        clip = read_audio(path, strict=False)
    assert 0.5 < clip.duration < 1.5
    # the part that is there can be read strictly
    assert read_audio(path, duration=0.4).num_samples == 6400


def test_damaged_packets_strict_raises_lenient_warns_and_decodes(tmp_path, files):
    data = bytearray(files["mkv"].read_bytes())
    rng = np.random.default_rng(5)
    middle = rng.integers(len(data) // 3, len(data) - 200, size=40)
    for position in middle:
        data[position] ^= 0xFF
    path = tmp_path / "damaged.mkv"
    path.write_bytes(bytes(data))
    # the header is intact (damage starts a third of the way in): the file still opens
    assert probe(path).has_video
    with pytest.raises(MediaDecodeError, match=r"damaged\.mkv: .*Invalid data"):
        read_video(path, num_frames=6)
    with pytest.warns(DataWarning, match=r"damaged\.mkv: \d+ damaged packet.*returning what"):
        clip = read_video(path, num_frames=6, strict=False)
    assert clip.num_frames == 6 and clip.frames.dtype == torch.uint8
    assert np.all(np.diff(clip.timestamps) >= 0)
    assert clip.timestamps[0] >= 0.0 and clip.timestamps[-1] < 60 / 15


def _mutations(data: bytes, count: int, seed: int):
    """Seeded damaged variants: byte flips, truncations, zeroed or shuffled blocks."""
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


def _check_video(data: bytes, strict: bool) -> None:
    clip = read_video(data, num_frames=4, size=(16, 16), strict=strict)
    assert tuple(clip.frames.shape) == (4, 3, 16, 16) and clip.frames.dtype == torch.uint8
    assert clip.timestamps.shape == (4,) and np.all(np.isfinite(clip.timestamps))


def _check_audio(data: bytes, strict: bool) -> None:
    clip = read_audio(data, sample_rate=8000, strict=strict)
    samples = clip.samples
    assert samples.dtype == torch.float32 and samples.shape[0] == 1 and samples.shape[1] > 0
    assert bool(torch.isfinite(samples).all())


@pytest.mark.parametrize(("kind", "cases"), [("mp4", 100), ("wav", 100)])
def test_fuzz_every_case_decodes_or_raises_media_decode_error(files, kind, cases):
    data = files[kind].read_bytes()
    check = _check_video if kind == "mp4" else _check_audio
    outcomes = {"ok": 0, "error": 0}
    for i, mutated in enumerate(_mutations(data, cases, seed=2024)):
        strict = i % 2 == 0
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                check(mutated, strict)
                outcomes["ok"] += 1
            except MediaDecodeError as exc:
                assert "bytes>" in str(exc)
                outcomes["error"] += 1
        # only lenient mode may warn, and only a DataWarning that names the input
        for warning in caught:
            assert not strict, f"case {i}: strict mode warned {warning.message}"
            assert issubclass(warning.category, DataWarning), (i, warning.message)
            assert "bytes>" in str(warning.message)
    assert outcomes["ok"] + outcomes["error"] == cases
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_decoding_and_encoding_switch_ffmpeg_log_forwarding_off(files, monkeypatch, tmp_path):
    # torchvision (imported by timm and transformers) turns FFmpeg -> Python log
    # forwarding on at import; with threaded decoding that deadlocks (PyAV #751), so
    # every open switches it off again.
    import av.logging

    monkeypatch.delenv("AVREC_FFMPEG_LOG", raising=False)
    av.logging.set_level(av.logging.ERROR)
    try:
        clip = read_video(files["mp4"], num_frames=2, size=(16, 16))
        assert clip.frames.shape[0] == 2
        assert av.logging.get_level() is None
        monkeypatch.setenv("AVREC_FFMPEG_LOG", "1")
        av.logging.set_level(av.logging.ERROR)
        read_video(files["mp4"], num_frames=2, size=(16, 16))
        assert av.logging.get_level() == av.logging.ERROR
        monkeypatch.delenv("AVREC_FFMPEG_LOG")
        write_audio(tmp_path / "tone.wav", np.zeros((1, 800), np.float32), 8000)
        assert av.logging.get_level() is None
    finally:
        av.logging.set_level(None)
