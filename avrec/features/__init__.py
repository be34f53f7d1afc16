"""From decoded media to feature tensors and embeddings.

Three layers, each usable on its own:

* :mod:`avrec.features.functional`: pure tensor functions (log-mel
  spectrograms, VGGish patches, frame normalisation and resizing, seedable
  augmentation);
* :mod:`avrec.features.transforms`: ``nn.Module`` wrappers of those functions,
  composed with ``nn.Sequential``;
* :mod:`avrec.features.nn`: the encoder architectures (CNNs over frames and
  log-mel patches, a temporal LSTM, DCGAN).

* :mod:`avrec.features.encoders`: estimators that train those architectures
  self-supervised and embed clips (:class:`VideoEncoder`, :class:`AudioEncoder`,
  :class:`GANEncoder`, :class:`AVCorrespondence`);
* :class:`FeatureExtractor`: a catalogue of media files to
  :class:`~avrec.data.ItemFeatures`, decoding in DataLoader workers, with a
  content-hash cache.

The transform, architecture and encoder classes are re-exported here; the
functions stay in :mod:`avrec.features.functional`.

Examples
--------
>>> import torch
>>> from torch import nn
>>> from avrec.features import AudioCNN, LogMelSpectrogram, VGGishPatches
>>> front = nn.Sequential(LogMelSpectrogram(), VGGishPatches())
>>> patches = front(torch.zeros(2, 16000))  # 1 s at 16 kHz -> one 0.96 s patch
>>> AudioCNN(widths=(4, 8), embedding_dim=16).eval()(patches).shape
torch.Size([2, 16])
"""

from avrec.features import encoders, functional, nn, transforms
from avrec.features._extractor import FeatureExtractor, MediaDataset, collate_media
from avrec.features.encoders import AudioEncoder, AVCorrespondence, GANEncoder, VideoEncoder
from avrec.features.nn import (
    AudioCNN,
    DCGANDiscriminator,
    DCGANGenerator,
    FrameCNN,
    TemporalLSTM,
    TemporalPooling,
)
from avrec.features.transforms import (
    FrameAugment,
    LogMelSpectrogram,
    NormalizeFrames,
    ResizeFrames,
    SpecAugment,
    VGGishPatches,
    WaveformAugment,
)

__all__ = [
    "AVCorrespondence",
    "AudioCNN",
    "AudioEncoder",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "FeatureExtractor",
    "FrameAugment",
    "FrameCNN",
    "GANEncoder",
    "LogMelSpectrogram",
    "MediaDataset",
    "NormalizeFrames",
    "ResizeFrames",
    "SpecAugment",
    "TemporalLSTM",
    "TemporalPooling",
    "VGGishPatches",
    "VideoEncoder",
    "WaveformAugment",
    "collate_media",
    "encoders",
    "functional",
    "nn",
    "transforms",
]
