"""Feature-encoder architectures (``nn.Module`` only; training lives in the encoders).

* :class:`FrameCNN`: frames ``(B, T, C, H, W)`` to ``(B, d)``; per frame ``(B, T, d)``.
* :class:`AudioCNN`: log-mel patches ``(B, P, F, M)`` to ``(B, d)``; per patch ``(B, P, d)``.
* :class:`TemporalLSTM`: a sequence ``(B, L, d_in)`` (+ lengths or mask) to ``(B, d_out)``.
* :class:`TemporalPooling`: a sequence ``(B, L, d)`` (+ mask) to ``(B, d)``.
* :class:`GatedFusion`, :class:`AttentionFusion`: per-modality embeddings ``[(B, d_m)]``
  and a presence mask ``(B, M)`` to ``(B, d)``, absent modalities masked out exactly.
* :class:`DCGANGenerator`: ``z`` ``(B, z_dim)`` to images ``(B, C, S, S)``.
* :class:`DCGANDiscriminator`: images ``(B, C, S, S)`` to logits ``(B,)``;
  ``features`` gives the embedding ``(B, d)``.

Every module has an ``embedding_dim`` attribute (except the generator), a
documented ``reset_parameters(generator=None)``, and loads a local
``state_dict`` with the standard torch API; nothing is ever downloaded.

Examples
--------
>>> import torch
>>> from avrec.features.nn import FrameCNN, TemporalLSTM
>>> cnn = FrameCNN(widths=(8, 16), embedding_dim=16).eval()
>>> lstm = TemporalLSTM(cnn.embedding_dim, hidden_dim=8).eval()
>>> lstm(cnn.frame_embeddings(torch.randn(2, 6, 3, 32, 32))).shape
torch.Size([2, 16])
"""

from avrec.features.nn._cnn import AudioCNN, FrameCNN
from avrec.features.nn._fusion import AttentionFusion, GatedFusion
from avrec.features.nn._gan import DCGANDiscriminator, DCGANGenerator
from avrec.features.nn._lstm import TemporalLSTM, TemporalPooling

__all__ = [
    "AttentionFusion",
    "AudioCNN",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "FrameCNN",
    "GatedFusion",
    "TemporalLSTM",
    "TemporalPooling",
]
