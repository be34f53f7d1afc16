"""The video encoder: a frame CNN (+ optional LSTM) trained with SimCLR on frame clips."""

from __future__ import annotations

import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features.encoders._base import (
    BaseEncoder,
    check_backbone_params,
    check_int,
)
from avrec.features.functional import resize_frames
from avrec.features.nn import FrameCNN, TemporalLSTM
from avrec.features.transforms import FrameAugment, NormalizeFrames
from avrec.media import VideoClip, read_video

__all__ = ["VideoEncoder"]

_FRAME_AUGMENT = {
    "scale": (0.35, 1.0),
    "flip_p": 0.5,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.3,
    "max_shift": 0,
    "max_jitter": 1,
}


def lengths_to_mask(lengths: torch.Tensor | None, length: int) -> torch.Tensor | None:
    """``(B,)`` valid counts to a ``(B, length)`` prefix mask (None stays None)."""
    if lengths is None:
        return None
    return torch.arange(length, device=lengths.device) < lengths[:, None]


def _clip_frames(item: Any, num_frames: int, size: int) -> torch.Tensor:
    if isinstance(item, VideoClip):
        return item.frames
    if isinstance(item, torch.Tensor):
        if item.dim() != 4:
            raise DataValidationError(
                f"a video tensor must have shape (T, C, H, W), got {tuple(item.shape)}"
            )
        return item
    if isinstance(item, (str, os.PathLike)):
        return read_video(item, num_frames=num_frames, size=(size, size)).frames
    raise DataValidationError(
        f"video items must be VideoClip, (T, C, H, W) tensors or paths, got {type(item).__name__}"
    )


