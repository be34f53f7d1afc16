"""The audio encoder: a VGGish-like CNN over log-mel patches (+ optional LSTM), SimCLR-trained."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features.encoders._base import (
    BaseEncoder,
    check_backbone_params,
    check_float,
    check_int,
)
from avrec.features.encoders._video import lengths_to_mask
from avrec.features.functional import vggish_patches
from avrec.features.nn import AudioCNN, TemporalLSTM
from avrec.features.transforms import LogMelSpectrogram, SpecAugment, WaveformAugment
from avrec.media import AudioClip, read_audio

__all__ = ["AudioEncoder"]

#: log-mel dB values are mapped to ``(db - DB_OFFSET) / DB_SCALE`` before the CNN.
DB_OFFSET, DB_SCALE = -20.0, 20.0
PATCH_FRAMES = 96  # 0.96 s of 10 ms frames, as VGGish
PATCH_CHUNK = 64  # patches per CNN call at inference (small calls are faster on CPU)
_WAVE_KEYS = ("gain_db", "snr_db")
_SPEC_KEYS = ("time_mask_width", "num_time_masks", "freq_mask_width", "num_freq_masks")
_AUDIO_AUGMENT = {
    "gain_db": (-6.0, 6.0),
    "snr_db": (10.0, 40.0),
    "time_mask_width": 12,
    "num_time_masks": 2,
    "freq_mask_width": 8,
    "num_freq_masks": 2,
}


def _clip_waveform(item: Any, sample_rate: int) -> torch.Tensor:
    if isinstance(item, AudioClip):
        wave, rate = item.samples, item.sample_rate
    elif isinstance(item, torch.Tensor):
        wave, rate = item, sample_rate
    elif isinstance(item, (str, os.PathLike)):
        return read_audio(item, sample_rate=sample_rate, mono=True).samples[0]
    else:
        raise DataValidationError(
            f"audio items must be AudioClip, (channels, time) tensors or paths, "
            f"got {type(item).__name__}"
        )
    if wave.dim() not in (1, 2) or not wave.is_floating_point() or wave.shape[-1] == 0:
        raise DataValidationError(
            f"audio must be a non-empty floating (time,) or (channels, time) tensor, "
            f"got {tuple(wave.shape)} {wave.dtype}"
        )
    if wave.dim() == 2:
        wave = wave.mean(dim=0)
    if rate != sample_rate:
        import torchaudio.functional as AF

        wave = AF.resample(wave, int(rate), int(sample_rate))
    return wave.float()


def waveform_batch(
    items: Sequence[Any] | torch.Tensor, sample_rate: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Audio inputs to one zero-padded mono batch ``(B, time)`` and optional lengths.

    Parameters
    ----------
    items : sequence of AudioClip, tensors (time,) / (channels, time) or paths, or a tensor
        A batch tensor is ``(B, time)`` or ``(B, channels, time)`` at
        ``sample_rate``; clips at another rate are resampled, channels averaged,
        paths decoded with :func:`avrec.media.read_audio`.
    sample_rate : int

    Returns
    -------
    waveforms : torch.Tensor of shape (B, time), float32
    lengths : torch.Tensor of shape (B,) or None
        Valid samples per clip when the clips' lengths differ.
    """
    if isinstance(items, torch.Tensor):
        if items.dim() not in (2, 3) or not items.is_floating_point() or items.shape[-1] == 0:
            raise DataValidationError(
                "a batch of audio must be a floating (B, time) or (B, channels, time) tensor, "
                f"got {tuple(items.shape)} {items.dtype}"
            )
        wave = items.mean(dim=1) if items.dim() == 3 else items
        return wave.float(), None
    waves = [_clip_waveform(item, sample_rate) for item in items]
    counts = [len(w) for w in waves]
    if min(counts) == max(counts):
        return torch.stack(waves), None
    return nn.utils.rnn.pad_sequence(waves, batch_first=True), torch.tensor(counts)


