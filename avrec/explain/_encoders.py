"""Integrated Gradients wired to the encoders: log-mel bins of a sound, frames and pixels.

The explained scalar is derived from an encoder's embedding (similarity to a
target embedding, or one dimension); attributions are over the encoder's own
input tensor, found by following ``transform``'s path from clip to embedding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from avrec.exceptions import ConfigurationError, DataValidationError, NotFittedError
from avrec.explain._attribution import (
    Attribution,
    AudioAttribution,
    VideoAttribution,
    integrated_gradients,
)

__all__ = ["explain_audio", "explain_video"]


def _embedding_scalar(target: Any, similarity: str, reference: Any) -> Callable[[Any], Any]:
    """Embeddings ``(b, d)`` -> the explained scalar ``(b,)``."""
    import torch
    import torch.nn.functional as F

    if similarity not in ("cosine", "dot"):
        raise ConfigurationError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        dim = int(target)
        if not 0 <= dim < reference.shape[-1]:
            raise DataValidationError(
                f"target={dim} is not an embedding dimension (the embedding has "
                f"{reference.shape[-1]})"
            )
        return lambda emb: emb[:, dim]
    vector = reference if target is None else torch.as_tensor(np.asarray(target, np.float32))
    vector = vector.reshape(-1).to(reference.device, reference.dtype)
    if vector.shape != (reference.shape[-1],):
        raise DataValidationError(
            f"target must be an embedding dimension or a vector of length "
            f"{reference.shape[-1]}, got shape {tuple(vector.shape)}"
        )
    if similarity == "dot":
        return lambda emb: emb @ vector
    return lambda emb: F.cosine_similarity(emb, vector.unsqueeze(0).expand_as(emb), dim=1)


def _fitted_model(encoder: Any, kind: str) -> Any:
    from avrec.features.encoders import AudioEncoder, VideoEncoder

    expected = AudioEncoder if kind == "audio" else VideoEncoder
    if not isinstance(encoder, expected):
        raise TypeError(
            f"explain_{kind} needs a {expected.__name__}, got {type(encoder).__name__}; "
            "use integrated_gradients with your own forward function for other models"
        )
    if getattr(encoder, "model_", None) is None:
        raise NotFittedError(
            f"This {type(encoder).__name__} is not fitted; call fit, init or from_pretrained"
        )
    return encoder.model_


def explain_audio(
    encoder: Any,
    audio: Any,
    *,
    target: Any = None,
    similarity: str = "cosine",
    baseline: Any = "silence",
    n_steps: int = 64,
    method: str = "riemann_trapezoid",
    batch_size: int | None = 16,
) -> AudioAttribution:
    """Attribute an audio embedding to the time-frequency bins of the clip's log-mel input.

    The explained scalar is derived from the :class:`~avrec.features.encoders.AudioEncoder`
    embedding of the clip: its similarity to a target embedding (another
    item's, or a user profile in the embedding space), one embedding
    dimension, or by default its cosine similarity to the clip's own
    embedding (what makes the clip look like itself). Attributions are over
    the encoder's input, the scaled log-mel patches ``(n_patches, 96,
    n_mels)``: the waveform-to-log-mel step is differentiable, but per-sample
    waveform attributions oscillate in sign with the signal and say little,
    while the log-mel bins are what the CNN sees and can be read as "this
    sound at this time".

    Parameters
    ----------
    encoder : AudioEncoder
        Fitted (or initialised, or loaded).
    audio : AudioClip, tensor (time,) / (channels, time), path, or tensor (n_patches, 96, n_mels)
        A clip (converted as :meth:`AudioEncoder.transform
        <avrec.features.encoders.AudioEncoder.transform>` does: mono, resampled,
        whole 0.96 s patches), or already computed scaled log-mel patches.
    target : None, int or array-like of shape (d,), optional
        None: the clip's own embedding; int: that embedding dimension; a
        vector: a target embedding.
    similarity : {"cosine", "dot"}, default="cosine"
        How the embedding is compared with a target vector (``"dot"`` gives
        the score a linear model with that vector would assign).
    baseline : "silence", float or tensor, default="silence"
        ``"silence"``: the log-mel patches of an all-zero waveform (every bin
        at the -100 dB floor); a float: a constant input; a tensor of the
        input's shape.
    n_steps, method, batch_size
        See :func:`integrated_gradients`.

    Returns
    -------
    AudioAttribution
        With ``spectrogram`` and ``saliency`` ``(n_frames, n_mels)``.

    Raises
    ------
    TypeError
        If ``encoder`` is not an AudioEncoder.
    NotFittedError
        If the encoder has no weights yet.

    Examples
    --------
    >>> import torch
    >>> from avrec.features.encoders import AudioEncoder
    >>> enc = AudioEncoder(widths=(4,), embedding_dim=4, random_state=0).init()
    >>> result = explain_audio(enc, torch.randn(16000) * 0.1, target=0, n_steps=8)
    >>> result.saliency.shape
    (96, 64)
    """
    import torch

    model = _fitted_model(encoder, "audio")
    device = encoder.device_
    with torch.no_grad():
        x = torch.as_tensor(audio) if isinstance(audio, torch.Tensor) else None
        if x is not None and x.dim() == 3:
            patches = x.float().to(device)
            silence = None
        else:
            from avrec.features.encoders._audio import waveform_batch

            wave, _ = waveform_batch([audio], int(encoder.sample_rate))
            wave = wave.to(device)
            patches = model.patches(wave, None)[0][0]
            silence = model.patches(torch.zeros_like(wave), None)[0][0]
    if isinstance(baseline, str):
        if baseline != "silence":
            raise ConfigurationError(
                f"baseline must be 'silence', a float or a tensor, got {baseline!r}"
            )
        if silence is None:
            with torch.no_grad():
                n_samples = int(model.patches.patch_samples(patches.shape[0]))
                silence = model.patches(torch.zeros(1, n_samples, device=device), None)[0][0]
        baseline = silence
    return _explain_encoder(
        model,
        patches,
        baseline,
        lambda batch: model.encode(batch, None),
        target,
        similarity,
        n_steps,
        method,
        batch_size,
        AudioAttribution,
    )


def explain_video(
    encoder: Any,
    frames: Any,
    *,
    target: Any = None,
    similarity: str = "cosine",
    baseline: Any = 0.0,
    n_steps: int = 64,
    method: str = "riemann_trapezoid",
    batch_size: int | None = 16,
) -> VideoAttribution:
    """Attribute a video embedding to the frames and pixels of a clip.

    As :func:`explain_audio`, for a :class:`~avrec.features.encoders.VideoEncoder`:
    the input is the clip as the network sees it, ``(n_frames, 3, size, size)``
    floats in ``[0, 1]`` after resizing to ``frame_size`` (the per-channel
    normalisation is part of the explained function). Attributions are
    aggregated per pixel (summed over colour channels) and per frame.

    Parameters
    ----------
    encoder : VideoEncoder
        Fitted (or initialised, or loaded).
    frames : VideoClip, tensor (T, C, H, W) of uint8 or [0, 1] floats, or path
        One clip.
    target : None, int or array-like of shape (d,), optional
        As in :func:`explain_audio`.
    similarity : {"cosine", "dot"}, default="cosine"
    baseline : float or tensor, default=0.0
        0.0 is a black clip; a tensor must have the shape of the resized clip.
    n_steps, method, batch_size
        See :func:`integrated_gradients`.

    Returns
    -------
    VideoAttribution
        With ``frame_saliency`` ``(n_frames,)`` and ``pixel_saliency``
        ``(n_frames, size, size)``.

    Raises
    ------
    TypeError
        If ``encoder`` is not a VideoEncoder.
    NotFittedError
        If the encoder has no weights yet.

    Examples
    --------
    >>> import torch
    >>> from avrec.features.encoders import VideoEncoder
    >>> enc = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=4, random_state=0).init()
    >>> clip = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    >>> result = explain_video(enc, clip, n_steps=8)
    >>> result.frame_saliency.shape, result.pixel_saliency.shape
    ((3,), (3, 16, 16))
    """
    import torch

    from avrec.features.encoders._video import frames_batch

    model = _fitted_model(encoder, "video")
    with torch.no_grad():
        batch, _ = frames_batch([frames], int(encoder.frames), int(encoder.frame_size))
        clip = batch[0]
        clip = clip.float() / 255.0 if clip.dtype == torch.uint8 else clip.float()
        clip = clip.to(encoder.device_)
    return _explain_encoder(
        model,
        clip,
        baseline,
        lambda batch: model.embed(batch, None),
        target,
        similarity,
        n_steps,
        method,
        batch_size,
        VideoAttribution,
    )


def _explain_encoder(
    model: Any,
    inputs: Any,
    baseline: Any,
    embed: Callable[[Any], Any],
    target: Any,
    similarity: str,
    n_steps: int,
    method: str,
    batch_size: int | None,
    result_class: type[Attribution],
) -> Any:
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = embed(inputs.unsqueeze(0))[0]
        to_scalar = _embedding_scalar(target, similarity, reference)
        result = integrated_gradients(
            lambda batch: to_scalar(embed(batch)),
            inputs,
            baseline,
            n_steps=n_steps,
            method=method,
            batch_size=batch_size,
        )
    finally:
        model.train(was_training)
    return result_class(
        result.attributions,
        result.inputs,
        result.baseline,
        result.output,
        result.baseline_output,
        result.n_steps,
        result.method,
    )
