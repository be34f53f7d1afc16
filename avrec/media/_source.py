"""Opening media sources with PyAV and translating its errors.

A *source* is a path (``str`` or path-like), the bytes of a file, or a binary
file object. Every container is opened with ``with av.open(...)`` (PyAV
containers that are not closed leak memory) and every exception PyAV raises
while opening, demuxing or decoding becomes a :class:`~avrec.exceptions.MediaDecodeError`
whose message names the source and the cause.

FFmpeg's own log output stays off: PyAV >= 14 routes no FFmpeg log lines
anywhere unless :func:`av.logging.set_level` is called, because forwarding
FFmpeg logs to Python can deadlock under threads (PyAV #751, #2276: a decoder
thread waits for the GIL in the log callback while the main thread, holding
it, waits for that decoder thread to finish). Importing torchvision (which
timm and transformers do) calls ``av.logging.set_level(av.logging.ERROR)``, so
:func:`open_source` (and every writer) switches it off again before each open unless
``AVREC_FFMPEG_LOG=1`` is set (for debugging single-threaded decodes).
"""

from __future__ import annotations

import contextlib
import errno
import io
import logging
import math
import numbers
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, Union

import av
from av.stream import Disposition

from avrec.exceptions import AvrecError, ConfigurationError, MediaDecodeError

__all__ = [
    "DecodeLog",
    "SeekError",
    "Source",
    "check_non_negative",
    "decode_errors",
    "decoded_frames",
    "is_cover_art",
    "media_streams",
    "open_source",
    "rewinder",
    "seek",
    "select_stream",
    "set_threads",
    "source_name",
    "stream_end",
    "time_origin",
]

logger = logging.getLogger(__name__)

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
"""What every reader accepts: a path, the bytes of a file, or a binary file object."""


def source_name(source: Any) -> str:
    """Return a short human-readable name for ``source`` (used in messages)."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    name = getattr(source, "name", None)
    if isinstance(name, (str, os.PathLike)):
        return os.fspath(name)
    return f"<{type(source).__name__}>"


def _cause(exc: BaseException) -> str:
    """Describe ``exc`` without repeating the file name PyAV appends."""
    if isinstance(exc, av.FFmpegError):
        text = exc.strerror or str(exc)
        log = getattr(exc, "log", None)
        if log and len(log) >= 3 and log[2]:
            text = f"{text} ({str(log[2]).strip()})"
        return text
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def decode_errors(name: str, action: str = "decode") -> Iterator[None]:
    """Turn any exception raised inside the block into :class:`MediaDecodeError`.

    avrec's own errors and ``FileNotFoundError`` pass through unchanged.
    Everything else came from PyAV/FFmpeg handling bad data (PyAV raises not
    only ``av.FFmpegError`` but also ``IndexError``/``ValueError`` on some
    corrupt files), so it is reported as a decode failure, chained to the
    original exception.
    """
    try:
        yield
    except (AvrecError, FileNotFoundError, GeneratorExit):
        raise
    except Exception as exc:
        logger.debug("cannot %s %s", action, name, exc_info=True)
        raise MediaDecodeError(f"cannot {action} {name}: {_cause(exc)}") from exc


def _as_file_object(source: Any, name: str) -> Any:
    """Return what ``av.open`` should read, checking the source first."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, "media file not found", str(path))
        if path.is_dir():
            raise MediaDecodeError(f"cannot open {name}: it is a directory, not a media file")
        if path.stat().st_size == 0:
            raise MediaDecodeError(f"cannot open {name}: the file is empty (0 bytes)")
        return str(path)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise MediaDecodeError(f"cannot open {name}: no data (0 bytes)")
        return io.BytesIO(bytes(source))
    if hasattr(source, "read"):
        if isinstance(source, io.TextIOBase):
            raise TypeError(f"source must be opened in binary mode, got text file {name}")
        return source
    raise TypeError(
        "source must be a path (str or os.PathLike), bytes or a binary file object, "
        f"got {type(source).__name__}"
    )


