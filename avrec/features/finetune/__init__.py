"""Fine-tuning of pretrained (or trained) encoders: frozen, last-k blocks, LoRA adapters.

* :class:`FineTuning`: which parameters of a network train (``"frozen"``,
  ``"last_k"`` blocks found by :func:`find_blocks`, or ``"lora"`` adapters
  through peft on the layers of :func:`lora_target_modules`);
* :class:`FineTunedEncoder`: a fine-tunable copy of a fitted encoder with an
  optional projection head; saved as its trainable tensors plus the base
  encoder's fingerprint, and loaded only onto the same base;
* :class:`CrossModalFineTuner`: trains two towers (text-video, audio-video
  ...) into one shared space with InfoNCE, for
  :func:`~avrec.features.cross_modal_search`.

The recommendation objective end to end is
:class:`~avrec.recommenders.EndToEndVBPR`. Mixed precision and gradient
checkpointing are flags that act on CUDA only.

Examples
--------
>>> from torch import nn
>>> from avrec.features.finetune import FineTuning
>>> net = nn.Sequential()
>>> net.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
>>> net = FineTuning(mode="last_k", last_k=1).apply(net)
>>> [p.requires_grad for p in net.parameters()]
[False, False, False, False, True, True]
"""

from avrec.features.finetune._blocks import find_blocks, lora_target_modules
from avrec.features.finetune._cross_modal import CrossModalFineTuner
from avrec.features.finetune._finetuned import FineTunedEncoder
from avrec.features.finetune._modes import FineTunedNet, FineTuning

__all__ = [
    "CrossModalFineTuner",
    "FineTunedEncoder",
    "FineTunedNet",
    "FineTuning",
    "find_blocks",
    "lora_target_modules",
]
