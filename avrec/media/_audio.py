"""Decoding audio with PyAV: :func:`read_audio` and :func:`iter_audio_chunks`."""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import numbers
import warnings
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch

from avrec.exceptions import ConfigurationError, DataWarning, MediaDecodeError
from avrec.media._clips import AudioClip
from avrec.media._source import (
    DecodeLog,
    SeekError,
    Source,
    check_non_negative,
    decoded_frames,
    open_source,
    rewinder,
    seek,
    select_stream,
    stream_end,
    time_origin,
)
from avrec.utils import check_positive_int

__all__ = ["iter_audio_chunks", "read_audio"]

logger = logging.getLogger(__name__)


def _check_rate(sample_rate: Any) -> int | None:
    if sample_rate is None:
        return None
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, numbers.Integral)
        or not 1 <= sample_rate <= 1_000_000
    ):
        raise ConfigurationError(
            f"sample_rate must be None or an int in [1, 1000000] Hz, got {sample_rate!r}"
        )
    return int(sample_rate)


_FRAME_SIZE = 4096  # output samples per resampled frame: few, large numpy conversions


def _pull(graph: Any, channels: int) -> Iterator[np.ndarray]:
    """Drain ``graph``'s sink as float32 ``(channels, n)`` arrays (views of the frames)."""
    while True:
        try:
            frame = graph.pull()
        except EOFError:
            return
        except av.FFmpegError as exc:
            if exc.errno == errno.EAGAIN:
                return
            raise
        planes = [np.frombuffer(p, dtype=np.float32, count=frame.samples) for p in frame.planes]
        yield planes[0][None] if channels == 1 else np.stack(planes[:channels])


class _Resampler:
    """FFmpeg filter graph: ``abuffer -> [pan] -> aformat -> abuffersink``.

    Like :class:`av.AudioResampler` (which builds ``abuffer -> aformat``), but
    with mono computed first by a ``pan`` filter as the exact mean of the
    channels (FFmpeg's default stereo-to-mono matrix is ``(L + R) / sqrt(2)``,
    which can leave [-1, 1]), so only one channel is resampled, and with
    large output frames.
    """

    def __init__(self, frame: Any, rate: int, mono: bool) -> None:
        channels = frame.layout.nb_channels
        self.channels = 1 if mono else channels
        graph = av.filter.Graph()
        nodes = [
            graph.add(
                "abuffer",
                sample_rate=str(frame.sample_rate),
                sample_fmt=frame.format.name,
                channel_layout=frame.layout.name,
                time_base=str(frame.time_base or Fraction(1, frame.sample_rate)),
            )
        ]
        if mono and channels > 1:
            gains = "+".join(f"{1 / channels!r}*c{i}" for i in range(channels))
            # average in float: ``pan`` on integer samples would round the mean
            nodes.append(graph.add("aformat", sample_fmts="fltp"))
            nodes.append(graph.add("pan", f"mono|c0={gains}"))
        layout = "mono" if mono else frame.layout.name
        nodes.append(
            graph.add("aformat", sample_rates=str(rate), sample_fmts="fltp", channel_layouts=layout)
        )
        nodes.append(graph.add("abuffersink"))
        for upstream, downstream in itertools.pairwise(nodes):
            upstream.link_to(downstream)
        graph.configure()
        graph.set_audio_frame_size(_FRAME_SIZE)
        self.graph = graph

    def __call__(self, frame: Any | None) -> Iterator[np.ndarray]:
        """Push ``frame`` (None flushes) and yield what comes out."""
        self.graph.push(frame)
        yield from _pull(self.graph, self.channels)


