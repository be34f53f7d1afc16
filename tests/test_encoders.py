"""Feature encoders: estimator contract, inputs, determinism, batching, training, persistence."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from sklearn.base import clone

from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    NotFittedError,
    PersistenceError,
)
from avrec.features import FrameCNN
from avrec.features.encoders import (
    AudioEncoder,
    AVCorrespondence,
    GANEncoder,
    VideoEncoder,
    correspondence_loss,
    nt_xent_loss,
)
from avrec.media import AudioClip, VideoClip, write_audio, write_video

TINY = {
    "video": {"frame_size": 16, "widths": (4, 8), "embedding_dim": 8, "projection_dim": 8},
    "audio": {"widths": (4, 8), "embedding_dim": 8, "projection_dim": 8},
    "gan": {"image_size": 16, "z_dim": 8, "generator_width": 4, "discriminator_width": 4},
    "gan_audio": {
        "modality": "audio", "image_size": 16, "z_dim": 8, "generator_width": 4,
        "discriminator_width": 4, "spectral_norm": True,
    },
}  # fmt: skip
CLASSES = {"video": VideoEncoder, "audio": AudioEncoder, "gan": GANEncoder, "gan_audio": GANEncoder}
KINDS = list(TINY)


def make(kind: str, **params) -> VideoEncoder | AudioEncoder | GANEncoder:
    defaults = {"epochs": 2, "batch_size": 4, "random_state": 0, "verbose": False}
    return CLASSES[kind](**{**defaults, **TINY[kind], **params})


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # tiny models: one thread is faster, and immune to OpenMP contention on busy machines
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (8, 1, 3, 16, 16), generator=g)
    drift = torch.randint(-20, 20, (8, 4, 3, 1, 1), generator=g)
    return (base + drift).clamp(0, 255).to(torch.uint8)  # (8, 4, 3, 16, 16)


@pytest.fixture(scope="module")
def sounds() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(16000) / 16000
    pitch = 200 + 600 * torch.rand(8, 1, generator=g)
    return 0.3 * torch.sin(2 * torch.pi * pitch * t) + 0.05 * torch.randn(8, 16000, generator=g)


def data_for(kind: str, frames: torch.Tensor, sounds: torch.Tensor) -> torch.Tensor:
    return sounds if kind in ("audio", "gan_audio") else frames


@pytest.fixture(scope="module")
def fitted(frames, sounds) -> dict:
    return {kind: make(kind).fit(data_for(kind, frames, sounds)) for kind in KINDS}


# ------------------------------------------------------------------ estimator contract
@pytest.mark.parametrize("kind", KINDS)
def test_fit_transform_shapes(kind, fitted, frames, sounds):
    enc = fitted[kind]
    out = enc.transform(data_for(kind, frames, sounds))
    assert out.shape == (8, enc.n_features_out_) and out.dtype == np.float32
    assert np.isfinite(out).all()
    assert enc.trained_ and len(enc.history_["train_loss"]) == 2
    assert enc.best_epoch_ is None and enc.history_["val_loss"] == []
    assert enc.device_ == torch.device("cpu") and not enc.model_.training


@pytest.mark.parametrize("kind", KINDS)
def test_unfitted_raises_and_init_is_the_untrained_baseline(kind, frames, sounds):
    X = data_for(kind, frames, sounds)
    with pytest.raises(NotFittedError, match="init\\(\\)"):
        make(kind).transform(X)
    baseline = make(kind).init()
    assert not baseline.trained_ and baseline.history_ == {"train_loss": [], "val_loss": []}
    np.testing.assert_array_equal(baseline.transform(X), make(kind, epochs=0).fit(X).transform(X))


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_embeddings(kind, fitted, frames, sounds):
    X = data_for(kind, frames, sounds)
    again = make(kind).fit(X)
    np.testing.assert_array_equal(fitted[kind].transform(X), again.transform(X))
    assert fitted[kind].history_ == again.history_
    other = make(kind, random_state=1).fit(X)
    assert not np.allclose(fitted[kind].transform(X), other.transform(X))


@pytest.mark.parametrize("kind", KINDS)
def test_embeddings_do_not_depend_on_the_batch_size(kind, fitted, frames, sounds):
    X = data_for(kind, frames, sounds)
    one = fitted[kind].transform(X, batch_size=1)
    np.testing.assert_allclose(one, fitted[kind].transform(X, batch_size=8), atol=1e-5, rtol=0)


def test_variable_length_audio_is_masked_not_batch_dependent(fitted, sounds):
    clips = [sounds[0, :16000], sounds[1, :25000], sounds[2, :9000], sounds[3]]
    clips[3] = torch.cat([sounds[3], sounds[4]])  # 2 s: two patches
    enc = fitted["audio"]
    one, batch = enc.transform(clips, batch_size=1), enc.transform(clips, batch_size=4)
    np.testing.assert_allclose(one, batch, atol=1e-5, rtol=0)
    lstm = make("audio", use_lstm=True, lstm_hidden_dim=3, epochs=1).fit(clips)
    assert lstm.n_features_out_ == 6
    one, batch = lstm.transform(clips, batch_size=1), lstm.transform(clips, batch_size=4)
    np.testing.assert_allclose(one, batch, atol=1e-5, rtol=0)


def test_variable_length_video_with_lstm(frames):
    clips = [frames[0], frames[1, :2], frames[2, :3]]
    enc = make("video", use_lstm=True, pooling="attention", epochs=1).fit(clips)
    assert enc.n_features_out_ == 8  # 2 directions x embedding_dim // 2
    np.testing.assert_allclose(
        enc.transform(clips, batch_size=1), enc.transform(clips, batch_size=3), atol=1e-5, rtol=0
    )


# ------------------------------------------------------------------ inputs
def test_video_inputs_clips_tensors_paths_agree(fitted, frames, tmp_path):
    enc = fitted["video"]
    as_batch = enc.transform(frames[:2])
    clips = [VideoClip(f, np.arange(4) / 4.0, 4.0, "x") for f in frames[:2]]
    np.testing.assert_array_equal(enc.transform(clips), as_batch)
    np.testing.assert_array_equal(enc.transform(list(frames[:2])), as_batch)
    floats = enc.transform(frames[:2].float() / 255)
    np.testing.assert_allclose(floats, as_batch, atol=1e-5)
    big = torch.nn.functional.interpolate(frames[:2].flatten(0, 1).float(), scale_factor=2)
    resized = enc.transform(big.reshape(2, 4, 3, 32, 32).to(torch.uint8))
    assert resized.shape == (2, 8)
    path = tmp_path / "clip.mp4"
    write_video(path, np.full((8, 32, 32, 3), 120, np.uint8), fps=8)
    assert enc.set_params(frames=4).transform([path, str(path)]).shape == (2, 8)
    with pytest.raises(DataValidationError, match="VideoClip"):
        enc.transform([1, 2])
    with pytest.raises(DataValidationError, match="empty"):
        enc.transform([])
    with pytest.raises(DataValidationError, match="sequence"):
        enc.transform("clip.mp4")


def test_audio_inputs_are_resampled_and_mixed_down(fitted, sounds, tmp_path):
    enc = fitted["audio"]
    mono = enc.transform(sounds[:2])
    stereo = torch.stack([sounds[:2], sounds[:2]], dim=1)  # (B, 2, time)
    np.testing.assert_allclose(enc.transform(stereo), mono, atol=1e-5)
    clips = [AudioClip(s[None], 16000, "x") for s in sounds[:2]]
    np.testing.assert_allclose(enc.transform(clips), mono, atol=1e-6)
    at_8k = AudioClip(sounds[0, ::2][None].contiguous(), 8000, "x")
    assert enc.transform([at_8k]).shape == (1, 8)
    path = tmp_path / "tone.wav"
    write_audio(path, sounds[0].numpy()[None], 16000)
    np.testing.assert_allclose(enc.transform([path]), mono[:1], atol=1e-3)
    with pytest.raises(DataValidationError, match="floating"):
        enc.transform(torch.zeros(2, 100, dtype=torch.int16))


# ------------------------------------------------------------------ validation
BAD = [
    ({"epochs": -1}, "epochs"),
    ({"batch_size": 1}, "batch_size"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"lr_schedule": "linear"}, "lr_schedule"),
    ({"validation_fraction": 1.0}, "validation_fraction"),
    ({"early_stopping_patience": 2}, "validation_fraction > 0"),
    ({"device": "tpu"}, "device"),
    ({"random_state": -3}, "random_state"),
    ({"pooling": "sum"}, "pooling"),
    ({"temperature": 0}, "temperature"),
    ({"augment": {"hue": 0.5}}, "augment"),
    ({"frame_size": 0}, "frame_size"),
]


@pytest.mark.parametrize(("params", "match"), BAD)
def test_invalid_hyperparameters_raise_in_fit_not_init(params, match, frames):
    enc = make("video", **params)  # __init__ stores, never validates
    assert enc.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(ConfigurationError, match=match):
        enc.fit(frames)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"augment": {"pitch": 1}}, "augment"),
        ({"crop_seconds": 0}, "crop_seconds"),
        ({"sample_rate": 100}, "sample_rate"),
    ],
)
def test_invalid_audio_hyperparameters(params, match, sounds):
    with pytest.raises(ConfigurationError, match=match):
        make("audio", **params).fit(sounds)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"modality": "text"}, "modality"),
        ({"image_size": 24}, "power of two"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_invalid_gan_hyperparameters(params, match, frames):
    with pytest.raises(ConfigurationError, match=match):
        make("gan", **params).fit(frames)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_without_cuda_is_a_clear_error(frames):
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        make("video", device="cuda").init()


def test_failed_fit_keeps_the_previous_state(fitted, frames):
    enc = clone(fitted["video"])
    enc.fit(frames)
    before = enc.transform(frames)
    with pytest.raises(DataValidationError):
        enc.fit(torch.zeros(3, 4, 1, 16, 16, dtype=torch.uint8))  # one channel
    np.testing.assert_array_equal(enc.transform(frames), before)
    with pytest.raises(DataValidationError, match="at least 2"):
        make("video").fit(frames[:1])


def test_sklearn_params_and_clone(fitted):
    enc = fitted["video"]
    twin = clone(enc)
    assert twin.get_params() == enc.get_params() and not hasattr(twin, "model_")
    assert "frame_size=16" in repr(enc)


# ------------------------------------------------------------------ training loop
def test_early_stopping_keeps_the_best_weights(frames):
    params = {"validation_fraction": 0.25, "lr_schedule": None, "learning_rate": 0.05}
    enc = make("video", epochs=12, early_stopping_patience=2, **params).fit(frames)
    val = enc.history_["val_loss"]
    assert len(val) == len(enc.history_["train_loss"]) <= 12
    assert enc.best_epoch_ == int(np.argmin(val))
    if len(val) < 12:  # stopped: exactly `patience` epochs after the best
        assert len(val) == enc.best_epoch_ + 3
    # the kept weights are those after the best epoch: a run that stops there agrees
    short = make("video", epochs=enc.best_epoch_ + 1, **params).fit(frames)
    np.testing.assert_allclose(short.transform(frames), enc.transform(frames), atol=1e-6)


@pytest.mark.parametrize(("optimizer", "schedule"), [("sgd", "step"), ("adam", "cosine")])
def test_optimizers_and_schedules(optimizer, schedule, sounds):
    enc = make("audio", optimizer=optimizer, lr_schedule=schedule, epochs=3, learning_rate=0.01)
    losses = enc.fit(sounds).history_["train_loss"]
    assert len(losses) == 3 and np.isfinite(losses).all()


def test_gan_history_and_validation(frames):
    gan = make("gan", validation_fraction=0.25, epochs=2).fit(frames)
    assert set(gan.history_) == {"train_loss", "generator_loss", "val_loss"}
    assert len(gan.history_["generator_loss"]) == 2 and gan.best_epoch_ in (0, 1)


def test_verbose_logs_each_epoch(frames, caplog):
    with caplog.at_level(logging.INFO, logger="avrec.features.encoders._base"):
        make("video", verbose=True, epochs=2).fit(frames)
    assert sum("epoch" in r.getMessage() for r in caplog.records) == 2


def test_losses():
    z = torch.eye(4)
    assert float(nt_xent_loss(z, z, 0.05)) < 0.01
    assert float(correspondence_loss(z, z, 0.05)) < 0.01
    assert float(correspondence_loss(z, z.flip(0), 0.05)) > 10


# ------------------------------------------------------------------ GAN
def test_gan_sample_is_seeded_and_in_range(fitted):
    gan = fitted["gan"]
    a, b = gan.sample(5, random_state=3), gan.sample(5, random_state=3)
    assert a.shape == (5, 3, 16, 16) and torch.equal(a, b)
    assert float(a.abs().max()) <= 1.0
    assert fitted["gan_audio"].sample(2, random_state=0).shape == (2, 1, 16, 16)
    assert fitted["gan"].n_features_out_ == 4 * 16 // 8  # channels of the last layer


def test_gan_flattened_features_are_the_discriminator_features(fitted, frames):
    gan = clone(fitted["gan"]).set_params(feature_pooling="flatten").fit(frames)
    assert gan.n_features_out_ == 8 * 16
    images = frames.float() / 127.5 - 1
    expected = gan.model_.discriminator.features(images.flatten(0, 1)).reshape(8, 4, -1).mean(1)
    np.testing.assert_allclose(gan.transform(frames), expected.detach().numpy(), atol=1e-5)


# ------------------------------------------------------------------ persistence
@pytest.mark.parametrize("kind", KINDS)
def test_save_and_from_pretrained_round_trip(kind, fitted, frames, sounds, tmp_path):
    X = data_for(kind, frames, sounds)
    enc = fitted[kind]
    enc.save(tmp_path / "enc")
    assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((tmp_path / "enc" / "config.json").read_text())
    assert config["class"].endswith(type(enc).__name__)
    loaded = type(enc).from_pretrained(tmp_path / "enc")
    assert loaded.get_params() == enc.get_params()  # tuples restored
    assert loaded.history_ == enc.history_ and loaded.trained_
    np.testing.assert_array_equal(loaded.transform(X), enc.transform(X))
    assert loaded.fingerprint() == enc.fingerprint()
    assert loaded.fingerprint() != make(kind).init().fingerprint()


def test_from_pretrained_checks_the_class_and_overrides(fitted, tmp_path):
    fitted["video"].save(tmp_path / "v")
    with pytest.raises(PersistenceError, match="not a AudioEncoder"):
        AudioEncoder.from_pretrained(tmp_path / "v")
    assert VideoEncoder.from_pretrained(tmp_path / "v", batch_size=2).batch_size == 2
    with pytest.raises(PersistenceError, match="no saved encoder"):
        VideoEncoder.from_pretrained(tmp_path / "nothing")


def test_from_pretrained_bare_backbone_weights(frames, tmp_path):
    from safetensors.torch import save_file

    cnn = FrameCNN(widths=(4, 8), embedding_dim=8)
    cnn.reset_parameters(torch.Generator().manual_seed(5))
    save_file(cnn.state_dict(), str(tmp_path / "cnn.safetensors"))
    torch.save(cnn.state_dict(), tmp_path / "cnn.pt")
    arch = {k: v for k, v in TINY["video"].items()}
    for name in ("cnn.safetensors", "cnn.pt"):
        enc = VideoEncoder.from_pretrained(tmp_path / name, **arch)
        assert enc.trained_
        expected = cnn.eval()(enc.model_.normalize(frames))
        np.testing.assert_allclose(enc.transform(frames), expected.detach().numpy(), atol=1e-6)
    with pytest.raises(PersistenceError, match="keys match neither"):
        VideoEncoder.from_pretrained(tmp_path / "cnn.pt", frame_size=16, widths=(4,))
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(PersistenceError, match="cannot read"):
        VideoEncoder.from_pretrained(tmp_path / "junk.safetensors")


# ------------------------------------------------------------------ audio-visual
def test_av_correspondence_fits_both_encoders(frames, sounds):
    av = AVCorrespondence(
        VideoEncoder(**TINY["video"]), AudioEncoder(**TINY["audio"]),
        epochs=2, batch_size=4, random_state=0,
    ).fit(frames, sounds)  # fmt: skip
    assert len(av.history_["train_loss"]) == 2
    assert av.video_encoder_.transform(frames).shape == (8, 8)
    assert av.audio_encoder_.transform(sounds).shape == (8, 8)
    sim = av.similarity(frames, sounds)
    assert sim.shape == (8, 8) and np.all(np.abs(sim) <= 1 + 1e-5)
    again = clone(av).fit(frames, sounds)
    np.testing.assert_array_equal(again.similarity(frames, sounds), sim)
    with pytest.raises(DataValidationError, match="pair up"):
        clone(av).fit(frames, sounds[:5])
    bad = AVCorrespondence(VideoEncoder(projection_dim=4), AudioEncoder(projection_dim=8))
    with pytest.raises(ConfigurationError, match="projection_dim"):
        bad.fit(frames, sounds)
    with pytest.raises(NotFittedError):
        AVCorrespondence().similarity(frames, sounds)
