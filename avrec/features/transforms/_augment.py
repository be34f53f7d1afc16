"""Augmentation modules: :class:`SpecAugment`, :class:`WaveformAugment`, :class:`FrameAugment`.

Each draws from its own :class:`torch.Generator` (built from an int seed, or
given), so results do not depend on ``torch.manual_seed``; each is the identity
in ``eval()`` mode.
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features.functional._audio import _check_int
from avrec.features.functional._augment import (
    _check_amount,
    _check_range,
    add_noise,
    color_jitter,
    frequency_mask,
    random_gain,
    random_horizontal_flip,
    random_resized_crop,
    temporal_jitter,
    time_mask,
)
from avrec.features.functional._video import _check_size

__all__ = ["FrameAugment", "SpecAugment", "WaveformAugment"]


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, numbers.Integral) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(int(generator))
    raise ConfigurationError(
        f"generator must be None, an int seed or a torch.Generator, got {type(generator).__name__}"
    )


class _Augment(nn.Module):
    generator: torch.Generator | None

    def manual_seed(self, seed: int) -> _Augment:
        """Reseed the module's generator (creating a CPU one if it had none); returns self."""
        self.generator = _as_generator(int(seed))
        return self


class SpecAugment(_Augment):
    """SpecAugment time and frequency masking of spectrograms (Park et al., 2019).

    Applies :func:`~avrec.features.functional.time_mask` then
    :func:`~avrec.features.functional.frequency_mask` in training mode; the
    identity in ``eval()`` mode. For waveform gain and noise see
    :class:`WaveformAugment`.

    Parameters
    ----------
    time_mask_width : int, default=20
        Largest time-mask width in frames.
    num_time_masks : int, default=2
    freq_mask_width : int, default=8
        Largest frequency-mask width in mel bands.
    num_freq_masks : int, default=2
    mask_value : float, default=0.0
    generator : torch.Generator, int or None, default=None
        Source of randomness; an int seeds a new CPU generator, ``None`` uses
        torch's global generator.

    Examples
    --------
    >>> import torch
    >>> aug = SpecAugment(generator=0)
    >>> spec = torch.ones(2, 96, 64)
    >>> bool((aug(spec) == 0).any()), torch.equal(aug.eval()(spec), spec)
    (True, True)
    """

    def __init__(
        self,
        time_mask_width: int = 20,
        num_time_masks: int = 2,
        freq_mask_width: int = 8,
        num_freq_masks: int = 2,
        mask_value: float = 0.0,
        generator: torch.Generator | int | None = None,
    ) -> None:
        super().__init__()
        self.time_mask_width = _check_int(time_mask_width, "time_mask_width", 0)
        self.num_time_masks = _check_int(num_time_masks, "num_time_masks", 0)
        self.freq_mask_width = _check_int(freq_mask_width, "freq_mask_width", 0)
        self.num_freq_masks = _check_int(num_freq_masks, "num_freq_masks", 0)
        self.mask_value = float(mask_value)
        self.generator = _as_generator(generator)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """Mask (training mode) or pass through (eval mode).

        Parameters
        ----------
        spec : torch.Tensor of shape (..., n_frames, n_mels)

        Returns
        -------
        torch.Tensor of shape (..., n_frames, n_mels)
        """
        if not self.training:
            return spec
        spec = time_mask(
            spec, self.time_mask_width, self.num_time_masks, self.generator,
            mask_value=self.mask_value,
        )  # fmt: skip
        return frequency_mask(
            spec, self.freq_mask_width, self.num_freq_masks, self.generator,
            mask_value=self.mask_value,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"time_mask_width={self.time_mask_width}, num_time_masks={self.num_time_masks}, "
            f"freq_mask_width={self.freq_mask_width}, num_freq_masks={self.num_freq_masks}"
        )


