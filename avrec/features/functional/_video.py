"""Video frame preprocessing: normalisation and resizing (pure functions)."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = ["normalize_frames", "resize_frames"]


def _check_frames(frames: Any, name: str = "frames", min_dim: int = 3) -> torch.Tensor:
    layout = "(..., C, H, W)" if min_dim == 3 else "(..., T, C, H, W)"
    if not isinstance(frames, torch.Tensor):
        raise DataValidationError(f"{name} must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dim() < min_dim:
        raise DataValidationError(
            f"{name} must have shape {layout} (at least {min_dim} dims), got {tuple(frames.shape)}"
        )
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise DataValidationError(f"{name} must be uint8 or floating, got dtype {frames.dtype}")
    return frames


def _check_size(size: Any) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, numbers.Integral) else tuple(size)
    if len(pair) != 2 or not all(
        isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in pair
    ):
        raise ConfigurationError(f"size must be an int or a pair of ints >= 1, got {size!r}")
    return int(pair[0]), int(pair[1])


def _to_float(frames: torch.Tensor) -> torch.Tensor:
    return frames.float() if frames.dtype == torch.uint8 else frames


def _like(result: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Cast a float result back to ``frames``' dtype (uint8: rounded and clipped)."""
    if frames.dtype == torch.uint8:
        return result.round().clamp(0, 255).to(torch.uint8)
    return result


def normalize_frames(
    frames: torch.Tensor,
    mean: Sequence[float] | torch.Tensor,
    std: Sequence[float] | torch.Tensor,
) -> torch.Tensor:
    """Scale frames to ``[0, 1]`` and standardise each channel: ``(x - mean) / std``.

    Parameters
    ----------
    frames : torch.Tensor of shape (..., C, H, W)
        uint8 frames (divided by 255 first) or floating frames already in
        ``[0, 1]`` (used as they are).
    mean, std : sequence of C floats or torch.Tensor of shape (C,)
        Per-channel statistics of ``[0, 1]``-scaled frames; ``std > 0``.

    Returns
    -------
    torch.Tensor of shape (..., C, H, W)
        float32 for uint8 input, otherwise the input's dtype. Differentiable
        with respect to floating ``frames``.

    Raises
    ------
    DataValidationError
        If ``frames`` has fewer than three dims or an unsupported dtype.
    ConfigurationError
        If ``mean``/``std`` do not have one value per channel or ``std <= 0``.

    Examples
    --------
    >>> import torch
    >>> frames = torch.full((4, 3, 2, 2), 255, dtype=torch.uint8)
    >>> normalize_frames(frames, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]).unique()
    tensor([1.])
    """
    _check_frames(frames)
    x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames
    mean_t = torch.as_tensor(mean, dtype=x.dtype, device=x.device)
    std_t = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    channels = x.shape[-3]
    if mean_t.shape != (channels,) or std_t.shape != (channels,):
        raise ConfigurationError(
            f"mean and std must have one value per channel ({channels}), "
            f"got shapes {tuple(mean_t.shape)} and {tuple(std_t.shape)}"
        )
    if not bool((std_t > 0).all()):
        raise ConfigurationError(f"std must be > 0, got {std_t.tolist()}")
    return (x - mean_t[:, None, None]) / std_t[:, None, None]


def resize_frames(
    frames: torch.Tensor, size: int | tuple[int, int], *, antialias: bool = True
) -> torch.Tensor:
    """Resize frames with bilinear interpolation (:func:`torch.nn.functional.interpolate`).

    Parameters
    ----------
    frames : torch.Tensor of shape (..., C, H, W)
        uint8 or floating frames.
    size : int or (int, int)
        Output ``(height, width)``; an int gives a square.
    antialias : bool, default=True
        Low-pass filter when downscaling (as PIL does).

    Returns
    -------
    torch.Tensor of shape (..., C, height, width)
        Same dtype as ``frames`` (uint8 results are rounded). Differentiable
        with respect to floating ``frames``.

    Examples
    --------
    >>> import torch
    >>> resize_frames(torch.zeros(2, 8, 3, 32, 48, dtype=torch.uint8), (16, 24)).shape
    torch.Size([2, 8, 3, 16, 24])
    """
    _check_frames(frames)
    height, width = _check_size(size)
    lead = frames.shape[:-3]
    x = _to_float(frames).reshape(-1, *frames.shape[-3:])
    out = F.interpolate(
        x, size=(height, width), mode="bilinear", align_corners=False, antialias=antialias
    )
    return _like(out.reshape(*lead, *out.shape[-3:]), frames)
