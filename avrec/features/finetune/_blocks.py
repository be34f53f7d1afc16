"""Where to fine-tune a network: its list of blocks, and the layers that take LoRA adapters."""

from __future__ import annotations

from torch import nn

from avrec.exceptions import ConfigurationError

__all__ = ["find_blocks", "lora_target_modules"]

#: Attribute names of block containers, by family: HF BERT-like ``encoder.layer``,
#: HF decoders and timm Swin ``layers``, GPT-2 ``h``, timm ViT and EfficientNet
#: ``blocks``, timm ConvNeXt ``stages``; avrec's own CNNs keep theirs in ``backbone``.
_BLOCK_NAMES = ("layer", "layers", "h", "blocks", "stages")
_FALLBACK_BLOCK_NAMES = ("backbone",)

#: LoRA targets by family, tried in this order; the first family found in a network
#: wins. The names are module-name suffixes.
LORA_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),  # HF BERT, RoBERTa, MiniLM self-attention
    "llama": ("q_proj", "v_proj"),  # HF decoders, CLIP, wav2vec2, VideoMAE-like attention
    "distilbert": ("q_lin", "v_lin"),
    "vit": ("qkv", "attn.proj"),  # timm ViT / DeiT / Swin attention
    "efficientnet": ("conv_pw", "conv_pwl"),  # timm EfficientNet point-wise 1x1 convolutions
}


def find_blocks(module: nn.Module, blocks: str | None = None) -> list[nn.Module]:
    """Return the ordered list of blocks of a network, for last-k fine-tuning.

    Without ``blocks``, the block list is the container (``nn.ModuleList`` or
    ``nn.Sequential``) named ``layer``, ``layers``, ``h``, ``blocks`` or
    ``stages`` anywhere in ``module`` (HF ``encoder.layer``, timm ``blocks``
    ...); if several are found, the one holding the most parameters. Failing
    that, a container named ``backbone`` (avrec's own CNNs). Only children
    that hold parameters count as blocks.

    Parameters
    ----------
    module : torch.nn.Module
        The network (e.g. an encoder's ``model_``).
    blocks : str, optional
        Dotted path of the container to use instead (e.g. ``"transformer.encoder.layer"``).

    Returns
    -------
    list of torch.nn.Module
        The blocks, first to last; non-empty.

    Raises
    ------
    ConfigurationError
        If ``blocks`` names no container, or none is found.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential()
    >>> net.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    >>> len(find_blocks(net)), len(find_blocks(net, blocks="blocks"))
    (3, 3)
    """
    if blocks is not None:
        if not isinstance(blocks, str):
            raise ConfigurationError(f"blocks must be a dotted module path, got {blocks!r}")
        try:
            container = module.get_submodule(blocks)
        except AttributeError as exc:
            raise ConfigurationError(
                f"blocks={blocks!r} names no submodule of the network"
            ) from exc
        found = _param_children(container)
        if not found:
            raise ConfigurationError(f"blocks={blocks!r} holds no blocks with parameters")
        return found
    for names in (_BLOCK_NAMES, _FALLBACK_BLOCK_NAMES):
        candidates = [
            mod
            for name, mod in module.named_modules()
            if name.rpartition(".")[2] in names
            and isinstance(mod, (nn.ModuleList, nn.Sequential))
            and _param_children(mod)
        ]
        if candidates:
            return _param_children(max(candidates, key=_n_params))
    raise ConfigurationError(
        f"no block list found in {type(module).__name__} (looked for containers named "
        f"{_BLOCK_NAMES + _FALLBACK_BLOCK_NAMES}); pass blocks='dotted.path'"
    )


def lora_target_modules(module: nn.Module) -> list[str]:
    """Return the names of the layers that get LoRA adapters, detected per family.

    The families of :data:`LORA_TARGETS` are tried in order (BERT-like
    ``query``/``value``, ``q_proj``/``v_proj``, DistilBERT, timm ViT
    ``qkv``/``attn.proj``, timm EfficientNet point-wise convolutions
    ``conv_pw``/``conv_pwl``); the first one present wins. A network of none
    of these families gets adapters on every ``nn.Linear`` and every
    non-grouped ``nn.Conv2d``.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    list of str
        Full module names (as in ``named_modules``), non-empty.

    Raises
    ------
    ConfigurationError
        If the network has no layer LoRA can adapt.

    Examples
    --------
    >>> from torch import nn
    >>> lora_target_modules(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    ['0', '2']
    """
    adaptable = [
        name
        for name, mod in module.named_modules()
        if isinstance(mod, nn.Linear) or (isinstance(mod, nn.Conv2d) and mod.groups == 1)
    ]
    for suffixes in LORA_TARGETS.values():
        found = [n for n in adaptable if any(n == s or n.endswith("." + s) for s in suffixes)]
        if found:
            return found
    if not adaptable:
        raise ConfigurationError(
            f"{type(module).__name__} has no nn.Linear or nn.Conv2d layer for LoRA adapters"
        )
    return adaptable


def _param_children(container: nn.Module) -> list[nn.Module]:
    return [child for child in container.children() if _n_params(child) > 0]


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
