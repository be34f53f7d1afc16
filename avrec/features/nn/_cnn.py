"""Convolutional encoders: :class:`FrameCNN` (frames) and :class:`AudioCNN` (log-mel patches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from avrec.exceptions import DataValidationError
from avrec.features.nn._lstm import (
    TemporalPooling,
    _check_input,
    _check_positive,
    _check_widths,
)

__all__ = ["AudioCNN", "FrameCNN"]


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int) -> list[nn.Module]:
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
    return [conv, nn.BatchNorm2d(out_ch)]


class _ResidualBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity or 1x1-projection shortcut, ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(in_ch, out_ch, 3, stride),
            nn.ReLU(inplace=True),
            *_conv_bn(out_ch, out_ch, 3, 1),
        )
        self.shortcut = (
            nn.Identity()
            if stride == 1 and in_ch == out_ch
            else nn.Sequential(*_conv_bn(in_ch, out_ch, 1, stride))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _reset_conv_net(
    module: nn.Module, generator: torch.Generator | None, zero_last_bn: bool
) -> None:
    """Kaiming-normal convs (fan_out, ReLU), BN (1, 0), Linear Xavier-uniform with zero bias."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(
                m.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, generator=generator)
            nn.init.zeros_(m.bias)
    if zero_last_bn:
        for m in module.modules():
            if isinstance(m, _ResidualBlock):
                nn.init.zeros_(m.body[-1].weight)


class FrameCNN(nn.Module):
    """Small ResNet-style 2-D CNN applied to every frame, pooled over time.

    Stem (3x3 conv, stride 2, BN, ReLU, 3x3 max-pool stride 2), then one stage
    of ``blocks_per_stage`` residual blocks per entry of ``widths`` (the first
    stage keeps the resolution, the others halve it), global average pooling
    and a linear projection to ``embedding_dim``. Frames are embedded
    independently; the clip embedding pools them over time with
    :class:`TemporalPooling`.

    Parameters
    ----------
    in_channels : int, default=3
    widths : sequence of int, default=(32, 64, 128, 256)
        Channels of each stage.
    blocks_per_stage : int, default=1
    embedding_dim : int, default=128
    pooling : {"mean", "attention", "max"}, default="mean"
        Temporal pooling of the frame embeddings.

    Attributes
    ----------
    embedding_dim : int

    Notes
    -----
    :meth:`reset_parameters`: convolutions Kaiming-normal (fan-out, ReLU),
    BatchNorm scale 1 and shift 0 (the last BN of each residual block scale 0,
    so blocks start as identities), linear layers Xavier-uniform, biases 0.
    Input frames are floating, e.g. from
    :class:`~avrec.features.transforms.NormalizeFrames`; any size >= 1 pixel
    works (the network downsamples by 4 * 2 ** (len(widths) - 1)).

    Examples
    --------
    >>> import torch
    >>> net = FrameCNN(widths=(8, 16), embedding_dim=12).eval()
    >>> frames = torch.randn(2, 5, 3, 32, 32)  # (B, T, C, H, W)
    >>> net(frames).shape, net.frame_embeddings(frames).shape
    (torch.Size([2, 12]), torch.Size([2, 5, 12]))
    """

    def __init__(
        self,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 64, 128, 256),
        blocks_per_stage: int = 1,
        embedding_dim: int = 128,
        pooling: Literal["mean", "attention", "max"] = "mean",
    ) -> None:
        super().__init__()
        self.in_channels = _check_positive(in_channels, "in_channels")
        self.widths = _check_widths(widths)
        self.blocks_per_stage = _check_positive(blocks_per_stage, "blocks_per_stage")
        self.embedding_dim = _check_positive(embedding_dim, "embedding_dim")
        layers: list[nn.Module] = [
            *_conv_bn(self.in_channels, self.widths[0], 3, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        ]
        previous = self.widths[0]
        for stage, width in enumerate(self.widths):
            for block in range(self.blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(_ResidualBlock(previous, width, stride))
                previous = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, self.embedding_dim)]
        self.backbone = nn.Sequential(*layers)
        self.pool = TemporalPooling(self.embedding_dim, pooling)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (see Notes); ``generator`` makes it reproducible."""
        _reset_conv_net(self.backbone, generator, zero_last_bn=True)
        self.pool.reset_parameters(generator)

    def frame_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """Embed every frame.

        Parameters
        ----------
        frames : torch.Tensor of shape (B, T, in_channels, H, W), floating

        Returns
        -------
        torch.Tensor of shape (B, T, embedding_dim)
            The sequence to feed a :class:`TemporalLSTM`.
        """
        _check_input(frames, "frames", 5, f"(B, T, {self.in_channels}, H, W)")
        if frames.shape[2] != self.in_channels:
            raise DataValidationError(
                f"frames must have {self.in_channels} channels, got {frames.shape[2]}"
            )
        b, t = frames.shape[:2]
        return self.backbone(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Clip embedding: frame embeddings pooled over time.

        Parameters
        ----------
        frames : torch.Tensor of shape (B, T, in_channels, H, W), floating
        mask : torch.Tensor of shape (B, T), bool, optional
            Valid frames (True).

        Returns
        -------
        torch.Tensor of shape (B, embedding_dim)
        """
        return self.pool(self.frame_embeddings(frames), mask)


