"""Properties of avrec.features.functional: batching, references, seeding, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torchaudio
from hypothesis import given, settings
from hypothesis import strategies as st

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features import functional as AF

VGGISH = dict(sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=64)
VGGISH_BAND = dict(f_min=125.0, f_max=7500.0)


def small_log_mel(x, **kwargs):
    return AF.log_mel_spectrogram(x, 8000, 128, 96, 48, 16, 0.0, 4000.0, **kwargs)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def wave():
    return torch.randn(2, 3, 1000, generator=gen(1))


@pytest.fixture
def clips():
    return torch.randint(0, 256, (3, 4, 3, 12, 16), dtype=torch.uint8, generator=gen(2))


# --- batched == unbatched (deterministic functions) -----------------------------------------

DETERMINISTIC = {
    "log_mel": (lambda x: small_log_mel(x, top_db=60.0), lambda: torch.randn(2, 3, 700)),
    "log_mel_center": (lambda x: small_log_mel(x, center=True), lambda: torch.randn(2, 3, 700)),
    "vggish_patches": (lambda x: AF.vggish_patches(x, 8, 3), lambda: torch.randn(2, 3, 20, 5)),
    "normalize": (
        lambda x: AF.normalize_frames(x, [0.4, 0.5, 0.6], [0.2, 0.3, 0.4]),
        lambda: torch.randint(0, 256, (2, 3, 3, 5, 6), dtype=torch.uint8),
    ),
    "resize": (lambda x: AF.resize_frames(x, (4, 7)), lambda: torch.rand(2, 3, 3, 9, 11)),
    "resize_uint8": (
        lambda x: AF.resize_frames(x, 5),
        lambda: torch.randint(0, 256, (2, 3, 3, 9, 11), dtype=torch.uint8),
    ),
}


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_batched_equals_unbatched(name):
    fn, make = DETERMINISTIC[name]
    x = make()
    batched = fn(x)
    for i in range(x.shape[0]):
        torch.testing.assert_close(batched[i], fn(x[i]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fn(x[:1, :1])[0, 0], fn(x[0, 0]), rtol=1e-5, atol=1e-5)


# --- batched == the same examples one after another with the same generator ----------------

RANDOM = {
    "time_mask": (lambda x, g: AF.time_mask(x, 4, 2, g), "spec"),
    "frequency_mask": (lambda x, g: AF.frequency_mask(x, 3, 2, g, mask_value=-1.0), "spec"),
    "random_gain": (lambda x, g: AF.random_gain(x, -6.0, 6.0, g), "wave"),
    "add_noise": (lambda x, g: AF.add_noise(x, 0.0, 20.0, g), "wave"),
    "flip": (lambda x, g: AF.random_horizontal_flip(x, 0.5, g), "clips"),
    "crop": (lambda x, g: AF.random_resized_crop(x, (6, 5), g), "clips_float"),
    "color_jitter": (lambda x, g: AF.color_jitter(x, 0.4, 0.4, 0.4, g), "clips_float"),
    "temporal_jitter": (lambda x, g: AF.temporal_jitter(x, 1, 1, g), "clips"),
}


def _random_input(kind):
    g = gen(3)
    return {
        "spec": lambda: torch.rand(5, 20, 8, generator=g) + 1.0,
        "wave": lambda: torch.randn(5, 2, 160, generator=g),
        "clips": lambda: torch.randint(0, 256, (5, 4, 3, 8, 10), dtype=torch.uint8, generator=g),
        "clips_float": lambda: torch.rand(5, 4, 3, 8, 10, generator=g),
    }[kind]()


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_batch_equals_examples_in_sequence(name):
    fn, kind = RANDOM[name]
    x = _random_input(kind)
    batched = fn(x, gen(7))
    g = gen(7)
    sequential = torch.stack([fn(x[i], g) for i in range(x.shape[0])])
    torch.testing.assert_close(batched, sequential, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_seeded_reproducible_and_independent_of_global_seed(name):
    fn, kind = RANDOM[name]
    x = _random_input(kind)
    torch.manual_seed(0)
    a = fn(x, gen(11))
    torch.manual_seed(12345)
    torch.rand(100)
    b = fn(x, gen(11))
    c = fn(x, gen(12))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_none_generator_uses_global_rng():
    spec = torch.ones(4, 30, 8)
    torch.manual_seed(5)
    a = AF.time_mask(spec, 10, 2, None)
    torch.manual_seed(5)
    assert torch.equal(a, AF.time_mask(spec, 10, 2, None))


# --- log-mel: references ------------------------------------------------------------------


@pytest.mark.parametrize(("power", "center"), [(2.0, False), (1.0, False), (2.0, True)])
def test_log_mel_matches_torchaudio(power, center):
    wave = torch.randn(2, 1200, generator=gen(4))
    ours = AF.log_mel_spectrogram(
        wave, 8000, 256, 256, 80, 20, 50.0, 3500.0, power=power, center=center, top_db=80.0
    )
    mel = torchaudio.transforms.MelSpectrogram(
        8000, n_fft=256, win_length=256, hop_length=80, f_min=50.0, f_max=3500.0, n_mels=20,
        power=power, center=center, pad_mode="constant", mel_scale="htk", norm=None,
    )  # fmt: skip
    to_db = torchaudio.transforms.AmplitudeToDB("power" if power == 2 else "magnitude", 80.0)
    reference = torch.stack([to_db(mel(w)) for w in wave]).transpose(-1, -2)  # per signal
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-3)


def test_log_mel_short_window_matches_numpy_rfft_reference():
    """win_length < n_fft: VGGish framing (frames of win_length, zero-padded FFT)."""
    import numpy as np

    wave = torch.randn(3000, generator=gen(5), dtype=torch.float64)
    sr, n_fft, win, hop, n_mels = 16000, 512, 400, 160, 64
    ours = AF.log_mel_spectrogram(wave, sr, n_fft, win, hop, n_mels, 125.0, 7500.0, power=1.0)
    x = wave.numpy()
    n_frames = 1 + (len(x) - win) // hop
    frames = np.stack([x[i * hop : i * hop + win] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    spectrum = np.abs(np.fft.rfft(frames * window, n_fft))
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 125.0, 7500.0, n_mels, sr)
    expected = 20 * np.log10(np.maximum(spectrum @ fb.double().numpy(), 1e-10))
    assert ours.shape == (n_frames, n_mels)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("freq_bin", [20, 45, 90, 150])
def test_sine_peaks_in_the_expected_mel_band(freq_bin):
    sr, n_fft = 16000, 512
    freq = freq_bin * sr / n_fft  # exactly on an FFT bin
    t = torch.arange(sr // 4, dtype=torch.float64) / sr
    wave = torch.sin(2 * math.pi * freq * t)
    log_mel = AF.log_mel_spectrogram(wave, sr, n_fft, 512, 160, 64, 125.0, 7500.0)
    fb = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 125.0, 7500.0, 64, sr)
    expected = int(fb[freq_bin].argmax())
    assert int(log_mel.mean(dim=0).argmax()) == expected


@pytest.mark.parametrize(
    ("seconds", "frames", "patches", "padded_patches"),
    [(0.5, 48, 1, 1), (0.96, 94, 1, 1), (1.0, 98, 1, 2), (3.0, 298, 3, 4), (10.0, 998, 10, 11)],
)
def test_vggish_frame_and_patch_counts(seconds, frames, patches, padded_patches):
    wave = torch.zeros(1, int(seconds * 16000))
    log_mel = AF.log_mel_spectrogram(wave, **VGGISH, **VGGISH_BAND)
    assert log_mel.shape == (1, frames, 64)
    assert AF.vggish_patches(log_mel).shape == (1, patches, 96, 64)
    assert AF.vggish_patches(log_mel, remainder="pad").shape == (1, padded_patches, 96, 64)


def test_vggish_patches_content_and_padding():
    log_mel = torch.arange(10.0)[:, None].expand(10, 3) + 1
    drop = AF.vggish_patches(log_mel, 4, 3)
    assert drop.shape == (3, 4, 3)
    assert drop[:, :, 0].tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    pad = AF.vggish_patches(log_mel, 4, 4, remainder="pad", pad_value=-7.0)
    assert pad[:, :, 0].tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, -7, -7]]
    short = AF.vggish_patches(log_mel[:2], 4, 4)
    assert short[0, :, 0].tolist() == [1, 2, 0, 0]


@given(
    n_frames=st.integers(1, 40),
    patch=st.integers(1, 12),
    hop=st.integers(1, 12),
    remainder=st.sampled_from(["drop", "pad"]),
)
@settings(max_examples=40, deadline=None)
def test_vggish_patch_count_formula(n_frames, patch, hop, remainder):
    out = AF.vggish_patches(torch.zeros(2, n_frames, 3), patch, hop, remainder=remainder)
    rounding = math.ceil if remainder == "pad" else math.floor
    expected = 1 if n_frames <= patch else 1 + rounding((n_frames - patch) / hop)
    assert out.shape == (2, expected, patch, 3)


def test_top_db_limits_the_dynamic_range_per_spectrogram():
    wave = torch.cat([torch.zeros(1, 800), torch.randn(1, 800)], dim=1)
    batch = torch.stack([wave, 1e-3 * wave])
    log_mel = small_log_mel(batch, top_db=30.0)
    span = log_mel.amax(dim=(-2, -1)) - log_mel.amin(dim=(-2, -1))
    torch.testing.assert_close(span, torch.full_like(span, 30.0))


def test_short_waveform_gives_one_frame():
    assert small_log_mel(torch.randn(3, 10)).shape == (3, 1, 16)


# --- frames ---------------------------------------------------------------------------------


def test_normalize_frames_values():
    frames = torch.tensor([0, 51, 255], dtype=torch.uint8).reshape(1, 3, 1, 1).expand(2, 3, 2, 2)
    out = AF.normalize_frames(frames, [0.0, 0.2, 0.5], [1.0, 0.1, 0.5])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([0.0, 0.0, 1.0]))
    floats = frames.float() / 255
    torch.testing.assert_close(AF.normalize_frames(floats, [0.0] * 3, [1.0] * 3), floats)


def test_resize_keeps_dtype_and_constant_images():
    frames = torch.full((2, 3, 3, 16, 20), 77, dtype=torch.uint8)
    out = AF.resize_frames(frames, (5, 9))
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 3, 5, 9)
    assert bool((out == 77).all())
    ref = torch.nn.functional.interpolate(
        frames[0].float(), size=(5, 9), mode="bilinear", antialias=True
    )
    torch.testing.assert_close(AF.resize_frames(frames[0].float(), (5, 9)), ref)


# --- augmentations: exact effects -------------------------------------------------------


@pytest.mark.parametrize(("fn", "axis"), [(AF.time_mask, -2), (AF.frequency_mask, -1)])
@pytest.mark.parametrize("width", [0, 1, 4])
def test_masks_zero_exactly_the_intended_bins(fn, axis, width):
    spec = torch.rand(3, 2, 12, 10) + 1.0
    out = fn(spec, width, 1, gen(0), min_width=width)
    other = -1 if axis == -2 else -2
    masked = (out == 0).all(dim=other)  # (3, 2, L): masked lines
    assert bool((masked.sum(dim=-1) == width).all())
    assert bool(((out == 0) | (out == spec)).all())
    assert int((out == 0).sum()) == width * 3 * 2 * spec.shape[other]
    if width:
        starts = masked.float().argmax(dim=-1, keepdim=True)
        positions = torch.arange(masked.shape[-1])
        contiguous = (positions >= starts) & (positions < starts + width)
        assert torch.equal(masked, contiguous)


def test_several_masks_stay_within_bounds():
    out = AF.time_mask(torch.ones(50, 30, 4), 5, 3, gen(1), min_width=2)
    counts = (out == 0).all(dim=-1).sum(dim=-1)
    assert int(counts.min()) >= 2 and int(counts.max()) <= 15
    assert len(set(counts.tolist())) > 1  # widths and positions vary per spectrogram


def test_mask_wider_than_axis_masks_everything():
    out = AF.frequency_mask(torch.ones(2, 3, 4), 9, 1, gen(0), min_width=9)
    assert bool((out == 0).all())


def test_random_gain_range_and_exact_value():
    wave = torch.ones(200, 2, 5)
    out = AF.random_gain(wave, -6.0, 6.0, gen(0))
    gain_db = 20 * torch.log10(out[:, 0, 0])
    assert float(gain_db.min()) >= -6.0 - 1e-4 and float(gain_db.max()) <= 6.0 + 1e-4
    assert torch.equal(out[:, 0], out[:, 1])  # channels share the gain
    torch.testing.assert_close(AF.random_gain(wave, 6.0, 6.0, gen(0)), wave * 10 ** (6 / 20))


@pytest.mark.parametrize("snr", [-5.0, 0.0, 20.0])
def test_add_noise_hits_the_snr_exactly(snr):
    wave = torch.randn(4, 2, 400, generator=gen(2), dtype=torch.float64)
    noisy = AF.add_noise(wave, snr, snr, gen(3))
    noise = noisy - wave
    measured = 10 * torch.log10(wave.pow(2).mean(dim=(1, 2)) / noise.pow(2).mean(dim=(1, 2)))
    torch.testing.assert_close(measured, torch.full((4,), snr, dtype=torch.float64))
    # white Gaussian: roughly zero mean, unit kurtosis ratio of a normal (3)
    z = noise / noise.std()
    assert abs(float(z.mean())) < 0.1 and abs(float(z.pow(4).mean()) - 3.0) < 0.5


def test_add_noise_keeps_silence_silent():
    assert bool((AF.add_noise(torch.zeros(2, 1, 50), 10.0, 10.0, gen(0)) == 0).all())


def test_flip_probabilities(clips):
    assert torch.equal(AF.random_horizontal_flip(clips, 0.0, gen(0)), clips)
    assert torch.equal(AF.random_horizontal_flip(clips, 1.0, gen(0)), clips.flip(-1))
    many = torch.arange(2.0).expand(400, 2, 1, 1, 2)  # 400 clips of 2 frames [0, 1]
    is_flipped = AF.random_horizontal_flip(many, 0.5, gen(0))[:, :, 0, 0, 0] == 1
    assert torch.equal(is_flipped[:, 0], is_flipped[:, 1])  # frames of a clip together
    assert 150 < int(is_flipped[:, 0].sum()) < 250


def test_full_crop_with_frame_ratio_is_identity(clips):
    ratio = clips.shape[-1] / clips.shape[-2]
    out = AF.random_resized_crop(clips, clips.shape[-2:], gen(0), scale=(1, 1), ratio=(ratio,) * 2)
    assert out.dtype == torch.uint8
    assert torch.equal(out, clips)


def test_crop_is_shared_by_the_frames_of_a_clip():
    frame = torch.rand(1, 1, 3, 16, 16)
    clip = frame.expand(2, 5, 3, 16, 16)
    out = AF.random_resized_crop(clip, 8, gen(0), scale=(0.1, 0.5))
    assert out.shape == (2, 5, 3, 8, 8)
    assert bool((out == out[:, :1]).all())
    assert not torch.equal(out[0], out[1])


def test_color_jitter_bounds_and_identity(clips):
    assert torch.equal(AF.color_jitter(clips, 0.0, 0.0, 0.0, gen(0)), clips)
    out = AF.color_jitter(clips.float() / 255, 0.9, 0.9, 0.9, gen(0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    bright = AF.color_jitter(torch.full((50, 1, 3, 2, 2), 0.5), 0.5, 0.0, 0.0, gen(0))
    assert float(bright.min()) >= 0.25 - 1e-6 and float(bright.max()) <= 0.75 + 1e-6
    gray = torch.full((4, 2, 3, 3, 3), 0.3)  # no colour, no contrast: saturation is a no-op
    torch.testing.assert_close(AF.color_jitter(gray, 0.0, 0.8, 0.8, gen(0)), gray)


def test_temporal_jitter_resamples_frames_in_order():
    t = 12
    clip = torch.arange(float(t)).reshape(1, t, 1, 1, 1).expand(30, t, 1, 2, 2).contiguous()
    out = AF.temporal_jitter(clip, 2, 1, gen(0))
    index = out[:, :, 0, 0, 0]
    assert bool((index.diff(dim=1) >= 0).all())
    assert bool(((index - torch.arange(float(t))).abs() <= 3).all())
    assert bool((out == out[..., :1, :1]).all())  # whole frames are moved
    assert not torch.equal(out, clip)
    assert torch.equal(AF.temporal_jitter(clip, 0, 0, gen(0)), clip)


# --- gradients ----------------------------------------------------------------------------


def _double(*shape):
    return torch.randn(*shape, generator=gen(9), dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_log_mel_gradcheck(power):
    x = _double(2, 100)

    def fn(w):
        return AF.log_mel_spectrogram(w, 8000, 32, 24, 16, 6, 0.0, 4000.0, power=power)

    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: AF.resize_frames(x, (3, 5)),
        lambda x: AF.normalize_frames(x, [0.1, 0.2], [0.5, 2.0]),
        lambda x: AF.add_noise(x, 3.0, 3.0, gen(0)),
        lambda x: AF.random_gain(x, -2.0, 2.0, gen(0)),
        lambda x: AF.time_mask(x, 2, 1, gen(0)),
    ],
    ids=["resize", "normalize", "add_noise", "gain", "time_mask"],
)
def test_differentiable_ops_gradcheck(fn):
    assert torch.autograd.gradcheck(fn, (_double(2, 2, 6, 7),), fast_mode=True)


def test_gradient_is_zero_on_masked_bins():
    x = torch.ones(1, 10, 6, requires_grad=True)
    out = AF.time_mask(x, 4, 1, gen(0), min_width=4)
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).float())


def test_vggish_patches_gradient():
    x = torch.randn(20, 4, requires_grad=True)
    AF.vggish_patches(x, 8, 5).sum().backward()  # patches start at 0, 5, 10
    assert x.grad[:18].min() >= 1 and x.grad[18:].abs().sum() == 0  # last 2 frames dropped


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: small_log_mel(torch.zeros(10, dtype=torch.int16)),
            DataValidationError,
            "floating",
        ),
        (lambda: small_log_mel([0.0] * 10), DataValidationError, "waveform"),
        (
            lambda: AF.log_mel_spectrogram(torch.zeros(500), 8000, 64, 128, 32, 8, 0.0, 4000.0),
            ConfigurationError,
            "win_length",
        ),
        (
            lambda: AF.log_mel_spectrogram(torch.zeros(500), 8000, 64, 64, 32, 8, 0.0, 5000.0),
            ConfigurationError,
            "f_max",
        ),
        (lambda: AF.vggish_patches(torch.zeros(5)), DataValidationError, "log_mel"),
        (lambda: AF.vggish_patches(torch.zeros(5, 2), 0), ConfigurationError, "patch_frames"),
        (lambda: AF.vggish_patches(torch.zeros(5, 2), remainder="x"), ConfigurationError, "rem"),
        (
            lambda: AF.normalize_frames(torch.zeros(3, 2, 2), [0.0], [1.0]),
            ConfigurationError,
            "per",
        ),
        (
            lambda: AF.normalize_frames(torch.zeros(3, 2, 2), [0.0] * 3, [0.0] * 3),
            ConfigurationError,
            "std",
        ),
        (lambda: AF.resize_frames(torch.zeros(3, 2, 2), 0), ConfigurationError, "size"),
        (lambda: AF.resize_frames(torch.zeros(2, 2), 4), DataValidationError, "frames"),
        (
            lambda: AF.time_mask(torch.zeros(4, 4), 1, 1, None, min_width=2),
            ConfigurationError,
            "min_width",
        ),
        (lambda: AF.random_gain(torch.zeros(5), 0.0, 1.0, None), DataValidationError, "channels"),
        (lambda: AF.add_noise(torch.zeros(1, 5), 5.0, 1.0, None), ConfigurationError, "snr_db"),
        (
            lambda: AF.random_horizontal_flip(torch.zeros(3, 4, 4), 0.5, None),
            DataValidationError,
            "T, C",
        ),
        (
            lambda: AF.random_horizontal_flip(torch.zeros(1, 3, 4, 4), 1.5, None),
            ConfigurationError,
            "p",
        ),
        (
            lambda: AF.random_resized_crop(torch.zeros(1, 3, 4, 4), 2, None, scale=(0.0, 1.0)),
            ConfigurationError,
            "scale",
        ),
        (
            lambda: AF.color_jitter(torch.zeros(1, 3, 4, 4), -0.1, 0.0, 0.0, None),
            ConfigurationError,
            "brightness",
        ),
        (
            lambda: AF.temporal_jitter(torch.zeros(1, 3, 4, 4), -1, 0, None),
            ConfigurationError,
            "max_shift",
        ),
    ],
)
def test_bad_input_raises_named_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
