"""Audio front-end modules: :class:`LogMelSpectrogram` and :class:`VGGishPatches`."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from avrec.features.functional._audio import (
    _check_float_tensor,
    _check_frontend,
    _log_mel,
    _mel_fbanks,
    vggish_patches,
)

__all__ = ["LogMelSpectrogram", "VGGishPatches"]


class LogMelSpectrogram(nn.Module):
    """Time-major log-mel spectrogram in dB; the defaults are VGGish's front end.

    Wraps :func:`~avrec.features.functional.log_mel_spectrogram`. The Hann
    window and the mel filterbank are computed once and kept as
    non-persistent buffers (``window``, ``fbanks``): they follow ``.to()`` but
    stay out of ``state_dict``, since the constructor arguments determine them.

    Parameters
    ----------
    sample_rate : int, default=16000
    n_fft : int, default=512
    win_length : int, default=400
        25 ms at 16 kHz.
    hop_length : int, default=160
        10 ms at 16 kHz.
    n_mels : int, default=64
    f_min : float, default=125.0
    f_max : float, default=7500.0
    power : float, default=1.0
        Magnitude spectrum, as VGGish (which then takes ``log(mel + 0.01)``;
        here the log is in dB with the floor ``eps``).
    center : bool, default=False
    mel_scale : {"htk", "slaney"}, default="htk"
    eps : float, default=1e-5
        Floor of the mel energies (-100 dB for ``power=1``).
    top_db : float or None, default=None
        Dynamic range kept per spectrogram.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> front = nn.Sequential(LogMelSpectrogram(), VGGishPatches())
    >>> front(torch.zeros(2, 1, 48000)).shape  # (batch, channel, time) -> patches
    torch.Size([2, 1, 3, 96, 64])
    """

    window: torch.Tensor
    fbanks: torch.Tensor

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 512,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 64,
        f_min: float = 125.0,
        f_max: float = 7500.0,
        power: float = 1.0,
        center: bool = False,
        mel_scale: Literal["htk", "slaney"] = "htk",
        eps: float = 1e-5,
        top_db: float | None = None,
    ) -> None:
        super().__init__()
        _check_frontend(
            sample_rate, n_fft, win_length, hop_length, n_mels, f_min, f_max, power, mel_scale,
            eps, top_db,
        )  # fmt: skip
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.f_min = f_min
        self.f_max = f_max
        self.power = power
        self.center = center
        self.mel_scale = mel_scale
        self.eps = eps
        self.top_db = top_db
        self.register_buffer("window", torch.hann_window(win_length), persistent=False)
        fbanks = _mel_fbanks(n_fft, n_mels, sample_rate, f_min, f_max, mel_scale)
        self.register_buffer("fbanks", fbanks, persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Compute the log-mel spectrogram.

        Parameters
        ----------
        waveform : torch.Tensor of shape (..., time), floating

        Returns
        -------
        torch.Tensor of shape (..., n_frames, n_mels)
        """
        _check_float_tensor(waveform, "waveform", 1, "(..., time)")
        window = self.window.to(waveform.dtype)
        fbanks = self.fbanks.to(waveform.dtype)
        return _log_mel(
            waveform, window, fbanks, self.n_fft, self.hop_length, self.power, self.center,
            self.eps, self.top_db,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
            f"hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min}, "
            f"f_max={self.f_max}, power={self.power}, top_db={self.top_db}"
        )


class VGGishPatches(nn.Module):
    """Cut time-major log-mel spectrograms into ``(patch_frames, n_mels)`` patches.

    Wraps :func:`~avrec.features.functional.vggish_patches` (see it for the
    patch count and how a remainder is dropped or padded).

    Parameters
    ----------
    patch_frames : int, default=96
    hop_frames : int, default=96
    remainder : {"drop", "pad"}, default="drop"
    pad_value : float, default=0.0

    Examples
    --------
    >>> import torch
    >>> VGGishPatches(patch_frames=4, hop_frames=2)(torch.zeros(9, 8)).shape
    torch.Size([3, 4, 8])
    """

    def __init__(
        self,
        patch_frames: int = 96,
        hop_frames: int = 96,
        remainder: Literal["drop", "pad"] = "drop",
        pad_value: float = 0.0,
    ) -> None:
        super().__init__()
        vggish_patches(torch.zeros(1, 1), patch_frames, hop_frames, remainder=remainder)
        self.patch_frames = patch_frames
        self.hop_frames = hop_frames
        self.remainder = remainder
        self.pad_value = pad_value

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """Cut into patches.

        Parameters
        ----------
        log_mel : torch.Tensor of shape (..., n_frames, n_mels)

        Returns
        -------
        torch.Tensor of shape (..., n_patches, patch_frames, n_mels)
        """
        return vggish_patches(
            log_mel,
            self.patch_frames,
            self.hop_frames,
            remainder=self.remainder,
            pad_value=self.pad_value,
        )

    def extra_repr(self) -> str:
        return (
            f"patch_frames={self.patch_frames}, hop_frames={self.hop_frames}, "
            f"remainder={self.remainder!r}"
        )
