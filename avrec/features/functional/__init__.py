"""Pure tensor functions of the feature front end, with every parameter explicit.

Audio: :func:`log_mel_spectrogram` (time-major ``(..., n_frames, n_mels)``) and
:func:`vggish_patches`. Video: :func:`normalize_frames`, :func:`resize_frames`.
Seedable augmentation (each takes a :class:`torch.Generator`): :func:`time_mask`,
:func:`frequency_mask`, :func:`random_gain`, :func:`add_noise` for audio;
:func:`random_resized_crop`, :func:`random_horizontal_flip`, :func:`color_jitter`,
:func:`temporal_jitter` for frame sequences. Item modalities:
:func:`modality_dropout` (drop whole modalities of an item while training fusion). The
:mod:`avrec.features.transforms` modules wrap them.

Examples
--------
>>> import torch
>>> from avrec.features.functional import log_mel_spectrogram, vggish_patches
>>> wave = torch.zeros(1, 48000)  # 3 s at 16 kHz
>>> log_mel = log_mel_spectrogram(wave, 16000, 512, 400, 160, 64, 125.0, 7500.0)
>>> vggish_patches(log_mel).shape
torch.Size([1, 3, 96, 64])
"""

from avrec.features.functional._audio import log_mel_spectrogram, vggish_patches
from avrec.features.functional._augment import (
    add_noise,
    color_jitter,
    frequency_mask,
    random_gain,
    random_horizontal_flip,
    random_resized_crop,
    temporal_jitter,
    time_mask,
)
from avrec.features.functional._fusion import modality_dropout
from avrec.features.functional._video import normalize_frames, resize_frames

__all__ = [
    "add_noise",
    "color_jitter",
    "frequency_mask",
    "log_mel_spectrogram",
    "modality_dropout",
    "normalize_frames",
    "random_gain",
    "random_horizontal_flip",
    "random_resized_crop",
    "resize_frames",
    "temporal_jitter",
    "time_mask",
    "vggish_patches",
]
