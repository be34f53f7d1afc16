"""Fine-tuning modes: frozen, last-k blocks, LoRA adapters (through peft)."""

from __future__ import annotations

import logging
import numbers
from typing import Any

import torch
from sklearn.base import BaseEstimator
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features.finetune._blocks import find_blocks, lora_target_modules
from avrec.utils import register_class

__all__ = ["MODES", "FineTunedNet", "FineTuning"]

logger = logging.getLogger(__name__)

#: The fine-tuning modes.
MODES = ("frozen", "last_k", "lora")


class FineTuning(BaseEstimator):
    """Which parameters of a pretrained network train: none, its last blocks, or LoRA adapters.

    ``"frozen"`` trains nothing in the network (feature extraction; a head on
    top may still train); ``"last_k"`` unfreezes exactly the parameters of the
    last ``last_k`` blocks (:func:`find_blocks`); ``"lora"`` freezes every
    weight and adds low-rank adapters ``W + (alpha / r) B A`` to the layers
    of :func:`lora_target_modules` (or ``target_modules``) with peft's
    :func:`~peft.inject_adapter_in_model`, which keeps the network's class and
    its ``embed`` method (no ``PeftModel`` wrapper). ``B`` starts at zero, so
    an untrained adapter leaves the outputs unchanged.

    Parameters
    ----------
    mode : {"frozen", "last_k", "lora"}, default="lora"
    last_k : int, default=1
        Blocks to unfreeze in ``"last_k"`` mode, ``1 <= last_k <= n_blocks``.
    blocks : str, optional
        Dotted path of the block container, overriding the detection.
    lora_rank : int, default=8
        Rank ``r`` of the adapters.
    lora_alpha : float, default=16.0
        Scale numerator of the adapters.
    lora_dropout : float, default=0.0
        Dropout on the adapters' input (active only in train mode; see Notes).
    target_modules : list of str, optional
        Module names (or name suffixes) for the adapters, overriding the detection.

    Notes
    -----
    The network being fine-tuned stays in eval mode (normalisation statistics
    and dropout as at inference), so frozen weights and buffers never change
    and small batches do not disturb BatchNorm; only the trainable parameters
    move. Hence ``lora_dropout`` has no effect unless a caller puts the
    network in train mode itself.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    >>> net = FineTuning(mode="lora", lora_rank=2).apply(net, seed=0)
    >>> sum(p.numel() for p in net.parameters() if p.requires_grad)  # 2 * (8 + 8) + 2 * (8 + 4)
    56
    """

    def __init__(
        self,
        mode: str = "lora",
        last_k: int = 1,
        blocks: str | None = None,
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        target_modules: list[str] | None = None,
    ) -> None:
        self.mode = mode
        self.last_k = last_k
        self.blocks = blocks
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = target_modules

    def check(self) -> FineTuning:
        """Validate the parameters (they are only stored by ``__init__``).

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            Naming the first invalid parameter.
        """
        if self.mode not in MODES:
            raise ConfigurationError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name in ("last_k", "lora_rank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigurationError(f"{name} must be an int >= 1, got {value!r}")
        if not _real(self.lora_alpha) or self.lora_alpha <= 0:
            raise ConfigurationError(f"lora_alpha must be a number > 0, got {self.lora_alpha!r}")
        if not _real(self.lora_dropout) or not 0 <= self.lora_dropout < 1:
            raise ConfigurationError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        targets = self.target_modules
        if targets is not None and (
            isinstance(targets, str)
            or not all(isinstance(t, str) for t in targets)
            or len(targets) == 0
        ):
            raise ConfigurationError(
                f"target_modules must be a non-empty list of module names, got {targets!r}"
            )
        return self

    def apply(self, network: nn.Module, seed: int = 0) -> nn.Module:
        """Set which parameters of ``network`` train, in place, and return it.

        Parameters
        ----------
        network : torch.nn.Module
            Modified in place (pass a copy to keep the original).
        seed : int, default=0
            Seeds the adapters' initial ``A`` matrices.

        Returns
        -------
        torch.nn.Module
            ``network``, with adapters injected in ``"lora"`` mode.

        Raises
        ------
        ConfigurationError
            On invalid parameters, ``last_k`` larger than the number of
            blocks, or a network without adaptable layers.
        """
        self.check()
        network.requires_grad_(False)
        if self.mode == "last_k":
            blocks = find_blocks(network, self.blocks)
            if self.last_k > len(blocks):
                raise ConfigurationError(
                    f"last_k={self.last_k} exceeds the {len(blocks)} blocks of the network"
                )
            for block in blocks[-self.last_k :]:
                block.requires_grad_(True)
        elif self.mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            targets = list(self.target_modules or lora_target_modules(network))
            config = LoraConfig(
                r=int(self.lora_rank),
                lora_alpha=float(self.lora_alpha),
                lora_dropout=float(self.lora_dropout),
                target_modules=targets,
                bias="none",
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                try:
                    network = inject_adapter_in_model(config, network)
                except ValueError as exc:  # peft: a target that is missing or unsupported
                    raise ConfigurationError(f"target_modules: {exc}") from exc
            for name, param in network.named_parameters():
                param.requires_grad_("lora_" in name)
        n = sum(p.numel() for p in network.parameters() if p.requires_grad)
        logger.debug("fine-tuning mode %s: %d trainable parameters", self.mode, n)
        return network


register_class(FineTuning)  # a hyperparameter of saved models (EndToEndVBPR's finetune)


class FineTunedNet(nn.Module):
    """A network being fine-tuned, with an optional linear head into a shared space.

    ``embed(x, lengths) = head(network.embed(x, lengths))``. ``train()`` puts
    only the head in train mode: the network stays in eval mode (see
    :class:`FineTuning`).

    Parameters
    ----------
    network : torch.nn.Module
        Has ``embed(x, lengths)`` and ``embedding_dim``.
    projection_dim : int, optional
        Width of a linear head on top; None for no head.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     embedding_dim = 3
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(4, 3)
    ...     def embed(self, x, lengths=None):
    ...         return self.fc(x)
    >>> FineTunedNet(Net(), projection_dim=2).embed(torch.zeros(5, 4)).shape
    torch.Size([5, 2])
    """

    def __init__(self, network: nn.Module, projection_dim: int | None = None) -> None:
        super().__init__()
        self.network = network
        width = int(network.embedding_dim)
        self.head = nn.Identity() if projection_dim is None else nn.Linear(width, projection_dim)
        self.embedding_dim = width if projection_dim is None else int(projection_dim)

    def embed(self, x: Any, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed a batch: the network's embedding, through the head.

        Parameters
        ----------
        x : Any
            A batch as the base encoder's converter produces it.
        lengths : torch.Tensor of shape (B,), optional

        Returns
        -------
        torch.Tensor of shape (B, embedding_dim)
        """
        return self.head(self.network.embed(x, lengths))

    def forward(self, x: Any, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Same as :meth:`embed`."""
        return self.embed(x, lengths)

    def train(self, mode: bool = True) -> FineTunedNet:
        """Put the head in train (or eval) mode; the network stays in eval mode.

        Only the transformers layers switched to gradient checkpointing get
        their own ``training`` flag (they checkpoint only in training mode);
        their dropouts and normalisations keep eval behaviour.
        """
        self.training = mode
        self.head.train(mode)
        self.network.eval()
        if mode:
            for module in self.network.modules():
                checkpointed = getattr(module, "gradient_checkpointing", False) is True
                if checkpointed and not hasattr(module, "supports_gradient_checkpointing"):
                    module.training = True  # a layer, not the whole transformers model
        return self


def _real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
