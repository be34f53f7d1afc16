"""From decoded media to feature tensors and embeddings.

Three layers, each usable on its own:

* :mod:`avrec.features.functional`: pure tensor functions (log-mel
  spectrograms, VGGish patches, frame normalisation and resizing, seedable
  augmentation);
* :mod:`avrec.features.transforms`: ``nn.Module`` wrappers of those functions,
  composed with ``nn.Sequential``;
* :mod:`avrec.features.nn`: the encoder architectures (CNNs over frames and
  log-mel patches, a temporal LSTM, DCGAN) and the learned fusion of
  modalities (:class:`GatedFusion`, :class:`AttentionFusion`).

* :mod:`avrec.features.encoders`: estimators that train those architectures
  self-supervised and embed clips (:class:`VideoEncoder`, :class:`AudioEncoder`,
  :class:`GANEncoder`, :class:`AVCorrespondence`), and pretrained backbones
  behind the same contract (:class:`FrameBackbone`, :class:`VideoTransformer`,
  :class:`AudioTransformer`, :class:`TextEncoder`; :func:`pretrained_weights`);
* :mod:`avrec.features.finetune`: fine-tuning of those encoders (frozen,
  last-k blocks, LoRA adapters) on cross-modal correspondence, and
  :func:`cross_modal_search` in the shared space they learn;
* :mod:`avrec.features.compression`: int8 quantisation and pruning of fitted
  encoders (:class:`CompressedEncoder`) and distillation of a large encoder
  into a small one (:class:`Distiller`);
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

from avrec.features import compression, encoders, finetune, functional, nn, transforms
from avrec.features._extractor import FeatureExtractor, MediaDataset, collate_media
from avrec.features._retrieval import cross_modal_search
from avrec.features.compression import CompressedEncoder, Distiller
from avrec.features.encoders import (
    AudioEncoder,
    AudioTransformer,
    AVCorrespondence,
    FrameBackbone,
    GANEncoder,
    TextEncoder,
    VideoEncoder,
    VideoTransformer,
    pretrained_weights,
)
from avrec.features.finetune import CrossModalFineTuner, FineTunedEncoder, FineTuning
from avrec.features.nn import (
    AttentionFusion,
    AudioCNN,
    DCGANDiscriminator,
    DCGANGenerator,
    FrameCNN,
    GatedFusion,
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
    "AttentionFusion",
    "AudioCNN",
    "AudioEncoder",
    "AudioTransformer",
    "CompressedEncoder",
    "CrossModalFineTuner",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Distiller",
    "FeatureExtractor",
    "FineTunedEncoder",
    "FineTuning",
    "FrameAugment",
    "FrameBackbone",
    "FrameCNN",
    "GANEncoder",
    "GatedFusion",
    "LogMelSpectrogram",
    "MediaDataset",
    "NormalizeFrames",
    "ResizeFrames",
    "SpecAugment",
    "TemporalLSTM",
    "TemporalPooling",
    "TextEncoder",
    "VGGishPatches",
    "VideoEncoder",
    "VideoTransformer",
    "WaveformAugment",
    "collate_media",
    "compression",
    "cross_modal_search",
    "encoders",
    "finetune",
    "functional",
    "nn",
    "pretrained_weights",
    "transforms",
]
