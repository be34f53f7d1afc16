"""Properties of avrec.features.transforms: wrappers = functions, buffers, augmentation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features import functional as AF
from avrec.features.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameAugment,
    LogMelSpectrogram,
    NormalizeFrames,
    ResizeFrames,
    SpecAugment,
    VGGishPatches,
    WaveformAugment,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clips(*shape):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen(1))


SMALL_MEL = dict(sample_rate=8000, n_fft=128, win_length=96, hop_length=48, n_mels=16,
                 f_min=0.0, f_max=4000.0)  # fmt: skip


# --- modules call the functions -----------------------------------------------------------


def test_log_mel_module_equals_function():
    wave = torch.randn(2, 900, generator=gen(2))
    module = LogMelSpectrogram(**SMALL_MEL, power=2.0, eps=1e-8, top_db=50.0, center=True)
    expected = AF.log_mel_spectrogram(
        wave, *SMALL_MEL.values(), power=2.0, eps=1e-8, top_db=50.0, center=True
    )
    torch.testing.assert_close(module(wave), expected)


def test_log_mel_defaults_are_the_vggish_front_end():
    module = LogMelSpectrogram()
    assert (module.sample_rate, module.n_fft, module.win_length, module.hop_length) == (
        16000, 512, 400, 160,
    )  # fmt: skip
    assert (module.n_mels, module.f_min, module.f_max) == (64, 125.0, 7500.0)
    out = nn.Sequential(module, VGGishPatches())(torch.zeros(3, 16000 * 2))
    assert out.shape == (3, 2, 96, 64)  # 2 s -> two 0.96 s patches


def test_buffers_follow_to_and_stay_out_of_state_dict():
    module = LogMelSpectrogram(**SMALL_MEL)
    assert module.state_dict() == {}
    assert {name for name, _ in module.named_buffers()} == {"window", "fbanks"}
    module = module.to(torch.float64)
    assert module.fbanks.dtype == torch.float64
    out = module(torch.randn(2, 500, dtype=torch.float64))
    assert out.dtype == torch.float64
    assert module(torch.randn(500)).dtype == torch.float32  # buffers cast to the input
    norm = NormalizeFrames().to(torch.float64)
    assert norm.mean.dtype == torch.float64 and norm.state_dict() == {}
    torch.testing.assert_close(norm.mean, torch.tensor(IMAGENET_MEAN, dtype=torch.float64))


def test_frame_modules_equal_functions():
    frames = clips(2, 3, 3, 10, 12)
    torch.testing.assert_close(
        NormalizeFrames()(frames), AF.normalize_frames(frames, IMAGENET_MEAN, IMAGENET_STD)
    )
    assert torch.equal(ResizeFrames((5, 6))(frames), AF.resize_frames(frames, (5, 6)))
    assert torch.equal(VGGishPatches(4, 2, "pad", -1.0)(frames[0, 0].float()),
                       AF.vggish_patches(frames[0, 0].float(), 4, 2, remainder="pad",
                                         pad_value=-1.0))  # fmt: skip


def test_video_pipeline_composes_with_sequential():
    pipeline = nn.Sequential(FrameAugment(size=8, generator=0), NormalizeFrames())
    out = pipeline(clips(2, 4, 3, 16, 16))
    assert out.shape == (2, 4, 3, 8, 8) and out.dtype == torch.float32


# --- batched == unbatched ------------------------------------------------------------------

DETERMINISTIC = {
    "log_mel": (lambda: LogMelSpectrogram(**SMALL_MEL, top_db=40.0), lambda: torch.randn(3, 600)),
    "patches": (lambda: VGGishPatches(5, 5, "pad"), lambda: torch.randn(3, 12, 4)),
    "normalize": (NormalizeFrames, lambda: clips(3, 2, 3, 4, 5)),
    "resize": (lambda: ResizeFrames(3), lambda: torch.rand(3, 2, 3, 7, 5)),
}


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_batched_equals_unbatched(name):
    make_module, make_input = DETERMINISTIC[name]
    module, x = make_module(), make_input()
    batched = module(x)
    for i in range(x.shape[0]):
        torch.testing.assert_close(batched[i], module(x[i]), rtol=1e-5, atol=1e-5)


AUGMENT = {
    "spec": (lambda g: SpecAugment(4, 2, 3, 1, generator=g), lambda: torch.rand(3, 20, 8) + 1),
    "wave": (lambda g: WaveformAugment(generator=g), lambda: torch.randn(3, 2, 100)),
    "frames": (
        lambda g: FrameAugment(size=6, max_shift=1, generator=g),
        lambda: clips(3, 4, 3, 9, 9),
    ),
}


@pytest.mark.parametrize("name", sorted(AUGMENT))
def test_augment_batch_of_one_equals_unbatched(name):
    make_module, make_input = AUGMENT[name]
    x = make_input()
    torch.testing.assert_close(make_module(5)(x[:1])[0], make_module(5)(x[0]))


# --- augmentation modules ------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(AUGMENT))
def test_augment_is_identity_in_eval_mode(name):
    make_module, make_input = AUGMENT[name]
    module, x = make_module(0), make_input()
    assert not torch.equal(module(x), x)
    module.eval()
    assert module(x) is x
    assert nn.Sequential(make_module(0)).eval()(x) is x


@pytest.mark.parametrize("name", sorted(AUGMENT))
def test_augment_seeding(name):
    make_module, make_input = AUGMENT[name]
    x = make_input()
    torch.manual_seed(0)
    a = make_module(3)(x)
    torch.manual_seed(99)
    assert torch.equal(make_module(3)(x), a)  # independent of the global seed
    assert torch.equal(make_module(gen(3))(x), a)  # int seed == seeded generator
    assert not torch.equal(make_module(4)(x), a)
    module = make_module(3)
    first, second = module(x), module(x)
    assert not torch.equal(first, second)  # the stream advances
    assert torch.equal(module.manual_seed(3)(x), first)


def test_augment_without_generator_uses_global_rng():
    module, x = SpecAugment(generator=None), torch.ones(2, 96, 64)
    torch.manual_seed(1)
    a = module(x)
    torch.manual_seed(1)
    assert torch.equal(module(x), a)


def test_deepcopy_copies_the_generator_state():
    module = FrameAugment(generator=0)
    x = clips(2, 3, 3, 8, 8)
    twin = copy.deepcopy(module)
    assert torch.equal(module(x), twin(x))


def test_spec_augment_masks_time_and_frequency():
    out = SpecAugment(5, 1, 3, 1, generator=0)(torch.ones(200, 30, 16))
    time_masked = (out == 0).all(dim=-1).sum(dim=-1)
    freq_masked = (out == 0).all(dim=-2).sum(dim=-1)
    assert int(time_masked.max()) <= 5 and int(freq_masked.max()) <= 3
    assert int(time_masked.max()) == 5 and int(freq_masked.max()) == 3


def test_waveform_augment_parts_can_be_disabled():
    x = torch.randn(2, 1, 50)
    assert torch.equal(WaveformAugment(gain_db=None, snr_db=None, generator=0)(x), x)
    gained = WaveformAugment(gain_db=(6.0, 6.0), snr_db=None, generator=0)(x)
    torch.testing.assert_close(gained, x * 10 ** (6 / 20))


def test_frame_augment_keeps_dtype_and_size():
    x = clips(2, 5, 3, 12, 10)
    out = FrameAugment(generator=0)(x)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    plain = FrameAugment(scale=None, flip_p=0.0, brightness=0, contrast=0, saturation=0,
                         max_jitter=0, generator=0)  # fmt: skip
    assert torch.equal(plain(x), x)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LogMelSpectrogram(n_mels=0), "n_mels"),
        (lambda: LogMelSpectrogram(top_db=-1.0), "top_db"),
        (lambda: VGGishPatches(remainder="keep"), "remainder"),
        (lambda: NormalizeFrames([0.5, 0.5], [0.2, 0.2, 0.2]), "per channel"),
        (lambda: ResizeFrames((0, 4)), "size"),
        (lambda: SpecAugment(time_mask_width=-1), "time_mask_width"),
        (lambda: SpecAugment(generator="seed"), "generator"),
        (lambda: WaveformAugment(snr_db=(10.0, 0.0)), "snr_db"),
        (lambda: FrameAugment(size=8, scale=None), "size"),
        (lambda: FrameAugment(flip_p=2.0), "flip_p"),
    ],
)
def test_bad_configuration_raises(make, match):
    with pytest.raises(ConfigurationError, match=match):
        make()