class _AudioDecoder:
    """Iterate over float32 ``(C, n)`` arrays of one stream, resampled, from ``start``.

    Resampling streams through an FFmpeg filter graph (see :class:`_Resampler`),
    flushed at the end. ``start`` is reached by seeking (which raises
    :class:`SeekError` on raw streams; with ``seekable=False`` the samples
    before it are decoded and dropped). Attributes set while iterating:
    ``rate``, ``start_time`` (seconds of the first sample yielded), ``samples``
    (how many were yielded) and ``eof``.
    """

    def __init__(self, container, stream, name, rate, mono, start, strict, seekable) -> None:
        self.container, self.stream, self.name = container, stream, name
        self.seekable = seekable
        self.rate: int | None = rate
        self.mono, self.start, self.strict = mono, start, strict
        self.origin = time_origin(container)
        self.log = DecodeLog()
        self.start_time: float | None = None
        self.samples = 0
        self.eof = False

    def __iter__(self) -> Iterator[np.ndarray]:
        if self.start and self.seekable:
            seek(self.container, self.stream, self.start, self.origin, self.name)
        frames = decoded_frames(self.container, self.stream, self.name, self.strict, self.log)
        resampler, setup, skip = None, None, 0
        for frame in frames:
            if frame.samples == 0 or not frame.sample_rate:
                continue
            key = (frame.format.name, frame.layout.name, frame.sample_rate)
            if key != setup:  # first frame, or the input changed format mid-stream
                if resampler is not None:
                    skip = yield from self._emit(resampler(None), skip)
                if self.rate is None:
                    self.rate = int(frame.sample_rate)
                resampler, setup = _Resampler(frame, self.rate, self.mono), key
            if self.start_time is None:
                ts = 0.0
                if frame.pts is not None and frame.time_base:
                    ts = max(0.0, float(frame.pts * frame.time_base) - self.origin)
                if self.start is not None and self.start > ts:
                    skip = round((self.start - ts) * self.rate)
                    ts = self.start
                self.start_time = ts
            skip = yield from self._emit(resampler(frame), skip)
        if resampler is not None:
            yield from self._emit(resampler(None), skip)
        self.eof = True

    def _emit(self, arrays: Iterator[np.ndarray], skip: int) -> Iterator[np.ndarray]:
        for array in arrays:
            if skip:
                cut = min(skip, array.shape[1])
                array, skip = array[:, cut:], skip - cut
            if array.shape[1]:
                self.samples += array.shape[1]
                yield array
        return skip


def _problem(decoder: _AudioDecoder, declared: float | None, own: bool, wanted: float) -> str:
    """Describe damage found while decoding ("" if none)."""
    problem = decoder.log.summary()
    if not problem and decoder.eof and own and declared is not None and decoder.rate:
        end = (decoder.start_time or 0.0) + decoder.samples / decoder.rate
        tolerance = max(0.1, 0.05 * declared)
        if min(wanted, declared) > end + tolerance:
            problem = (
                f"the audio stream ends at {end:.3f} s but declares {declared:.3f} s "
                "(truncated file?)"
            )
    return problem


def _validate(sample_rate, start, stream) -> tuple[int | None, float | None, int]:
    return (
        _check_rate(sample_rate),
        check_non_negative(start, "start"),
        check_positive_int(stream, "stream", minimum=0),
    )


def _collect(decoder: _AudioDecoder, duration: float | None) -> tuple[list, int | None]:
    """Gather the decoder's arrays, stopping once ``duration`` seconds are there."""
    chunks, total, needed = [], 0, None
    with contextlib.closing(iter(decoder)) as arrays:
        for array in arrays:
            if duration is not None and needed is None:
                needed = round(duration * decoder.rate)
            chunks.append(array)
            total += array.shape[1]
            if needed is not None and total >= needed:
                break
    return chunks, needed


def read_audio(
    source: Source,
    sample_rate: int | None = 16000,
    mono: bool = True,
    start: float | None = None,
    duration: float | None = None,
    strict: bool = True,
    stream: int = 0,
) -> AudioClip:
    """Decode an audio stream (or a window of it), resampled and optionally mono.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        An audio file, or a video file with an audio stream.
    sample_rate : int or None, default=16000
        Output rate in Hz; None keeps the stream's own rate.
    mono : bool, default=True
        Average the channels into one.
    start : float, optional
        Seconds from the start of the file where the clip begins (reached by
        seeking, then trimming to the sample).
    duration : float, optional
        Seconds to decode from ``start``; default to the end of the stream.
        Decoding stops as soon as enough samples are available.
    strict : bool, default=True
        If True, any damaged data raises. If False, damaged packets are
        skipped, a truncated stream returns what decoded, and a
        :class:`~avrec.exceptions.DataWarning` says so.
    stream : int, default=0
        Which audio stream to read (0 = the first).

    Returns
    -------
    AudioClip
        ``samples``: float32 tensor of shape ``(channels, time)`` (``channels``
        is 1 with ``mono=True``); ``sample_rate``; ``start`` in seconds.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    MediaDecodeError
        If the file is corrupt, truncated (with ``strict=True``), unsupported,
        has no audio stream number ``stream``, or no sample can be decoded.
    ConfigurationError
        If an argument is invalid, or ``start`` is past the end of the stream.

    Notes
    -----
    Lossy encoders add a few milliseconds of priming samples (AAC: about
    1024 at the source rate) that some containers do not trim; they appear at
    the start of the clip. A truncated file is detected when decoding stops
    more than ``max(0.1 s, 5%)`` before the duration the stream declares.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from avrec.media import read_audio, write_audio
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tone.flac"
    >>> t = np.arange(44100) / 44100
    >>> write_audio(path, np.stack([np.sin(2 * np.pi * 440 * t)] * 2) * 0.5, 44100)
    >>> clip = read_audio(path, sample_rate=16000)
    >>> tuple(clip.samples.shape), clip.samples.dtype, clip.sample_rate
    ((1, 16000), torch.float32, 16000)
    >>> read_audio(path, start=0.25, duration=0.5).num_samples
    8000
    """
    rate, start, index = _validate(sample_rate, start, stream)
    duration = check_non_negative(duration, "duration")
    if duration == 0:
        raise ConfigurationError("duration must be > 0 seconds, got 0")
    rewind = rewinder(source)
    for attempt in range(2):  # a 2nd pass only if seeking to ``start`` fails (raw streams)
        rewind()
        with open_source(source) as (container, name):
            audio = select_stream(container, "audio", index, name)
            declared, own = stream_end(container, audio, time_origin(container))
            if start is not None and declared is not None and own and start >= declared:
                raise ConfigurationError(
                    f"start={start} is past the end of the audio in {name} ({declared:.3f} s)"
                )
            decoder = _AudioDecoder(
                container, audio, name, rate, mono, start, strict, seekable=attempt == 0
            )
            try:
                chunks, needed = _collect(decoder, duration)
            except SeekError:
                continue
            break
    if not chunks:
        raise MediaDecodeError(f"no audio could be decoded from {name}")
    wanted = math.inf if duration is None else (start or 0.0) + duration
    problem = _problem(decoder, declared, own, wanted)
    if problem:
        if strict:
            raise MediaDecodeError(f"cannot decode {name}: {problem}")
        warnings.warn(f"{name}: {problem}; returning what decoded", DataWarning, stacklevel=2)
    samples = np.concatenate(chunks, axis=1)
    if needed is not None:
        samples = samples[:, :needed]
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return AudioClip(tensor, int(decoder.rate), name, float(decoder.start_time or 0.0))


