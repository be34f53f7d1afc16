"""Seedable data augmentation for spectrograms, waveforms and frame sequences.

Every function draws its random numbers from the ``generator`` it is given
(``None``: torch's global generator), one row of uniforms per example, so a
batch gives the same result as its examples processed one after another with
the same generator. What an *example* is depends on the data:

* spectrogram masks: each ``(n_frames, n_mels)`` spectrogram;
* gain and noise: each ``(channels, time)`` clip (channels share the draw);
* frame augmentations: each ``(T, C, H, W)`` clip (all frames share the draw,
  so a crop or a flip is consistent over time).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F

from avrec.exceptions import ConfigurationError
from avrec.features.functional._audio import _check_float_tensor, _check_int
from avrec.features.functional._video import _check_frames, _check_size, _like, _to_float

__all__ = [
    "add_noise",
    "color_jitter",
    "frequency_mask",
    "random_gain",
    "random_horizontal_flip",
    "random_resized_crop",
    "temporal_jitter",
    "time_mask",
]


def _uniform(
    n: int, k: int, generator: torch.Generator | None, like: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """``(n, k)`` uniforms in ``[0, 1)`` drawn row by row on the generator's device."""
    device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand((n, k), generator=generator, device=device, dtype=dtype)
    return u.to(like.device)


def _check_range(low: Any, high: Any, name: str, minimum: float | None = None) -> None:
    ok = isinstance(low, numbers.Real) and isinstance(high, numbers.Real) and low <= high
    if not ok or (minimum is not None and low < minimum):
        bound = "" if minimum is None else f" and min >= {minimum}"
        raise ConfigurationError(f"{name} needs min <= max{bound}, got ({low!r}, {high!r})")


def _check_amount(value: Any, name: str, maximum: float | None = None) -> float:
    ok = isinstance(value, numbers.Real) and value >= 0 and (maximum is None or value <= maximum)
    if not ok:
        upper = "" if maximum is None else f" and <= {maximum}"
        raise ConfigurationError(f"{name} must be a number >= 0{upper}, got {value!r}")
    return float(value)


def _n_examples(x: torch.Tensor, event_dims: int) -> int:
    return math.prod(x.shape[:-event_dims])


def _mask_along(
    spec: torch.Tensor,
    axis: int,
    max_width: int,
    num_masks: int,
    generator: torch.Generator | None,
    min_width: int,
    mask_value: float,
) -> torch.Tensor:
    _check_float_tensor(spec, "spec", 2, "(..., n_frames, n_mels)")
    max_width = _check_int(max_width, "max_width", minimum=0)
    min_width = _check_int(min_width, "min_width", minimum=0)
    num_masks = _check_int(num_masks, "num_masks", minimum=0)
    if min_width > max_width:
        raise ConfigurationError(f"min_width ({min_width}) must be <= max_width ({max_width})")
    n, length = _n_examples(spec, 2), spec.shape[axis]
    u = _uniform(n, 2 * num_masks, generator, spec, torch.float64).reshape(n, num_masks, 2)
    high = min(max_width, length)
    low = min(min_width, high)
    widths = (low + (u[..., 0] * (high - low + 1)).floor()).clamp(max=high)
    starts = (u[..., 1] * (length - widths + 1)).floor()
    pos = torch.arange(length, device=spec.device, dtype=torch.float64)
    hit = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])  # (n, masks, L)
    mask = hit.any(dim=1).reshape(*spec.shape[:-2], length)
    mask = mask[..., :, None] if axis == -2 else mask[..., None, :]
    return spec.masked_fill(mask, mask_value)


def time_mask(
    spec: torch.Tensor,
    max_width: int,
    num_masks: int,
    generator: torch.Generator | None,
    *,
    min_width: int = 0,
    mask_value: float = 0.0,
) -> torch.Tensor:
    """Set ``num_masks`` random runs of frames of each spectrogram to ``mask_value``.

    SpecAugment's time masking (Park et al., 2019), drawn independently for
    every spectrogram with ``generator`` (unlike
    :func:`torchaudio.functional.mask_along_axis_iid`, which uses the global
    generator). Each mask has a width drawn uniformly from
    ``[min_width, max_width]`` (capped at ``n_frames``) and a uniform start such
    that it fits; masks may overlap.

    Parameters
    ----------
    spec : torch.Tensor of shape (..., n_frames, n_mels), floating
        Spectrograms (time-major, as :func:`log_mel_spectrogram` returns).
    max_width : int
        Largest mask width in frames (``>= 0``).
    num_masks : int
        Masks per spectrogram (``>= 0``).
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.
    min_width : int, default=0
        Smallest mask width.
    mask_value : float, default=0.0
        Value written into masked positions (for dB spectrograms consider the
        mean or the floor instead of 0).

    Returns
    -------
    torch.Tensor of shape (..., n_frames, n_mels)
        A new tensor; gradients flow to the unmasked entries.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> out = time_mask(torch.ones(2, 10, 4), 3, 1, g, min_width=3)
    >>> (out == 0).all(dim=-1).sum(dim=-1)  # exactly 3 frames per spectrogram
    tensor([3, 3])
    """
    return _mask_along(spec, -2, max_width, num_masks, generator, min_width, mask_value)


