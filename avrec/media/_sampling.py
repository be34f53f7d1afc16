"""Frame sampling behind :func:`~avrec.media.read_video` and :func:`~avrec.media.iter_frames`.

Target timestamps, the keyframe-seek-or-scan sampler, the decoder-side RGB
converter and the stream timeline live here; the public readers in
``_video.py`` drive them.
"""

from __future__ import annotations

import logging
import math
import numbers
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from avrec.exceptions import ConfigurationError, DataWarning, MediaDecodeError
from avrec.media._source import (
    DecodeLog,
    decoded_frames,
    seek,
)
from avrec.utils import check_positive_int, check_random_state

__all__ = [
    "EPS",
    "FrameConverter",
    "FrameSampler",
    "SampleRequest",
    "Size",
    "StreamFacts",
    "Timeline",
    "check_size",
    "sample_frames",
    "sample_targets",
    "scan_end",
    "stream_fps",
]

logger = logging.getLogger(__name__)

EPS = 1e-6  # seconds: a frame at exactly the target time is on screen at that time
INITIAL_SEEK_COST = 125  # frames decoded after a seek before we know better (x264: GOP 250)

Size = None | int | tuple[int, int]


def check_size(size: Any) -> Size:
    if size is None:
        return None
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return check_positive_int(size, "size")
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (check_positive_int(size[0], "size[0]"), check_positive_int(size[1], "size[1]"))
    raise ConfigurationError(
        f"size must be None, an int (shorter side) or a (height, width) pair, got {size!r}"
    )


def output_shape(size: Size, height: int, width: int) -> tuple[int, int]:
    """``(height, width)`` of the output frames for a ``height x width`` source."""
    if size is None:
        return height, width
    if isinstance(size, tuple):
        return size
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


class FrameConverter:
    """Scales decoded frames to one output size in FFmpeg's scaler, as RGB arrays."""

    def __init__(self, size: Size) -> None:
        self.size = size
        self.shape: tuple[int, int] | None = None
        self._last: tuple[Any, np.ndarray] | None = None

    def __call__(self, frame: Any) -> np.ndarray:
        if self._last is not None and self._last[0] is frame:
            return self._last[1]
        if self.shape is None:
            self.shape = output_shape(self.size, frame.height, frame.width)
        height, width = self.shape
        array = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        self._last = (frame, array)
        return array


def stream_fps(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    value = float(rate) if rate else 0.0
    return value if math.isfinite(value) and 0 < value < 10_000 else None


class Timeline:
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


class FrameSampler:
    """Picks, for each target time, the frame on screen at that time.

    Targets are visited in increasing order. Before each one the sampler
    either keeps decoding forward or seeks to the keyframe before the target,
    whichever decodes fewer frames: it seeks when the gap to the target (in
    frames) exceeds the frames a seek costs, i.e. the distance from the
    keyframe to the target, measured on previous seeks (half a keyframe
    interval on average). Over ``N`` uniform targets this amounts to:
    seek per frame when ``N x (keyframe interval / 2) < total frames``,
    otherwise one linear scan.
    """

    def __init__(
        self, container, stream, origin, fps, name, strict, convert, seekable, exact=True
    ) -> None:
        self.container, self.stream, self.name, self.strict = container, stream, name, strict
        self.exact = exact
        self.origin, self.convert = origin, convert
        start = stream.start_time
        tb = stream.time_base
        self.first = max(0.0, float(start * tb) - origin) if start is not None and tb else 0.0
        self.fps = fps or 25.0
        self.log = DecodeLog()
        self.timeline = Timeline(origin, fps)
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
            if self.next[0] > target + EPS:
                break
            self.prev, self.next = self.next, None
        return count

    def _seek_cost(self) -> float:
        if not self.seek_costs:
            return INITIAL_SEEK_COST
        return sum(self.seek_costs) / len(self.seek_costs)

    def pick(self, target: float) -> tuple[float, np.ndarray]:
        """Return ``(timestamp, rgb array)`` of the frame on screen at ``target``."""
        ahead = self.next is not None and self.next[0] > target + EPS
        past_end = self.eof and self.prev is not None  # targets are increasing
        gap = (target - self._position()) * self.fps
        jump = not ahead and not past_end and self.can_seek and gap > self._seek_cost()
        if jump and not self.exact:
            # keyframe mode: the first frame after the seek is the keyframe before
            # the target; take it instead of decoding up to the target
            self._restart(seek_to=target)
            self.prev, self.next = self._read(), None
            if self.prev is not None and self.prev[0] <= target + 1.5 / self.fps:
                return self.prev[0], self.convert(self.prev[1])
            logger.debug("%s: keyframe seek to %.3f s failed; scanning instead", self.name, target)
            self.can_seek = False
            self._restart(seek_to=0.0)
            self._advance(target)
        elif jump:
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


def sample_targets(t0: float, t1: float, n: int, sampling: str, random_state: Any) -> np.ndarray:
    segment = (t1 - t0) / n
    if sampling == "uniform":
        offsets = np.full(n, 0.5)
    else:
        offsets = check_random_state(random_state).uniform(0.0, 1.0, size=n)
    return t0 + (np.arange(n) + offsets) * segment


def scan_end(container: Any, stream: Any, origin: float, fps: float | None) -> float | None:
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
class SampleRequest:
    """The validated arguments of one :func:`read_video` call."""

    num_frames: int
    size: Size
    start: float | None
    end: float | None
    sampling: str
    strict: bool
    random_state: Any
    exact: bool = True


@dataclass(frozen=True)
class StreamFacts:
    """What the header says about the stream to sample."""

    name: str
    origin: float
    fps: float | None
    end: float
    own_end: bool  # False: only the container's duration is known
    seekable: bool


def sample_frames(
    container: Any, video: Any, info: StreamFacts, request: SampleRequest
) -> tuple[list, list]:
    """Pick the requested frames of an open stream; return ``(times, rgb arrays)``."""
    name, fps, declared = info.name, info.fps, info.end
    t0 = request.start or 0.0
    t1 = declared if request.end is None else min(request.end, declared)
    if t0 >= t1:
        raise ConfigurationError(
            f"start={t0} is not before the end of the video in {name} ({t1:.3f} s)"
        )
    convert = FrameConverter(request.size)
    sampler = FrameSampler(
        container,
        video,
        info.origin,
        fps,
        name,
        request.strict,
        convert,
        info.seekable,
        exact=request.exact,
    )
    targets = sample_targets(t0, t1, request.num_frames, request.sampling, request.random_state)
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