def iter_audio_chunks(
    source: Source,
    chunk_seconds: float = 1.0,
    sample_rate: int | None = 16000,
    mono: bool = True,
    start: float | None = None,
    strict: bool = True,
    stream: int = 0,
) -> Iterator[torch.Tensor]:
    """Stream an audio stream in fixed-length chunks, with constant memory.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        An audio or video file.
    chunk_seconds : float, default=1.0
        Chunk length; each chunk has ``round(chunk_seconds * sample_rate)``
        samples except the last, which may be shorter.
    sample_rate : int or None, default=16000
        Output rate in Hz; None keeps the stream's own rate.
    mono : bool, default=True
        Average the channels into one.
    start : float, optional
        Seconds from the start of the file where streaming begins.
    strict : bool, default=True
        If False, damaged packets are skipped (with a DataWarning at the end).
    stream : int, default=0
        Which audio stream to read.

    Yields
    ------
    torch.Tensor of shape (channels, n), dtype float32
        Consecutive chunks of samples.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    MediaDecodeError
        If the file cannot be decoded or has no such audio stream.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from avrec.media import iter_audio_chunks, write_audio
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "noise.wav"
    >>> write_audio(path, np.random.default_rng(0).uniform(-0.5, 0.5, (2, 20000)), 8000)
    >>> [tuple(c.shape) for c in iter_audio_chunks(path, 1.0, sample_rate=8000)]
    [(1, 8000), (1, 8000), (1, 4000)]
    """
    if (
        isinstance(chunk_seconds, bool)
        or not isinstance(chunk_seconds, numbers.Real)
        or not 0 < chunk_seconds < math.inf
    ):
        raise ConfigurationError(f"chunk_seconds must be a positive number, got {chunk_seconds!r}")
    rate, start, index = _validate(sample_rate, start, stream)
    rewind = rewinder(source)
    for attempt in range(2):  # a 2nd pass only if seeking to ``start`` fails (raw streams)
        rewind()
        with open_source(source) as (container, name):
            audio = select_stream(container, "audio", index, name)
            decoder = _AudioDecoder(
                container, audio, name, rate, mono, start, strict, seekable=attempt == 0
            )
            try:
                yield from _rechunk(decoder, chunk_seconds)
            except SeekError:  # raised before the first chunk
                continue
        break
    if decoder.log.errors:
        warnings.warn(f"{name}: {decoder.log.summary()}", DataWarning, stacklevel=2)


def _rechunk(decoder: _AudioDecoder, chunk_seconds: float) -> Iterator[torch.Tensor]:
    """Regroup the decoder's arrays into tensors of exactly ``chunk_seconds`` (last: less)."""
    pending: list[np.ndarray] = []
    buffered, size = 0, None
    with contextlib.closing(iter(decoder)) as arrays:
        for array in arrays:
            if size is None:
                size = max(1, round(chunk_seconds * decoder.rate))
            pending.append(array)
            buffered += array.shape[1]
            while buffered >= size:
                joined = np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0]
                yield torch.from_numpy(joined[:, :size].copy())
                rest = joined[:, size:]
                pending, buffered = ([rest] if rest.shape[1] else []), rest.shape[1]
    if pending:
        yield torch.from_numpy(np.concatenate(pending, axis=1))
