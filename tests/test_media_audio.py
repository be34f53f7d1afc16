"""Round trips through avrec.media's audio readers, on files the tests write themselves."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import torch

from avrec.exceptions import ConfigurationError
from avrec.media import (
    AudioClip,
    iter_audio_chunks,
    probe,
    read_audio,
    read_video,
    write_audio,
    write_video,
)

RATE = 44100


def tone(freq: float, seconds: float = 1.0, rate: int = RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def spectrum(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    magnitude = np.abs(np.fft.rfft(x * np.hanning(len(x)))) / (len(x) / 4)
    return np.fft.rfftfreq(len(x), 1 / rate), magnitude


def peak(x: np.ndarray, rate: int) -> float:
    freqs, magnitude = spectrum(x, rate)
    return float(freqs[np.argmax(magnitude)])


# suffix -> encoder, and how far the decoded length may stray (priming/padding of lossy codecs)
FORMATS = {
    "wav": ("pcm_s16le", 0.001),
    "flac": ("flac", 0.001),
    "m4a": ("aac", 0.05),
    "mp3": ("libmp3lame", 0.05),
    "ogg": ("libopus", 0.05),
}


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    stereo = np.stack([tone(440), tone(440)])
    paths = {}
    for suffix, (codec, _) in FORMATS.items():
        if codec in av.codecs_available:
            paths[suffix] = folder / f"tone.{suffix}"
            write_audio(paths[suffix], stereo, RATE)
    return paths


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_round_trip_frequency_and_length(tones, suffix):
    if suffix not in tones:
        pytest.skip(f"{FORMATS[suffix][0]} encoder not in this PyAV build")
    clip = read_audio(tones[suffix], sample_rate=16000)
    assert isinstance(clip, AudioClip)
    assert clip.samples.dtype == torch.float32 and clip.samples.ndim == 2
    assert clip.num_channels == 1 and clip.sample_rate == 16000
    assert clip.num_samples == pytest.approx(16000, abs=FORMATS[suffix][1] * 16000)
    x = clip.samples[0].numpy()
    assert peak(x, 16000) == pytest.approx(440, abs=2)
    # mono is the mean of identical channels: the amplitude is kept
    assert np.sqrt(np.mean(x[800:-800] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_probe_audio(tones):
    info = probe(tones["flac"])
    assert info.has_audio and not info.has_video
    assert (info.sample_rate, info.channels) == (RATE, 2)
    assert info.duration == pytest.approx(1.0, abs=1e-3)
    assert info.fps is None and info.width is None
    assert info.streams[0].kind == "audio" and info.streams[0].codec == "flac"


def test_native_rate_and_channels(tones):
    clip = read_audio(tones["wav"], sample_rate=None, mono=False)
    assert clip.sample_rate == RATE and tuple(clip.samples.shape) == (2, RATE)
    expected = tone(440)
    np.testing.assert_allclose(clip.samples[0].numpy(), expected, atol=1 / 16000)


def test_mono_downmix_averages_channels(tmp_path):
    path = tmp_path / "lr.flac"
    write_audio(path, np.stack([tone(440, amp=0.4), tone(1000, amp=0.4)]), RATE)
    stereo = read_audio(path, sample_rate=16000, mono=False).samples.numpy()
    assert stereo.shape == (2, 16000)
    assert peak(stereo[0], 16000) == pytest.approx(440, abs=2)
    assert peak(stereo[1], 16000) == pytest.approx(1000, abs=2)
    mono = read_audio(path, sample_rate=16000).samples.numpy()
    np.testing.assert_allclose(mono[0], stereo.mean(axis=0), atol=1e-5)
    freqs, magnitude = spectrum(mono[0], 16000)
    at = [magnitude[np.argmin(np.abs(freqs - f))] for f in (440, 1000)]
    np.testing.assert_allclose(at, [0.2, 0.2], rtol=0.1)


def test_start_and_duration_are_sample_accurate(tmp_path):
    path = tmp_path / "ramp.wav"
    rate = 8000
    ramp = np.linspace(0, 0.999, 2 * rate, endpoint=False, dtype=np.float32)  # 0.4995 per s
    write_audio(path, ramp, rate)
    clip = read_audio(path, sample_rate=None, start=0.5, duration=0.25)
    assert clip.num_samples == 2000 and clip.start == pytest.approx(0.5)
    np.testing.assert_allclose(clip.samples[0].numpy(), ramp[4000:6000], atol=1e-4)
    resampled = read_audio(path, sample_rate=16000, start=1.0)
    assert resampled.num_samples == pytest.approx(16000, abs=16)
    assert float(resampled.samples[0, 100]) == pytest.approx(ramp[8050], abs=1e-3)


def test_duration_longer_than_file_returns_the_rest(tones):
    clip = read_audio(tones["wav"], sample_rate=16000, start=0.5, duration=10.0)
    assert clip.num_samples == pytest.approx(8000, abs=16)


def test_iter_audio_chunks_matches_read_audio(tones):
    path = tones["flac"]
    chunks = list(iter_audio_chunks(path, chunk_seconds=0.3, sample_rate=16000))
    assert [c.shape[1] for c in chunks] == [4800, 4800, 4800, 1600]
    assert all(c.dtype == torch.float32 and c.shape[0] == 1 for c in chunks)
    whole = read_audio(path, sample_rate=16000).samples
    assert torch.equal(torch.cat(chunks, dim=1), whole)
    stereo = next(iter_audio_chunks(path, 0.1, sample_rate=None, mono=False))
    assert tuple(stereo.shape) == (2, 4410)


def test_iter_audio_chunks_can_stop_early(tones):
    chunks = iter_audio_chunks(tones["wav"], 0.1)
    assert next(chunks).shape == (1, 1600)
    chunks.close()


def test_sources_bytes_and_file_objects(tones):
    path = tones["mp3"] if "mp3" in tones else tones["wav"]
    reference = read_audio(path).samples
    data = path.read_bytes()
    assert torch.equal(read_audio(data).samples, reference)
    assert torch.equal(read_audio(io.BytesIO(data)).samples, reference)
    with open(path, "rb") as fh:
        clip = read_audio(fh)
    assert torch.equal(clip.samples, reference) and clip.source == str(path)
    assert read_audio(data).source == f"<{len(data)} bytes>"


def test_audio_track_of_a_video(tmp_path):
    path = tmp_path / "av.mp4"
    sound = np.stack([tone(660, seconds=2.0, rate=16000)] * 2)
    frames = np.zeros((50, 32, 32, 3), np.uint8)
    write_video(path, frames, 25, audio=sound, sample_rate=16000)
    info = probe(path)
    assert info.has_audio and info.has_video
    assert [s.kind for s in info.streams] == ["video", "audio"]
    assert (info.sample_rate, info.channels) == (16000, 2)
    clip = read_audio(path, sample_rate=16000)
    assert clip.num_samples == pytest.approx(32000, abs=800)
    assert peak(clip.samples[0].numpy(), 16000) == pytest.approx(660, abs=2)
    assert read_video(path, num_frames=3).num_frames == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 0},
        {"sample_rate": 16000.5},
        {"start": -0.1},
        {"duration": 0},
        {"duration": -1.0},
        {"start": 5.0},
        {"stream": 1.5},
    ],
)
def test_invalid_arguments(tones, kwargs):
    with pytest.raises(ConfigurationError):
        read_audio(tones["wav"], **kwargs)


def test_iter_audio_chunks_invalid_arguments(tones):
    for value in (0, -1.0, float("inf"), "1"):
        with pytest.raises(ConfigurationError):
            list(iter_audio_chunks(tones["wav"], value))


def test_write_audio_rejects_unknown_suffix_and_bad_samples(tmp_path):
    with pytest.raises(ConfigurationError, match="suffix"):
        write_audio(tmp_path / "x.xyz", tone(440), RATE)
    with pytest.raises(ConfigurationError):
        write_audio(tmp_path / "x.wav", np.zeros((2, 2, 2)), RATE)
    with pytest.raises(ConfigurationError):
        write_audio(tmp_path / "x.wav", np.zeros(10, dtype=np.int16), RATE)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind
