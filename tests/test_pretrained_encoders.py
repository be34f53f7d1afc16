"""Pretrained backbones for frames (timm), video and audio (transformers) behind the encoder API."""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from avrec.data import make_av_corpus
from avrec.exceptions import ConfigurationError, NotFittedError, PersistenceError
from avrec.features import FeatureExtractor
from avrec.features.encoders import (
    AudioTransformer,
    BaseEncoder,
    FrameBackbone,
    PretrainedEncoder,
    VideoTransformer,
    load_state_dict_strict,
    map_efficientnet_lite_keys,
    pretrained_weights,
    read_state_dict,
    sample_frame_indices,
)
from avrec.features.functional import resize_frames

transformers = pytest.importorskip("transformers")

LITE0_STAGES = (1, 2, 2, 3, 3, 4, 1)
DAISY = 985
#: ImageNet classes of buildings (bell cote, boathouse, church, castle, dome, palace ...).
BUILDINGS = {442, 449, 483, 497, 538, 668, 698, 832}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def lite0():
    try:
        return pretrained_weights("efficientnet_lite0")
    except PersistenceError:
        pytest.skip("the avrec[pretrained] extra is not installed")


def _save_quietly(model, path) -> None:
    transformers.utils.logging.disable_progress_bar()
    try:
        model.save_pretrained(path)
    finally:
        transformers.utils.logging.enable_progress_bar()


@pytest.fixture(scope="module")
def videomae_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("videomae")
    torch.manual_seed(0)
    config = transformers.VideoMAEConfig(
        image_size=16, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32,
        num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
    )  # fmt: skip
    _save_quietly(transformers.VideoMAEModel(config).eval(), path)
    return path


@pytest.fixture(scope="module")
def wav2vec2_dir(tmp_path_factory):
    return _tiny_audio(tmp_path_factory.mktemp("wav2vec2"), "wav2vec2", norm="layer")


def _tiny_audio(path, kind: str, norm: str):
    torch.manual_seed(1)
    config_class, model_class = {
        "wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
        "hubert": (transformers.HubertConfig, transformers.HubertModel),
    }[kind]
    config = config_class(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2, feat_extract_norm=norm,
        do_stable_layer_norm=norm == "layer",
    )  # fmt: skip
    _save_quietly(model_class(config).eval(), path)
    transformers.Wav2Vec2FeatureExtractor(
        sampling_rate=16000, do_normalize=True, return_attention_mask=norm == "layer"
    ).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    return make_av_corpus(root, n_items=4, n_users=5, duration=1.0, size=(32, 32),
                          audio_only_fraction=0.25, random_state=0, verbose=False)  # fmt: skip


def _hf_reference(model_dir, class_name):
    model = getattr(transformers, class_name).from_pretrained(model_dir, local_files_only=True)
    return model.eval()


# ---------------------------------------------------------------- frames: EfficientNet-Lite0
def test_mapped_lite0_weights_give_the_reference_logits(lite0):
    reference_impl = pytest.importorskip("efficientnet_lite_pytorch")
    import timm

    reference = reference_impl.EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(torch.load(lite0, map_location="cpu", weights_only=True))
    ours = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    depths = [len(stage) for stage in ours.blocks]
    assert tuple(depths) == LITE0_STAGES
    load_state_dict_strict(ours, map_efficientnet_lite_keys(read_state_dict(lite0), depths), lite0)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert got.shape == (2, 1000)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def _sample_image(name: str) -> torch.Tensor:
    from sklearn.datasets import load_sample_image

    return torch.from_numpy(load_sample_image(name).copy()).permute(2, 0, 1)  # (3, H, W) uint8


def test_frame_backbone_embeddings_classify_real_images(lite0):
    reference_impl = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_impl.EfficientNet.from_name("efficientnet-lite0").eval()
    state = torch.load(lite0, map_location="cpu", weights_only=True)
    reference.load_state_dict(state)
    enc = FrameBackbone(weights=lite0, image_size=224, frames=1).fit()
    assert enc.architecture_["mean"] == [0.5, 0.5, 0.5]  # from timm's tf_efficientnet_lite0 config
    images = [_sample_image("flower.jpg"), _sample_image("china.jpg")]
    clips = [img[None] for img in images]  # one-frame clips (T=1, 3, H, W)
    z = torch.from_numpy(enc.transform(clips))
    assert z.shape == (2, 1280)
    logits = z @ state["_fc.weight"].T + state["_fc.bias"]  # the head the encoder leaves out
    x = torch.stack([resize_frames(img, 224) for img in images]).float() / 255
    with torch.no_grad():
        expected = reference((x - 0.5) / 0.5)
    torch.testing.assert_close(logits, expected, atol=1e-3, rtol=1e-4)
    top = logits.argmax(1).tolist()
    assert top[0] == DAISY and top[1] in BUILDINGS, top
    # a clip of the same frame repeated pools to the frame's own embedding
    repeated = enc.transform([images[0][None].expand(3, -1, -1, -1)])
    np.testing.assert_allclose(repeated[0], z[0].numpy(), atol=1e-5)


def test_frame_backbone_pooling_freezing_and_fingerprint(lite0, tmp_path):
    clips = torch.randint(0, 256, (3, 2, 3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    mean = FrameBackbone(weights=lite0, image_size=32, frames=2).fit()
    attention = FrameBackbone(weights=lite0, image_size=32, pooling="attention", random_state=0)
    attention.fit()
    assert mean.trained_ and mean.n_features_out_ == 1280
    np.testing.assert_allclose(attention.transform(clips), mean.transform(clips), atol=1e-5)
    assert not any(p.requires_grad for p in mean.model_.parameters())
    trainable = FrameBackbone(weights=lite0, image_size=32, pooling="attention", freeze=False)
    pool_params = list(trainable.fit().model_.pool.parameters())
    assert pool_params and all(p.requires_grad for p in pool_params)
    # the fingerprint hashes the weights, not where they were read from
    moved = tmp_path / "copy.pth"
    shutil.copy(lite0, moved)
    assert FrameBackbone(weights=moved, image_size=32, frames=2).fit().fingerprint() == (
        mean.fingerprint()
    )
    assert attention.fingerprint() != mean.fingerprint()
    random = FrameBackbone(image_size=32, frames=2, random_state=0).init()
    assert not random.trained_ and random.fingerprint() != mean.fingerprint()
    # save -> from_pretrained: identical outputs, same fingerprint, still frozen
    mean.save(tmp_path / "saved")
    loaded = FrameBackbone.from_pretrained(tmp_path / "saved")
    assert isinstance(loaded, FrameBackbone) and loaded.trained_
    np.testing.assert_array_equal(loaded.transform(clips), mean.transform(clips))
    assert loaded.fingerprint() == mean.fingerprint()
    assert not any(p.requires_grad for p in loaded.model_.parameters())
    # and through the generic loader of the encoder registry
    generic = BaseEncoder.from_pretrained(tmp_path / "saved")
    assert type(generic) is FrameBackbone and generic.fingerprint() == mean.fingerprint()
    # a bare timm state_dict of the backbone loads as well
    bare = tmp_path / "backbone.safetensors"
    save_file({k: v.contiguous() for k, v in mean.model_.backbone.state_dict().items()}, str(bare))
    from_file = FrameBackbone.from_pretrained(bare, image_size=32, frames=2)
    np.testing.assert_array_equal(from_file.transform(clips), mean.transform(clips))


def test_frame_backbone_rejects_bad_checkpoints_and_settings(lite0, tmp_path):
    state = read_state_dict(lite0)
    del state["_blocks.3._bn1.weight"]
    bad = tmp_path / "partial.pth"
    torch.save(state, bad)
    with pytest.raises(PersistenceError, match=r"missing keys \(1\): \['blocks.2.0.bn2.weight'\]"):
        FrameBackbone(weights=bad, image_size=32).fit()
    # a timm-layout file with one tensor missing and one unexpected
    timm_state = map_efficientnet_lite_keys(read_state_dict(lite0), LITE0_STAGES)
    del timm_state["conv_head.weight"]
    timm_state["extra.weight"] = torch.zeros(1)
    save_file({k: v.contiguous() for k, v in timm_state.items()}, str(tmp_path / "t.safetensors"))
    with pytest.raises(PersistenceError, match="missing keys") as info:
        FrameBackbone(weights=tmp_path / "t.safetensors", image_size=32).fit()
    assert "conv_head.weight" in str(info.value) and "unexpected keys (1): ['extra.weight']" in (
        str(info.value)
    )
    import timm

    other = timm.create_model("tf_efficientnet_lite1", pretrained=False, num_classes=0)
    save_file(other.state_dict(), str(tmp_path / "lite1.safetensors"))
    with pytest.raises(PersistenceError, match=r"unexpected keys|shape mismatches"):
        FrameBackbone(weights=tmp_path / "lite1.safetensors", image_size=32).fit()
    good = FrameBackbone(weights=lite0, image_size=16, frames=1).fit()
    before = good.fingerprint()
    with pytest.raises(PersistenceError, match="no such weights file"):
        good.set_params(weights=tmp_path / "absent.pth").fit()
    assert good.fingerprint() == before  # a failed fit leaves the fitted state alone
    with pytest.raises(ConfigurationError, match="weights is None"):
        FrameBackbone().fit()
    with pytest.raises(ConfigurationError, match="arch"):
        FrameBackbone(arch="no_such_net", weights=lite0).fit()
    with pytest.raises(ConfigurationError, match="pooling"):
        FrameBackbone(weights=lite0, pooling="median").fit()
    with pytest.raises(ConfigurationError, match="freeze"):
        FrameBackbone(weights=lite0, freeze="yes").fit()
    with pytest.raises(NotFittedError):
        FrameBackbone(weights=lite0).transform(torch.zeros(1, 1, 3, 8, 8, dtype=torch.uint8))


def test_key_map_rejects_foreign_keys():
    with pytest.raises(PersistenceError, match=r"_blocks\.99"):
        map_efficientnet_lite_keys({"_blocks.99._bn1.weight": torch.ones(1)}, LITE0_STAGES)
    with pytest.raises(PersistenceError, match=r"conv1\.weight"):
        map_efficientnet_lite_keys({"conv1.weight": torch.ones(1)}, LITE0_STAGES)


def test_pretrained_weights_names_the_extra(monkeypatch):
    import importlib.util

    with pytest.raises(ConfigurationError, match="name must be one of"):
        pretrained_weights("resnet9000")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PersistenceError, match=r"avrec\[pretrained\]"):
        pretrained_weights("efficientnet_lite0")


# ---------------------------------------------------------------- video transformers
def test_video_transformer_reproduces_videomae(videomae_dir, tmp_path):
    hf = _hf_reference(videomae_dir, "VideoMAEModel")
    clips = torch.randint(0, 256, (3, 4, 3, 16, 16), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    enc = VideoTransformer(model_dir=videomae_dir, frames=4, batch_size=2).fit()
    assert isinstance(enc, PretrainedEncoder) and enc.n_features_out_ == 32
    with torch.no_grad():
        expected = hf(pixel_values=(clips.float() / 255 - 0.5) / 0.5).last_hidden_state.mean(1)
    np.testing.assert_allclose(enc.transform(clips), expected.numpy(), atol=1e-5)
    # a shorter clip in a batch embeds as it does alone; more frames are sampled down
    short = clips[0, :2]
    mixed = enc.transform([short, clips[1].repeat_interleave(2, dim=0)])  # 8 frames -> 4
    np.testing.assert_allclose(mixed[0], enc.transform([short])[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], enc.transform(clips[1:2])[0], atol=1e-5)
    # round trip without the original checkpoint directory
    enc.save(tmp_path / "saved")
    shutil.copytree(videomae_dir, tmp_path / "source")
    moved = VideoTransformer(model_dir=tmp_path / "source", frames=4).fit()
    assert moved.fingerprint() == enc.fingerprint()  # the weights count, not their folder
    moved.save(tmp_path / "saved")
    shutil.rmtree(tmp_path / "source")
    for loader in (VideoTransformer, BaseEncoder):
        loaded = loader.from_pretrained(tmp_path / "saved")
        assert type(loaded) is VideoTransformer
        np.testing.assert_array_equal(loaded.transform(clips), enc.transform(clips))
        assert loaded.fingerprint() == enc.fingerprint()
    assert VideoTransformer(model_dir=videomae_dir, random_state=0).init().fingerprint() != (
        enc.fingerprint()
    )
    with pytest.raises(ConfigurationError, match="classification token"):
        VideoTransformer(model_dir=videomae_dir, pooling="cls").fit()


def test_video_transformer_timesformer_cls_token(tmp_path):
    torch.manual_seed(2)
    config = transformers.TimesformerConfig(
        image_size=16, patch_size=8, num_frames=2, hidden_size=16, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=16,
    )  # fmt: skip
    _save_quietly(transformers.TimesformerModel(config).eval(), tmp_path)
    hf = _hf_reference(tmp_path, "TimesformerModel")
    clips = torch.rand(2, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    enc = VideoTransformer(model_dir=tmp_path, pooling="cls", mean=(0.4, 0.4, 0.4)).fit()
    with torch.no_grad():
        expected = hf(pixel_values=(clips - 0.4) / 0.5).last_hidden_state[:, 0]
    np.testing.assert_allclose(enc.transform(clips), expected.numpy(), atol=1e-5)


def test_sample_frame_indices_spread_over_valid_frames():
    idx = sample_frame_indices(torch.tensor([16, 3, 1]), 4)
    assert idx.tolist() == [[2, 6, 10, 14], [0, 1, 1, 2], [0, 0, 0, 0]]


def test_checkpoints_load_offline_and_bad_ones_fail_clearly(videomae_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert VideoTransformer(model_dir=videomae_dir, frames=4).fit().n_features_out_ == 32
    for missing in (tmp_path / "absent", "MCG-NJU/videomae-base"):
        with pytest.raises(PersistenceError, match="not a local directory"):
            VideoTransformer(model_dir=missing).fit()
    with pytest.raises(ConfigurationError, match="model_dir"):
        VideoTransformer().fit()
    # a partial checkpoint: one tensor missing, one unexpected
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(videomae_dir / "config.json", bad / "config.json")
    state = load_file(str(videomae_dir / "model.safetensors"))
    dropped = "encoder.layer.1.output.dense.weight"
    del state[dropped]
    state["encoder.surplus.weight"] = torch.zeros(2)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(PersistenceError, match="missing keys") as info:
        VideoTransformer(model_dir=bad).fit()
    assert f"missing keys (1): ['{dropped}']" in str(info.value)
    assert "unexpected keys (1): ['encoder.surplus.weight']" in str(info.value)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(PersistenceError, match="cannot load"):
        VideoTransformer(model_dir=bad).fit()
    (bad / "model.safetensors").unlink()
    with pytest.raises(PersistenceError, match=r"no model\.safetensors or pytorch_model\.bin"):
        VideoTransformer(model_dir=bad).fit()
    # a checkpoint of another kind of model
    with pytest.raises(ConfigurationError, match="expected one of"):
        AudioTransformer(model_dir=videomae_dir).fit()


# ---------------------------------------------------------------- audio transformers
def _hf_audio_embedding(model, extractor, wave: torch.Tensor) -> np.ndarray:
    inputs = extractor(wave.numpy(), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        return model(inputs.input_values).last_hidden_state.mean(1)[0].numpy()


def test_audio_transformer_reproduces_wav2vec2(wav2vec2_dir, tmp_path):
    hf = _hf_reference(wav2vec2_dir, "Wav2Vec2Model")
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(wav2vec2_dir, local_files_only=True)
    g = torch.Generator().manual_seed(0)
    waves = [torch.randn(1600, generator=g), 0.3 * torch.randn(1100, generator=g)]
    enc = AudioTransformer(model_dir=wav2vec2_dir).fit()
    batched = enc.transform(waves)  # zero-padded with an attention mask
    for wave, row in zip(waves, batched, strict=True):
        np.testing.assert_allclose(row, _hf_audio_embedding(hf, fe, wave), atol=1e-5)
    enc.save(tmp_path / "saved")
    loaded = AudioTransformer.from_pretrained(tmp_path / "saved")
    np.testing.assert_array_equal(loaded.transform(waves), batched)
    assert loaded.fingerprint() == enc.fingerprint()
    # 8 kHz input is resampled (torchaudio) to the model's 16 kHz
    import torchaudio

    slow = AudioTransformer(model_dir=wav2vec2_dir, sample_rate=8000).fit()
    low = waves[0][:800]
    np.testing.assert_allclose(
        slow.transform([low])[0],
        enc.transform([torchaudio.functional.resample(low, 8000, 16000)])[0],
        atol=1e-5,
    )
    layer = AudioTransformer(model_dir=wav2vec2_dir, layer=1).fit().transform(waves)
    assert layer.shape == (2, 32) and not np.allclose(layer, batched)
    with pytest.raises(ConfigurationError, match="layer must be in"):
        AudioTransformer(model_dir=wav2vec2_dir, layer=7).fit()


def test_audio_transformer_group_norm_models_see_clips_unpadded(tmp_path):
    path = _tiny_audio(tmp_path, "hubert", norm="group")
    hf = _hf_reference(path, "HubertModel")
    fe = transformers.Wav2Vec2FeatureExtractor.from_pretrained(path, local_files_only=True)
    g = torch.Generator().manual_seed(1)
    waves = [torch.randn(900, generator=g), torch.randn(1700, generator=g)]
    batched = AudioTransformer(model_dir=path).fit().transform(waves)
    for wave, row in zip(waves, batched, strict=True):
        np.testing.assert_allclose(row, _hf_audio_embedding(hf, fe, wave), atol=1e-5)


# ---------------------------------------------------------------- in the feature extractor
def test_feature_extractor_uses_and_caches_pretrained_encoders(
    corpus, lite0, videomae_dir, wav2vec2_dir, tmp_path
):
    encoders = {
        "frames": FrameBackbone(weights=lite0, image_size=32, frames=2).fit(),
        "video": VideoTransformer(model_dir=videomae_dir, frames=4).fit(),
        "audio": AudioTransformer(model_dir=wav2vec2_dir).fit(),
    }
    params = {"frames": 4, "frame_size": 16, "batch_size": 2, "audio_seconds": 0.5,
              "cache_dir": tmp_path / "cache", "verbose": False}  # fmt: skip
    first = FeatureExtractor(encoders, **params)
    features = first.extract(corpus.catalogue())
    assert first.stats_["cached"] == 0
    assert features["frames"].shape == (4, 1280) and features["audio"].shape == (4, 32)
    has_video = corpus.has_video
    assert np.all(np.abs(features["frames"][has_video]).sum(1) > 0)
    assert np.all(features["video"][~has_video] == 0)
    second = FeatureExtractor(encoders, **params)
    again = second.extract(corpus.catalogue())
    assert second.stats_["decoded"] == 0 and second.stats_["cached"] == 3 * len(corpus)
    for name in encoders:
        np.testing.assert_array_equal(again[name], features[name])
    # the same rows as the encoder on the decoded clip
    from avrec.media import read_video

    index = int(np.flatnonzero(has_video)[0])
    clip = read_video(corpus.paths[index], num_frames=4, size=(16, 16)).frames
    np.testing.assert_allclose(
        features["frames"][index], encoders["frames"].transform([clip])[0], atol=1e-5
    )
