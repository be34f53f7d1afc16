"""Frame preprocessing modules: :class:`NormalizeFrames` and :class:`ResizeFrames`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from avrec.features.functional._video import _check_size, normalize_frames, resize_frames

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "NormalizeFrames", "ResizeFrames"]

#: Per-channel RGB mean of ImageNet, for ``[0, 1]``-scaled frames.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: Per-channel RGB standard deviation of ImageNet, for ``[0, 1]``-scaled frames.
IMAGENET_STD = (0.229, 0.224, 0.225)


class NormalizeFrames(nn.Module):
    """uint8 frames to standardised floats: ``(x / 255 - mean) / std`` per channel.

    Wraps :func:`~avrec.features.functional.normalize_frames`; ``mean`` and
    ``std`` are non-persistent buffers (they follow ``.to()``).

    Parameters
    ----------
    mean : sequence of float, default=IMAGENET_MEAN
    std : sequence of float, default=IMAGENET_STD

    Examples
    --------
    >>> import torch
    >>> frames = torch.zeros(2, 8, 3, 4, 4, dtype=torch.uint8)  # (B, T, C, H, W)
    >>> NormalizeFrames([0.5] * 3, [0.25] * 3)(frames).unique()
    tensor([-2.])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: Sequence[float] | torch.Tensor = IMAGENET_MEAN,
        std: Sequence[float] | torch.Tensor = IMAGENET_STD,
    ) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        normalize_frames(torch.zeros(mean_t.numel(), 1, 1), mean_t, std_t)  # validates
        self.register_buffer("mean", mean_t, persistent=False)
        self.register_buffer("std", std_t, persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Normalise.

        Parameters
        ----------
        frames : torch.Tensor of shape (..., C, H, W)
            uint8, or floating in ``[0, 1]``.

        Returns
        -------
        torch.Tensor of shape (..., C, H, W), floating
        """
        return normalize_frames(frames, self.mean, self.std)

    def extra_repr(self) -> str:
        return f"mean={self.mean.tolist()}, std={self.std.tolist()}"


class ResizeFrames(nn.Module):
    """Bilinear (antialiased) resize of frames to ``size``.

    Wraps :func:`~avrec.features.functional.resize_frames`.

    Parameters
    ----------
    size : int or (int, int)
        Output ``(height, width)``; an int gives a square.
    antialias : bool, default=True

    Examples
    --------
    >>> import torch
    >>> ResizeFrames(16)(torch.zeros(8, 3, 64, 48, dtype=torch.uint8)).shape
    torch.Size([8, 3, 16, 16])
    """

    def __init__(self, size: int | tuple[int, int], antialias: bool = True) -> None:
        super().__init__()
        self.size = _check_size(size)
        self.antialias = antialias

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Resize.

        Parameters
        ----------
        frames : torch.Tensor of shape (..., C, H, W)

        Returns
        -------
        torch.Tensor of shape (..., C, height, width), same dtype
        """
        return resize_frames(frames, self.size, antialias=self.antialias)

    def extra_repr(self) -> str:
        return f"size={self.size}, antialias={self.antialias}"
