"""Integrated Gradients: exact on linear models, complete, and wired to the encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avrec.exceptions import ConfigurationError, DataValidationError, NotFittedError
from avrec.explain import (
    AudioAttribution,
    VideoAttribution,
    explain_audio,
    explain_video,
    integrated_gradients,
)
from avrec.features.encoders import AudioEncoder, GANEncoder, VideoEncoder

torch.set_num_threads(1)
METHODS = ["riemann_trapezoid", "gausslegendre"]


@pytest.mark.parametrize("method", METHODS)
def test_linear_model_is_exact(method):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    b = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    result = integrated_gradients(
        lambda batch: (batch * w).sum(dim=(1, 2)) + 2.0, x, b, n_steps=5, method=method
    )
    assert result.attributions.shape == x.shape
    torch.testing.assert_close(result.attributions, (x - b) * w, rtol=1e-12, atol=1e-12)
    assert abs(result.delta) < 1e-10
    assert result.output - result.baseline_output == pytest.approx(float(((x - b) * w).sum()))


def _mlp():
    gen = torch.Generator().manual_seed(1)
    w1 = torch.randn(6, 16, generator=gen)
    w2 = torch.randn(16, 3, generator=gen)
    return lambda batch: torch.tanh(torch.tanh(batch @ w1) @ w2)


@pytest.mark.parametrize("method", METHODS)
def test_completeness_improves_with_steps(method):
    f = _mlp()
    x = torch.linspace(-1.0, 1.5, 6)
    deltas = [
        abs(integrated_gradients(f, x, target=1, n_steps=n, method=method).delta)
        for n in (3, 16, 128)
    ]
    assert deltas[0] > deltas[1] > deltas[2]
    result = integrated_gradients(f, x, target=1, n_steps=128, method=method)
    assert result.relative_delta < 1e-2
    assert abs(result.delta) < 1e-2


def test_batching_and_no_parameter_grads():
    layer = torch.nn.Linear(5, 2)
    x = torch.randn(5)
    full = integrated_gradients(lambda b: torch.tanh(layer(b)), x, target=0, n_steps=10)
    split = integrated_gradients(
        lambda b: torch.tanh(layer(b)), x, target=0, n_steps=10, batch_size=3
    )
    torch.testing.assert_close(full.attributions, split.attributions)
    assert layer.weight.grad is None
    assert "Attribution(shape=(5,)" in repr(full)


def test_bad_arguments():
    f = _mlp()
    x = torch.zeros(6)
    with pytest.raises(ConfigurationError, match="method"):
        integrated_gradients(f, x, target=0, method="riemann_left")
    with pytest.raises(ConfigurationError, match="n_steps"):
        integrated_gradients(f, x, target=0, n_steps=1)
    with pytest.raises(DataValidationError, match="baseline"):
        integrated_gradients(f, x, torch.zeros(5), target=0)
    with pytest.raises(DataValidationError, match="one scalar per example"):
        integrated_gradients(f, x)  # (b, 3) outputs need a target
    with pytest.raises(DataValidationError, match="target"):
        integrated_gradients(lambda b: b.sum(dim=1), x, target=0)


@pytest.fixture(scope="module")
def audio_encoder():
    return AudioEncoder(widths=(4, 8), embedding_dim=8, random_state=0).init()


@pytest.fixture(scope="module")
def video_encoder():
    return VideoEncoder(frame_size=16, widths=(4, 8), embedding_dim=8, random_state=0).init()


def test_explain_audio_over_log_mel_bins(audio_encoder):
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(2, 20000, generator=gen) * 0.1  # stereo, 1.25 s: one whole patch
    target = audio_encoder.transform(torch.randn(1, 16000, generator=gen) * 0.3)[0]
    coarse = explain_audio(audio_encoder, wave, target=target, n_steps=8)
    result = explain_audio(audio_encoder, wave, target=target, n_steps=96)
    assert isinstance(result, AudioAttribution)
    assert result.attributions.shape == result.inputs.shape == (1, 96, 64)
    assert result.saliency.shape == result.spectrogram.shape == (96, 64)
    assert result.hop_seconds == 0.01
    assert abs(result.delta) < abs(coarse.delta)
    assert result.relative_delta < 2e-2
    # the explained output is the cosine similarity of the clip's embedding with the target
    embedding = audio_encoder.transform(wave[None])[0]
    cosine = embedding @ target / np.linalg.norm(embedding) / np.linalg.norm(target)
    assert result.output == pytest.approx(float(cosine), abs=1e-5)
    # the silence baseline is the log-mel floor
    assert torch.allclose(result.baseline, result.baseline.flatten()[0].expand_as(result.baseline))
    # patches given directly, an embedding dimension, a dot product
    direct = explain_audio(audio_encoder, result.inputs, target=3, n_steps=16)
    assert direct.attributions.shape == (1, 96, 64)
    dot = explain_audio(audio_encoder, wave, target=target, similarity="dot", n_steps=8)
    assert dot.output == pytest.approx(float(embedding @ target), rel=1e-4)


def test_explain_video_over_frames_and_pixels(video_encoder):
    gen = torch.Generator().manual_seed(0)
    clip = torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8, generator=gen)  # resized
    result = explain_video(video_encoder, clip, n_steps=64)
    assert isinstance(result, VideoAttribution)
    assert result.attributions.shape == (4, 3, 16, 16)
    assert result.pixel_saliency.shape == (4, 16, 16)
    assert result.frame_saliency.shape == (4,)
    assert result.frames.shape == (4, 16, 16, 3)
    assert result.frames.min() >= 0 and result.frames.max() <= 1
    assert result.output == pytest.approx(1.0, abs=1e-5)  # cosine with its own embedding
    gap = result.output - result.baseline_output
    assert result.frame_saliency.sum() == pytest.approx(gap, abs=2e-2 * abs(gap) + 1e-6)
    assert not video_encoder.model_.training


def test_encoder_errors(audio_encoder, video_encoder):
    clip = torch.zeros(2, 3, 16, 16)
    with pytest.raises(TypeError, match="VideoEncoder"):
        explain_video(audio_encoder, clip)
    with pytest.raises(TypeError, match="AudioEncoder"):
        explain_audio(GANEncoder(), torch.zeros(16000))
    with pytest.raises(NotFittedError):
        explain_video(VideoEncoder(frame_size=16, widths=(4,), embedding_dim=4), clip)
    with pytest.raises(DataValidationError, match="embedding dimension"):
        explain_video(video_encoder, clip, target=99)
    with pytest.raises(DataValidationError, match="vector of length"):
        explain_video(video_encoder, clip, target=np.ones(3))
    with pytest.raises(ConfigurationError, match="similarity"):
        explain_video(video_encoder, clip, target=np.ones(8), similarity="l2")
    with pytest.raises(ConfigurationError, match="baseline"):
        explain_audio(audio_encoder, torch.zeros(16000), baseline="noise")
