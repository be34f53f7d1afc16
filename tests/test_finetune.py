"""Fine-tuning modes (frozen, last-k, LoRA), FineTunedEncoder and its adapter persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from finetune_data import tiny_text_encoder, tiny_video_encoder, toy_pairs
from safetensors.torch import load_file
from torch import nn

from avrec.exceptions import ConfigurationError, NotFittedError, PersistenceError
from avrec.features import FrameBackbone, VideoEncoder
from avrec.features.finetune import (
    CrossModalFineTuner,
    FineTunedEncoder,
    FineTuning,
    find_blocks,
    lora_target_modules,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny kernels: one intra-op thread avoids barrier stalls on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    return tiny_text_encoder(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def pairs():
    return toy_pairs(16)


def _trainable(tuned):
    return {n for n, p in tuned.model_.network.named_parameters() if p.requires_grad}


def _train_briefly(tuned, inputs, steps=3):
    """A few steps of a loss that moves every trainable parameter of ``tuned``."""
    params = tuned.trainable_parameters()
    opt = torch.optim.Adam(params, lr=0.05)
    x, lengths = tuned._convert(inputs)
    tuned.model_.train()
    for _ in range(steps):
        loss = (tuned.model_.embed(x, lengths) - 1.0).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    tuned.model_.eval()


# ---------------------------------------------------------------------- block discovery
def test_find_blocks_bert_timm_and_override(text_encoder):
    import timm

    blocks = find_blocks(text_encoder.model_)
    layers = text_encoder.model_.transformer.encoder.layer
    assert [id(b) for b in blocks] == [id(b) for b in layers]
    assert find_blocks(text_encoder.model_, "transformer.encoder.layer")[1] is layers[1]
    net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    assert len(find_blocks(net)) == len(net.blocks) == 7
    with pytest.raises(ConfigurationError, match="blocks='nope'"):
        find_blocks(net, "nope")
    with pytest.raises(ConfigurationError, match="no block list"):
        find_blocks(nn.Linear(2, 2))


def test_lora_targets_per_family(text_encoder):
    import timm

    bert = lora_target_modules(text_encoder.model_)
    assert bert and all(n.endswith(("self.query", "self.value")) for n in bert)
    assert len(bert) == 4  # 2 layers x (query, value)
    effnet = lora_target_modules(timm.create_model("efficientnet_lite0", pretrained=False))
    assert effnet and all(n.endswith(("conv_pw", "conv_pwl")) for n in effnet)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32)
    names = lora_target_modules(vit)
    assert names and all(n.endswith(("attn.qkv", "attn.proj")) for n in names)
    assert len(names) == 2 * len(vit.blocks)
    plain = nn.Sequential(nn.Linear(3, 3), nn.Conv2d(3, 3, 3, groups=3), nn.Conv2d(3, 4, 1))
    assert lora_target_modules(plain) == ["0", "2"]  # grouped convolutions are left out
    with pytest.raises(ConfigurationError, match=r"no nn\.Linear"):
        lora_target_modules(nn.ReLU())


# ---------------------------------------------------------------------- modes
def test_frozen_trains_nothing_in_the_network(text_encoder, pairs):
    tuned = FineTunedEncoder(text_encoder, "frozen", projection_dim=4, random_state=0)
    assert _trainable(tuned) == set()
    assert tuned.n_trainable_parameters() == 16 * 4 + 4  # the head only
    before = {k: v.clone() for k, v in tuned.model_.network.state_dict().items()}
    _train_briefly(tuned, pairs[0])
    after = tuned.model_.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_last_k_unfreezes_exactly_the_last_blocks(text_encoder, pairs):
    tuned = FineTunedEncoder(text_encoder, FineTuning("last_k", last_k=1), random_state=0)
    network = tuned.model_.network
    expected = {
        f"transformer.encoder.layer.1.{n}"
        for n, _ in network.transformer.encoder.layer[1].named_parameters()
    }
    assert _trainable(tuned) == expected
    before = {k: v.clone() for k, v in network.state_dict().items()}
    _train_briefly(tuned, pairs[0])
    after = network.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= expected
    two = FineTunedEncoder(text_encoder, FineTuning("last_k", last_k=2), random_state=0)
    assert len(_trainable(two)) == 2 * len(expected)


def test_lora_trains_only_adapters_and_keeps_base_weights(text_encoder, pairs):
    tuned = FineTunedEncoder(text_encoder, FineTuning("lora", lora_rank=2), random_state=0)
    names = _trainable(tuned)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    # rank 2 adapters on query and value of 2 layers: A (2 x 16) + B (16 x 2) each
    assert tuned.n_trainable_parameters() == 4 * (2 * 16 + 16 * 2)
    texts = pairs[0]
    base_out = text_encoder.transform(texts)
    torch.testing.assert_close(torch.from_numpy(tuned.transform(texts)), torch.from_numpy(base_out))
    _train_briefly(tuned, texts)
    assert not torch.allclose(torch.from_numpy(tuned.transform(texts)), torch.from_numpy(base_out))
    # base weights of the copy unchanged, and the base encoder itself untouched
    base_state = text_encoder.model_.state_dict()
    for name, tensor in tuned.model_.network.state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer.", ".")
        assert torch.equal(tensor, base_state[key]), name
    assert (text_encoder.transform(texts) == base_out).all()
    assert all(not p.requires_grad for p in text_encoder.model_.parameters())


def test_transform_does_not_depend_on_batch_size(text_encoder, pairs):
    tuned = FineTunedEncoder(text_encoder, "lora", projection_dim=4, random_state=0)
    _train_briefly(tuned, pairs[0])
    full = tuned.transform(pairs[0])
    np.testing.assert_allclose(tuned.transform(pairs[0], batch_size=3), full, atol=1e-6)
    with pytest.raises(ConfigurationError, match="batch_size"):
        tuned.transform(pairs[0], batch_size=0)


def test_gradient_checkpointing_switch_keeps_gradients(text_encoder, pairs):
    from avrec.features.finetune._precision import enable_gradient_checkpointing

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        tuned = FineTunedEncoder(text_encoder, "lora", projection_dim=4, random_state=0)
        network = tuned.model_.network
        # no GPU needed to flip the switches: a CUDA device object only selects the code path
        assert enable_gradient_checkpointing(network, torch.device("cpu")) is False
        if checkpointing:
            assert enable_gradient_checkpointing(network, torch.device("cuda")) is True
        tuned.model_.train()
        layers = network.transformer.encoder.layer
        assert all(layer.training == checkpointing for layer in layers)
        assert not any(m.training for m in layers.modules() if isinstance(m, nn.Dropout))
        tuned.model_.embed(*tuned._convert(pairs[0])).square().sum().backward()
        return [p.grad for p in tuned.trainable_parameters()]

    for plain, checkpointed in zip(grads(False), grads(True), strict=True):
        torch.testing.assert_close(plain, checkpointed)
    backbone = FrameBackbone(image_size=32, random_state=0).init()
    tuned = FineTunedEncoder(backbone, "last_k", random_state=0)
    assert enable_gradient_checkpointing(tuned.model_.network, torch.device("cuda")) is True
    assert tuned.model_.network.backbone.grad_checkpointing is True


def test_lora_on_timm_frame_backbone_convolutions():
    base = FrameBackbone(image_size=32, random_state=0).init()
    tuned = FineTunedEncoder(base, FineTuning("lora", lora_rank=1), random_state=0)
    names = _trainable(tuned)
    assert names and all("conv_pw" in n and "lora_" in n for n in names)
    clips = toy_pairs(4)[1]
    assert (tuned.transform(clips) == base.transform(clips)).all()


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (FineTuning(mode="full"), "mode must be one of"),
        (FineTuning(mode="last_k", last_k=0), "last_k must be an int >= 1"),
        (FineTuning(mode="last_k", last_k=3), "last_k=3 exceeds the 2 blocks"),
        (FineTuning(mode="lora", lora_rank=0), "lora_rank"),
        (FineTuning(mode="lora", lora_dropout=1.0), "lora_dropout"),
        (FineTuning(mode="lora", target_modules="query"), "target_modules"),
        (FineTuning(mode="lora", target_modules=["nothing_here"]), "target_modules"),
    ],
)
def test_bad_modes_raise(text_encoder, spec, match):
    with pytest.raises(ConfigurationError, match=match):
        FineTunedEncoder(text_encoder, spec)


def test_bad_encoders_raise():
    with pytest.raises(ConfigurationError, match="base_encoder must be an avrec encoder"):
        FineTunedEncoder(nn.Linear(2, 2))
    with pytest.raises(NotFittedError, match="not fitted"):
        FineTunedEncoder(VideoEncoder())
    with pytest.raises(ConfigurationError, match="projection_dim"):
        FineTunedEncoder(tiny_video_encoder(), projection_dim=0)


def test_lora_target_override(text_encoder):
    spec = FineTuning("lora", lora_rank=1, target_modules=["query"])
    names = _trainable(FineTunedEncoder(text_encoder, spec))
    assert names and all(".query.lora_" in n for n in names)


# ---------------------------------------------------------------------- persistence
def test_save_load_round_trip_and_only_trainable_tensors(tmp_path, text_encoder, pairs):
    texts, clips, _ = pairs
    tuner = CrossModalFineTuner(
        text_encoder,
        tiny_video_encoder(),
        mode=(FineTuning("lora", lora_rank=2), "last_k"),
        projection_dim=4,
        epochs=2,
        batch_size=8,
        learning_rate=1e-2,
        random_state=0,
    ).fit(texts, clips)
    tower = tuner.encoder_a_
    tower.save(tmp_path / "adapter")
    saved = load_file(str(tmp_path / "adapter" / "adapter.safetensors"))
    assert set(saved) == {n for n, p in tower.model_.named_parameters() if p.requires_grad}
    assert all("lora_" in k or k.startswith("head.") for k in saved)
    config = json.loads((tmp_path / "adapter" / "adapter.json").read_text())
    assert config["base_fingerprint"] == text_encoder.fingerprint()
    assert config["finetuning"]["mode"] == "lora"
    # a fresh base loaded from the same local weights
    fresh = type(text_encoder)(model_dir=text_encoder.model_dir).fit()
    loaded = FineTunedEncoder.load(tmp_path / "adapter", fresh)
    assert (loaded.transform(texts) == tower.transform(texts)).all()
    assert loaded.fingerprint() == tower.fingerprint()
    assert loaded.history_["train_loss"] == tuner.history_["train_loss"]
    # the video tower (last-k) round-trips too
    tuner.encoder_b_.save(tmp_path / "video")
    video = FineTunedEncoder.load(
        tmp_path / "video", tuner.encoder_b.__class__(**tuner.encoder_b.get_params()).init()
    )
    assert (video.transform(clips) == tuner.encoder_b_.transform(clips)).all()


def test_load_refuses_another_base(tmp_path, text_encoder):
    tuned = FineTunedEncoder(text_encoder, FineTuning("lora", lora_rank=1), random_state=0)
    tuned.save(tmp_path / "adapter")
    other = tiny_text_encoder(tmp_path / "other-bert", seed=1)  # same architecture, other weights
    with pytest.raises(PersistenceError, match="fingerprint"):
        FineTunedEncoder.load(tmp_path / "adapter", other)
    with pytest.raises(PersistenceError, match=r"not a .*VideoEncoder"):
        FineTunedEncoder.load(tmp_path / "adapter", tiny_video_encoder())
    with pytest.raises(PersistenceError, match="file not found"):
        FineTunedEncoder.load(tmp_path / "missing", text_encoder)


def test_load_refuses_tensors_that_do_not_fit(tmp_path):
    from safetensors.torch import save_file

    base = tiny_video_encoder()
    tuned = FineTunedEncoder(base, FineTuning("lora", lora_rank=1), random_state=0)
    tuned.save(tmp_path / "adapter")
    state = load_file(str(tmp_path / "adapter" / "adapter.safetensors"))
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, str(tmp_path / "adapter" / "adapter.safetensors"))
    with pytest.raises(PersistenceError, match="missing"):
        FineTunedEncoder.load(tmp_path / "adapter", base)


# ---------------------------------------------------------------------- shipped weights
@pytest.mark.slow  # ~15 s on 2 busy cores: loads MiniLM and EfficientNet-Lite0
def test_shipped_backbones_lora_round_trip(tmp_path):
    from avrec.features import TextEncoder, pretrained_weights

    try:
        minilm = pretrained_weights("all-minilm-l6-v2")
        lite0 = pretrained_weights("efficientnet_lite0")
    except ConfigurationError as exc:  # the avrec[pretrained] extra is not installed
        pytest.skip(str(exc))
    text = TextEncoder(model_dir=minilm).fit()
    frames = FrameBackbone(weights=lite0, image_size=64).fit()
    assert len(find_blocks(text.model_)) == 6 and len(find_blocks(frames.model_)) == 7
    texts, clips, _ = toy_pairs(8)
    tuner = CrossModalFineTuner(
        text,
        frames,
        mode=(FineTuning("lora", lora_rank=4), FineTuning("lora", lora_rank=2)),
        projection_dim=16,
        epochs=2,
        batch_size=4,
        random_state=0,
    ).fit(texts, clips)
    losses = tuner.history_["train_loss"]
    assert np.isfinite(losses).all() and losses[1] < losses[0]
    for tower, name in ((tuner.encoder_a_, "text"), (tuner.encoder_b_, "frames")):
        tower.save(tmp_path / name)
        size = (tmp_path / name / "adapter.safetensors").stat().st_size
        assert size < 0.02 * sum(p.numel() * 4 for p in tower.base_encoder.model_.parameters())
    loaded = FineTunedEncoder.load(tmp_path / "text", TextEncoder(model_dir=minilm).fit())
    assert (loaded.transform(texts) == tuner.encoder_a_.transform(texts)).all()
    assert (text.transform(texts) == TextEncoder(model_dir=minilm).fit().transform(texts)).all()
