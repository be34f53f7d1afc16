"""Decoding video frames with PyAV: :func:`read_video` and :func:`iter_frames`."""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import torch

from avrec.exceptions import ConfigurationError, DataWarning, MediaDecodeError
from avrec.media._clips import VideoClip
from avrec.media._sampling import (
    EPS,
    FrameConverter,
    SampleRequest,
    Size,
    StreamFacts,
    Timeline,
    check_size,
    sample_frames,
    scan_end,
    stream_fps,
)
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
from avrec.utils import check_positive_int

__all__ = ["iter_frames", "read_video"]

logger = logging.getLogger(__name__)


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
    seek: str = "exact",
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
    seek : {"exact", "keyframe"}, default="exact"
        ``"exact"`` decodes from the keyframe before each sparse target up to
        the target (about half a keyframe interval of frames per target).
        ``"keyframe"`` returns the keyframe itself when it seeks, so a sparse
        target costs one decoded frame but may be up to one keyframe interval
        early; the returned ``timestamps`` are the true times of the frames.
        Dense targets are decoded exactly either way. Use it for long videos
        where the content changes slowly compared with the keyframe interval.

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
    size = check_size(size)
    start = check_non_negative(start, "start")
    end = check_non_negative(end, "end")
    if start is not None and end is not None and end <= start:
        raise ConfigurationError(f"end must be greater than start, got start={start}, end={end}")
    if sampling not in ("uniform", "random"):
        raise ConfigurationError(f"sampling must be 'uniform' or 'random', got {sampling!r}")
    index = check_positive_int(stream, "stream", minimum=0)
    threads = None if threads is None else check_positive_int(threads, "threads")
    if seek not in ("exact", "keyframe"):
        raise ConfigurationError(f"seek must be 'exact' or 'keyframe', got {seek!r}")
    request = SampleRequest(n, size, start, end, sampling, strict, random_state, seek == "exact")
    rewind = rewinder(source)
    info: StreamFacts | None = None
    for _ in range(3):  # 2nd/3rd pass only for raw streams: no duration, or no seeking
        rewind()
        with open_source(source) as (container, name):
            video = select_stream(container, "video", index, name)
            set_threads(video, threads)
            if info is None:
                origin, fps = time_origin(container), stream_fps(video)
                declared, own = stream_end(container, video, origin)
                if declared is None:
                    # No duration in the header: add up the packets (this consumes the
                    # container), then open it again and decode it without seeking.
                    declared = scan_end(container, video, origin, fps)
                    if declared is None or declared <= 0:
                        raise MediaDecodeError(f"{name}: the video stream has no packets")
                    info = StreamFacts(name, origin, fps, declared, False, seekable=False)
                    continue
                info = StreamFacts(name, origin, fps, declared, own, seekable=True)
            try:
                times, arrays = sample_frames(container, video, info, request)
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
        if ts + EPS < t0:
            continue
        if count % step == 0:
            yield ts, frame
        count += 1


def _at_rate(frames: Iterator, fps: float, t0: float, t1: float, timeline: Timeline) -> Iterator:
    """The ``(ts, frame)`` on screen at ``t0 + k / fps`` for each ``k`` (repeating frames)."""
    k, prev, target = 0, None, t0
    for ts, frame in frames:
        while target < t1 and ts > target + EPS:
            # ``prev`` is on screen at ``target`` (before the first frame: the first)
            yield prev if prev is not None else (ts, frame)
            k += 1
            target = t0 + k / fps
        if target >= t1:
            return
        prev = (ts, frame)
    if prev is not None:  # the last frame stays on screen for one frame interval
        stop = min(t1, prev[0] + timeline.interval)
        while target < stop - EPS:
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
    size = check_size(size)
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
            timeline = Timeline(origin, stream_fps(video))
            log = DecodeLog()
            frames = timeline(decoded_frames(container, video, name, strict, log))
            if fps is None:
                chosen = _every_step(frames, step, t0, t1)
            else:
                chosen = _at_rate(frames, fps, t0, t1, timeline)
            convert = FrameConverter(size)
            for ts, frame in chosen:
                yield ts, torch.from_numpy(convert(frame)).permute(2, 0, 1).contiguous()
        break
    if log.errors:
        warnings.warn(f"{name}: {log.summary()}", DataWarning, stacklevel=2)
