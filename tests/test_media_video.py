"""Round trips through avrec.media's video readers, on files the tests write themselves.

Frame ``i`` of every test video is a flat image of brightness ``BASE + STEP * (i % MOD)``,
so the index (modulo ``MOD``) of a decoded frame can be read back from its mean brightness,
even through a lossy codec.
"""

from __future__ import annotations

import io
import logging
import re

import av
import numpy as np
import pytest
import torch

import avrec.media
from avrec.exceptions import ConfigurationError
from avrec.media import VideoClip, iter_frames, probe, read_video, write_video

BASE, STEP, MOD = 10, 10, 24
FPS = 25
N_FRAMES = 50  # 2 seconds


def coded_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    """(n, H, W, 3) uint8 frames whose brightness encodes their index."""
    levels = (BASE + STEP * (np.arange(n) % MOD)).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (n, height, width, 3)).copy()


def frame_index(frames: torch.Tensor) -> np.ndarray:
    """Recover the index (modulo MOD) of each (T, 3, H, W) frame from its brightness."""
    means = frames.double().mean(dim=(1, 2, 3)).numpy()
    return np.round((means - BASE) / STEP).astype(int)


CODECS = [
    ("mp4", "libx264"),
    ("avi", "mpeg4"),
    ("webm", "libvpx-vp9"),
]


def available(codec: str) -> bool:
    return codec in av.codecs_available


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    paths = {}
    for suffix, codec in CODECS:
        if available(codec):
            path = folder / f"coded.{suffix}"
            options = {"qscale": "2"} if codec == "mpeg4" else {"crf": "10"}
            if codec == "libvpx-vp9":
                options = {"crf": "10", "b": "0", "deadline": "realtime", "cpu-used": "8"}
            write_video(path, coded_frames(N_FRAMES), FPS, codec=codec, options=options)
            paths[suffix] = path
    return paths


@pytest.fixture(params=[s for s, _ in CODECS])
def video(request, videos):
    if request.param not in videos:
        pytest.skip(f"encoder for .{request.param} not in this PyAV build")
    return videos[request.param]


def test_round_trip_selects_the_right_frames(video):
    clip = read_video(video, num_frames=10)
    assert isinstance(clip, VideoClip)
    assert clip.frames.dtype == torch.uint8
    assert tuple(clip.frames.shape) == (10, 3, 48, 64)
    assert clip.timestamps.dtype == np.float64 and clip.timestamps.shape == (10,)
    assert clip.fps == pytest.approx(FPS)
    targets = (np.arange(10) + 0.5) * (N_FRAMES / FPS) / 10
    # the frame on screen at each target: timestamps within one frame interval
    assert np.all(clip.timestamps <= targets + 1e-6)
    assert np.all(targets - clip.timestamps < 1 / FPS + 1e-6)
    expected = np.floor(targets * FPS + 1e-9).astype(int)
    np.testing.assert_array_equal(frame_index(clip.frames), expected % MOD)
    np.testing.assert_allclose(clip.timestamps, expected / FPS, atol=1e-3)


def test_probe_video(video):
    info = probe(video)
    assert info.has_video and not info.has_audio
    assert (info.width, info.height) == (64, 48)
    assert info.fps == pytest.approx(FPS)
    assert info.duration == pytest.approx(N_FRAMES / FPS, abs=0.05)
    assert info.n_frames in (None, N_FRAMES)
    assert [s.kind for s in info.streams] == ["video"]


@pytest.mark.parametrize(
    ("size", "shape"), [(None, (48, 64)), (24, (24, 32)), ((20, 30), (20, 30)), (7, (7, 9))]
)
def test_size(videos, size, shape):
    clip = read_video(videos["mp4"], num_frames=3, size=size)
    assert tuple(clip.frames.shape[2:]) == shape
    assert (clip.height, clip.width) == shape


def test_start_end_window(videos):
    clip = read_video(videos["mp4"], num_frames=4, start=1.0, end=1.4)
    assert np.all((clip.timestamps >= 1.0 - 1e-6) & (clip.timestamps < 1.4))
    # targets 1.05, 1.15, 1.25, 1.35 s -> frames on screen 26, 28, 31, 33
    np.testing.assert_array_equal(frame_index(clip.frames), np.array([26, 28, 31, 33]) % MOD)


def test_end_beyond_duration_is_clipped(videos):
    clip = read_video(videos["mp4"], num_frames=2, end=100.0)
    np.testing.assert_array_equal(frame_index(clip.frames), np.array([12, 37]) % MOD)


def test_random_sampling_is_seeded_and_in_range(videos):
    a = read_video(videos["mp4"], num_frames=6, sampling="random", random_state=3)
    b = read_video(videos["mp4"], num_frames=6, sampling="random", random_state=3)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert torch.equal(a.frames, b.frames)
    assert np.all(np.diff(a.timestamps) >= 0)
    # each target lies in its own segment of 1/3 s
    segments = np.floor((a.timestamps + 0.5 / FPS) / (N_FRAMES / FPS / 6))
    assert np.all(segments <= np.arange(6)) and np.all(segments >= np.arange(6) - 1)


