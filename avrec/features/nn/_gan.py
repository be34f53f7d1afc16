"""DCGAN (Radford et al., 2015): :class:`DCGANGenerator` and :class:`DCGANDiscriminator`.

Strided (transposed) convolutions instead of pooling, BatchNorm, ReLU in the
generator (tanh output), LeakyReLU(0.2) in the discriminator, weights drawn
from N(0, 0.02). The discriminator's penultimate activations are the
embedding. Train with Adam (lr 2e-4, beta1 0.5) and z of size 100.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features.nn._lstm import _check_input, _check_positive

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]


def _check_image_size(image_size: int) -> int:
    image_size = _check_positive(image_size, "image_size", minimum=16)
    if image_size & (image_size - 1):
        raise ConfigurationError(f"image_size must be a power of two >= 16, got {image_size}")
    return image_size


def _reset_dcgan(module: nn.Module, generator: torch.Generator | None) -> None:
    """Conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02), biases 0 (DCGAN recipe)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            weight = (
                m.parametrizations.weight.original
                if parametrize.is_parametrized(m, "weight")
                else m.weight
            )
            nn.init.normal_(weight, 0.0, 0.02, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``z`` of size ``z_dim`` to an image in ``[-1, 1]``.

    A 4x4 transposed convolution from ``z`` to ``width * image_size / 8``
    channels, then stride-2 transposed 4x4 convolutions halving the channels
    and doubling the size (BatchNorm, ReLU) down to ``width`` channels, and a
    last one to ``out_channels`` with tanh.

    Parameters
    ----------
    z_dim : int, default=100
    out_channels : int, default=3
        3 for RGB frames, 1 for spectrogram patches.
    image_size : int, default=64
        A power of two >= 16 (DCGAN used 64; 32 for CIFAR-sized images).
    width : int, default=64
        Channels of the last hidden layer (``ngf``).

    Notes
    -----
    :meth:`reset_parameters`: convolution weights N(0, 0.02), BatchNorm
    scale N(1, 0.02) and shift 0.

    Examples
    --------
    >>> import torch
    >>> gen = DCGANGenerator(z_dim=8, out_channels=1, image_size=32, width=4)
    >>> gen(torch.randn(2, 8)).shape
    torch.Size([2, 1, 32, 32])
    >>> gen.sample(3, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 1, 32, 32])
    """

    def __init__(
        self, z_dim: int = 100, out_channels: int = 3, image_size: int = 64, width: int = 64
    ) -> None:
        super().__init__()
        self.z_dim = _check_positive(z_dim, "z_dim")
        self.out_channels = _check_positive(out_channels, "out_channels")
        self.image_size = _check_image_size(image_size)
        self.width = _check_positive(width, "width")
        n_up = int(math.log2(self.image_size)) - 3  # 4x4 -> image_size / 2
        channels = self.width * 2**n_up
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(self.z_dim, channels, 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]
        for _ in range(n_up):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(channels // 2),
                nn.ReLU(inplace=True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, self.out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (see Notes); ``generator`` makes it reproducible."""
        _reset_dcgan(self, generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Generate images.

        Parameters
        ----------
        z : torch.Tensor of shape (B, z_dim) or (B, z_dim, 1, 1)

        Returns
        -------
        torch.Tensor of shape (B, out_channels, image_size, image_size)
            Values in ``[-1, 1]``.
        """
        if isinstance(z, torch.Tensor) and z.dim() == 4 and z.shape[2:] == (1, 1):
            z = z.flatten(1)
        _check_input(z, "z", 2, f"(B, {self.z_dim})")
        if z.shape[1] != self.z_dim:
            raise DataValidationError(f"z must have {self.z_dim} features, got {z.shape[1]}")
        return self.main(z[:, :, None, None])

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generate ``n`` images from standard-normal ``z`` drawn with ``generator``.

        Parameters
        ----------
        n : int
        generator : torch.Generator or None, default=None
            On the module's device; ``None`` uses torch's global generator.

        Returns
        -------
        torch.Tensor of shape (n, out_channels, image_size, image_size)
        """
        n = _check_positive(n, "n")
        weight = self.main[0].weight
        z = torch.randn(
            (n, self.z_dim), generator=generator, device=weight.device, dtype=weight.dtype
        )
        return self(z)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: image to a real/fake logit; penultimate activations embed.

    A stride-2 4x4 convolution to ``width`` channels (LeakyReLU 0.2, no
    BatchNorm), then stride-2 4x4 convolutions doubling the channels
    (BatchNorm, LeakyReLU 0.2) down to 4x4, and a 4x4 convolution to one logit.

    Parameters
    ----------
    in_channels : int, default=3
        3 for RGB frames, 1 for spectrogram patches (resized to ``image_size``).
    image_size : int, default=64
        A power of two >= 16.
    width : int, default=64
        Channels of the first layer (``ndf``).
    spectral_norm : bool, default=False
        Spectral normalisation of every convolution (Miyato et al., 2018); the
        BatchNorm layers are then left out, as in SN-GAN.

    Attributes
    ----------
    embedding_dim : int
        Size of :meth:`features`: ``width * image_size / 8 * 16``.

    Notes
    -----
    :meth:`reset_parameters`: convolution weights N(0, 0.02) (the unnormalised
    weight under spectral norm), BatchNorm scale N(1, 0.02) and shift 0.

    Examples
    --------
    >>> import torch
    >>> disc = DCGANDiscriminator(in_channels=1, image_size=32, width=4).eval()
    >>> x = torch.randn(2, 1, 32, 32)
    >>> disc(x).shape, disc.features(x).shape, disc.embedding_dim
    (torch.Size([2]), torch.Size([2, 256]), 256)
    """

    def __init__(
        self,
        in_channels: int = 3,
        image_size: int = 64,
        width: int = 64,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = _check_positive(in_channels, "in_channels")
        self.image_size = _check_image_size(image_size)
        self.width = _check_positive(width, "width")
        self.spectral_norm = bool(spectral_norm)
        n_down = int(math.log2(self.image_size)) - 3  # image_size / 2 -> 4x4

        def conv(in_ch: int, out_ch: int, stride: int, padding: int) -> nn.Module:
            layer = nn.Conv2d(in_ch, out_ch, 4, stride, padding, bias=False)
            return _spectral_norm(layer) if self.spectral_norm else layer

        channels = self.width
        layers: list[nn.Module] = [
            conv(self.in_channels, channels, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(n_down):
            layers.append(conv(channels, channels * 2, 2, 1))
            if not self.spectral_norm:
                layers.append(nn.BatchNorm2d(channels * 2))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            channels *= 2
        self.body = nn.Sequential(*layers)
        self.head = conv(channels, 1, 1, 0)
        self.embedding_dim = channels * 16
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (see Notes); ``generator`` makes it reproducible."""
        _reset_dcgan(self, generator)

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, "x", 4, f"(B, {self.in_channels}, {self.image_size}, {self.image_size})")
        if x.shape[1:] != (self.in_channels, self.image_size, self.image_size):
            raise DataValidationError(
                f"x must have shape (B, {self.in_channels}, {self.image_size}, "
                f"{self.image_size}), got {tuple(x.shape)}"
            )
        return self.body(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations, flattened: the embedding.

        Parameters
        ----------
        x : torch.Tensor of shape (B, in_channels, image_size, image_size)
            Images scaled to ``[-1, 1]`` like the generator's output.

        Returns
        -------
        torch.Tensor of shape (B, embedding_dim)
        """
        return self._body(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Real/fake logits (use with ``BCEWithLogitsLoss``).

        Parameters
        ----------
        x : torch.Tensor of shape (B, in_channels, image_size, image_size)

        Returns
        -------
        torch.Tensor of shape (B,)
        """
        return self.head(self._body(x)).flatten()
