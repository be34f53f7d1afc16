"""Decoding audio and video with PyAV: sampled frames, resampled audio, streaming.

Every reader accepts a path, the bytes of a file or a binary file object,
closes what it opens, and reports bad media as
:class:`~avrec.exceptions.MediaDecodeError` (a missing path as
``FileNotFoundError``). Video comes back as uint8 tensors of shape
``(T, 3, H, W)``, audio as float32 tensors of shape ``(channels, time)``.

Examples
--------
>>> import tempfile, pathlib, numpy as np
>>> from avrec.media import probe, read_audio, read_video, write_video
>>> path = pathlib.Path(tempfile.mkdtemp()) / "demo.mp4"
>>> tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)[None] * 0.3
>>> write_video(path, np.zeros((25, 32, 32, 3), np.uint8), 25, audio=tone, sample_rate=16000)
>>> probe(path).has_audio
True
>>> tuple(read_video(path, num_frames=4).frames.shape)
(4, 3, 32, 32)
>>> read_audio(path, sample_rate=8000, duration=0.5).num_samples
4000
"""

from avrec.media._audio import iter_audio_chunks, read_audio
from avrec.media._clips import AudioClip, VideoClip
from avrec.media._encode import write_audio, write_video
from avrec.media._info import MediaInfo, StreamInfo, probe
from avrec.media._video import iter_frames, read_video

__all__ = [
    "AudioClip",
    "MediaInfo",
    "StreamInfo",
    "VideoClip",
    "iter_audio_chunks",
    "iter_frames",
    "probe",
    "read_audio",
    "read_video",
    "write_audio",
    "write_video",
]
