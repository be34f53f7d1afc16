"""Pretrained speech/audio transformers (wav2vec 2.0, HuBERT, WavLM) from a local checkpoint."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features.encoders._audio import waveform_batch
from avrec.features.encoders._base import check_int
from avrec.features.encoders._checkpoint import BackboneNet, CheckpointEncoder

__all__ = ["AudioTransformer"]

#: Accepted ``model_type`` -> (config class, model class) of transformers.
_AUDIO_MODELS = {
    "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2Model"),
    "hubert": ("HubertConfig", "HubertModel"),
    "wavlm": ("WavLMConfig", "WavLMModel"),
}
#: transformers' Wav2Vec2FeatureExtractor: variance floor of its normalisation.
_NORM_EPS = 1e-7


class _AudioTransformerNet(BackboneNet):
    """Resample -> per-clip standardisation -> transformers model -> mean over valid frames."""

    def __init__(
        self,
        backbone: nn.Module,
        sample_rate: int,
        model_rate: int,
        do_normalize: bool,
        layer: int | None,
    ) -> None:
        import torchaudio

        super().__init__(backbone)
        config = backbone.config
        self.sample_rate = int(sample_rate)
        self.model_rate = int(model_rate)
        self.resample = None
        if self.sample_rate != self.model_rate:
            self.resample = torchaudio.transforms.Resample(self.sample_rate, self.model_rate)
            # the filter follows from the rates: not part of the weights
            self.resample.register_buffer("kernel", self.resample.kernel, persistent=False)
        self.do_normalize = bool(do_normalize)
        self.layer = layer
        # layer-norm feature encoders take an attention mask; group-norm ones (wav2vec2-base,
        # hubert-base) must see each clip unpadded, as transformers documents
        self.batched = getattr(config, "feat_extract_norm", "group") == "layer"
        receptive = 1
        for kernel, stride in zip(
            reversed(config.conv_kernel), reversed(config.conv_stride), strict=True
        ):
            receptive = (receptive - 1) * stride + kernel
        self.min_samples = receptive

    def prepare(
        self, wave: torch.Tensor, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mono ``(B, time)`` at ``sample_rate`` to model input and valid lengths."""
        b, n = wave.shape
        if lengths is None:
            lengths = torch.full((b,), n, device=wave.device)
        lengths = lengths.to(wave.device).long()
        wave = wave.float()
        if self.resample is not None:
            wave = self.resample(wave)
            lengths = torch.div(
                lengths * self.model_rate + self.sample_rate - 1,
                self.sample_rate,
                rounding_mode="floor",
            ).clamp(max=wave.shape[1])
        if wave.shape[1] < self.min_samples:  # shorter than one output frame: pad with silence
            wave = F.pad(wave, (0, self.min_samples - wave.shape[1]))
        lengths = lengths.clamp(min=self.min_samples)
        mask = torch.arange(wave.shape[1], device=wave.device)[None] < lengths[:, None]
        wave = wave * mask
        if self.do_normalize:
            count = lengths[:, None].to(wave.dtype)
            mean = wave.sum(1, keepdim=True) / count
            var = (((wave - mean) * mask) ** 2).sum(1, keepdim=True) / count
            wave = (wave - mean) / torch.sqrt(var + _NORM_EPS) * mask
        return wave, lengths

    def frames(self, wave: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, frames, hidden)`` of prepared input (padded frames zeroed)."""
        want_layer = self.layer is not None
        if self.batched:
            mask = torch.arange(wave.shape[1], device=wave.device)[None] < lengths[:, None]
            out = self.backbone(wave, attention_mask=mask.long(), output_hidden_states=want_layer)
            hidden = out.hidden_states[self.layer] if want_layer else out.last_hidden_state
        else:
            parts = []
            for row, length in zip(wave, lengths.tolist(), strict=True):
                out = self.backbone(row[None, :length], output_hidden_states=want_layer)
                states = out.hidden_states[self.layer] if want_layer else out.last_hidden_state
                parts.append(states[0])
            hidden = nn.utils.rnn.pad_sequence(parts, batch_first=True)
        counts = self.backbone._get_feat_extract_output_lengths(lengths).long()
        valid = torch.arange(hidden.shape[1], device=hidden.device)[None] < counts[:, None]
        return hidden * valid[..., None]

    def embed(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        wave, lengths = self.prepare(wave, lengths)
        hidden = self.frames(wave, lengths)
        counts = self.backbone._get_feat_extract_output_lengths(lengths).clamp(min=1)
        return hidden.sum(1) / counts[:, None].to(hidden.dtype)


class AudioTransformer(CheckpointEncoder):
    """Clip embeddings from a pretrained wav2vec 2.0 / HuBERT / WavLM model.

    These self-supervised models read the raw waveform (16 kHz for the
    published checkpoints), so the front end is only resampling
    (:class:`torchaudio.transforms.Resample`) and the per-clip standardisation
    of transformers' ``Wav2Vec2FeatureExtractor``; variable lengths are
    handled with attention masks (layer-norm feature encoders) or clip by
    clip (group-norm ones, which must not see padding). The embedding is the
    mean of the hidden states over the valid frames (of the last layer, or of
    ``layer``). Decoding is :func:`avrec.media.read_audio` (PyAV).

    The checkpoint is a local directory as ``save_pretrained`` writes it:
    ``config.json`` + ``model.safetensors`` (or ``pytorch_model.bin``, read
    with ``torch.load(weights_only=True)``), optionally
    ``preprocessor_config.json`` (``sampling_rate``, ``do_normalize``). It is
    loaded with ``local_files_only=True``, never with remote code.

    Inputs (``transform``): a sequence of :class:`~avrec.media.AudioClip`, of
    ``(time,)`` / ``(channels, time)`` float tensors at ``sample_rate`` or of
    paths, or a batch tensor; channels are averaged to mono.

    Parameters
    ----------
    model_dir : str or path-like
        The local checkpoint directory.
    sample_rate : int, default=16000
        Rate of the input (and of decoded paths); resampled to the model's.
    layer : int, optional
        Hidden-state index to pool (0 = the feature projection, ``-1`` = last;
        intermediate layers often suit non-speech audio better). Default: the
        last hidden state.
    freeze : bool, default=True
        Freeze every parameter (feature extraction).
    batch_size : int, default=8
        Clips per ``transform`` forward pass.
    device : str or torch.device, optional
    random_state : None, int or numpy.random.Generator
        Seeds the random weights of :meth:`init`.
    verbose : bool, default=False

    Attributes
    ----------
    model_ : torch.nn.Module
        ``backbone`` (the transformers model) behind ``embed(wave, lengths)``.
    architecture_ : dict
        The checkpoint's ``config``, ``sampling_rate`` and ``do_normalize``.
    n_features_out_ : int
        The model's ``hidden_size``.
    device_ : torch.device

    See Also
    --------
    AudioEncoder : a small log-mel CNN trained from scratch.

    Notes
    -----
    Clips shorter than the convolutional receptive field (400 samples at
    16 kHz for the published models) are padded with silence to one frame.

    References
    ----------
    Baevski, Zhou, Mohamed and Auli, "wav2vec 2.0: A Framework for
    Self-Supervised Learning of Speech Representations", NeurIPS 2020.

    Examples
    --------
    >>> import tempfile, torch
    >>> from transformers import Wav2Vec2Config, Wav2Vec2Model
    >>> d = tempfile.mkdtemp()
    >>> Wav2Vec2Model(Wav2Vec2Config(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...     intermediate_size=16, conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2),
    ...     num_conv_pos_embeddings=4, num_conv_pos_embedding_groups=2)).save_pretrained(d)
    >>> enc = AudioTransformer(model_dir=d).fit()
    >>> enc.transform(torch.randn(3, 1600)).shape
    (3, 8)
    """

    modality = "audio"
    _model_types = _AUDIO_MODELS

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        sample_rate: int = 16000,
        layer: int | None = None,
        freeze: bool = True,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        random_state: Any = None,
        verbose: bool = False,
    ) -> None:
        self.model_dir = model_dir
        self.sample_rate = sample_rate
        self.layer = layer
        self.freeze = freeze
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _check_own_params(self) -> None:
        check_int(self.sample_rate, "sample_rate", 1)
        if self.layer is not None and (
            not isinstance(self.layer, int) or isinstance(self.layer, bool)
        ):
            raise ConfigurationError(f"layer must be None or an int, got {self.layer!r}")

    def _read_architecture(self) -> dict[str, Any]:
        config, preprocessor = self._read_checkpoint()
        return {
            "config": config,
            "sampling_rate": int(preprocessor.get("sampling_rate", 16000)),
            "do_normalize": bool(preprocessor.get("do_normalize", True)),
        }

    def _net(self, backbone: nn.Module) -> _AudioTransformerNet:
        arch = self.architecture()
        layers = int(arch["config"].get("num_hidden_layers", 0)) + 1
        if self.layer is not None and not -layers <= self.layer < layers:
            raise ConfigurationError(
                f"layer must be in [{-layers}, {layers - 1}] for this model, got {self.layer!r}"
            )
        return _AudioTransformerNet(
            backbone, self.sample_rate, arch["sampling_rate"], arch["do_normalize"], self.layer
        )

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return waveform_batch(items, self.sample_rate)
