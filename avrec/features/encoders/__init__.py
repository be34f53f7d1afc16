"""Feature encoders: estimators that train an architecture and embed clips.

* :class:`VideoEncoder`: frame CNN (+ LSTM), SimCLR on augmented frame clips;
* :class:`AudioEncoder`: VGGish-like CNN over log-mel patches (+ LSTM), SimCLR
  on random crops with gain, noise and SpecAugment;
* :class:`GANEncoder`: a DCGAN on frames or log-mel patches, embedding with the
  discriminator's penultimate activations; the generator samples;
* :class:`AVCorrespondence`: trains a video and an audio encoder jointly on
  audio-visual correspondence (do these frames and this sound belong together?);
* :class:`TextEncoder`: a pretrained sentence-embedding transformer from a local
  folder (e.g. ``pretrained_weights("all-minilm-l6-v2")``), the ``text`` modality;
* pretrained backbones for frames, video and audio (:class:`PretrainedEncoder`:
  ``fit`` loads local weights, frozen by default): :class:`FrameBackbone` (a timm
  image model per frame, pooled over time, e.g. ``pretrained_weights("efficientnet_lite0")``),
  :class:`VideoTransformer` (VideoMAE / TimeSformer) and :class:`AudioTransformer`
  (wav2vec 2.0 / HuBERT / WavLM) from local transformers checkpoints.

``fit`` trains, ``transform`` returns float32 ``(n, d)``. An unfitted encoder
raises :class:`~avrec.exceptions.NotFittedError` in ``transform``; ``init()``
(or ``epochs=0``) gives the untrained random-weights baseline of the same
architecture. ``save`` / ``from_pretrained`` persist to a directory of
``config.json`` + ``model.safetensors`` (no pickle); ``from_pretrained`` also
takes a bare local ``state_dict`` file. Nothing is ever downloaded.

Examples
--------
>>> import torch
>>> from avrec.features.encoders import VideoEncoder
>>> clips = torch.randint(0, 256, (4, 3, 3, 16, 16), dtype=torch.uint8)  # (B, T, C, H, W)
>>> VideoEncoder(frame_size=16, widths=(4,), embedding_dim=6).init().transform(clips).shape
(4, 6)
"""

from avrec.features.encoders._audio import AudioEncoder
from avrec.features.encoders._audio_transformer import AudioTransformer
from avrec.features.encoders._av import AVCorrespondence, correspondence_loss
from avrec.features.encoders._base import BaseEncoder, nt_xent_loss
from avrec.features.encoders._frames import FrameBackbone, map_efficientnet_lite_keys
from avrec.features.encoders._gan import GANEncoder
from avrec.features.encoders._pretrained import (
    PretrainedEncoder,
    load_state_dict_strict,
    load_transformers_model,
    pretrained_weights,
    read_state_dict,
)
from avrec.features.encoders._text import TextEncoder
from avrec.features.encoders._video import VideoEncoder
from avrec.features.encoders._video_transformer import VideoTransformer, sample_frame_indices

__all__ = [
    "AVCorrespondence",
    "AudioEncoder",
    "AudioTransformer",
    "BaseEncoder",
    "FrameBackbone",
    "GANEncoder",
    "PretrainedEncoder",
    "TextEncoder",
    "VideoEncoder",
    "VideoTransformer",
    "correspondence_loss",
    "load_state_dict_strict",
    "load_transformers_model",
    "map_efficientnet_lite_keys",
    "nt_xent_loss",
    "pretrained_weights",
    "read_state_dict",
    "sample_frame_indices",
]
