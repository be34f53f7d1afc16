"""The GAN encoder: a DCGAN on frames or log-mel patches, embedding with the discriminator."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features.encoders._audio import LogMelPatches, waveform_batch
from avrec.features.encoders._base import BaseEncoder, check_int
from avrec.features.encoders._video import frames_batch, lengths_to_mask
from avrec.features.nn import DCGANDiscriminator, DCGANGenerator
from avrec.utils import DataParallelStep, check_random_state, get_rank, torch_seed

__all__ = ["GANEncoder"]

# AudioEncoder-scaled log-mel p = (dB + 20) / 20 -> GAN images in [-1, 1]: (dB + 10) / 50
_AUDIO_SCALE, _AUDIO_SHIFT = 0.4, -0.2


class _GANNet(nn.Module):
    """DCGAN generator + discriminator, with the input mapping to ``[-1, 1]`` images."""

    def __init__(
        self,
        modality: str,
        image_size: int,
        z_dim: int,
        generator_width: int,
        discriminator_width: int,
        spectral_norm: bool,
        sample_rate: int,
        n_mels: int,
        feature_pooling: str,
    ) -> None:
        super().__init__()
        self.modality = modality
        self.feature_pooling = feature_pooling
        self.image_size = image_size
        channels = 3 if modality == "video" else 1
        self.generator = DCGANGenerator(z_dim, channels, image_size, generator_width)
        self.discriminator = DCGANDiscriminator(
            channels, image_size, discriminator_width, spectral_norm
        )
        self.patches = LogMelPatches(sample_rate, n_mels) if modality == "audio" else None
        grid = 16  # the discriminator's penultimate activations are 4 x 4 per channel
        flat = self.discriminator.embedding_dim
        self.embedding_dim = flat if feature_pooling == "flatten" else flat // grid

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.generator.reset_parameters(generator)
        self.discriminator.reset_parameters(generator)

    def pretrained_targets(self) -> list[tuple[str, nn.Module]]:
        return [("DCGANDiscriminator", self.discriminator)]

    def images(
        self, x: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inputs to images ``(B, L, C, S, S)`` in ``[-1, 1]`` and a mask ``(B, L)``."""
        if self.patches is None:  # frames (B, T, 3, S, S), uint8 or [0, 1]
            x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x * 2.0 - 1.0
            return x, lengths_to_mask(lengths, x.shape[1])
        patches, mask = self.patches(x, lengths)  # (B, P, 96, n_mels)
        b, p = patches.shape[:2]
        size = (self.image_size, self.image_size)
        images = F.interpolate(patches.reshape(b * p, 1, *patches.shape[2:]), size=size,
                               mode="bilinear", align_corners=False, antialias=True)  # fmt: skip
        images = (images * _AUDIO_SCALE + _AUDIO_SHIFT).clamp(-1.0, 1.0)
        return images.reshape(b, p, 1, *size), mask

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        images, mask = self.images(x, lengths)
        b, n = images.shape[:2]
        features = self.discriminator.features(images.flatten(0, 1))
        if self.feature_pooling == "mean":  # average the 4 x 4 grid: position-invariant
            features = features.reshape(b * n, self.embedding_dim, -1).mean(dim=2)
        features = features.reshape(b, n, -1)
        if mask is None:
            return features.mean(dim=1)
        weights = mask.to(features.dtype)[..., None]
        return (features * weights).sum(1) / weights.sum(1)