class AudioCNN(nn.Module):
    """VGGish-like CNN over log-mel patches, pooled over the patches of a clip.

    One stage per entry of ``widths``: ``convs_per_stage`` times (3x3 conv,
    BN, ReLU), then 2x2 max-pooling (``ceil_mode``, so tiny inputs shrink to
    1x1 and stay there). VGGish's flatten and 4096-wide fully connected layers
    are replaced by global average pooling and one linear projection, so any
    patch size works.

    Parameters
    ----------
    widths : sequence of int, default=(64, 128, 256, 512)
        Channels of each stage (VGGish's).
    convs_per_stage : int, default=1
    embedding_dim : int, default=128
    pooling : {"mean", "attention", "max"}, default="mean"
        Pooling of the patch embeddings into a clip embedding.

    Attributes
    ----------
    embedding_dim : int

    Notes
    -----
    :meth:`reset_parameters`: convolutions Kaiming-normal (fan-out, ReLU),
    BatchNorm 1 and 0, linear layers Xavier-uniform, biases 0.

    Examples
    --------
    >>> import torch
    >>> net = AudioCNN(widths=(4, 8), embedding_dim=6).eval()
    >>> patches = torch.randn(2, 3, 12, 8)  # (B, P, n_frames, n_mels)
    >>> net(patches).shape, net.patch_embeddings(patches).shape
    (torch.Size([2, 6]), torch.Size([2, 3, 6]))
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 128, 256, 512),
        convs_per_stage: int = 1,
        embedding_dim: int = 128,
        pooling: Literal["mean", "attention", "max"] = "mean",
    ) -> None:
        super().__init__()
        self.widths = _check_widths(widths)
        self.convs_per_stage = _check_positive(convs_per_stage, "convs_per_stage")
        self.embedding_dim = _check_positive(embedding_dim, "embedding_dim")
        layers: list[nn.Module] = []
        previous = 1
        for width in self.widths:
            for _ in range(self.convs_per_stage):
                layers += [*_conv_bn(previous, width, 3, 1), nn.ReLU(inplace=True)]
                previous = width
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(previous, self.embedding_dim)]
        self.backbone = nn.Sequential(*layers)
        self.pool = TemporalPooling(self.embedding_dim, pooling)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (see Notes); ``generator`` makes it reproducible."""
        _reset_conv_net(self.backbone, generator, zero_last_bn=False)
        self.pool.reset_parameters(generator)

    def patch_embeddings(self, patches: torch.Tensor) -> torch.Tensor:
        """Embed every patch.

        Parameters
        ----------
        patches : torch.Tensor of shape (B, P, n_frames, n_mels), floating
            E.g. from :class:`~avrec.features.transforms.VGGishPatches`
            (``(B, 1, F, M)`` is one patch per clip).

        Returns
        -------
        torch.Tensor of shape (B, P, embedding_dim)
        """
        _check_input(patches, "patches", 4, "(B, P, n_frames, n_mels)")
        b, p = patches.shape[:2]
        x = patches.reshape(b * p, 1, *patches.shape[2:])
        return self.backbone(x).reshape(b, p, -1)

    def forward(self, patches: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Clip embedding: patch embeddings pooled.

        Parameters
        ----------
        patches : torch.Tensor of shape (B, P, n_frames, n_mels), floating
        mask : torch.Tensor of shape (B, P), bool, optional
            Valid patches (True), for clips of different lengths.

        Returns
        -------
        torch.Tensor of shape (B, embedding_dim)
        """
        return self.pool(self.patch_embeddings(patches), mask)
