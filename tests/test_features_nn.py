"""Properties of avrec.features.nn: shapes, batching, masking, init, state_dict round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features.nn import (
    AudioCNN,
    DCGANDiscriminator,
    DCGANGenerator,
    FrameCNN,
    TemporalLSTM,
    TemporalPooling,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=gen(seed))


# --- shapes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "frame_shape"),
    [
        (dict(widths=(4,), embedding_dim=5), (3, 16, 16)),
        (dict(widths=(4, 8), blocks_per_stage=2, pooling="attention"), (3, 20, 12)),
        (dict(in_channels=1, widths=(4, 8, 8), pooling="max", embedding_dim=7), (1, 9, 9)),
    ],
)
def test_frame_cnn_shapes(kwargs, frame_shape):
    net = FrameCNN(**kwargs).eval()
    frames = randn(2, 3, *frame_shape)
    d = net.embedding_dim
    assert d == kwargs.get("embedding_dim", 128)
    assert net.frame_embeddings(frames).shape == (2, 3, d)
    assert net(frames).shape == (2, d)


@pytest.mark.parametrize(
    ("kwargs", "patch_shape"),
    [
        (dict(widths=(4, 8), embedding_dim=6), (96, 64)),
        (dict(widths=(4, 8, 8, 8), convs_per_stage=2, pooling="attention"), (8, 8)),
        (dict(widths=(2,), embedding_dim=3, pooling="max"), (1, 1)),
    ],
)
def test_audio_cnn_shapes(kwargs, patch_shape):
    net = AudioCNN(**kwargs).eval()
    patches = randn(2, 3, *patch_shape)
    d = net.embedding_dim
    assert net.patch_embeddings(patches).shape == (2, 3, d)
    assert net(patches).shape == (2, d)


@pytest.mark.parametrize(
    ("kwargs", "d_out"),
    [
        (dict(hidden_dim=5), 10),
        (dict(hidden_dim=5, bidirectional=False, pooling="mean"), 5),
        (dict(hidden_dim=3, num_layers=2, dropout=0.1, pooling="last"), 6),
        (dict(hidden_dim=4, pooling="max"), 8),
    ],
)
def test_lstm_shapes(kwargs, d_out):
    net = TemporalLSTM(6, **kwargs).eval()
    x = randn(3, 7, 6)
    assert net.embedding_dim == d_out
    assert net.sequence(x).shape == (3, 7, d_out)
    assert net(x).shape == (3, d_out)
    assert net(x, lengths=torch.tensor([7, 2, 1])).shape == (3, d_out)


@pytest.mark.parametrize("image_size", [16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
@torch.no_grad()
def test_dcgan_shapes(image_size, channels):
    g = DCGANGenerator(z_dim=6, out_channels=channels, image_size=image_size, width=2)
    images = g(randn(2, 6))
    assert images.shape == (2, channels, image_size, image_size)
    assert float(images.abs().max()) <= 1.0
    assert g(randn(2, 6, 1, 1)).shape == images.shape
    d = DCGANDiscriminator(in_channels=channels, image_size=image_size, width=2)
    assert d(images).shape == (2,)
    feats = d.features(images)
    assert feats.shape == (2, d.embedding_dim)
    assert d.embedding_dim == 2 * (image_size // 8) * 16


@torch.no_grad()
def test_dcgan_defaults_follow_radford():
    g, d = DCGANGenerator(), DCGANDiscriminator()
    assert g.z_dim == 100 and g.image_size == 64
    assert [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)] == [
        512, 256, 128, 64, 3,
    ]  # fmt: skip
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]
    assert {m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)} == {0.2}
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.modules()) == 3  # none on the first layer
    assert not any(isinstance(m, nn.MaxPool2d | nn.Linear) for m in d.modules())
    assert d.embedding_dim == 512 * 4 * 4
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert abs(float(weights.std()) - 0.02) < 0.001 and abs(float(weights.mean())) < 0.001


def test_spectral_norm_discriminator():
    d = DCGANDiscriminator(in_channels=1, image_size=32, width=4, spectral_norm=True)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    x = randn(3, 1, 32, 32)
    for _ in range(10):  # power iterations in training mode
        d(x)
    conv = d.body[2]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert abs(float(sigma) - 1.0) < 0.05
    assert d.eval().features(x).shape == (3, d.embedding_dim)


def test_generator_sample_is_seeded():
    g = DCGANGenerator(z_dim=4, out_channels=1, image_size=16, width=2).eval()
    torch.manual_seed(0)
    a = g.sample(3, generator=gen(1))
    torch.manual_seed(7)
    assert torch.equal(g.sample(3, generator=gen(1)), a)
    assert not torch.equal(g.sample(3, generator=gen(2)), a)


# --- batched == unbatched (eval mode) -------------------------------------------------------

MODELS = {
    "frame_cnn": (
        lambda: FrameCNN(widths=(4, 8), pooling="attention"),
        lambda: randn(3, 2, 3, 12, 12),
    ),
    "audio_cnn": (lambda: AudioCNN(widths=(4, 8), embedding_dim=5), lambda: randn(3, 2, 10, 8)),
    "lstm": (lambda: TemporalLSTM(4, hidden_dim=3), lambda: randn(3, 5, 4)),
    "pooling": (lambda: TemporalPooling(4, "attention"), lambda: randn(3, 5, 4)),
    "discriminator": (
        lambda: DCGANDiscriminator(in_channels=1, image_size=16, width=2),
        lambda: randn(3, 1, 16, 16),
    ),
    "generator": (lambda: DCGANGenerator(z_dim=5, image_size=16, width=2), lambda: randn(3, 5)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_batched_equals_unbatched(name):
    make_model, make_input = MODELS[name]
    model, x = make_model().eval(), make_input()
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(x.shape[0])])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_state_dict_round_trip(name, tmp_path):
    make_model, make_input = MODELS[name]
    torch.manual_seed(0)
    model = make_model()
    model.train()(make_input())  # move BatchNorm running statistics away from their init
    model.eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.manual_seed(1)
    fresh = make_model().eval()
    x = make_input()
    with torch.no_grad():
        assert not torch.equal(fresh(x), model(x))
        fresh.load_state_dict(torch.load(tmp_path / "weights.pt", weights_only=True))
        assert torch.equal(fresh(x), model(x))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reset_parameters_with_generator_is_reproducible(name):
    make_model, _ = MODELS[name]
    a, b = make_model(), make_model()
    a.reset_parameters(gen(3))
    torch.manual_seed(123)
    b.reset_parameters(gen(3))
    for (key, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), key


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_reach_input_and_parameters(name):
    make_model, make_input = MODELS[name]
    model = make_model().train()
    x = make_input().requires_grad_()
    model(x).pow(2).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    for key, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key


# --- sequences: masks and lengths ----------------------------------------------------------


@pytest.mark.parametrize("pooling", ["mean", "max", "attention", "last"])
def test_lstm_ignores_padding(pooling):
    net = TemporalLSTM(4, hidden_dim=3, pooling=pooling).eval()
    x = randn(3, 6, 4)
    lengths = torch.tensor([6, 3, 1])
    padded = x.clone()
    padded[1, 3:] = 1e3
    padded[2, 1:] = -1e3
    with torch.no_grad():
        out = net(padded, lengths=lengths)
        for i, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(out[i], net(x[i : i + 1, :n])[0], rtol=1e-5, atol=1e-6)
        mask = torch.arange(6) < lengths[:, None]
        torch.testing.assert_close(net(padded, mask=mask), out)
        sequence = net.sequence(padded, lengths=lengths)
    assert bool((sequence[1, 3:] == 0).all()) and bool((sequence[2, 1:] == 0).all())


@pytest.mark.parametrize("mode", ["mean", "max", "attention"])
def test_pooling_ignores_masked_steps(mode):
    pool = TemporalPooling(3, mode)
    x = randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    noisy = x.clone()
    noisy[0, 2:] = 1e4
    torch.testing.assert_close(pool(noisy, mask), pool(x, mask))
    torch.testing.assert_close(pool(x, mask)[0], pool(x[:1, :2])[0])


def test_frame_cnn_mask_and_lstm_composition():
    cnn = FrameCNN(widths=(4,), embedding_dim=6).eval()
    frames = randn(2, 5, 3, 8, 8)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.no_grad():
        torch.testing.assert_close(cnn(frames, mask)[1], cnn(frames[1:, :2])[0])
        sequence = cnn.frame_embeddings(frames)
        lstm = TemporalLSTM(cnn.embedding_dim, hidden_dim=4).eval()
        assert lstm(sequence, mask=mask).shape == (2, 8)


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: FrameCNN(widths=(4,))(randn(2, 3, 12, 12)), "T, 3, H, W"),
        (lambda: FrameCNN(widths=(4,))(randn(1, 2, 1, 12, 12)), "3 channels"),
        (lambda: FrameCNN(widths=(4,))(torch.zeros(1, 2, 3, 8, 8, dtype=torch.uint8)), "floating"),
        (lambda: AudioCNN(widths=(4,))(randn(2, 96, 64)), "P, n_frames"),
        (lambda: TemporalLSTM(4)(randn(2, 3, 5)), "4 features"),
        (lambda: TemporalLSTM(4)(randn(2, 3, 4), lengths=torch.tensor([0, 3])), "lengths"),
        (
            lambda: TemporalLSTM(4)(randn(2, 3, 4), mask=torch.tensor([[1, 0, 1], [1, 1, 1]])),
            "prefix",
        ),
        (
            lambda: TemporalPooling(4)(randn(2, 3, 4), torch.zeros(2, 3, dtype=torch.bool)),
            "at least one",
        ),
        (lambda: TemporalPooling(4)(randn(2, 3, 4), torch.ones(3, 2, dtype=torch.bool)), "shape"),
        (lambda: DCGANDiscriminator(image_size=32)(randn(1, 3, 64, 64)), "shape"),
        (lambda: DCGANGenerator(z_dim=4)(randn(2, 5)), "4 features"),
    ],
)
def test_bad_input_raises_data_validation_error(call, match):
    with pytest.raises(DataValidationError, match=match):
        call()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FrameCNN(widths=()), "widths"),
        (lambda: FrameCNN(pooling="sum"), "pooling|mode"),
        (lambda: AudioCNN(convs_per_stage=0), "convs_per_stage"),
        (lambda: TemporalLSTM(4, dropout=1.0), "dropout"),
        (lambda: TemporalLSTM(4, pooling="first"), "pooling"),
        (lambda: DCGANGenerator(image_size=48), "image_size"),
        (lambda: DCGANDiscriminator(image_size=8), "image_size"),
    ],
)
def test_bad_configuration_raises(make, match):
    with pytest.raises(ConfigurationError, match=match):
        make()