def test_short_video_repeats_frames(tmp_path):
    path = tmp_path / "short.mp4"
    write_video(path, coded_frames(5), FPS)
    clip = read_video(path, num_frames=16)
    assert clip.num_frames == 16
    index = frame_index(clip.frames)
    assert set(index) == set(range(5))
    assert np.all(np.diff(index) >= 0) and np.all(np.diff(clip.timestamps) >= 0)


def test_bytes_and_file_objects_match_path(videos):
    path = videos["mp4"]
    reference = read_video(path, num_frames=5, size=16)
    data = path.read_bytes()
    for source in (data, io.BytesIO(data)):
        clip = read_video(source, num_frames=5, size=16)
        assert torch.equal(clip.frames, reference.frames)
        np.testing.assert_array_equal(clip.timestamps, reference.timestamps)
    with open(path, "rb") as fh:
        assert torch.equal(read_video(fh, num_frames=5, size=16).frames, reference.frames)
        assert read_video(fh, num_frames=1).source == str(path)


def test_threads_do_not_change_result(videos):
    one = read_video(videos["mp4"], num_frames=8, threads=1)
    two = read_video(videos["mp4"], num_frames=8, threads=2)
    assert torch.equal(one.frames, two.frames)


def _seeks(caplog) -> int:
    found = [re.search(r"(\d+) seeks", r.getMessage()) for r in caplog.records]
    return int([m for m in found if m][-1].group(1))


def test_sparse_sampling_seeks_and_matches_linear_decoding(tmp_path, caplog):
    path = tmp_path / "long.mp4"
    n = 600
    stream = (frame for frame in coded_frames(n, 16, 16))
    write_video(path, stream, 30, options={"g": "30", "preset": "ultrafast", "crf": "10"})
    caplog.set_level(logging.DEBUG, logger="avrec.media")
    sparse = read_video(path, num_frames=3)
    assert _seeks(caplog) >= 2
    targets = (np.arange(3) + 0.5) * (n / 30) / 3
    expected = np.floor(targets * 30 + 1e-9).astype(int)
    np.testing.assert_array_equal(frame_index(sparse.frames), expected % MOD)
    np.testing.assert_allclose(sparse.timestamps, expected / 30, atol=1e-3)
    caplog.clear()
    dense = read_video(path, num_frames=40)
    assert _seeks(caplog) <= 2  # consecutive targets 15 frames apart: decode through
    targets = (np.arange(40) + 0.5) * (n / 30) / 40
    expected = np.floor(targets * 30 + 1e-9).astype(int)
    np.testing.assert_array_equal(frame_index(dense.frames), expected % MOD)


def _decoded(caplog) -> int:
    found = [re.search(r"(\d+) decoded", r.getMessage()) for r in caplog.records]
    return int([m for m in found if m][-1].group(1))


def test_keyframe_seek_returns_keyframes_before_targets(tmp_path, caplog):
    path = tmp_path / "long.mp4"
    n, gop = 600, 30  # a keyframe every second at 30 fps
    stream = (frame for frame in coded_frames(n, 16, 16))
    write_video(path, stream, 30, options={"g": str(gop), "preset": "ultrafast", "crf": "10"})
    caplog.set_level(logging.DEBUG, logger="avrec.media")
    exact = read_video(path, num_frames=4)
    exact_decoded = _decoded(caplog)
    caplog.clear()
    fast = read_video(path, num_frames=4, seek="keyframe")
    assert _decoded(caplog) < exact_decoded
    targets = (np.arange(4) + 0.5) * (n / 30) / 4
    frames_at = np.round(fast.timestamps * 30).astype(int)
    # each returned frame is the one its timestamp says, at most one GOP before its target
    np.testing.assert_array_equal(frame_index(fast.frames), frames_at % MOD)
    assert np.all(fast.timestamps <= targets + 1e-6)
    assert np.all(targets - fast.timestamps < gop / 30 + 1e-6)
    # the first target is closer to the start than a seek is worth: decoded exactly;
    # the later ones are reached by seeking and are keyframes
    assert frames_at[0] == int(targets[0] * 30)
    assert np.all(frames_at[1:] % gop == 0)
    assert tuple(fast.frames.shape) == tuple(exact.frames.shape)
    with pytest.raises(ConfigurationError, match="seek must be"):
        read_video(path, seek="nearest")


def test_odd_frame_size(tmp_path):
    path = tmp_path / "odd.mp4"
    write_video(path, coded_frames(10, height=17, width=33), FPS)
    clip = read_video(path, num_frames=4)
    assert tuple(clip.frames.shape) == (4, 3, 17, 33)
    np.testing.assert_array_equal(frame_index(clip.frames), [1, 3, 6, 8])
    assert tuple(read_video(path, num_frames=1, size=8).frames.shape) == (1, 3, 8, 16)


VFR_TIMES = np.array([0.0, 0.04, 0.1, 0.3, 0.31, 0.5, 0.9, 1.0, 1.5, 1.55])