class GANEncoder(BaseEncoder):
    """Embeddings from a DCGAN discriminator trained on frames or log-mel patches.

    A DCGAN (Radford et al., 2015: strided convolutions, BatchNorm, LeakyReLU
    0.2, N(0, 0.02) initialisation, Adam lr 2e-4 and beta1 0.5, z of size 100)
    learns to generate the clips' frames (``modality="video"``) or their 0.96 s
    log-mel patches resized to ``image_size`` squares (``"audio"``). The
    discriminator uses one-sided label smoothing (real targets
    ``1 - label_smoothing``) and, optionally, spectral normalisation instead
    of BatchNorm. A clip's embedding is the mean over its frames (patches) of
    the discriminator's penultimate activations (``C x 4 x 4``), averaged over
    the 4 x 4 grid (``feature_pooling="mean"``) or flattened; :meth:`sample`
    draws images from the generator.

    Inputs as :class:`VideoEncoder` (``modality="video"``) or
    :class:`AudioEncoder` (``modality="audio"``).

    Parameters
    ----------
    modality : {"video", "audio"}, default="video"
    image_size : int, default=32
        Side of the generated images, a power of two >= 16 (frames are resized to it).
    z_dim : int, default=100
    generator_width, discriminator_width : int, default=32
        ``ngf`` and ``ndf`` of DCGAN.
    spectral_norm : bool, default=False
        Spectral normalisation in the discriminator (SN-GAN) instead of BatchNorm.
    label_smoothing : float, default=0.1
        One-sided: real images are labelled ``1 - label_smoothing``.
    feature_pooling : {"mean", "flatten"}, default="mean"
        How the penultimate activations become the embedding: averaged over
        the 4 x 4 grid (``C`` features, invariant to where things are; better
        linear-probe accuracy on the synthetic corpus) or flattened
        (``16 C``, :meth:`DCGANDiscriminator.features` as it is).
    frames : int, default=8
        Frames decoded per video path.
    sample_rate : int, default=16000
    n_mels : int, default=64
    epochs : int, default=20
    batch_size : int, default=64
        Images (frames or patches) per step.
    optimizer : {"adam", "sgd"}, default="adam"
        Adam with betas (0.5, 0.999), as DCGAN.
    learning_rate : float, default=2e-4
    weight_decay : float, default=0.0
    lr_schedule : {None, "cosine", "step"}, default=None
    validation_fraction : float, default=0.0
        Fraction of the images held out; the held-out loss is the
        discriminator's loss on them and on a fixed set of generated images.
        A GAN's losses do not measure embedding quality: early stopping on it
        is a heuristic against a collapsing discriminator.
    early_stopping_patience, device, random_state, verbose
        As in :class:`VideoEncoder`.

    Attributes
    ----------
    model_ : torch.nn.Module
        ``model_.generator`` and ``model_.discriminator``, in eval mode.
    history_ : dict of str to list of float
        ``"train_loss"`` (discriminator), ``"generator_loss"`` and ``"val_loss"`` per epoch.
    best_epoch_, trained_, n_features_out_, device_
        As in :class:`VideoEncoder`; ``n_features_out_`` is the number of
        channels of the discriminator's last layer, ``discriminator_width *
        image_size / 8`` (16 times that with ``feature_pooling="flatten"``).

    References
    ----------
    Radford, Metz and Chintala, "Unsupervised Representation Learning with
    Deep Convolutional Generative Adversarial Networks", ICLR 2016.

    Examples
    --------
    >>> import torch
    >>> frames = torch.randint(0, 256, (4, 2, 3, 16, 16), dtype=torch.uint8)
    >>> gan = GANEncoder(image_size=16, z_dim=8, generator_width=4, discriminator_width=4,
    ...                  epochs=1, batch_size=4, random_state=0).fit(frames)
    >>> gan.transform(frames).shape, gan.sample(3, random_state=0).shape
    ((4, 8), torch.Size([3, 3, 16, 16]))
    """

    _adam_betas = (0.5, 0.999)

    def __init__(
        self,
        modality: str = "video",
        image_size: int = 32,
        z_dim: int = 100,
        generator_width: int = 32,
        discriminator_width: int = 32,
        spectral_norm: bool = False,
        label_smoothing: float = 0.1,
        feature_pooling: str = "mean",
        frames: int = 8,
        sample_rate: int = 16000,
        n_mels: int = 64,
        epochs: int = 20,
        batch_size: int = 64,
        optimizer: str = "adam",
        learning_rate: float = 2e-4,
        weight_decay: float = 0.0,
        lr_schedule: str | None = None,
        validation_fraction: float = 0.0,
        early_stopping_patience: int | None = None,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.modality = modality
        self.image_size = image_size
        self.z_dim = z_dim
        self.generator_width = generator_width
        self.discriminator_width = discriminator_width
        self.spectral_norm = spectral_norm
        self.label_smoothing = label_smoothing
        self.feature_pooling = feature_pooling
        self.frames = frames
        self.sample_rate = sample_rate
        self.n_mels = n_mels
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
        if self.modality not in ("video", "audio"):
            raise ConfigurationError(f"modality must be 'video' or 'audio', got {self.modality!r}")
        size = check_int(self.image_size, "image_size", 16)
        if size & (size - 1):
            raise ConfigurationError(f"image_size must be a power of two >= 16, got {size}")
        check_int(self.z_dim, "z_dim", 1)
        check_int(self.generator_width, "generator_width", 1)
        check_int(self.discriminator_width, "discriminator_width", 1)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigurationError(
                f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}"
            )
        if self.feature_pooling not in ("mean", "flatten"):
            raise ConfigurationError(
                f"feature_pooling must be 'mean' or 'flatten', got {self.feature_pooling!r}"
            )
        check_int(self.frames, "frames", 1)
        check_int(self.sample_rate, "sample_rate", 8000)
        check_int(self.n_mels, "n_mels", 1)

    def _build_model(self) -> _GANNet:
        return _GANNet(
            self.modality,
            self.image_size,
            self.z_dim,
            self.generator_width,
            self.discriminator_width,
            bool(self.spectral_norm),
            self.sample_rate,
            self.n_mels,
            self.feature_pooling,
        )

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.modality == "video":
            return frames_batch(items, self.frames, self.image_size)
        return waveform_batch(items, self.sample_rate)

    def _fit_model(
        self,
        model: nn.Module,
        x: torch.Tensor,
        lengths: torch.Tensor | None,
        seeds: list[int],
        device: torch.device,
    ) -> tuple[dict[str, list[float]], int | None]:
        images = self._training_images(model, x, lengths, device)
        gen, disc = model.generator, model.discriminator
        opt_d = self._optimizer(disc.parameters())
        opt_g = self._optimizer(gen.parameters())
        noise = torch.Generator().manual_seed(seeds[2] + get_rank())  # own noise per process
        val_noise = torch.Generator().manual_seed(seeds[3])
        real_target = 1.0 - float(self.label_smoothing)
        step = DataParallelStep(model, find_unused_parameters=True)  # D step: G unused

        def z(n: int, generator: torch.Generator) -> torch.Tensor:
            return torch.randn(n, self.z_dim, generator=generator).to(device)

        def d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
            real_logits, fake_logits = disc(real), disc(fake)
            return F.binary_cross_entropy_with_logits(
                real_logits, torch.full_like(real_logits, real_target)
            ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

        def g_loss(fake: torch.Tensor) -> torch.Tensor:
            logits = disc(fake)
            return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))

        def train_step(index: torch.Tensor) -> dict[str, float]:
            real = images[index].to(device)
            fake = gen(z(len(index), noise))
            loss_d = step(d_loss, real, fake.detach())
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = step(g_loss, fake)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            return {"train_loss": float(loss_d.detach()), "generator_loss": float(loss_g.detach())}

        def val_loss(index: torch.Tensor) -> float:
            return float(d_loss(images[index].to(device), gen(z(len(index), val_noise))))

        return self._run_epochs(
            n=images.shape[0],
            modules=model,
            train_step=train_step,
            val_loss=val_loss,
            schedulers=[self._scheduler(opt_d), self._scheduler(opt_g)],
            shuffle_seed=seeds[1],
            desc=f"GANEncoder({self.modality})",
            before_validation=lambda: val_noise.manual_seed(seeds[3]),
        )

    def _training_images(
        self, model: _GANNet, x: torch.Tensor, lengths: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        """Every valid frame or patch of the clips, as ``(N, C, S, S)`` images on the CPU."""
        chunks = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                stop = start + self.batch_size
                lens = None if lengths is None else lengths[start:stop].to(device)
                images, mask = model.images(x[start:stop].to(device), lens)
                flat = images.flatten(0, 1)
                chunks.append((flat if mask is None else flat[mask.flatten()]).cpu())
        return torch.cat(chunks)

    def sample(self, n: int, *, random_state: Any = None) -> torch.Tensor:
        """Generate ``n`` images with the generator (eval mode).

        Parameters
        ----------
        n : int
        random_state : None, int or numpy.random.Generator
            Seed of the latent vectors.

        Returns
        -------
        torch.Tensor of shape (n, C, image_size, image_size), float32 in [-1, 1]
            ``C`` is 3 for video (RGB frames; ``(x + 1) * 127.5`` gives pixel
            values) and 1 for audio (log-mel patches resized to squares).
        """
        self._check_fitted()
        n = check_int(n, "n", 1)
        seed = torch_seed(check_random_state(random_state))
        generator = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.z_dim, generator=generator).to(self.device_)
        with torch.inference_mode():
            return self.model_.generator.eval()(z).float().cpu()