def frequency_mask(
    spec: torch.Tensor,
    max_width: int,
    num_masks: int,
    generator: torch.Generator | None,
    *,
    min_width: int = 0,
    mask_value: float = 0.0,
) -> torch.Tensor:
    """Set ``num_masks`` random runs of mel bands of each spectrogram to ``mask_value``.

    SpecAugment's frequency masking; see :func:`time_mask` for the sampling.

    Parameters
    ----------
    spec : torch.Tensor of shape (..., n_frames, n_mels), floating
        Spectrograms.
    max_width : int
        Largest mask width in bands (``>= 0``).
    num_masks : int
        Masks per spectrogram (``>= 0``).
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.
    min_width : int, default=0
        Smallest mask width.
    mask_value : float, default=0.0
        Value written into masked positions.

    Returns
    -------
    torch.Tensor of shape (..., n_frames, n_mels)

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> out = frequency_mask(torch.ones(10, 8), 2, 1, g, min_width=2)
    >>> int((out == 0).all(dim=0).sum())
    2
    """
    return _mask_along(spec, -1, max_width, num_masks, generator, min_width, mask_value)


def random_gain(
    waveform: torch.Tensor,
    min_gain_db: float,
    max_gain_db: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Multiply each clip by a gain drawn uniformly in decibels.

    Parameters
    ----------
    waveform : torch.Tensor of shape (..., channels, time), floating
        Audio clips; the channels of a clip share its gain.
    min_gain_db, max_gain_db : float
        Range of the gain in dB (amplitude factor ``10 ** (gain / 20)``).
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.

    Returns
    -------
    torch.Tensor of shape (..., channels, time)

    Examples
    --------
    >>> import torch
    >>> random_gain(torch.ones(1, 4), 20.0, 20.0, None)
    tensor([[10., 10., 10., 10.]])
    """
    _check_float_tensor(waveform, "waveform", 2, "(..., channels, time)")
    _check_range(min_gain_db, max_gain_db, "gain_db")
    u = _uniform(_n_examples(waveform, 2), 1, generator, waveform, waveform.dtype)
    gain_db = min_gain_db + u * (max_gain_db - min_gain_db)
    factor = torch.pow(10.0, gain_db / 20.0).reshape(*waveform.shape[:-2], 1, 1)
    return waveform * factor


def add_noise(
    waveform: torch.Tensor,
    min_snr_db: float,
    max_snr_db: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Add white Gaussian noise at a signal-to-noise ratio drawn uniformly in dB.

    The noise of each clip is scaled so that ``10 * log10(P_signal / P_noise)``
    equals the drawn SNR exactly, powers being means of squares over the
    clip's channels and samples. A silent clip stays silent. Noise is drawn
    with the Box-Muller transform from the generator's uniforms (one row per
    clip), so batches match their members.

    Parameters
    ----------
    waveform : torch.Tensor of shape (..., channels, time), floating
        Audio clips.
    min_snr_db, max_snr_db : float
        Range of the SNR in dB.
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator. The noise
        is drawn on the generator's device and moved to ``waveform``'s.

    Returns
    -------
    torch.Tensor of shape (..., channels, time)
        Differentiable with respect to ``waveform``.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> clean = torch.sin(torch.arange(800.0) / 5)[None]
    >>> noisy = add_noise(clean, 10.0, 10.0, g)
    >>> snr = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    >>> round(float(snr), 3)
    10.0
    """
    _check_float_tensor(waveform, "waveform", 2, "(..., channels, time)")
    _check_range(min_snr_db, max_snr_db, "snr_db")
    n = _n_examples(waveform, 2)
    size = waveform.shape[-2] * waveform.shape[-1]
    u = _uniform(n, 1 + 2 * size, generator, waveform, waveform.dtype)
    snr_db = min_snr_db + u[:, 0] * (max_snr_db - min_snr_db)
    radius = torch.sqrt(-2.0 * torch.log1p(-u[:, 1 : 1 + size]))  # 1 - u in (0, 1]
    noise = radius * torch.cos((2.0 * math.pi) * u[:, 1 + size :])
    signal = waveform.reshape(n, size)
    p_signal = signal.pow(2).mean(dim=1)
    p_noise = noise.pow(2).mean(dim=1).clamp(min=torch.finfo(noise.dtype).tiny)
    scale = torch.sqrt(p_signal / (p_noise * torch.pow(10.0, snr_db / 10.0)))
    return (signal + scale[:, None] * noise).reshape(waveform.shape)


def random_horizontal_flip(
    frames: torch.Tensor, p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Mirror each clip left-right with probability ``p`` (all its frames together).

    Parameters
    ----------
    frames : torch.Tensor of shape (..., T, C, H, W)
        uint8 or floating clips.
    p : float
        Flip probability in ``[0, 1]``.
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.

    Returns
    -------
    torch.Tensor of shape (..., T, C, H, W)

    Examples
    --------
    >>> import torch
    >>> clip = torch.arange(3.0).reshape(1, 1, 1, 3)
    >>> random_horizontal_flip(clip, 1.0, None).flatten()
    tensor([2., 1., 0.])
    """
    _check_frames(frames, min_dim=4)
    p = _check_amount(p, "p", maximum=1.0)
    u = _uniform(_n_examples(frames, 4), 1, generator, frames, torch.float64)
    flip = (u[:, 0] < p).reshape(*frames.shape[:-4], 1, 1, 1, 1)
    return torch.where(flip, frames.flip(-1), frames)


def random_resized_crop(
    frames: torch.Tensor,
    size: int | tuple[int, int],
    generator: torch.Generator | None,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
) -> torch.Tensor:
    """Crop a random box from each clip (the same box in all its frames) and resize it.

    The box covers a fraction of the frame area drawn uniformly from ``scale``
    and has a width/height ratio drawn log-uniformly from ``ratio`` (as in
    torchvision's ``RandomResizedCrop``); instead of rejection sampling, a side
    longer than the frame is clipped to it. The box is resampled bilinearly
    with :func:`torch.nn.functional.grid_sample` (no antialiasing), all clips
    at once.

    Parameters
    ----------
    frames : torch.Tensor of shape (..., T, C, H, W)
        uint8 or floating clips.
    size : int or (int, int)
        Output ``(height, width)``; an int gives a square.
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.
    scale : (float, float), default=(0.08, 1.0)
        Range of the box area as a fraction of the frame area, in ``(0, 1]``.
    ratio : (float, float), default=(3/4, 4/3)
        Range of the box's width/height ratio in pixels.

    Returns
    -------
    torch.Tensor of shape (..., T, C, height, width)
        Same dtype as ``frames``.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> random_resized_crop(torch.zeros(2, 4, 3, 32, 32), 16, g).shape
    torch.Size([2, 4, 3, 16, 16])
    """
    _check_frames(frames, min_dim=4)
    height, width = _check_size(size)
    _check_range(*scale, "scale", minimum=0.0)
    _check_range(*ratio, "ratio", minimum=0.0)
    if scale[0] <= 0 or scale[1] > 1 or ratio[0] <= 0:
        raise ConfigurationError(f"need 0 < scale <= 1 and ratio > 0, got {scale}, {ratio}")
    *lead, t, c, h, w = frames.shape
    n = _n_examples(frames, 4)
    u = _uniform(n, 4, generator, frames, torch.float64)
    area = scale[0] + u[:, 0] * (scale[1] - scale[0])
    log_r = math.log(ratio[0]) + u[:, 1] * (math.log(ratio[1]) - math.log(ratio[0]))
    aspect = torch.exp(log_r)
    box_w = torch.sqrt(area * aspect * h / w).clamp(max=1.0)  # fractions of the frame
    box_h = torch.sqrt(area / aspect * w / h).clamp(max=1.0)
    centre_x = 2.0 * (u[:, 2] * (1.0 - box_w) + box_w / 2.0) - 1.0  # in [-1, 1] coordinates
    centre_y = 2.0 * (u[:, 3] * (1.0 - box_h) + box_h / 2.0) - 1.0
    zero = torch.zeros_like(box_w)
    theta = torch.stack(
        [torch.stack([box_w, zero, centre_x], -1), torch.stack([zero, box_h, centre_y], -1)], -2
    )
    x = _to_float(frames).reshape(n * t, c, h, w)
    theta = theta.to(x.dtype).repeat_interleave(t, dim=0)
    grid = F.affine_grid(theta, [n * t, c, height, width], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return _like(out.reshape(*lead, t, c, height, width), frames)


def color_jitter(
    frames: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Randomly change the brightness, contrast and saturation of each clip.

    Factors are drawn uniformly from ``[max(0, 1 - v), 1 + v]`` for each of the
    three amounts ``v`` and applied in that fixed order, as torchvision's
    ``adjust_*`` functions do: brightness scales the pixels, contrast blends
    each frame with the mean of its grayscale, saturation blends each pixel
    with its grayscale value (three-channel frames only). Results are clipped
    to the valid range (``[0, 255]`` for uint8, ``[0, 1]`` for floats), so apply
    this before :func:`normalize_frames`.

    Parameters
    ----------
    frames : torch.Tensor of shape (..., T, C, H, W)
        uint8 clips or floating clips in ``[0, 1]``.
    brightness, contrast, saturation : float
        Amounts ``>= 0``; 0 disables that change.
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.

    Returns
    -------
    torch.Tensor of shape (..., T, C, H, W)
        Same dtype as ``frames``.

    Examples
    --------
    >>> import torch
    >>> clip = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
    >>> torch.equal(color_jitter(clip, 0.0, 0.0, 0.0, None), clip)
    True
    """
    _check_frames(frames, min_dim=4)
    amounts = [
        _check_amount(v, name)
        for name, v in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        )
    ]
    n = _n_examples(frames, 4)
    x = _to_float(frames)
    u = _uniform(n, 3, generator, frames, x.dtype)
    high = torch.tensor([1.0 + a for a in amounts], dtype=x.dtype, device=x.device)
    low = torch.tensor([max(0.0, 1.0 - a) for a in amounts], dtype=x.dtype, device=x.device)
    factors = low + u * (high - low)
    factors = factors.reshape(*frames.shape[:-4], 1, 1, 1, 1, 3)
    bound = 255.0 if frames.dtype == torch.uint8 else 1.0

    def gray(y: torch.Tensor) -> torch.Tensor:
        if y.shape[-3] != 3:
            return y.mean(dim=-3, keepdim=True)
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=y.dtype, device=y.device)
        return (y * weights[:, None, None]).sum(dim=-3, keepdim=True)

    x = (x * factors[..., 0]).clamp(0.0, bound)
    mean = gray(x).mean(dim=(-3, -2, -1), keepdim=True)
    x = (factors[..., 1] * x + (1.0 - factors[..., 1]) * mean).clamp(0.0, bound)
    if x.shape[-3] == 3:
        x = (factors[..., 2] * x + (1.0 - factors[..., 2]) * gray(x)).clamp(0.0, bound)
    return _like(x, frames)


def temporal_jitter(
    frames: torch.Tensor, max_shift: int, max_jitter: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Resample the frame indices of each clip: a random shift plus per-frame jitter.

    Output frame ``t`` of a clip is input frame
    ``clip(t + shift + jitter_t, 0, T - 1)``, with ``shift`` uniform in
    ``[-max_shift, max_shift]`` per clip and ``jitter_t`` uniform in
    ``[-max_jitter, max_jitter]`` per frame; the indices are then sorted, so
    time still runs forward while some frames repeat and others drop out.

    Parameters
    ----------
    frames : torch.Tensor of shape (..., T, C, H, W)
        uint8 or floating clips.
    max_shift : int
        Largest shift of the whole clip, in frames (``>= 0``).
    max_jitter : int
        Largest per-frame displacement, in frames (``>= 0``).
    generator : torch.Generator or None
        Source of randomness; ``None`` uses torch's global generator.

    Returns
    -------
    torch.Tensor of shape (..., T, C, H, W)
        Frames of the input, gathered (differentiable for floating input).

    Examples
    --------
    >>> import torch
    >>> clip = torch.arange(6.0).reshape(6, 1, 1, 1)
    >>> g = torch.Generator().manual_seed(0)
    >>> temporal_jitter(clip, 0, 0, g).flatten()
    tensor([0., 1., 2., 3., 4., 5.])
    >>> bool((temporal_jitter(clip, 2, 1, g).flatten().diff() >= 0).all())
    True
    """
    _check_frames(frames, min_dim=4)
    max_shift = _check_int(max_shift, "max_shift", minimum=0)
    max_jitter = _check_int(max_jitter, "max_jitter", minimum=0)
    n, t = _n_examples(frames, 4), frames.shape[-4]
    u = _uniform(n, 1 + t, generator, frames, torch.float64)
    shift = (u[:, :1] * (2 * max_shift + 1)).floor() - max_shift
    jitter = (u[:, 1:] * (2 * max_jitter + 1)).floor() - max_jitter
    base = torch.arange(t, device=frames.device, dtype=torch.float64)
    index = (base + shift + jitter).clamp(0, t - 1).long().sort(dim=1).values  # (n, t)
    flat = frames.reshape(n, t, -1)
    out = flat[torch.arange(n, device=frames.device)[:, None], index]
    return out.reshape(frames.shape)
