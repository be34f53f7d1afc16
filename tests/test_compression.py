"""Encoder compression: dynamic int8 quantisation, pruning, distillation, persistence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.ao.nn.quantized.dynamic as nnqd
from safetensors.torch import load_file, save_file
from torch import nn

from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    NotFittedError,
    PersistenceError,
)
from avrec.features import VideoEncoder
from avrec.features.compression import (
    CompressedEncoder,
    Distiller,
    distillation_loss,
    prune,
    quantize_dynamic,
    sparsity,
)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (12, 4, 3, 16, 16), dtype=torch.uint8, generator=gen)


@pytest.fixture(scope="module")
def lstm_encoder() -> VideoEncoder:
    """Linear + LSTM heavy: what dynamic quantisation covers."""
    return VideoEncoder(
        frame_size=16,
        widths=(4, 8),
        embedding_dim=96,
        use_lstm=True,
        lstm_hidden_dim=96,
        pooling="attention",
        projection_dim=96,
        random_state=0,
    ).init()


@pytest.fixture(scope="module")
def cnn_encoder() -> VideoEncoder:
    return VideoEncoder(frame_size=16, widths=(8, 16), embedding_dim=16, random_state=1).init()


# ---------------------------------------------------------------------- quantisation
def test_quantized_outputs_close_to_float_and_original_untouched(lstm_encoder, clips):
    before = lstm_encoder.transform(clips)
    digest = lstm_encoder.fingerprint()
    q = quantize_dynamic(lstm_encoder)
    out = q.transform(clips)
    assert out.dtype == np.float32 and out.shape == before.shape
    assert _cosine(out, before).min() > 0.99
    assert not np.array_equal(out, before)  # it did quantise
    assert any(isinstance(m, nnqd.Linear) for m in q.model_.modules())
    assert isinstance(q.model_.lstm.lstm, nnqd.LSTM)
    # the original is untouched: same float modules, weights and embeddings
    assert isinstance(lstm_encoder.model_.projector[0], nn.Linear)
    assert lstm_encoder.fingerprint() == digest
    np.testing.assert_array_equal(lstm_encoder.transform(clips), before)
    assert (
        q.device_ == torch.device("cpu")
        and q.n_features_out_ == lstm_encoder.n_features_out_ == 192
    )
    assert q.base_fingerprint_ == digest and q.fingerprint() != digest


def test_quantized_save_is_smaller_and_round_trips(lstm_encoder, clips, tmp_path):
    q = quantize_dynamic(lstm_encoder, layers=("LSTM", "Linear"))
    lstm_encoder.save(tmp_path / "float")
    q.save(tmp_path / "int8")
    weights = _dir_bytes(tmp_path / "float") / _dir_bytes(tmp_path / "int8")
    assert weights > 3.0  # Linear/LSTM weights dominate: ~4x from float32 to int8
    assert not (tmp_path / "int8" / "base" / "model.safetensors").exists()
    stored = load_file(str(tmp_path / "int8" / "model.safetensors"))
    int8 = [k for k, v in stored.items() if v.dtype == torch.int8]
    assert int8 and all(k.endswith("#int_repr") for k in int8)
    assert not any(k.startswith("lstm.lstm.weight") and "#" not in k for k in stored)
    config = json.loads((tmp_path / "int8" / "config.json").read_text())
    assert config["base_fingerprint"] == lstm_encoder.fingerprint()
    assert config["recipe"][0]["method"] == "quantize_dynamic"
    again = CompressedEncoder.from_pretrained(tmp_path / "int8")
    np.testing.assert_array_equal(again.transform(clips), q.transform(clips))
    assert again.fingerprint() == q.fingerprint()
    assert again.modality == "video" and again.frames == lstm_encoder.frames


@pytest.mark.parametrize("engine", ["x86", "onednn"])
def test_quantized_engine_round_trips(lstm_encoder, clips, tmp_path, engine):
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"{engine} kernels are not in this torch build")
    q = quantize_dynamic(lstm_encoder, engine=engine)
    assert q.recipe[0]["engine"] == engine
    assert _cosine(q.transform(clips), lstm_encoder.transform(clips)).min() > 0.99
    q.save(tmp_path / "q")
    again = CompressedEncoder.from_pretrained(tmp_path / "q")
    np.testing.assert_array_equal(again.transform(clips), q.transform(clips))


def test_tampered_int8_weights_are_refused(lstm_encoder, tmp_path):
    q = quantize_dynamic(lstm_encoder, layers=("Linear",))
    q.save(tmp_path / "q")
    weights = tmp_path / "q" / "model.safetensors"
    state = load_file(str(weights))
    key = next(k for k in state if k.endswith("#int_repr"))
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1
    save_file(state, str(weights))
    with pytest.raises(PersistenceError, match="fingerprint"):
        CompressedEncoder.from_pretrained(tmp_path / "q")


def test_quantize_rejects_convolutions_and_bad_arguments(cnn_encoder, lstm_encoder):
    with pytest.raises(ConfigurationError, match="convolutions"):
        quantize_dynamic(cnn_encoder, layers=("Conv2d",))
    with pytest.raises(ConfigurationError, match="layers"):
        quantize_dynamic(lstm_encoder, layers="Linear")
    with pytest.raises(ConfigurationError, match="per_channel"):
        quantize_dynamic(lstm_encoder, per_channel="yes")
    with pytest.raises(ConfigurationError, match=r"no .* layer left"):
        quantize_dynamic(lstm_encoder, layers=("Linear",), exclude=("*",))
    with pytest.raises(ConfigurationError, match="engine"):
        quantize_dynamic(lstm_encoder, engine="tpu")
    with pytest.raises(NotFittedError):
        quantize_dynamic(VideoEncoder())
    with pytest.raises(ConfigurationError, match="encoder"):
        quantize_dynamic(nn.Linear(2, 2))


def test_quantize_exclude_keeps_float_layers(lstm_encoder):
    q = quantize_dynamic(lstm_encoder, layers=("Linear",), exclude=("projector.*",))
    assert isinstance(q.model_.projector[0], nn.Linear)
    assert any(isinstance(m, nnqd.Linear) for m in q.model_.cnn.modules())


# ---------------------------------------------------------------------- pruning
def _weights(model: nn.Module, types=(nn.Conv2d, nn.Linear)) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, types)}


def test_global_magnitude_pruning_is_exact_and_keeps_the_largest(cnn_encoder):
    original = _weights(cnn_encoder.model_)
    total = sum(w.numel() for w in original.values())
    pruned = prune(cnn_encoder, amount=0.4)
    report = sparsity(pruned)
    assert report["weights"] == total
    assert report["zeros"] == round(0.4 * total)
    after = _weights(pruned.model_)
    removed = torch.cat([original[n][after[n] == 0].abs() for n in original])
    kept = torch.cat([original[n][after[n] != 0].abs() for n in original])
    assert removed.max() <= kept.min()
    for n in original:  # kept weights are unchanged, pruned ones are exactly zero
        assert torch.equal(after[n][after[n] != 0], original[n][after[n] != 0])
    assert sparsity(cnn_encoder)["zeros"] == 0  # the original is untouched
    assert not any(hasattr(m, "weight_orig") for m in pruned.model_.modules())  # permanent


def test_layerwise_pruning_gives_each_layer_the_amount(cnn_encoder):
    pruned = prune(cnn_encoder, amount=0.25, scope="layer", layers=("Conv2d",))
    weights = _weights(pruned.model_, (nn.Conv2d,))
    for name, w in weights.items():
        assert int((w == 0).sum()) == round(0.25 * w.numel()), name
    assert sparsity(pruned, layers=("Linear",))["zeros"] == 0


def test_structured_pruning_removes_whole_channels(cnn_encoder, clips):
    original = _weights(cnn_encoder.model_, (nn.Conv2d,))
    pruned = prune(cnn_encoder, method="ln_structured", amount=0.5, scope="layer", n=2, dim=0)
    modules = dict(pruned.model_.named_modules())
    for name, w0 in original.items():
        w = modules[name].weight.detach()
        dead = w.flatten(1).eq(0).all(1)
        assert int(dead.sum()) == round(0.5 * w.shape[0])
        # the channels removed are those of smallest L2 norm, and the others are intact
        norms = w0.flatten(1).norm(dim=1)
        assert norms[dead].max() <= norms[~dead].min()
        assert torch.equal(w[~dead], w0[~dead])
        if modules[name].bias is not None:
            assert torch.all(modules[name].bias.detach()[dead] == 0)
    assert pruned.transform(clips).shape == (len(clips), 16)


def test_pruned_round_trip_and_chaining(cnn_encoder, clips, tmp_path):
    both = quantize_dynamic(prune(cnn_encoder, amount=0.5), layers=("Linear",))
    assert [s["method"] for s in both.recipe] == ["prune", "quantize_dynamic"]
    assert both.base is cnn_encoder
    head = sparsity(both, layers=("Linear",))
    assert head["zeros"] > 0  # the quantised Linear keeps the pruned zeros
    both.save(tmp_path / "pq")
    again = CompressedEncoder.from_pretrained(tmp_path / "pq")
    np.testing.assert_array_equal(again.transform(clips), both.transform(clips))
    assert again.fingerprint() == both.fingerprint()
    assert (
        sparsity(again, layers=("Conv2d",))["zeros"] == sparsity(both, layers=("Conv2d",))["zeros"]
    )


def test_prune_rejects_bad_arguments(cnn_encoder):
    for kwargs, match in [
        ({"amount": 1.5}, "amount"),
        ({"amount": 0}, "amount"),
        ({"method": "random"}, "method"),
        ({"method": "ln_structured", "scope": "global"}, "scope"),
        ({"scope": "net"}, "scope"),
        ({"method": "ln_structured", "scope": "layer", "n": -1}, "n must"),
        ({"method": "ln_structured", "scope": "layer", "dim": 7}, "dim=7"),
        ({"layers": ("Conv9d",)}, "Conv9d"),
        ({"exclude": "cnn"}, "exclude"),
    ]:
        with pytest.raises(ConfigurationError, match=match):
            prune(cnn_encoder, **kwargs)
    with pytest.raises(ConfigurationError, match="recipe"):
        CompressedEncoder(cnn_encoder, []).fit()
    with pytest.raises(ConfigurationError, match="nesting"):
        CompressedEncoder(
            prune(cnn_encoder),
            [{"method": "prune", "kind": "l1_unstructured", "amount": 0.1, "layers": ["Linear"]}],
        ).fit()


def test_loading_something_else_is_refused(cnn_encoder, tmp_path):
    cnn_encoder.save(tmp_path / "plain")
    with pytest.raises(PersistenceError, match="not a"):
        CompressedEncoder.from_pretrained(tmp_path / "plain")
    with pytest.raises(PersistenceError, match="not found"):
        CompressedEncoder.from_pretrained(tmp_path / "missing")


# ---------------------------------------------------------------------- distillation
@pytest.fixture(scope="module")
def teacher(clips) -> VideoEncoder:
    return VideoEncoder(
        frame_size=16, widths=(8, 16), embedding_dim=12, epochs=2, batch_size=6, random_state=3
    ).fit(clips)


def test_distillation_approaches_the_teacher(teacher, clips):
    student = VideoEncoder(frame_size=8, widths=(4,), embedding_dim=12)
    distiller = Distiller(
        teacher, student, epochs=10, batch_size=6, learning_rate=1e-2, random_state=0
    ).fit(clips)
    losses = distiller.history_["train_loss"]
    assert len(losses) == 10 and losses[-1] < 0.5 * losses[0]
    assert distiller.projection_ is None  # same size: no projection
    target = teacher.transform(clips)
    untrained = (
        VideoEncoder(frame_size=8, widths=(4,), embedding_dim=12, random_state=0)
        .init()
        .transform(clips)
    )
    trained = distiller.student_.transform(clips)
    assert _cosine(trained, target).mean() > _cosine(untrained, target).mean() + 0.1
    assert distiller.score(clips) == pytest.approx(float(_cosine(trained, target).mean()), 1e-5)
    assert not hasattr(student, "model_")  # the given student is a template, never fitted
    assert distiller.teacher_fingerprint_ == teacher.fingerprint()


def test_distillation_is_seeded_and_the_student_saves_like_any(teacher, clips, tmp_path):
    student = VideoEncoder(frame_size=8, widths=(4,), embedding_dim=6)
    kwargs = {"epochs": 3, "batch_size": 4, "random_state": 7, "validation_fraction": 0.25}
    a = Distiller(teacher, student, **kwargs).fit(clips)
    b = Distiller(teacher, student, **kwargs).fit(clips)
    assert a.projection_.in_features == 6 and a.projection_.out_features == 12
    np.testing.assert_array_equal(a.student_.transform(clips), b.student_.transform(clips))
    assert len(a.history_["val_loss"]) == 3 and a.best_epoch_ is not None
    a.student_.save(tmp_path / "student")
    loaded = VideoEncoder.from_pretrained(tmp_path / "student")
    np.testing.assert_array_equal(loaded.transform(clips), a.student_.transform(clips))


def test_distillation_warm_starts_a_fitted_student(teacher, clips):
    start = VideoEncoder(frame_size=8, widths=(4,), embedding_dim=12, random_state=5).init()
    before = start.transform(clips)
    d = Distiller(teacher, start, epochs=1, batch_size=6, learning_rate=1e-4).fit(clips)
    after = d.student_.transform(clips)
    np.testing.assert_array_equal(start.transform(clips), before)  # the given one is untouched
    assert _cosine(after, before).min() > 0.9  # one small step from its weights, not a reset


def test_distillation_loss_terms():
    t = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    assert float(distillation_loss(3 * t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(distillation_loss(t + 1, t, loss="mse", relational_weight=0)) == pytest.approx(1)
    s = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    rel = distillation_loss(s, t, relational_weight=1.0) - distillation_loss(
        s, t, relational_weight=0.0
    )
    sn, tn = nn.functional.normalize(s, dim=1), nn.functional.normalize(t, dim=1)
    assert float(rel) == pytest.approx(float(((sn @ sn.T - tn @ tn.T) ** 2).mean()), rel=1e-5)
    with pytest.raises(DataValidationError, match="projection"):
        distillation_loss(torch.zeros(5, 3), t)
    with pytest.raises(ConfigurationError, match="loss"):
        distillation_loss(t, t, loss="kl")


def test_distiller_rejects_bad_input(teacher, clips):
    student = VideoEncoder(frame_size=8, widths=(4,), embedding_dim=4)
    with pytest.raises(ConfigurationError, match="loss"):
        Distiller(teacher, student, loss="kl").fit(clips)
    with pytest.raises(ConfigurationError, match="relational_weight"):
        Distiller(teacher, student, relational_weight=-1).fit(clips)
    with pytest.raises(NotFittedError):
        Distiller(VideoEncoder(), student).fit(clips)
    with pytest.raises(ConfigurationError, match="student"):
        Distiller(teacher, "small").fit(clips)
    with pytest.raises(ConfigurationError, match="epochs"):
        Distiller(teacher, student, epochs=-1).fit(clips)
    with pytest.raises(DataValidationError):
        Distiller(teacher, student).fit([])
    with pytest.raises(NotFittedError):
        Distiller(teacher, student).score(clips)


# ---------------------------------------------------------------------- pretrained encoders
@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from avrec.features import TextEncoder

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = [f"w{i}" for i in range(3000)]
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    )
    transformers.BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=3005,
        hidden_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
    )
    transformers.BertModel(config).save_pretrained(folder)
    return TextEncoder(model_dir=folder).fit()


def test_quantized_text_encoder_shrinks_its_embeddings(text_encoder, tmp_path):
    texts = [" ".join(f"w{(7 * i + j) % 3000}" for j in range(6)) for i in range(10)]
    q = quantize_dynamic(text_encoder)
    assert isinstance(
        q.model_.transformer.embeddings.word_embeddings, torch.ao.nn.quantized.Embedding
    )
    assert _cosine(q.transform(texts), text_encoder.transform(texts)).min() > 0.99
    text_encoder.save(tmp_path / "float")
    q.save(tmp_path / "int8")
    ratio = (tmp_path / "float" / "model.safetensors").stat().st_size / (
        tmp_path / "int8" / "model.safetensors"
    ).stat().st_size
    assert ratio >= 3.0
    again = CompressedEncoder.from_pretrained(tmp_path / "int8")
    np.testing.assert_array_equal(again.transform(texts), q.transform(texts))
    assert again.modality == "text" and again.fingerprint() == q.fingerprint()


def test_frame_backbone_prunes_but_is_not_dynamically_quantised(clips):
    pytest.importorskip("timm")
    from avrec.features import FrameBackbone

    enc = FrameBackbone(arch="tf_efficientnet_lite0", image_size=32, frames=4, random_state=0)
    enc = enc.init()
    with pytest.raises(ConfigurationError, match="convolutions"):
        quantize_dynamic(enc)
    pruned = prune(enc, method="ln_structured", amount=0.25, scope="layer", layers=("Conv2d",))
    dead = [
        int(m.weight.flatten(1).eq(0).all(1).sum()) == round(0.25 * m.weight.shape[0])
        for m in pruned.model_.modules()
        if isinstance(m, nn.Conv2d)
    ]
    assert dead and all(dead)
    assert pruned.transform(clips[:2]).shape == (2, enc.n_features_out_)
    assert pruned.modality == "video" and pruned.frames == 4
