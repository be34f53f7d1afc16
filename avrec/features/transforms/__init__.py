"""``nn.Module`` wrappers of :mod:`avrec.features.functional`; compose with ``nn.Sequential``.

Preprocessing: :class:`LogMelSpectrogram` (VGGish front end by default),
:class:`VGGishPatches`, :class:`NormalizeFrames`, :class:`ResizeFrames`.
Augmentation (own seedable generator, identity in ``eval()`` mode):
:class:`SpecAugment`, :class:`WaveformAugment`, :class:`FrameAugment`.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from avrec.features.transforms import LogMelSpectrogram, SpecAugment, VGGishPatches
>>> audio = nn.Sequential(LogMelSpectrogram(), VGGishPatches(), SpecAugment(generator=0))
>>> audio(torch.zeros(4, 16000 * 2)).shape  # (batch, time) -> (batch, patches, 96, 64)
torch.Size([4, 2, 96, 64])
"""

from avrec.features.transforms._audio import LogMelSpectrogram, VGGishPatches
from avrec.features.transforms._augment import FrameAugment, SpecAugment, WaveformAugment
from avrec.features.transforms._video import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NormalizeFrames,
    ResizeFrames,
)

__all__ = [
    "FrameAugment",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LogMelSpectrogram",
    "NormalizeFrames",
    "ResizeFrames",
    "SpecAugment",
    "VGGishPatches",
    "WaveformAugment",
]
