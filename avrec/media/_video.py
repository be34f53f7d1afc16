"""Decoding video frames with PyAV: :func:`read_video` and :func:`iter_frames`."""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from avrec.exceptions import ConfigurationError, DataWarning, MediaDecodeError
from avrec.media._clips import VideoClip
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
    set_threads,
    stream_end,
    time_origin,
)
from avrec.utils import check_positive_int, check_random_state

__all__ = ["iter_frames", "read_video"]

logger = logging.getLogger(__name__)

_EPS = 1e-6  # seconds: a frame at exactly the target time is on screen at that time
_INITIAL_SEEK_COST = 125  # frames decoded after a seek before we know better (x264: GOP 250)

Size = None | int | tuple[int, int]


def _check_size(size: Any) -> Size:
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return check_positive_int(size, "size")
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (check_positive_int(size[0], "size[0]"), check_positive_int(size[1], "size[1]"))
    raise ConfigurationError(
        f"size must be None, an int (shorter side) or a (height, width) pair, got {size!r}"
    )


def _output_shape(size: Size, height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the output frames for a ``height x width`` source."""
    if size is None:
        return height, width
    if isinstance(size, tuple):
        return size
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


class _Converter:
    """Scales decoded frames to one output size in FFmpeg's scaler, as RGB arrays."""

    def __init__(self, size: Size) -> None:
        self.size = size
        self.shape: tuple[int, int] | None = None
        self._last: tuple[Any, np.ndarray] | None = None

    def __call__(self, frame: Any) -> np.ndarray:
        if self._last is not None and self._last[0] is frame:
            return self._last[1]
        if self.shape is None:
            self.shape = _output_shape(self.size, frame.height, frame.width)
        height, width = self.shape
        array = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        self._last = (frame, array)
        return array


def _fps(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    value = float(rate) if rate else 0.0
    return value if math.isfinite(value) and 0 < value < 10_000 else None


class _Timeline:
    """Turns decoded frames into ``(seconds, frame)``, inventing times where pts is missing."""

    def __init__(self, origin: float, fps: float | None) -> None:
        self.origin = origin
        self.interval = 1.0 / (fps or 25.0)
        self.last: float | None = None

    def __call__(self, frames: Iterator[Any]) -> Iterator[tuple[float, Any]]:
        for frame in frames:
            if frame.pts is not None and frame.time_base:
                ts = float(frame.pts * frame.time_base) - self.origin
            else:
                ts = 0.0 if self.last is None else self.last + self.interval
            self.last = ts
            yield ts, frame


class _Sampler:
    """Picks, for each target time, the frame on screen at that time.

    Targets are visited in increasing order. Before each one the sampler
    either keeps decoding forward or seeks to the keyframe before the target,
    whichever decodes fewer frames: it seeks when the gap to the target (in
    frames) exceeds the frames a seek costs, i.e. the distance from the
    keyframe to the target, measured on previous seeks (half a keyframe
    interval on average). Over ``N`` uniform targets this is DESIGN's rule:
    seek per frame when ``N x (keyframe interval / 2) < total frames``,
    otherwise one linear scan.
    """

    def __init__(self, container, stream, origin, fps, name, strict, convert, seekable) -> None:
        self.container, self.stream, self.name, self.strict = container, stream, name, strict
        self.origin, self.convert = origin, convert
        start = stream.start_time
        tb = stream.time_base
        self.first = max(0.0, float(start * tb) - origin) if start is not None and tb else 0.0
        self.fps = fps or 25.0
        self.log = DecodeLog()
        self.timeline = _Timeline(origin, fps)
        self.seek_costs: list[int] = []
        self.can_seek = seekable
        self.seeks = 0
        self.decoded = 0
        self._restart(seek_to=None)

    def _restart(self, seek_to: float | None) -> None:
        """Start decoding afresh, after seeking to ``seek_to`` (may raise SeekError)."""
        if seek_to is not None:
            seek(self.container, self.stream, seek_to, self.origin, self.name)
            self.seeks += 1
        frames = decoded_frames(self.container, self.stream, self.name, self.strict, self.log)
        self.frames = self.timeline(frames)
        self.prev: tuple[float, Any] | None = None  # last frame with ts <= target
        self.next: tuple[float, Any] | None = None  # first frame with ts > target
        self.eof = False

    def _read(self) -> tuple[float, Any] | None:
        item = next(self.frames, None)
        if item is None:
            self.eof = True
        else:
            self.decoded += 1
        return item

    def _position(self) -> float:
        if self.next is not None:
            return self.next[0]
        return self.prev[0] if self.prev is not None else self.first

    def _advance(self, target: float) -> int:
        """Decode until the frame after ``target``; return how many frames that took."""
        count = 0
        while not self.eof:
            if self.next is None:
                self.next = self._read()
                count += 1
                if self.next is None:
                    break
            if self.next[0] > target + _EPS:
                break
            self.prev, self.next = self.next, None
        return count

    def _seek_cost(self) -> float:
        if not self.seek_costs:
            return _INITIAL_SEEK_COST
        return sum(self.seek_costs) / len(self.seek_costs)

    def pick(self, target: float) -> tuple[float, np.ndarray]:
        """Return ``(timestamp, rgb array)`` of the frame on screen at ``target``."""
        ahead = self.next is not None and self.next[0] > target + _EPS
        past_end = self.eof and self.prev is not None  # targets are increasing
        gap = (target - self._position()) * self.fps
        jump = not ahead and not past_end and self.can_seek and gap > self._seek_cost()
        if jump:
            self._restart(seek_to=target)
            count = self._advance(target)
            landed = self.next[0] if self.next is not None else -math.inf
            if self.prev is None and landed > max(target, self.first) + 1.5 / self.fps:
                # The index sent us past the target: fall back to one linear scan.
                logger.debug("%s: seek overshot %.3f s; scanning instead", self.name, target)
                self.can_seek = False
                self._restart(seek_to=0.0)
                self._advance(target)
            else:
                self.seek_costs.append(count)
        else:
            self._advance(target)
        chosen = self.prev if self.prev is not None else self.next
        if chosen is None:
            raise MediaDecodeError(f"no video frames could be decoded from {self.name}")
        return chosen[0], self.convert(chosen[1])


def _targets(t0: float, t1: float, n: int, sampling: str, random_state: Any) -> np.ndarray:
    segment = (t1 - t0) / n
    if sampling == "uniform":
        offsets = np.full(n, 0.5)
    else:
        offsets = check_random_state(random_state).uniform(0.0, 1.0, size=n)
    return t0 + (np.arange(n) + offsets) * segment


def _scan_end(container: Any, stream: Any, origin: float, fps: float | None) -> float | None:
    """End time of ``stream`` from its packets (timestamps, else durations); no decoding."""
    end, total = None, 0.0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        tb = packet.time_base
        length = float(packet.duration * tb) if packet.duration and tb else 1.0 / (fps or 25.0)
        total += length
        if packet.pts is not None and tb:
            stop = float(packet.pts * tb) - origin + length
            end = stop if end is None else max(end, stop)
    return end if end is not None else (total or None)


@dataclass(frozen=True)
class _Request:
    """The validated arguments of one :func:`read_video` call."""

    num_frames: int
    size: Size
    start: float | None
    end: float | None
    sampling: str
    strict: bool
    random_state: Any


@dataclass(frozen=True)
class _Stream:
    """What the header says about the stream to sample."""

    name: str
    origin: float
    fps: float | None
    end: float
    own_end: bool  # False: only the container's duration is known
    seekable: bool


def _sample(container: Any, video: Any, info: _Stream, request: _Request) -> tuple[list, list]:
    """Pick the requested frames of an open stream; return ``(times, rgb arrays)``."""
    name, fps, declared = info.name, info.fps, info.end
    t0 = request.start or 0.0
    t1 = declared if request.end is None else min(request.end, declared)
    if t0 >= t1:
        raise ConfigurationError(
            f"start={t0} is not before the end of the video in {name} ({t1:.3f} s)"
        )
    convert = _Converter(request.size)
    sampler = _Sampler(
        container, video, info.origin, fps, name, request.strict, convert, info.seekable
    )
    targets = _targets(t0, t1, request.num_frames, request.sampling, request.random_state)
    times, arrays = [], []
    for target in targets:
        ts, array = sampler.pick(float(target))
        times.append(ts)
        arrays.append(array)
    logger.debug(
        "%s: %d frames, %d decoded, %d seeks", name, len(targets), sampler.decoded, sampler.seeks
    )
    problem = sampler.log.summary()
    if sampler.eof and info.own_end and sampler.prev is not None:
        last = sampler.prev[0]
        tolerance = max(2.0 / (fps or 25.0), 0.1, 0.05 * declared)
        if float(targets[-1]) > last + tolerance:
            problem = problem or (
                f"the video stream ends at {last:.3f} s but declares {declared:.3f} s "
                "(truncated file?)"
            )
    if problem:
        if request.strict:
            raise MediaDecodeError(f"cannot decode {name}: {problem}")
        warnings.warn(f"{name}: {problem}; returning what decoded", DataWarning, stacklevel=3)
    return times, arrays


def read_video(
    source: Source,
    num_frames: int = 16,
    size: Size = None,
    start: float | None = None,
    end: float | None = None,
    sampling: str = "uniform",
    strict: bool = True,
    stream: int = 0,
    *,
    random_state: int | np.random.Generator | None = None,
    threads: int | None = None,
) -> VideoClip:
    """Decode ``num_frames`` frames sampled evenly over a video (or part of it).

    The interval ``[start, end)`` is cut into ``num_frames`` equal segments and
    one target time is placed in each: its centre (``sampling="uniform"``) or a
    random point (``"random"``). Each target gets the frame on screen at that
    time, i.e. the last frame whose timestamp is ``<= target`` (the first frame
    if none is). Sparse targets are reached by seeking to the keyframe before
    them, dense ones by decoding straight through; frames are scaled to
    ``size`` in FFmpeg's scaler as they are picked, so memory holds only the
    output frames plus one decoded frame.

    A video with fewer frames than ``num_frames`` yields repeated frames (with
    repeated timestamps): the output always has ``num_frames`` frames.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        The video file.
    num_frames : int, default=16
        Number of frames ``T`` to return.
    size : None, int or (int, int), default=None
        Output frame size: None keeps the decoded size, an int sets the shorter
        side (keeping the aspect ratio of the stored pixels), a pair sets
        ``(height, width)`` exactly.
    start, end : float, optional
        Seconds from the start of the file delimiting the sampled interval;
        default the whole video.
    sampling : {"uniform", "random"}, default="uniform"
        Where targets fall within their segments.
    strict : bool, default=True
        If True, any damaged data raises. If False, damaged packets are
        skipped, a truncated stream returns what decoded (later targets reuse
        the last frame) and a :class:`~avrec.exceptions.DataWarning` says so.
    stream : int, default=0
        Which video stream to read (0 = the first).
    random_state : None, int or numpy.random.Generator, optional
        Seed for ``sampling="random"``.
    threads : int, optional
        FFmpeg decoding threads (``thread_type="AUTO"``); default one per core.
        Use 1 inside DataLoader workers.

    Returns
    -------
    VideoClip
        ``frames``: uint8 tensor of shape ``(num_frames, 3, H, W)``;
        ``timestamps``: float64 array of shape ``(num_frames,)`` in seconds.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    MediaDecodeError
        If the file is corrupt, truncated (with ``strict=True``), unsupported,
        has no video stream number ``stream``, or no frame can be decoded.
    ConfigurationError
        If an argument is invalid, or ``start`` is not before the end of the video.

    Notes
    -----
    A truncated file is detected when decoding stops more than
    ``max(2 frames, 0.1 s, 5%)`` before the duration the stream declares.
    When only the container declares a duration, none is checked.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from avrec.media import read_video, write_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ramp.mp4"
    >>> frames = np.repeat(np.arange(0, 250, 10, dtype=np.uint8), 32 * 32 * 3)
    >>> write_video(path, frames.reshape(25, 32, 32, 3), fps=25)
    >>> clip = read_video(path, num_frames=5, size=16)
    >>> tuple(clip.frames.shape), clip.frames.dtype
    ((5, 3, 16, 16), torch.uint8)
    >>> clip.timestamps.round(2).tolist()
    [0.08, 0.28, 0.48, 0.68, 0.88]
    """
    n = check_positive_int(num_frames, "num_frames")
    size = _check_size(size)
    start = check_non_negative(start, "start")
    end = check_non_negative(end, "end")
    if start is not None and end is not None and end <= start:
        raise ConfigurationError(f"end must be greater than start, got start={start}, end={end}")
    if sampling not in ("uniform", "random"):
        raise ConfigurationError(f"sampling must be 'uniform' or 'random', got {sampling!r}")
    index = check_positive_int(stream, "stream", minimum=0)
    threads = None if threads is None else check_positive_int(threads, "threads")
    request = _Request(n, size, start, end, sampling, strict, random_state)
    rewind = rewinder(source)
    info: _Stream | None = None
    for _ in range(3):  # 2nd/3rd pass only for raw streams: no duration, or no seeking
        rewind()
        with open_source(source) as (container, name):
            video = select_stream(container, "video", index, name)
            set_threads(video, threads)
            if info is None:
                origin, fps = time_origin(container), _fps(video)
                declared, own = stream_end(container, video, origin)
                if declared is None:
                    # No duration in the header: add up the packets (this consumes the
                    # container), then open it again and decode it without seeking.
                    declared = _scan_end(container, video, origin, fps)
                    if declared is None or declared <= 0:
                        raise MediaDecodeError(f"{name}: the video stream has no packets")
                    info = _Stream(name, origin, fps, declared, False, seekable=False)
                    continue
                info = _Stream(name, origin, fps, declared, own, seekable=True)
            try:
                times, arrays = _sample(container, video, info, request)
            except SeekError:
                if not info.seekable:
                    raise
                info = replace(info, seekable=False)
                continue
            break
    frames = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return VideoClip(frames, np.asarray(times, dtype=np.float64), float(info.fps or 0.0), name)


def _every_step(frames: Iterator, step: int, t0: float, t1: float) -> Iterator:
    """Every ``step``-th ``(ts, frame)`` with ``t0 <= ts < t1``."""
    count = 0
    for ts, frame in frames:
        if ts >= t1:
            return
        if ts + _EPS < t0:
            continue
        if count % step == 0:
            yield ts, frame
        count += 1


def _at_rate(frames: Iterator, fps: float, t0: float, t1: float, timeline: _Timeline) -> Iterator:
    """The ``(ts, frame)`` on screen at ``t0 + k / fps`` for each ``k`` (repeating frames)."""
    k, prev, target = 0, None, t0
    for ts, frame in frames:
        while target < t1 and ts > target + _EPS:
            # ``prev`` is on screen at ``target`` (before the first frame: the first)
            yield prev if prev is not None else (ts, frame)
            k += 1
            target = t0 + k / fps
        if target >= t1:
            return
        prev = (ts, frame)
    if prev is not None:  # the last frame stays on screen for one frame interval
        stop = min(t1, prev[0] + timeline.interval)
        while target < stop - _EPS:
            yield prev
            k += 1
            target = t0 + k / fps


def iter_frames(
    source: Source,
    size: Size = None,
    step: int = 1,
    fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
    strict: bool = True,
    stream: int = 0,
    *,
    threads: int | None = None,
) -> Iterator[tuple[float, torch.Tensor]]:
    """Stream decoded frames one at a time, with constant memory.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        The video file.
    size : None, int or (int, int), default=None
        Output size, as in :func:`read_video`.
    step : int, default=1
        Yield every ``step``-th decoded frame. Ignored when ``fps`` is given.
    fps : float, optional
        Yield the frame on screen every ``1 / fps`` seconds instead (frames
        repeat when ``fps`` exceeds the video's rate).
    start, end : float, optional
        Seconds from the start of the file; frames outside ``[start, end)`` are skipped.
    strict : bool, default=True
        If False, damaged packets are skipped (with a DataWarning at the end).
    stream : int, default=0
        Which video stream to read.
    threads : int, optional
        FFmpeg decoding threads; default one per core.

    Yields
    ------
    timestamp : float
        Seconds from the start of the file.
    frame : torch.Tensor of shape (3, H, W), dtype uint8
        RGB frame.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    MediaDecodeError
        If the file cannot be decoded or has no such video stream.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from avrec.media import iter_frames, write_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
    >>> write_video(path, np.zeros((10, 16, 16, 3), np.uint8), fps=10)
    >>> [round(t, 2) for t, _ in iter_frames(path, step=3)]
    [0.0, 0.3, 0.6, 0.9]
    >>> pairs = list(iter_frames(path, fps=4, size=8))
    >>> [round(t, 2) for t, _ in pairs], tuple(pairs[0][1].shape)
    ([0.0, 0.2, 0.5, 0.7], (3, 8, 8))
    """
    size = _check_size(size)
    step = check_positive_int(step, "step")
    if fps is not None and (
        isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not 0 < fps < math.inf
    ):
        raise ConfigurationError(f"fps must be a positive number, got {fps!r}")
    start = check_non_negative(start, "start")
    end = check_non_negative(end, "end")
    t0 = start or 0.0
    t1 = math.inf if end is None else end
    index = check_positive_int(stream, "stream", minimum=0)
    threads = None if threads is None else check_positive_int(threads, "threads")
    rewind = rewinder(source)
    for attempt in range(2):  # a 2nd pass only if seeking to ``start`` fails (raw streams)
        rewind()
        with open_source(source) as (container, name):
            video = select_stream(container, "video", index, name)
            set_threads(video, threads)
            origin = time_origin(container)
            if t0 > 0 and attempt == 0 and stream_end(container, video, origin)[0] is not None:
                try:
                    seek(container, video, t0, origin, name)
                except SeekError:  # the position is undefined now: reopen, skip to start
                    continue
            timeline = _Timeline(origin, _fps(video))
            log = DecodeLog()
            frames = timeline(decoded_frames(container, video, name, strict, log))
            if fps is None:
                chosen = _every_step(frames, step, t0, t1)
            else:
                chosen = _at_rate(frames, fps, t0, t1, timeline)
            convert = _Converter(size)
            for ts, frame in chosen:
                yield ts, torch.from_numpy(convert(frame)).permute(2, 0, 1).contiguous()
        break
    if log.errors:
        warnings.warn(f"{name}: {log.summary()}", DataWarning, stacklevel=2)
