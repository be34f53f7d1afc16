"""Compression of fitted encoders: int8 quantisation, pruning and distillation.

* :func:`quantize_dynamic`: post-training dynamic int8 quantisation of the
  Linear, LSTM/GRU and Embedding layers (:mod:`torch.ao.quantization`);
  convolutions are not covered (static quantisation with calibration data is
  out of scope): prune or distil a CNN backbone instead;
* :func:`prune`: magnitude (L1, global or per layer) and structured (L-n norm
  over channels) pruning made permanent (:mod:`torch.nn.utils.prune`);
  :func:`sparsity` reports the zeros;
* :class:`Distiller`: trains a small student encoder to reproduce a large
  teacher's embeddings on unlabeled items (:func:`distillation_loss`).

Quantisation and pruning return a :class:`CompressedEncoder`: the same
encoder contract (``transform``, ``fingerprint``, ``save`` /
``from_pretrained`` without pickle, usable in
:class:`~avrec.features.FeatureExtractor`), the recipe and the base's
fingerprint recorded. A distilled student is an ordinary encoder.

Examples
--------
>>> import torch
>>> from avrec.features import VideoEncoder
>>> from avrec.features.compression import prune, quantize_dynamic, sparsity
>>> enc = VideoEncoder(frame_size=16, widths=(4, 8), embedding_dim=8, random_state=0).init()
>>> small = quantize_dynamic(prune(enc, amount=0.3, layers=("Conv2d",)))
>>> [step["method"] for step in small.recipe]
['prune', 'quantize_dynamic']
>>> small.transform(torch.zeros(2, 3, 3, 16, 16, dtype=torch.uint8)).shape
(2, 8)
"""

from avrec.features.compression._compressed import CompressedEncoder
from avrec.features.compression._distill import Distiller, distillation_loss
from avrec.features.compression._prune import prune, sparsity
from avrec.features.compression._quantize import quantize_dynamic

__all__ = [
    "CompressedEncoder",
    "Distiller",
    "distillation_loss",
    "prune",
    "quantize_dynamic",
    "sparsity",
]