@contextlib.contextmanager
def open_source(source: Source) -> Iterator[tuple[av.container.InputContainer, str]]:
    """Open ``source`` for reading; yield ``(container, name)`` and always close it.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    TypeError
        If ``source`` is none of the accepted types.
    MediaDecodeError
        If the data cannot be opened or decoded (errors raised inside the block
        are translated as well).
    """
    name = source_name(source)
    target = _as_file_object(source, name)
    quiet_ffmpeg_logs()
    with decode_errors(name, "open"):
        container = av.open(target, mode="r", metadata_errors="replace")
    try:
        with decode_errors(name):
            yield container, name
    finally:
        with contextlib.suppress(Exception):
            container.close()


def quiet_ffmpeg_logs() -> None:
    """Stop FFmpeg's log lines reaching Python (they can deadlock threaded decoding).

    A no-op when forwarding is already off, or when the environment variable
    ``AVREC_FFMPEG_LOG`` is ``1``. Something else in the process (torchvision at
    import) may have switched it on.

    Examples
    --------
    >>> import av.logging
    >>> av.logging.set_level(av.logging.ERROR)
    >>> quiet_ffmpeg_logs()
    >>> av.logging.get_level() is None
    True
    """
    if av.logging.get_level() is None or os.environ.get("AVREC_FFMPEG_LOG") == "1":
        return
    logger.debug("switching FFmpeg log forwarding off (it deadlocks threaded decoding)")
    av.logging.set_level(None)


def is_cover_art(stream: Any) -> bool:
    """True for a video stream that is an attached picture (album art in mp3/m4a files)."""
    return stream.type == "video" and bool(stream.disposition & Disposition.attached_pic)


def media_streams(container: Any, kind: str) -> list:
    """The streams of ``kind`` ("video" or "audio"), leaving out cover art."""
    return [s for s in getattr(container.streams, kind) if not is_cover_art(s)]


class SeekError(MediaDecodeError):
    """The container cannot seek (raw streams). Readers reopen it and decode from the start."""


def seek(container: Any, stream: Any, seconds: float, origin: float, name: str) -> None:
    """Seek ``stream`` to the keyframe at or before ``seconds`` (from ``origin``).

    Raises
    ------
    SeekError
        If FFmpeg cannot seek; the container's position is then undefined.
    """
    offset = math.floor((seconds + origin) / stream.time_base)
    try:
        container.seek(max(offset, 0), stream=stream, backward=True, any_frame=False)
    except av.FFmpegError as exc:
        raise SeekError(f"cannot seek in {name}: {_cause(exc)}") from exc


def rewinder(source: Any) -> Callable[[], None]:
    """Return a function that puts a file-object source back where it was now.

    Paths and bytes are reopened from the start anyway, so their rewinder does
    nothing. Call it before each open of the same source.
    """
    if isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)) or not hasattr(
        source, "seek"
    ):
        return lambda: None
    try:
        position = source.tell()
    except (OSError, ValueError):
        position = None
    calls = 0

    def rewind() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            return
        try:
            source.seek(position)
        except (OSError, ValueError, TypeError) as exc:
            name = source_name(source)
            raise MediaDecodeError(
                f"{name} must be read twice (its header has no duration) but cannot seek: {exc}"
            ) from exc

    return rewind


def select_stream(container: Any, kind: str, index: int, name: str) -> Any:
    """Return the ``index``-th stream of ``kind`` ("video" or "audio") in ``container``.

    Cover art (an attached picture) does not count as a video stream.

    Raises
    ------
    MediaDecodeError
        If the container has no such stream; the message lists what it has.
    """
    streams = media_streams(container, kind)
    if index < len(streams):
        return streams[index]
    found = ", ".join(
        f"{s.type}:{s.index}" + (" (cover art)" if is_cover_art(s) else "")
        for s in container.streams
    )
    found = found or "no streams"
    if not streams:
        raise MediaDecodeError(f"{name} has no {kind} stream (it contains: {found})")
    raise MediaDecodeError(
        f"{name} has {len(streams)} {kind} stream(s); {kind} stream {index} was requested"
    )


