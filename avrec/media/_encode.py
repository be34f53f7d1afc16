"""Writing small video and audio files with PyAV (tests, examples, synthetic corpora).

Files are written to a temporary name in the destination folder and renamed
into place, so a failure never leaves a half-written file under ``path``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import uuid
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from avrec.exceptions import ConfigurationError
from avrec.media._source import quiet_ffmpeg_logs

__all__ = ["write_audio", "write_video"]

logger = logging.getLogger(__name__)

# Default audio codec per file suffix (the container is chosen by FFmpeg from the suffix).
_AUDIO_CODECS = {
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".mp3": "libmp3lame",
    ".m4a": "aac",
    ".mp4": "aac",
    ".mov": "aac",
    ".aac": "aac",
    ".mkv": "aac",
    ".mka": "libopus",
    ".ogg": "libopus",
    ".opus": "libopus",
    ".webm": "libopus",
    ".avi": "libmp3lame",
}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_CHUNK = 8192  # samples per audio frame handed to the encoder


def _as_array(data: Any, name: str) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    return np.asarray(data)


def _check_rate(value: Any, name: str) -> Fraction:
    try:
        rate = Fraction(value).limit_denominator(1001000)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}") from None
    if rate <= 0 or isinstance(value, bool):
        raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
    return rate


def _audio_samples(samples: Any) -> np.ndarray:
    """``(C, T)`` or ``(T,)`` samples -> contiguous float32 ``(C, T)`` clipped to [-1, 1]."""
    array = _as_array(samples, "samples")
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[0] > 8:
        raise ConfigurationError(
            f"samples must have shape (channels, time) with 1-8 channels, got {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise ConfigurationError(f"samples must be floating point, got dtype {array.dtype}")
    array = np.clip(np.nan_to_num(array.astype(np.float32, copy=False)), -1.0, 1.0)
    return np.ascontiguousarray(array)


def _pick_rate(codec: str, sample_rate: int) -> int:
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    return 48000 if 48000 in rates else max(rates)


def _add_audio_stream(container: Any, codec: str, sample_rate: int, channels: int) -> Any:
    layout = _LAYOUTS[channels]
    return container.add_stream(codec, rate=_pick_rate(codec, sample_rate), layout=layout)


class _AudioFeeder:
    """Encodes ``(C, T)`` float samples into ``stream`` piecewise, up to a sample index."""

    def __init__(self, container: Any, stream: Any, samples: np.ndarray, sample_rate: int):
        self.container, self.stream, self.samples = container, stream, samples
        self.sample_rate = sample_rate
        self.layout = stream.codec_context.layout.name
        self.done = 0

    def feed_until(self, end: int) -> None:
        end = min(end, self.samples.shape[1])
        while self.done < end:
            stop = min(end, self.done + _CHUNK)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(self.samples[:, self.done : stop]),
                format="fltp",
                layout=self.layout,
            )
            frame.sample_rate = self.sample_rate
            frame.pts = self.done
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.stream.encode(frame))
            self.done = stop

    def finish(self) -> None:
        self.feed_until(self.samples.shape[1])
        self.container.mux(self.stream.encode(None))


@contextlib.contextmanager
def _atomic_output(path: str | os.PathLike[str]):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    quiet_ffmpeg_logs()  # encoder threads log too: same deadlock risk as decoding
    # A fresh name that FFmpeg creates itself, so the file gets the usual permissions
    # (``mkstemp`` would make it 0600); same suffix, so FFmpeg picks the same format.
    tmp = str(path.parent / f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _video_pix_fmt(codec: str, width: int, height: int) -> str:
    formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or ())]
    even = width % 2 == 0 and height % 2 == 0
    preferred = ["yuv420p", "yuvj420p", "yuv444p"] if even else ["yuv444p", "yuvj444p", "rgb24"]
    for name in preferred:
        if name in formats:
            return name
    return formats[0] if formats else "yuv420p"


def write_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | torch.Tensor | Iterable[np.ndarray],
    fps: float,
    *,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    options: Mapping[str, str] | None = None,
    timestamps: np.ndarray | None = None,
    audio: np.ndarray | torch.Tensor | None = None,
    sample_rate: int | None = None,
    audio_codec: str | None = None,
) -> None:
    """Encode RGB frames (and optionally audio) into a video file.

    Parameters
    ----------
    path : str or path-like
        Destination; the container format follows the suffix (``.mp4``, ``.mkv``,
        ``.webm``, ``.avi`` ...). Written atomically.
    frames : array of shape (T, H, W, 3), dtype uint8, or iterable of (H, W, 3) arrays
        RGB frames. An iterable is consumed lazily, so long videos can be
        generated with constant memory.
    fps : float
        Nominal frame rate (frames per second).
    codec : str, default="libx264"
        FFmpeg encoder name (``"libx264"``, ``"mpeg4"``, ``"libvpx-vp9"``, ``"mjpeg"`` ...).
    pix_fmt : str, optional
        Encoder pixel format. By default ``yuv420p`` for even frame sizes and
        ``yuv444p`` (which allows odd sizes) otherwise, when the codec supports it.
    options : mapping of str to str, optional
        Encoder options, e.g. ``{"preset": "ultrafast", "g": "250", "crf": "18"}``.
    timestamps : array of shape (T,), optional
        Presentation time of each frame in seconds, strictly increasing, for
        variable-frame-rate video (stored with millisecond precision). Default:
        ``i / fps``.
    audio : array of shape (channels, samples), float, optional
        An audio track in ``[-1, 1]``, muxed with the video.
    sample_rate : int, optional
        Sample rate of ``audio``; required with ``audio``.
    audio_codec : str, optional
        Audio encoder; default by suffix (``aac`` for mp4/mkv, ``libopus`` for webm).

    Raises
    ------
    ConfigurationError
        If the frames, rates or timestamps are malformed.
    av.FFmpegError
        If FFmpeg refuses the codec or options.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "grey.mp4"
    >>> write_video(path, np.full((5, 16, 16, 3), 128, np.uint8), fps=5)
    >>> path.stat().st_size > 0
    True
    """
    rate = _check_rate(fps, "fps")
    if isinstance(frames, (np.ndarray, torch.Tensor)):
        frames = _as_array(frames, "frames")
        if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
            raise ConfigurationError(
                f"frames must have shape (T, H, W, 3) with T, H, W > 0, got {frames.shape}"
            )
    if timestamps is not None:
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if timestamps.ndim != 1 or not np.all(np.isfinite(timestamps)):
            raise ConfigurationError("timestamps must be a 1-d array of finite seconds")
        pts = np.round(timestamps * 1000).astype(np.int64)
        if np.any(np.diff(pts) <= 0) or (pts.size and pts[0] < 0):
            raise ConfigurationError("timestamps must be >= 0 and increase by >= 1 ms")
    if audio is not None:
        if sample_rate is None:
            raise ConfigurationError("sample_rate is required when audio is given")
        audio = _audio_samples(audio)
        sample_rate = int(sample_rate)
    with _atomic_output(path) as tmp, av.open(tmp, mode="w") as container:
        stream = None
        feeder = None
        time_base = Fraction(1, 1000) if timestamps is not None else 1 / rate
        for i, image in enumerate(frames):
            image = np.ascontiguousarray(_as_array(image, "frame"), dtype=np.uint8)
            if image.ndim != 3 or image.shape[-1] != 3:
                raise ConfigurationError(f"each frame must be (H, W, 3), got {image.shape}")
            if stream is None:
                height, width = image.shape[:2]
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height = width, height
                stream.pix_fmt = pix_fmt or _video_pix_fmt(codec, width, height)
                stream.codec_context.time_base = time_base
                stream.time_base = time_base
                if options:
                    stream.options = dict(options)
                if audio is not None:
                    suffix = Path(path).suffix.lower()
                    name = audio_codec or _AUDIO_CODECS.get(suffix, "aac")
                    audio_stream = _add_audio_stream(container, name, sample_rate, len(audio))
                    feeder = _AudioFeeder(container, audio_stream, audio, sample_rate)
            elif image.shape[:2] != (stream.height, stream.width):
                raise ConfigurationError(
                    f"frame {i} has size {image.shape[:2]}, expected "
                    f"{(stream.height, stream.width)}"
                )
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if timestamps is not None:
                if i >= len(pts):
                    raise ConfigurationError("timestamps has fewer entries than frames")
                frame.pts = int(pts[i])
                seconds = pts[i] / 1000
            else:
                frame.pts = i
                seconds = i / rate
            frame.time_base = time_base
            container.mux(stream.encode(frame))
            if feeder is not None:
                feeder.feed_until(math.ceil(float(seconds) * sample_rate))
        if stream is None:
            raise ConfigurationError("frames is empty: at least one frame is needed")
        container.mux(stream.encode(None))
        if feeder is not None:
            feeder.finish()


def write_audio(
    path: str | os.PathLike[str],
    samples: np.ndarray | torch.Tensor,
    sample_rate: int,
    *,
    codec: str | None = None,
    bit_rate: int | None = None,
) -> None:
    """Encode float samples into an audio file whose format follows the suffix.

    Parameters
    ----------
    path : str or path-like
        Destination: ``.wav`` (16-bit PCM), ``.flac``, ``.mp3``, ``.m4a``/``.mp4``
        (AAC), ``.ogg``/``.opus``/``.mka``/``.webm`` (Opus). Written atomically.
    samples : array of shape (channels, time) or (time,), float
        Amplitudes in ``[-1, 1]`` (clipped); 1-8 channels.
    sample_rate : int
        Sample rate of ``samples`` in Hz. Codecs that cannot store it (Opus
        accepts 8, 12, 16, 24 or 48 kHz) get the audio resampled to 48 kHz.
    codec : str, optional
        FFmpeg encoder name, overriding the suffix's default.
    bit_rate : int, optional
        Target bit rate in bits per second, for lossy codecs.

    Raises
    ------
    ConfigurationError
        If the suffix is unknown (and ``codec`` is not given) or the samples are malformed.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tone.wav"
    >>> t = np.arange(8000) / 8000
    >>> write_audio(path, np.sin(2 * np.pi * 440 * t)[None].astype(np.float32), 8000)
    >>> path.stat().st_size > 16000
    True
    """
    suffix = Path(path).suffix.lower()
    if codec is None:
        if suffix not in _AUDIO_CODECS:
            raise ConfigurationError(
                f"cannot infer an audio codec from suffix {suffix!r} of {os.fspath(path)}; "
                f"use one of {sorted(_AUDIO_CODECS)} or pass codec="
            )
        codec = _AUDIO_CODECS[suffix]
    rate = _check_rate(sample_rate, "sample_rate")
    if rate.denominator != 1:
        raise ConfigurationError(f"sample_rate must be an integer, got {sample_rate!r}")
    array = _audio_samples(samples)
    with _atomic_output(path) as tmp, av.open(tmp, mode="w") as container:
        stream = _add_audio_stream(container, codec, int(rate), array.shape[0])
        if bit_rate is not None:
            stream.bit_rate = int(bit_rate)
        _AudioFeeder(container, stream, array, int(rate)).finish()
