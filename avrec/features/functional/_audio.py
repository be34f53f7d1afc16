"""Audio front end: log-mel spectrograms and VGGish patches (pure functions)."""

from __future__ import annotations

import math
import numbers
from typing import Any, Literal

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = ["log_mel_spectrogram", "vggish_patches"]


def _check_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_float_tensor(x: Any, name: str, min_dim: int, layout: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise DataValidationError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise DataValidationError(
            f"{name} must have shape {layout} (at least {min_dim} dims), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise DataValidationError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    return x


def _check_frontend(
    sample_rate: int,
    n_fft: int,
    win_length: int,
    hop_length: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    power: float,
    mel_scale: str,
    eps: float,
    top_db: float | None,
) -> None:
    _check_int(sample_rate, "sample_rate")
    _check_int(n_fft, "n_fft")
    _check_int(win_length, "win_length")
    _check_int(hop_length, "hop_length")
    _check_int(n_mels, "n_mels")
    if win_length > n_fft:
        raise ConfigurationError(f"win_length ({win_length}) must be <= n_fft ({n_fft})")
    if not 0.0 <= f_min < f_max <= sample_rate / 2:
        raise ConfigurationError(
            f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, f_max={f_max}, "
            f"sample_rate={sample_rate}"
        )
    if not power > 0:
        raise ConfigurationError(f"power must be > 0, got {power}")
    if mel_scale not in ("htk", "slaney"):
        raise ConfigurationError(f"mel_scale must be 'htk' or 'slaney', got {mel_scale!r}")
    if not eps > 0:
        raise ConfigurationError(f"eps must be > 0, got {eps}")
    if top_db is not None and not top_db > 0:
        raise ConfigurationError(f"top_db must be None or > 0, got {top_db}")


def _mel_fbanks(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float, f_max: float, mel_scale: str
) -> torch.Tensor:
    """Triangular mel filters of shape ``(n_fft // 2 + 1, n_mels)`` (no area normalisation)."""
    return AF.melscale_fbanks(
        n_fft // 2 + 1, float(f_min), float(f_max), n_mels, sample_rate, None, mel_scale
    )


def _log_mel(
    waveform: torch.Tensor,
    window: torch.Tensor,
    fbanks: torch.Tensor,
    n_fft: int,
    hop_length: int,
    power: float,
    center: bool,
    eps: float,
    top_db: float | None,
) -> torch.Tensor:
    """Core of :func:`log_mel_spectrogram` given a window and a filterbank (no validation)."""
    win_length = window.shape[0]
    lead, n = waveform.shape[:-1], waveform.shape[-1]
    x = waveform.reshape(-1, n)
    if center:
        x = F.pad(x, (win_length // 2, win_length // 2))
    if x.shape[-1] < win_length:  # shorter than one window: one zero-padded frame
        x = F.pad(x, (0, win_length - x.shape[-1]))
    frames = x.unfold(-1, win_length, hop_length) * window  # (N, n_frames, win_length)
    spec = torch.fft.rfft(frames, n=n_fft).abs()  # (N, n_frames, n_fft // 2 + 1)
    if power != 1.0:
        spec = spec.pow(power)
    mel = spec @ fbanks  # (N, n_frames, n_mels)
    log_mel = (20.0 / power) * torch.log10(mel.clamp(min=eps))
    if top_db is not None:
        peak = log_mel.amax(dim=(-2, -1), keepdim=True)
        log_mel = torch.maximum(log_mel, peak - top_db)
    return log_mel.reshape(*lead, *log_mel.shape[-2:])


def log_mel_spectrogram(
    waveform: torch.Tensor,
    sample_rate: int,
    n_fft: int,
    win_length: int,
    hop_length: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    *,
    power: float = 2.0,
    center: bool = False,
    mel_scale: Literal["htk", "slaney"] = "htk",
    eps: float = 1e-10,
    top_db: float | None = None,
) -> torch.Tensor:
    """Log-mel spectrogram in decibels, time-major: ``(..., n_frames, n_mels)``.

    Frames of ``win_length`` samples start every ``hop_length`` samples, are
    multiplied by a periodic Hann window, zero-padded to ``n_fft`` and
    transformed with a real FFT (the framing of VGGish's ``mel_features``).
    The ``|X| ** power`` spectrum goes through triangular mel filters
    (:func:`torchaudio.functional.melscale_fbanks`, no area normalisation) and
    is converted to decibels: ``(20 / power) * log10(max(mel, eps))``, which is
    :class:`torchaudio.transforms.AmplitudeToDB` (``"power"`` for ``power=2``,
    ``"magnitude"`` for ``power=1``).

    Parameters
    ----------
    waveform : torch.Tensor of shape (..., time), floating
        Audio samples; every leading index is an independent signal.
    sample_rate : int
        Samples per second of ``waveform``.
    n_fft : int
        FFT size (>= ``win_length``); gives ``n_fft // 2 + 1`` frequency bins.
    win_length : int
        Window (frame) length in samples.
    hop_length : int
        Samples between the starts of consecutive frames.
    n_mels : int
        Number of mel bands.
    f_min, f_max : float
        Lowest and highest frequency of the mel filterbank in Hz,
        ``0 <= f_min < f_max <= sample_rate / 2``.
    power : float, default=2.0
        Exponent of the magnitude spectrum (1: magnitude, 2: power).
    center : bool, default=False
        If True, zero-pad ``win_length // 2`` samples at both ends so that frame
        ``t`` is centred on sample ``t * hop_length``.
    mel_scale : {"htk", "slaney"}, default="htk"
        Mel formula of the filterbank.
    eps : float, default=1e-10
        Floor applied to the mel energies before the logarithm.
    top_db : float or None, default=None
        If given, values more than ``top_db`` below the maximum of each
        spectrogram (the last two dims) are raised to that level. Unlike
        torchaudio's ``amplitude_to_DB``, the maximum is per spectrogram, so a
        batch gives the same result as its members.

    Returns
    -------
    torch.Tensor of shape (..., n_frames, n_mels)
        With ``n_frames = 1 + (time' - win_length) // hop_length`` where
        ``time'`` is ``time`` after centring; a signal shorter than one window is
        zero-padded to one frame.

    Raises
    ------
    DataValidationError
        If ``waveform`` is not a floating tensor with at least one dim.
    ConfigurationError
        If a parameter is out of range.

    See Also
    --------
    avrec.features.transforms.LogMelSpectrogram : the module, VGGish defaults.
    vggish_patches : cut the result into 0.96 s patches.

    Examples
    --------
    VGGish front end (16 kHz, 25 ms window, 10 ms hop, 64 bands 125-7500 Hz):

    >>> import torch
    >>> wave = torch.zeros(2, 16000)  # two one-second signals
    >>> log_mel_spectrogram(wave, 16000, 512, 400, 160, 64, 125.0, 7500.0).shape
    torch.Size([2, 98, 64])
    """
    _check_float_tensor(waveform, "waveform", 1, "(..., time)")
    _check_frontend(
        sample_rate, n_fft, win_length, hop_length, n_mels, f_min, f_max, power, mel_scale,
        eps, top_db,
    )  # fmt: skip
    window = torch.hann_window(win_length, dtype=waveform.dtype, device=waveform.device)
    fbanks = _mel_fbanks(n_fft, n_mels, sample_rate, f_min, f_max, mel_scale)
    fbanks = fbanks.to(dtype=waveform.dtype, device=waveform.device)
    return _log_mel(waveform, window, fbanks, n_fft, hop_length, power, center, eps, top_db)


def vggish_patches(
    log_mel: torch.Tensor,
    patch_frames: int = 96,
    hop_frames: int = 96,
    *,
    remainder: Literal["drop", "pad"] = "drop",
    pad_value: float = 0.0,
) -> torch.Tensor:
    """Cut a time-major log-mel spectrogram into fixed-size patches (VGGish examples).

    With 10 ms frames the defaults give VGGish's non-overlapping 0.96 s patches.

    Parameters
    ----------
    log_mel : torch.Tensor of shape (..., n_frames, n_mels), floating
        Output of :func:`log_mel_spectrogram`.
    patch_frames : int, default=96
        Frames per patch.
    hop_frames : int, default=96
        Frames between the starts of consecutive patches (``< patch_frames``
        gives overlapping patches).
    remainder : {"drop", "pad"}, default="drop"
        What to do with trailing frames that do not fill a patch: ``"drop"``
        them (as VGGish does) or ``"pad"`` the last patch with ``pad_value``.
        Either way a spectrogram shorter than one patch gives one padded patch.
    pad_value : float, default=0.0
        Value of padded frames.

    Returns
    -------
    torch.Tensor of shape (..., n_patches, patch_frames, n_mels)
        A new (contiguous) tensor. ``n_patches`` is
        ``max(1, 1 + (n_frames - patch_frames) // hop_frames)`` for ``"drop"``
        and ``max(1, 1 + ceil((n_frames - patch_frames) / hop_frames))`` for
        ``"pad"``.

    Raises
    ------
    DataValidationError
        If ``log_mel`` has fewer than two dims or is not floating.
    ConfigurationError
        If a parameter is out of range.

    Examples
    --------
    Three seconds of 16 kHz audio give 298 VGGish frames, hence 3 patches:

    >>> import torch
    >>> vggish_patches(torch.zeros(298, 64)).shape
    torch.Size([3, 96, 64])
    >>> vggish_patches(torch.zeros(298, 64), remainder="pad").shape
    torch.Size([4, 96, 64])
    >>> vggish_patches(torch.zeros(5, 10, 64)).shape  # shorter than a patch
    torch.Size([5, 1, 96, 64])
    """
    _check_float_tensor(log_mel, "log_mel", 2, "(..., n_frames, n_mels)")
    patch_frames = _check_int(patch_frames, "patch_frames")
    hop_frames = _check_int(hop_frames, "hop_frames")
    if remainder not in ("drop", "pad"):
        raise ConfigurationError(f"remainder must be 'drop' or 'pad', got {remainder!r}")
    n_frames = log_mel.shape[-2]
    if n_frames <= patch_frames:
        target = patch_frames
    elif remainder == "pad":
        target = patch_frames + math.ceil((n_frames - patch_frames) / hop_frames) * hop_frames
    else:
        target = n_frames
    if target > n_frames:
        log_mel = F.pad(log_mel, (0, 0, 0, target - n_frames), value=pad_value)
    patches = log_mel.unfold(-2, patch_frames, hop_frames)  # (..., P, n_mels, patch_frames)
    return patches.transpose(-1, -2).contiguous()
