"""Pretrained video transformers (VideoMAE, TimeSformer) from a local transformers checkpoint."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features.encoders._base import check_int
from avrec.features.encoders._checkpoint import BackboneNet, CheckpointEncoder
from avrec.features.encoders._video import frames_batch
from avrec.features.functional import resize_frames
from avrec.features.transforms import NormalizeFrames

__all__ = ["VideoTransformer", "sample_frame_indices"]

#: Accepted ``model_type`` -> (config class, model class) of transformers.
_VIDEO_MODELS = {
    "videomae": ("VideoMAEConfig", "VideoMAEModel"),
    "timesformer": ("TimesformerConfig", "TimesformerModel"),
}
#: Models whose first output token is a classification token.
_CLS_MODELS = frozenset({"timesformer"})
#: Normalisation of transformers' VideoMAE / TimeSformer processors when the
#: checkpoint has no ``preprocessor_config.json``.
_DEFAULT_MEAN = _DEFAULT_STD = (0.5, 0.5, 0.5)


def sample_frame_indices(lengths: torch.Tensor, num: int) -> torch.Tensor:
    """Indices of ``num`` frames spread uniformly over each clip's valid frames.

    Frame ``k`` of a clip with ``L`` valid frames is ``floor((k + 0.5) * L / num)``
    (the centres of ``num`` equal segments; frames repeat when ``L < num``).

    Parameters
    ----------
    lengths : torch.Tensor of shape (B,)
        Valid frames per clip (``>= 1``).
    num : int
        Frames to pick per clip.

    Returns
    -------
    torch.Tensor of shape (B, num), int64

    Examples
    --------
    >>> import torch
    >>> sample_frame_indices(torch.tensor([8, 2]), 4)
    tensor([[1, 3, 5, 7],
            [0, 0, 1, 1]])
    """
    centres = torch.arange(num, device=lengths.device, dtype=torch.float64) + 0.5
    idx = (centres[None] * lengths[:, None].double() / num).floor().long()
    return torch.minimum(idx, lengths[:, None].long() - 1)


class _VideoTransformerNet(BackboneNet):
    """Frame sampling -> resize -> normalise -> transformers video model -> mean or CLS token."""

    def __init__(
        self,
        backbone: nn.Module,
        pooling: str,
        mean: Sequence[float],
        std: Sequence[float],
        has_cls: bool,
    ) -> None:
        super().__init__(backbone)
        config = backbone.config
        self.normalize = NormalizeFrames(mean, std)
        self.pooling = pooling
        self.has_cls = has_cls
        self.num_frames = int(config.num_frames)
        self.image_size = int(config.image_size)

    def tokens(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The backbone's last hidden states ``(B, tokens, hidden)`` for a clip batch."""
        b, t = frames.shape[:2]
        if lengths is None:
            lengths = torch.full((b,), t, device=frames.device)
        idx = sample_frame_indices(lengths.to(frames.device), self.num_frames)
        x = frames[torch.arange(b, device=frames.device)[:, None], idx]
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = resize_frames(x, self.image_size)
        return self.backbone(pixel_values=self.normalize(x)).last_hidden_state

    def embed(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.tokens(frames, lengths)
        if self.pooling == "cls":
            return hidden[:, 0]
        return (hidden[:, 1:] if self.has_cls else hidden).mean(dim=1)


class VideoTransformer(CheckpointEncoder):
    """Clip embeddings from a pretrained video transformer (VideoMAE, TimeSformer).

    The checkpoint is a local directory as transformers'
    ``save_pretrained`` writes it: ``config.json`` + ``model.safetensors``
    (or ``pytorch_model.bin``, read with ``torch.load(weights_only=True)``),
    optionally ``preprocessor_config.json`` (its ``image_mean`` /
    ``image_std`` are used). It is loaded with ``local_files_only=True`` and
    never with remote code; nothing is downloaded.

    Each clip is sampled to the model's ``num_frames`` (uniformly over its
    valid frames), resized to the model's ``image_size`` and normalised; the
    embedding is the mean of the last hidden states over the patch tokens
    (``pooling="mean"``) or the classification token (``"cls"``, TimeSformer
    only: VideoMAE has none).

    Inputs (``transform``): a sequence of :class:`~avrec.media.VideoClip`, of
    ``(T, C, H, W)`` tensors or of paths (``frames`` frames decoded), or a
    batch tensor ``(B, T, C, H, W)``; uint8 or floating frames in ``[0, 1]``.

    Parameters
    ----------
    model_dir : str or path-like
        The local checkpoint directory.
    frames : int, default=16
        Frames decoded from each path (sampled again to the model's count).
    pooling : {"mean", "cls"}, default="mean"
    mean, std : sequence of 3 float, optional
        Override the checkpoint's normalisation (default its
        ``preprocessor_config.json``, else ``(0.5, 0.5, 0.5)`` as transformers'
        VideoMAE processor).
    freeze : bool, default=True
        Freeze every parameter (feature extraction).
    batch_size : int, default=4
        Clips per ``transform`` forward pass.
    device : str or torch.device, optional
    random_state : None, int or numpy.random.Generator
        Seeds the random weights of :meth:`init`.
    verbose : bool, default=False

    Attributes
    ----------
    model_ : torch.nn.Module
        ``backbone`` (the transformers model) behind ``embed(frames, lengths)``.
    architecture_ : dict
        The checkpoint's ``config`` and the normalisation (saved with the encoder).
    n_features_out_ : int
        The model's ``hidden_size``.
    device_ : torch.device

    See Also
    --------
    FrameBackbone : an image backbone per frame, pooled over time.

    References
    ----------
    Tong, Song, Wang and Wang, "VideoMAE: Masked Autoencoders are
    Data-Efficient Learners for Self-Supervised Video Pre-Training", NeurIPS 2022.

    Examples
    --------
    >>> import tempfile, torch
    >>> from transformers import VideoMAEConfig, VideoMAEModel
    >>> d = tempfile.mkdtemp()
    >>> VideoMAEModel(VideoMAEConfig(image_size=16, patch_size=8, num_frames=4, hidden_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2, intermediate_size=16)).save_pretrained(d)
    >>> enc = VideoTransformer(model_dir=d, frames=4).fit()
    >>> enc.transform(torch.randint(0, 256, (2, 6, 3, 16, 16), dtype=torch.uint8)).shape
    (2, 8)
    """

    modality = "video"
    _model_types = _VIDEO_MODELS

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        frames: int = 16,
        pooling: str = "mean",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        freeze: bool = True,
        batch_size: int = 4,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model_dir = model_dir
        self.frames = frames
        self.pooling = pooling
        self.mean = mean
        self.std = std
        self.freeze = freeze
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_own_params(self) -> None:
        check_int(self.frames, "frames", 1)
        if self.pooling not in ("mean", "cls"):
            raise ConfigurationError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, Sequence)
                or len(value) != 3
                or (name == "std" and min(value) <= 0)
            ):
                raise ConfigurationError(f"{name} must be None or 3 numbers, got {value!r}")

    def _read_architecture(self) -> dict[str, Any]:
        config, preprocessor = self._read_checkpoint()
        mean = self.mean or preprocessor.get("image_mean") or _DEFAULT_MEAN
        std = self.std or preprocessor.get("image_std") or _DEFAULT_STD
        return {"config": config, "mean": [float(v) for v in mean], "std": [float(v) for v in std]}

    def _net(self, backbone: nn.Module) -> _VideoTransformerNet:
        arch = self.architecture()
        model_type = arch["config"]["model_type"]
        has_cls = model_type in _CLS_MODELS
        if self.pooling == "cls" and not has_cls:
            raise ConfigurationError(
                f"pooling='cls' needs a model with a classification token "
                f"({sorted(_CLS_MODELS)}); {model_type!r} has none: use 'mean'"
            )
        return _VideoTransformerNet(backbone, self.pooling, arch["mean"], arch["std"], has_cls)

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        size = int(self.architecture()["config"].get("image_size", 224))
        return frames_batch(items, self.frames, size)