class LogMelPatches(nn.Module):
    """Waveforms ``(B, time)`` to scaled log-mel patches ``(B, P, 96, n_mels)`` and a mask.

    VGGish's front end at ``sample_rate`` (25 ms windows, 10 ms hop, mel bands
    125-7500 Hz), values mapped to ``(dB - DB_OFFSET) / DB_SCALE``, cut into
    non-overlapping 96-frame (0.96 s) patches; as in VGGish, trailing frames
    that do not fill a patch are dropped (a clip shorter than a patch is
    zero-padded to one). Samples past a clip's length are zeroed, so its
    patches do not depend on the rest of the batch.
    """

    def __init__(self, sample_rate: int, n_mels: int) -> None:
        super().__init__()
        self.win = round(0.025 * sample_rate)
        self.hop = round(0.010 * sample_rate)
        n_fft = 2 ** math.ceil(math.log2(self.win))
        f_max = min(7500.0, sample_rate / 2)
        self.front = LogMelSpectrogram(sample_rate, n_fft, self.win, self.hop, n_mels, 125.0, f_max)

    def patch_samples(self, n_patches: Any) -> Any:
        """Samples spanning exactly ``n_patches`` patches of frames."""
        return self.win + (n_patches * PATCH_FRAMES - 1) * self.hop

    def forward(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, length = wave.shape
        if lengths is None:
            lengths = torch.full((b,), length, device=wave.device)
        n_frames = ((lengths - self.win) // self.hop + 1).clamp(min=0)
        n_patches = torch.div(n_frames, PATCH_FRAMES, rounding_mode="floor").clamp(min=1)
        total = int(self.patch_samples(int(n_patches.max())))
        wave = F.pad(wave, (0, max(0, total - length)))[:, :total]
        valid = torch.arange(total, device=wave.device) < lengths[:, None]
        log_mel = (self.front(wave * valid) - DB_OFFSET) / DB_SCALE
        patches = vggish_patches(log_mel, PATCH_FRAMES, PATCH_FRAMES)
        if bool((n_patches == patches.shape[1]).all()):
            return patches, None
        return patches, lengths_to_mask(n_patches, patches.shape[1])


class _AudioNet(nn.Module):
    """Log-mel patches -> AudioCNN per patch -> pooling or LSTM over patches."""

    def __init__(
        self,
        sample_rate: int,
        n_mels: int,
        widths: Sequence[int],
        convs_per_stage: int,
        embedding_dim: int,
        pooling: str,
        use_lstm: bool,
        lstm_hidden_dim: int | None,
        projection_dim: int,
    ) -> None:
        super().__init__()
        self.patches = LogMelPatches(sample_rate, n_mels)
        self.cnn = AudioCNN(widths, convs_per_stage, embedding_dim, pooling)
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
        return [("AudioCNN backbone", self.cnn)]

    def encode(self, patches: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, p = patches.shape[:2]
        if self.training or b * p <= PATCH_CHUNK:
            embeddings = self.cnn.patch_embeddings(patches)
        else:  # long clips: bound the activations' memory, whatever the batch size
            flat = patches.reshape(b * p, 1, *patches.shape[2:])
            parts = [self.cnn.patch_embeddings(part) for part in flat.split(PATCH_CHUNK)]
            embeddings = torch.cat(parts).reshape(b, p, -1)
        if self.lstm is None:
            return self.cnn.pool(embeddings, mask)
        return self.lstm(embeddings, mask=mask)

    def embed(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(*self.patches(wave, lengths))


def random_crops(
    wave: torch.Tensor, lengths: torch.Tensor | None, size: int, generator: torch.Generator
) -> torch.Tensor:
    """One random window of ``size`` samples per clip (zeros past a clip's end)."""
    b, length = wave.shape
    if lengths is None:
        lengths = torch.full((b,), length, device=wave.device)
    room = (lengths - size).clamp(min=0).double().cpu()
    start = (torch.rand(b, generator=generator, dtype=torch.float64) * (room + 1)).floor()
    index = start.long().to(wave.device)[:, None] + torch.arange(size, device=wave.device)
    inside = index < lengths[:, None]
    return torch.gather(wave, 1, index.clamp(max=length - 1)) * inside


class AudioEncoder(BaseEncoder):
    """Clip embeddings from sound: a VGGish-like CNN over 0.96 s log-mel patches.

    The front end is VGGish's (16 kHz, 25 ms windows, 10 ms hop, 64 mel bands
    125-7500 Hz, 96-frame patches); a clip's patch embeddings are pooled, or
    fed to a bidirectional LSTM. Trained self-supervised with SimCLR: the two
    views of a clip are two random ``crop_seconds`` windows of it, each with a
    random gain, white noise
    (:class:`~avrec.features.transforms.WaveformAugment`) and SpecAugment time
    and frequency masks; NT-Xent pulls the views of one clip together and
    pushes other clips away. The embedding is the output before the
    projection head.

    Inputs (``fit`` and ``transform``): a sequence of
    :class:`~avrec.media.AudioClip`, of ``(time,)`` or ``(channels, time)``
    tensors at ``sample_rate``, or of paths (decoded with
    :func:`~avrec.media.read_audio`), or a batch tensor ``(B, time)`` or
    ``(B, channels, time)``. Channels are averaged; clips at another rate are
    resampled; clips of different lengths are padded and their padding masked.

    Parameters
    ----------
    sample_rate : int, default=16000
    n_mels : int, default=64
    crop_seconds : float, default=0.96
        Length of each training view (rounded to whole 0.96 s patches, at least one).
    widths : sequence of int, default=(16, 32, 64)
        Channels of the :class:`~avrec.features.nn.AudioCNN` stages.
    convs_per_stage : int, default=1
    embedding_dim : int, default=64
    pooling : {"mean", "attention", "max"}, default="mean"
        Pooling over patches (of the CNN, or of the LSTM's outputs).
    use_lstm : bool, default=False
        Bidirectional :class:`~avrec.features.nn.TemporalLSTM` over the patch embeddings.
    lstm_hidden_dim : int, optional
        Default ``embedding_dim // 2``.
    projection_dim : int, default=64
    temperature : float, default=0.2
    augment : dict, optional
        Overrides of ``gain_db`` (-6, 6), ``snr_db`` (10, 40),
        ``time_mask_width`` 12, ``num_time_masks`` 2, ``freq_mask_width`` 8,
        ``num_freq_masks`` 2.
    epochs, batch_size, optimizer, learning_rate, weight_decay, lr_schedule, \
validation_fraction, early_stopping_patience, device, random_state, verbose
        As in :class:`VideoEncoder`.

    Attributes
    ----------
    model_, history_, best_epoch_, trained_, n_features_out_, device_
        As in :class:`VideoEncoder`.

    See Also
    --------
    VideoEncoder, GANEncoder, AVCorrespondence

    Notes
    -----
    Log-mel values are scaled as ``(dB + 20) / 20`` before the CNN. An
    unfitted encoder raises :class:`~avrec.exceptions.NotFittedError` in
    ``transform``; :meth:`init` gives the untrained baseline.

    Examples
    --------
    >>> import torch
    >>> waves = torch.randn(4, 16000) * 0.1  # four 1 s clips at 16 kHz
    >>> enc = AudioEncoder(widths=(4, 8), embedding_dim=8, epochs=1, batch_size=4,
    ...                    random_state=0).fit(waves)
    >>> enc.transform(waves).shape
    (4, 8)
    """

    modality = "audio"

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 64,
        crop_seconds: float = 0.96,
        widths: Sequence[int] = (16, 32, 64),
        convs_per_stage: int = 1,
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
        self.sample_rate = sample_rate
        self.n_mels = n_mels
        self.crop_seconds = crop_seconds
        self.widths = widths
        self.convs_per_stage = convs_per_stage
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
        check_int(self.sample_rate, "sample_rate", 8000)
        check_int(self.n_mels, "n_mels", 1)
        check_float(self.crop_seconds, "crop_seconds", 0.0)
        check_backbone_params(self)
        if self.augment is not None:
            unknown = set(self.augment) - set(_AUDIO_AUGMENT)
            if unknown:
                raise ConfigurationError(
                    f"augment: unknown keys {sorted(unknown)}; use {sorted(_AUDIO_AUGMENT)}"
                )
            self._make_augmenter(0)  # the modules validate the values

    def _build_model(self) -> _AudioNet:
        return _AudioNet(
            self.sample_rate,
            self.n_mels,
            self.widths,
            self.convs_per_stage,
            self.embedding_dim,
            self.pooling,
            bool(self.use_lstm),
            self.lstm_hidden_dim,
            self.projection_dim,
        )

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return waveform_batch(items, self.sample_rate)

    def _make_augmenter(self, seed: int) -> SimpleNamespace:
        generator = torch.Generator().manual_seed(seed)
        kwargs = {**_AUDIO_AUGMENT, **(self.augment or {})}
        wave = WaveformAugment(**{k: kwargs[k] for k in _WAVE_KEYS}, generator=generator)
        spec = SpecAugment(**{k: kwargs[k] for k in _SPEC_KEYS}, generator=generator)
        return SimpleNamespace(generator=generator, wave=wave.train(), spec=spec.train())

    def _views(
        self,
        model: nn.Module,
        x: torch.Tensor,
        lengths: torch.Tensor | None,
        augmenter: SimpleNamespace,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        g = augmenter.generator
        size = self._crop_samples(model)
        crops = torch.cat([random_crops(x, lengths, size, g), random_crops(x, lengths, size, g)])
        z = model.projector(model.encode(self._augmented_patches(model, crops, augmenter), None))
        return z[:n], z[n:]

    def _crop_samples(self, model: nn.Module) -> int:
        return int(model.patches.patch_samples(max(1, round(self.crop_seconds / 0.96))))

    @staticmethod
    def _augmented_patches(
        model: nn.Module, crops: torch.Tensor, augmenter: SimpleNamespace
    ) -> torch.Tensor:
        patches, _ = model.patches(augmenter.wave(crops[:, None])[:, 0], None)
        return augmenter.spec(patches)
