"""The decoded clips that :mod:`avrec.media` returns: :class:`AudioClip` and :class:`VideoClip`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["AudioClip", "VideoClip"]


@dataclass(frozen=True, eq=False)
class AudioClip:
    """Decoded audio: float32 samples of shape ``(channels, time)`` and their rate.

    Parameters
    ----------
    samples : torch.Tensor of shape (channels, time), dtype float32
        Amplitudes, nominally in ``[-1, 1]``.
    sample_rate : int
        Samples per second.
    source : str
        Name of the file the clip came from (a path, or ``"<N bytes>"``).
    start : float, default=0.0
        Time of the first sample in seconds, from the start of the file.

    Examples
    --------
    >>> import torch
    >>> clip = AudioClip(torch.zeros(1, 8000), 16000, "silence")
    >>> clip.num_channels, clip.num_samples, clip.duration
    (1, 8000, 0.5)
    """

    samples: torch.Tensor
    sample_rate: int
    source: str
    start: float = 0.0

    @property
    def num_channels(self) -> int:
        """Number of channels (rows of :attr:`samples`)."""
        return int(self.samples.shape[0])

    @property
    def num_samples(self) -> int:
        """Number of samples per channel."""
        return int(self.samples.shape[1])

    @property
    def duration(self) -> float:
        """Length in seconds (``num_samples / sample_rate``)."""
        return self.num_samples / float(self.sample_rate)


@dataclass(frozen=True, eq=False)
class VideoClip:
    """Decoded video frames of shape ``(time, 3, height, width)`` with their timestamps.

    Parameters
    ----------
    frames : torch.Tensor of shape (T, 3, H, W), dtype uint8
        RGB frames.
    timestamps : numpy.ndarray of shape (T,), dtype float64
        Presentation time of each frame in seconds from the start of the file.
        Repeated values mean a frame was used more than once (a video with
        fewer frames than requested).
    fps : float
        The stream's average frame rate (frames per second); 0.0 if unknown.
    source : str
        Name of the file the clip came from.

    Examples
    --------
    >>> import numpy as np, torch
    >>> clip = VideoClip(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), np.arange(4) / 25.0, 25.0, "x")
    >>> clip.num_frames, clip.height, clip.width
    (4, 8, 8)
    """

    frames: torch.Tensor
    timestamps: np.ndarray
    fps: float
    source: str

    @property
    def num_frames(self) -> int:
        """Number of frames ``T``."""
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        """Frame height in pixels."""
        return int(self.frames.shape[2])

    @property
    def width(self) -> int:
        """Frame width in pixels."""
        return int(self.frames.shape[3])
