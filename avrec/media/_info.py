"""Reading a media file's header without decoding it: :func:`probe`."""

from __future__ import annotations

from dataclasses import dataclass

from avrec.exceptions import MediaDecodeError
from avrec.media._source import (
    Source,
    is_cover_art,
    media_streams,
    open_source,
    stream_end,
    time_origin,
)

__all__ = ["MediaInfo", "StreamInfo", "probe"]


@dataclass(frozen=True)
class StreamInfo:
    """One stream of a media file.

    Parameters
    ----------
    index : int
        Position of the stream in the file (over all kinds).
    kind : str
        ``"video"``, ``"audio"``, ``"subtitle"``, ``"data"`` or ``"attachment"``.
    codec : str or None
        FFmpeg's codec name (``"h264"``, ``"aac"`` ...), None when unknown.
    cover_art : bool, default=False
        True for a video stream that is an attached picture (album art), which
        the readers do not treat as video.
    """

    index: int
    kind: str
    codec: str | None
    cover_art: bool = False


@dataclass(frozen=True)
class MediaInfo:
    """What :func:`probe` learns from a file's header.

    Video fields describe the first video stream (cover art excluded) and
    audio fields the first audio stream; they are None when the file has no
    such stream or does not declare the value.

    Parameters
    ----------
    source : str
        Name of the file.
    format : str
        FFmpeg's container format name (``"mov,mp4,m4a,3gp,3g2,mj2"``, ``"wav"`` ...).
    duration : float or None
        Length in seconds, None if the file does not declare it.
    streams : tuple of StreamInfo
        Every stream, in file order.
    fps : float or None
        Average frame rate of the first video stream.
    width, height : int or None
        Frame size of the first video stream in pixels.
    n_frames : int or None
        Number of frames of the first video stream, when the container records it.
    sample_rate : int or None
        Sample rate of the first audio stream in Hz.
    channels : int or None
        Channel count of the first audio stream.
    """

    source: str
    format: str
    duration: float | None
    streams: tuple[StreamInfo, ...]
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    n_frames: int | None = None
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def has_video(self) -> bool:
        """True if the file has at least one video stream that is not cover art."""
        return any(s.kind == "video" and not s.cover_art for s in self.streams)

    @property
    def has_audio(self) -> bool:
        """True if the file has at least one audio stream."""
        return any(s.kind == "audio" for s in self.streams)


def _codec_name(stream) -> str | None:
    try:
        return stream.codec_context.name
    except Exception:  # a stream without a decoder in this FFmpeg build
        return None


def probe(source: Source) -> MediaInfo:
    """Describe a media file from its header, without decoding it.

    Parameters
    ----------
    source : str, path-like, bytes or binary file object
        The media file.

    Returns
    -------
    MediaInfo
        Duration, streams, and the first video/audio stream's properties.

    Raises
    ------
    FileNotFoundError
        If ``source`` is a path that does not exist.
    MediaDecodeError
        If the data is not a media file FFmpeg can open, or has no streams.

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np
    >>> from avrec.media import probe, write_video
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "clip.mp4"
    >>> write_video(path, np.zeros((10, 32, 48, 3), np.uint8), fps=10)
    >>> info = probe(path)
    >>> info.has_video, info.has_audio, info.width, info.height, info.fps, info.n_frames
    (True, False, 48, 32, 10.0, 10)
    >>> round(info.duration, 2)
    1.0
    """
    with open_source(source) as (container, name):
        streams = tuple(
            StreamInfo(s.index, s.type, _codec_name(s), is_cover_art(s)) for s in container.streams
        )
        if not streams:
            raise MediaDecodeError(f"{name} contains no streams")
        fields: dict = {}
        origin = time_origin(container)
        duration = None
        if container.duration and container.duration > 0:
            duration = container.duration / 1_000_000
        videos, audios = media_streams(container, "video"), media_streams(container, "audio")
        if videos:
            video = videos[0]
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fields.update(
                fps=float(rate) if rate else None,
                width=int(video.width) or None,
                height=int(video.height) or None,
                n_frames=int(video.frames) if video.frames and video.frames > 0 else None,
            )
            if duration is None:
                duration = stream_end(container, video, origin)[0]
        if audios:
            audio = audios[0]
            fields.update(
                sample_rate=int(audio.rate) or None,
                channels=int(audio.channels) or None,
            )
            if duration is None:
                duration = stream_end(container, audio, origin)[0]
        return MediaInfo(
            source=name,
            format=container.format.name,
            duration=duration,
            streams=streams,
            **fields,
        )