def frames_batch(
    items: Sequence[Any] | torch.Tensor, num_frames: int, size: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Video inputs to one ``(B, T, 3, size, size)`` batch and optional valid-frame counts.

    Parameters
    ----------
    items : sequence of VideoClip, tensors (T, C, H, W) or paths, or a tensor (B, T, C, H, W)
        uint8 frames, or floating frames in ``[0, 1]``. Paths are decoded with
        :func:`avrec.media.read_video` (``num_frames`` frames, ``size`` square).
    num_frames : int
        Frames decoded from a path.
    size : int
        Side of the square frames of the batch (resized bilinearly if needed).

    Returns
    -------
    frames : torch.Tensor of shape (B, T, 3, size, size)
        uint8 unless the inputs were floating.
    lengths : torch.Tensor of shape (B,) or None
        Valid frames per clip when the clips' lengths differ (shorter clips
        are padded by repeating their last frame); None otherwise.
    """
    if isinstance(items, torch.Tensor):
        if items.dim() != 5:
            raise DataValidationError(
                f"a batch of video must have shape (B, T, C, H, W), got {tuple(items.shape)}"
            )
        clips = list(items)
    else:
        clips = [_clip_frames(item, num_frames, size) for item in items]
    floating = any(c.is_floating_point() for c in clips)
    out, counts = [], []
    for clip in clips:
        if clip.dtype != torch.uint8 and not clip.is_floating_point():
            raise DataValidationError(f"frames must be uint8 or floating, got {clip.dtype}")
        if clip.shape[0] == 0 or clip.shape[1] != 3:
            raise DataValidationError(
                f"video clips need >= 1 frame of 3 channels, got shape {tuple(clip.shape)}"
            )
        if floating and clip.dtype == torch.uint8:
            clip = clip.float() / 255.0
        if tuple(clip.shape[-2:]) != (size, size):
            clip = resize_frames(clip, size)
        out.append(clip)
        counts.append(clip.shape[0])
    longest = max(counts)
    if min(counts) == longest:
        return torch.stack(out), None
    padded = [torch.cat([c, c[-1:].expand(longest - len(c), *c.shape[1:])]) for c in out]
    return torch.stack(padded), torch.tensor(counts)


class _VideoNet(nn.Module):
    """NormalizeFrames -> FrameCNN per frame -> mean/attention/max or LSTM over time."""

    def __init__(
        self,
        widths: Sequence[int],
        blocks_per_stage: int,
        embedding_dim: int,
        pooling: str,
        use_lstm: bool,
        lstm_hidden_dim: int | None,
        projection_dim: int,
    ) -> None:
        super().__init__()
        self.normalize = NormalizeFrames()
        self.cnn = FrameCNN(3, widths, blocks_per_stage, embedding_dim, pooling)
        self.lstm = None
        if use_lstm:
            hidden = lstm_hidden_dim or max(1, embedding_dim // 2)
            self.lstm = TemporalLSTM(embedding_dim, hidden, pooling=pooling)
        self.embedding_dim = self.lstm.embedding_dim if self.lstm else self.cnn.embedding_dim
        d = self.embedding_dim
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, projection_dim))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.cnn.reset_parameters(generator)
        if self.lstm is not None:
            self.lstm.reset_parameters(generator)
        for layer in self.projector:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight, generator=generator)
                nn.init.zeros_(layer.bias)

    def pretrained_targets(self) -> list[tuple[str, nn.Module]]:
        return [("FrameCNN backbone", self.cnn)]

    def encode(self, frames: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        mask = lengths_to_mask(lengths, frames.shape[1])
        if self.lstm is None:
            return self.cnn(frames, mask)
        return self.lstm(self.cnn.frame_embeddings(frames), mask=mask)

    def embed(self, frames: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(self.normalize(frames), lengths)


class VideoEncoder(BaseEncoder):
    """Clip embeddings from frames: a ResNet-style frame CNN, pooled or fed to an LSTM.

    Trained self-supervised with SimCLR: two augmented views of each clip
    (:class:`~avrec.features.transforms.FrameAugment`: a random resized crop,
    flip, brightness/contrast/saturation jitter and temporal jitter, one draw
    per clip) go through the network and a projection head, and the NT-Xent
    loss pulls the views of one clip together and pushes other clips away.
    The embedding is the network's output before the projection head.

    Inputs (``fit`` and ``transform``): a sequence of
    :class:`~avrec.media.VideoClip`, of ``(T, C, H, W)`` tensors or of paths
    (decoded with :func:`~avrec.media.read_video`), or a batch tensor
    ``(B, T, C, H, W)``; uint8 frames or floating frames in ``[0, 1]``. Frames
    are resized to ``frame_size`` squares; clips with fewer frames are masked.

    Parameters
    ----------
    frames : int, default=8
        Frames decoded from each path.
    frame_size : int, default=32
        Side of the square frames the network sees.
    widths : sequence of int, default=(16, 32, 64)
        Channels of the :class:`~avrec.features.nn.FrameCNN` stages.
    blocks_per_stage : int, default=1
    embedding_dim : int, default=64
        Output size of the CNN (and of the encoder without LSTM).
    pooling : {"mean", "attention", "max"}, default="mean"
        Pooling over frames (of the CNN, or of the LSTM's outputs).
    use_lstm : bool, default=False
        Run a bidirectional :class:`~avrec.features.nn.TemporalLSTM` over the
        frame embeddings; the embedding is then ``2 * lstm_hidden_dim`` wide.
    lstm_hidden_dim : int, optional
        LSTM hidden size per direction; default ``embedding_dim // 2``.
    projection_dim : int, default=64
        Output of the SimCLR projection head (training only).
    temperature : float, default=0.2
        NT-Xent temperature.
    augment : dict, optional
        Overrides of the :class:`~avrec.features.transforms.FrameAugment`
        arguments (default ``scale=(0.35, 1.0)``, ``flip_p=0.5``, brightness,
        contrast and saturation 0.3, ``max_jitter=1``). Hue is never jittered.
    epochs : int, default=20
        Training epochs; 0 gives the untrained baseline (as :meth:`init`).
    batch_size : int, default=32
        Clips per training step (``>= 2``) and per ``transform`` forward pass.
    optimizer : {"adam", "sgd"}, default="adam"
        SGD uses momentum 0.9.
    learning_rate : float, default=1e-3
    weight_decay : float, default=1e-4
    lr_schedule : {None, "cosine", "step"}, default="cosine"
        Per epoch; "step" divides the rate by 10 every ``epochs // 3`` epochs.
    validation_fraction : float, default=0.0
        Fraction of clips held out to score the NT-Xent loss each epoch (same
        views every epoch); with it the weights of the best epoch are kept.
    early_stopping_patience : int, optional
        Stop after this many epochs without a better held-out loss.
    device : str or torch.device, optional
        None: CPU. "cuda" only if available (else ConfigurationError).
    random_state : None, int or numpy.random.Generator
        Seeds weight initialisation, shuffling and augmentation.
    verbose : bool, default=False
        Progress bar over epochs and per-epoch log lines (``logging`` INFO).

    Attributes
    ----------
    model_ : torch.nn.Module
        The network (in eval mode).
    history_ : dict of str to list of float
        ``"train_loss"`` and ``"val_loss"`` per epoch.
    best_epoch_ : int or None
        Epoch whose weights were kept (with a validation set).
    trained_ : bool
        False for the random baseline.
    n_features_out_ : int
        Embedding size.
    device_ : torch.device

    See Also
    --------
    AudioEncoder, GANEncoder, AVCorrespondence

    Notes
    -----
    ``transform`` before ``fit`` raises :class:`~avrec.exceptions.NotFittedError`;
    call :meth:`init` for the untrained baseline. In eval mode BatchNorm uses
    its running statistics, so an embedding does not depend on the batch.

    References
    ----------
    Chen, Kornblith, Norouzi and Hinton, "A Simple Framework for Contrastive
    Learning of Visual Representations", ICML 2020.

    Examples
    --------
    >>> import torch
    >>> clips = torch.randint(0, 256, (6, 4, 3, 16, 16), dtype=torch.uint8)
    >>> enc = VideoEncoder(frame_size=16, widths=(4, 8), embedding_dim=8, epochs=1,
    ...                    batch_size=3, random_state=0).fit(clips)
    >>> enc.transform(clips).shape
    (6, 8)
    >>> VideoEncoder(frame_size=16, widths=(4,), embedding_dim=5).init().transform(clips).shape
    (6, 5)
    """

    modality = "video"

    def __init__(
        self,
        frames: int = 8,
        frame_size: int = 32,
        widths: Sequence[int] = (16, 32, 64),
        blocks_per_stage: int = 1,
        embedding_dim: int = 64,
        pooling: str = "mean",
        use_lstm: bool = False,
        lstm_hidden_dim: int | None = None,
        projection_dim: int = 64,
        temperature: float = 0.2,
        augment: dict[str, Any] | None = None,
        epochs: int = 20,
        batch_size: int = 32,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        lr_schedule: str | None = "cosine",
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.frames = frames
        self.frame_size = frame_size
        self.widths = widths
        self.blocks_per_stage = blocks_per_stage
        self.embedding_dim = embedding_dim
        self.pooling = pooling
        self.use_lstm = use_lstm
        self.lstm_hidden_dim = lstm_hidden_dim
        self.projection_dim = projection_dim
        self.temperature = temperature
        self.augment = augment
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.early_stopping_patience = early_stopping_patience
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_own_params(self) -> None:
        check_int(self.frames, "frames", 1)
        check_int(self.frame_size, "frame_size", 1)
        check_backbone_params(self)
        if self.augment is not None:
            try:
                FrameAugment(**{**_FRAME_AUGMENT, **self.augment})
            except TypeError as exc:
                raise ConfigurationError(f"augment: {exc}") from exc

    def _build_model(self) -> _VideoNet:
        return _VideoNet(
            self.widths,
            self.blocks_per_stage,
            self.embedding_dim,
            self.pooling,
            bool(self.use_lstm),
            self.lstm_hidden_dim,
            self.projection_dim,
        )

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return frames_batch(items, self.frames, self.frame_size)

    def _make_augmenter(self, seed: int) -> SimpleNamespace:
        generator = torch.Generator().manual_seed(seed)
        kwargs = {**_FRAME_AUGMENT, **(self.augment or {})}
        return SimpleNamespace(
            generator=generator, frames=FrameAugment(**kwargs, generator=generator).train()
        )

    def _views(
        self,
        model: nn.Module,
        x: torch.Tensor,
        lengths: torch.Tensor | None,
        augmenter: SimpleNamespace,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        both = torch.cat([augmenter.frames(x), augmenter.frames(x)])
        lens = None if lengths is None else torch.cat([lengths, lengths])
        z = model.projector(model.encode(model.normalize(both), lens))
        return z[:n], z[n:]