class WaveformAugment(_Augment):
    """Random gain, then additive white noise at a random SNR, per clip.

    Applies :func:`~avrec.features.functional.random_gain` and
    :func:`~avrec.features.functional.add_noise` in training mode; the
    identity in ``eval()`` mode.

    Parameters
    ----------
    gain_db : (float, float) or None, default=(-6.0, 6.0)
        Gain range in dB; ``None`` disables the gain.
    snr_db : (float, float) or None, default=(10.0, 40.0)
        SNR range in dB; ``None`` disables the noise.
    generator : torch.Generator, int or None, default=None
        Source of randomness; an int seeds a new CPU generator.

    Examples
    --------
    >>> import torch
    >>> aug = WaveformAugment(gain_db=None, snr_db=(0.0, 0.0), generator=0)
    >>> wave = torch.ones(2, 1, 100)  # (batch, channels, time)
    >>> noisy = aug(wave)
    >>> torch.allclose((noisy - wave).pow(2).mean(dim=(1, 2)), torch.ones(2))
    True
    """

    def __init__(
        self,
        gain_db: tuple[float, float] | None = (-6.0, 6.0),
        snr_db: tuple[float, float] | None = (10.0, 40.0),
        generator: torch.Generator | int | None = None,
    ) -> None:
        super().__init__()
        if gain_db is not None:
            _check_range(*gain_db, "gain_db")
        if snr_db is not None:
            _check_range(*snr_db, "snr_db")
        self.gain_db = gain_db
        self.snr_db = snr_db
        self.generator = _as_generator(generator)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Augment (training mode) or pass through (eval mode).

        Parameters
        ----------
        waveform : torch.Tensor of shape (..., channels, time)

        Returns
        -------
        torch.Tensor of shape (..., channels, time)
        """
        if not self.training:
            return waveform
        if self.gain_db is not None:
            waveform = random_gain(waveform, *self.gain_db, self.generator)
        if self.snr_db is not None:
            waveform = add_noise(waveform, *self.snr_db, self.generator)
        return waveform

    def extra_repr(self) -> str:
        return f"gain_db={self.gain_db}, snr_db={self.snr_db}"


class FrameAugment(_Augment):
    """Temporal jitter, random resized crop, horizontal flip and colour jitter of clips.

    In training mode applies, in this order,
    :func:`~avrec.features.functional.temporal_jitter`,
    :func:`~avrec.features.functional.random_resized_crop`,
    :func:`~avrec.features.functional.random_horizontal_flip` and
    :func:`~avrec.features.functional.color_jitter`, each drawn once per clip
    so all frames of a clip change together; the identity in ``eval()`` mode.
    Use it on uint8 (or ``[0, 1]``) frames, before :class:`NormalizeFrames`.

    Parameters
    ----------
    size : int, (int, int) or None, default=None
        Output size of the crop; ``None`` keeps the input size.
    scale : (float, float) or None, default=(0.5, 1.0)
        Crop area range; ``None`` disables cropping (``size`` must then be None).
    ratio : (float, float), default=(3/4, 4/3)
    flip_p : float, default=0.5
    brightness, contrast, saturation : float, default=0.2
    max_shift : int, default=0
    max_jitter : int, default=1
    generator : torch.Generator, int or None, default=None
        Source of randomness; an int seeds a new CPU generator.

    Examples
    --------
    >>> import torch
    >>> aug = FrameAugment(size=16, generator=0)
    >>> clips = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    >>> aug(clips).shape, aug.eval()(clips).shape
    (torch.Size([2, 4, 3, 16, 16]), torch.Size([2, 4, 3, 32, 32]))
    """

    def __init__(
        self,
        size: int | tuple[int, int] | None = None,
        scale: tuple[float, float] | None = (0.5, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        flip_p: float = 0.5,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        max_shift: int = 0,
        max_jitter: int = 1,
        generator: torch.Generator | int | None = None,
    ) -> None:
        super().__init__()
        if scale is None and size is not None:
            raise ConfigurationError("size needs cropping (scale=None); use ResizeFrames instead")
        self.size = None if size is None else _check_size(size)
        if scale is not None:
            _check_range(*scale, "scale", minimum=0.0)
        _check_range(*ratio, "ratio", minimum=0.0)
        self.scale = scale
        self.ratio = ratio
        self.flip_p = _check_amount(flip_p, "flip_p", maximum=1.0)
        self.brightness = _check_amount(brightness, "brightness")
        self.contrast = _check_amount(contrast, "contrast")
        self.saturation = _check_amount(saturation, "saturation")
        self.max_shift = _check_int(max_shift, "max_shift", 0)
        self.max_jitter = _check_int(max_jitter, "max_jitter", 0)
        self.generator = _as_generator(generator)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Augment (training mode) or pass through (eval mode).

        Parameters
        ----------
        frames : torch.Tensor of shape (..., T, C, H, W)
            uint8 or ``[0, 1]`` floating clips.

        Returns
        -------
        torch.Tensor of shape (..., T, C, height, width)
            Same dtype; ``(height, width)`` is ``size`` when cropping with a size.
        """
        if not self.training:
            return frames
        g = self.generator
        if self.max_shift or self.max_jitter:
            frames = temporal_jitter(frames, self.max_shift, self.max_jitter, g)
        if self.scale is not None:
            size = self.size or (frames.shape[-2], frames.shape[-1])
            frames = random_resized_crop(frames, size, g, scale=self.scale, ratio=self.ratio)
        if self.flip_p:
            frames = random_horizontal_flip(frames, self.flip_p, g)
        if self.brightness or self.contrast or self.saturation:
            frames = color_jitter(frames, self.brightness, self.contrast, self.saturation, g)
        return frames

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, flip_p={self.flip_p}, "
            f"brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, max_shift={self.max_shift}, "
            f"max_jitter={self.max_jitter}"
        )