@pytest.mark.parametrize("suffix", ["mkv", "mp4"])
def test_variable_frame_rate(tmp_path, suffix):
    path = tmp_path / f"vfr.{suffix}"
    options = {"bf": "0"}  # mp4 + B-frames + VFR makes FFmpeg's muxer misstate the duration
    write_video(path, coded_frames(len(VFR_TIMES)), 25, timestamps=VFR_TIMES, options=options)
    times = [t for t, _ in iter_frames(path)]
    np.testing.assert_allclose(times, VFR_TIMES, atol=1e-3)
    clip = read_video(path, num_frames=8, end=1.2)
    targets = (np.arange(8) + 0.5) * 0.15
    on_screen = np.searchsorted(VFR_TIMES, targets, side="right") - 1
    np.testing.assert_array_equal(frame_index(clip.frames), on_screen)
    np.testing.assert_allclose(clip.timestamps, VFR_TIMES[on_screen], atol=1e-3)


def test_iter_frames_step_fps_and_window(videos):
    path = videos["mp4"]
    pairs = list(iter_frames(path, size=(8, 8)))
    assert len(pairs) == N_FRAMES
    times = np.array([t for t, _ in pairs])
    np.testing.assert_allclose(times, np.arange(N_FRAMES) / FPS, atol=1e-3)
    frame = pairs[7][1]
    assert frame.dtype == torch.uint8 and tuple(frame.shape) == (3, 8, 8)
    index = frame_index(torch.stack([f for _, f in pairs]))
    np.testing.assert_array_equal(index, np.arange(N_FRAMES) % MOD)
    assert len(list(iter_frames(path, step=4))) == 13
    window = [t for t, _ in iter_frames(path, start=0.48, end=1.0)]
    assert len(window) == 13 and window[0] == pytest.approx(0.48)
    sampled = list(iter_frames(path, fps=10, start=0.2, end=1.2))
    np.testing.assert_allclose([t for t, _ in sampled], np.arange(2, 12) / 10, atol=0.021)
    assert len(list(iter_frames(path, fps=100))) == 200  # repeats to the end of the last frame


def test_iter_frames_can_stop_early(videos):
    frames = iter_frames(videos["mp4"])
    assert next(frames)[0] == 0.0
    frames.close()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 0},
        {"num_frames": 2.5},
        {"size": "big"},
        {"size": (0, 4)},
        {"sampling": "dense"},
        {"start": -1.0},
        {"start": 1.0, "end": 0.5},
        {"end": float("nan")},
        {"start": 50.0},
        {"stream": -1},
    ],
)
def test_invalid_arguments(videos, kwargs):
    with pytest.raises(ConfigurationError):
        read_video(videos["mp4"], **kwargs)


def test_iter_frames_invalid_arguments(videos):
    for kwargs in ({"step": 0}, {"fps": 0}, {"fps": "x"}, {"size": -2}):
        with pytest.raises(ConfigurationError):
            list(iter_frames(videos["mp4"], **kwargs))


def test_all_is_sorted_and_public():
    assert avrec.media.__all__ == sorted(avrec.media.__all__)
    public = {n for n in dir(avrec.media) if not n.startswith("_")}
    modules = {n for n in public if n.startswith("_") or type(getattr(avrec.media, n)) is type(av)}
    assert set(avrec.media.__all__) == public - modules


def test_raw_stream_without_duration_or_seeking(tmp_path):
    path = tmp_path / "raw.h264"  # an elementary stream: no duration, no timestamps, no seeking
    write_video(path, coded_frames(300, 16, 16), FPS, options={"g": "10"})
    assert probe(path).duration is None
    for source in (path, io.BytesIO(path.read_bytes())):
        clip = read_video(source, num_frames=4)
        np.testing.assert_allclose(clip.timestamps, [1.48, 4.48, 7.48, 10.48], atol=1e-6)
        np.testing.assert_array_equal(frame_index(clip.frames), np.array([37, 112, 187, 262]) % MOD)
    times = [t for t, _ in iter_frames(path, step=10, start=11.5)]
    np.testing.assert_allclose(times, [11.52, 11.92], atol=1e-6)


def test_write_video_validates_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "bad.mp4"
    frames = coded_frames(3, 16, 16)
    bad_calls = [
        lambda: write_video(path, np.zeros((0, 16, 16, 3), np.uint8), FPS),
        lambda: write_video(path, np.zeros((2, 16, 16), np.uint8), FPS),
        lambda: write_video(path, iter([]), FPS),
        lambda: write_video(path, [frames[0], coded_frames(1, 8, 8)[0]], FPS),
        lambda: write_video(path, frames, 0),
        lambda: write_video(path, frames, FPS, timestamps=[0.0, 0.0, 0.1]),
        lambda: write_video(path, frames, FPS, timestamps=[0.0, 0.1]),
        lambda: write_video(path, frames, FPS, audio=np.zeros((1, 100))),  # no sample_rate
    ]
    for call in bad_calls:
        with pytest.raises(ConfigurationError):
            call()
    assert not list(tmp_path.iterdir())
    reference = tmp_path / "reference"
    reference.touch()
    write_video(path, frames, FPS)
    assert path.stat().st_mode == reference.stat().st_mode  # umask respected, not 0600