def _core_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def set_threads(stream: Any, threads: int | None) -> None:
    """Enable FFmpeg's own decoding threads: ``thread_type="AUTO"``, one per core."""
    count = _core_count() if threads is None else threads
    ctx = stream.codec_context
    ctx.thread_type = "AUTO"
    ctx.thread_count = count


def time_origin(container: Any) -> float:
    """Seconds of the container's start time; avrec timestamps are relative to it."""
    start = container.start_time
    if start is None or start == av.time_base * -(2**63) or start < 0:
        return 0.0
    return float(start) / av.time_base


def _parse_hms(text: str) -> float | None:
    try:
        hours, minutes, seconds = text.strip().split(":")
        value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def stream_end(container: Any, stream: Any, origin: float) -> tuple[float | None, bool]:
    """Return ``(end, own)``: where ``stream`` ends (seconds from ``origin``), or None.

    ``own`` is True when the value is declared for the stream itself (its
    duration, a Matroska ``DURATION`` tag or a frame count), False when it is
    only the container's duration (which may cover a longer sibling stream).
    """
    tb = stream.time_base
    start = stream.start_time
    start_s = float(start * tb) if (start is not None and tb) else origin
    if stream.duration and tb and stream.duration > 0:
        return start_s + float(stream.duration * tb) - origin, True
    tag = _parse_hms(stream.metadata.get("DURATION", "")) if stream.metadata else None
    if tag is not None:
        return start_s + tag - origin, True
    if stream.type == "video" and stream.frames and stream.frames > 0:
        rate = stream.average_rate or stream.guessed_rate
        if rate:
            return start_s + stream.frames / float(rate) - origin, True
    if container.duration and container.duration > 0:
        return float(container.duration) / av.time_base, False
    return None, False


def check_non_negative(value: Any, name: str, *, allow_none: bool = True) -> float | None:
    """Validate a time in seconds: a finite number >= 0 (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Fraction)):
        raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} must be a finite number of seconds >= 0, got {value}")
    return value


class DecodeLog:
    """Records the damaged packets skipped while decoding with ``strict=False``."""

    def __init__(self) -> None:
        self.errors = 0
        self.first: str | None = None
        self.stopped_early = False

    def note(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first is None:
            self.first = _cause(exc)
        logger.debug("skipping damaged data: %s", _cause(exc))

    def summary(self) -> str:
        """One sentence describing what was skipped ("" if nothing was)."""
        if not self.errors:
            return ""
        what = "reading stopped at a damaged packet" if self.stopped_early else "skipped"
        return f"{self.errors} damaged packet(s) ({what}; first error: {self.first})"


def decoded_frames(
    container: Any, stream: Any, name: str, strict: bool, log: DecodeLog
) -> Iterator:
    """Yield the decoded frames of ``stream`` from the container's current position.

    With ``strict=True`` any demuxing or decoding error raises
    :class:`MediaDecodeError`. Otherwise a packet that fails to decode is
    skipped and a demuxing error ends the stream early; both are noted in
    ``log``. The loop ends at the end of the data (FFmpeg's demuxers always
    reach it), after flushing the decoder.
    """
    demux = container.demux(stream)
    while True:
        try:
            packet = next(demux)
        except StopIteration:
            return
        except AvrecError:
            raise
        except Exception as exc:
            if strict:
                raise MediaDecodeError(f"cannot read {name}: {_cause(exc)}") from exc
            log.note(exc)
            log.stopped_early = True
            return
        try:
            frames = packet.decode()
        except AvrecError:
            raise
        except Exception as exc:
            if strict:
                raise MediaDecodeError(f"cannot decode {name}: {_cause(exc)}") from exc
            log.note(exc)
            continue
        yield from frames
