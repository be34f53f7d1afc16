"""Feature encoders: estimators that train an architecture and embed clips.

* :class:`VideoEncoder`: frame CNN (+ LSTM), SimCLR on augmented frame clips;
* :class:`AudioEncoder`: VGGish-like CNN over log-mel patches (+ LSTM), SimCLR
  on random crops with gain, noise and SpecAugment;
* :class:`GANEncoder`: a DCGAN on frames or log-mel patches, embedding with the
  discriminator's penultimate activations; the generator samples;
* :class:`AVCorrespondence`: trains a video and an audio encoder jointly on
  audio-visual correspondence (do these frames and this sound belong together?).

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
from avrec.features.encoders._av import AVCorrespondence, correspondence_loss
from avrec.features.encoders._base import BaseEncoder, nt_xent_loss
from avrec.features.encoders._gan import GANEncoder
from avrec.features.encoders._video import VideoEncoder

__all__ = [
    "AVCorrespondence",
    "AudioEncoder",
    "BaseEncoder",
    "GANEncoder",
    "VideoEncoder",
    "correspondence_loss",
    "nt_xent_loss",
]
