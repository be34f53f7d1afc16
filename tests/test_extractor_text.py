"""The text modality of FeatureExtractor: text per item from a table or a mapping, cache, shards."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from avrec.exceptions import ConfigurationError, DataValidationError, DataWarning
from avrec.features import FeatureExtractor, TextEncoder, VideoEncoder
from avrec.features._catalogue import catalogue_rows, join_text
from avrec.media import write_video

transformers = pytest.importorskip("transformers")

_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_VOCAB += ["calm", "river", "quiet", "forest", "loud", "engine", "fast", "car", "."]
TEXT = {
    "v0": "calm river",
    "v1": "loud engine fast car",
    "v2": None,  # no text
    "v3": "quiet forest. calm",
}


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory) -> TextEncoder:
    root = tmp_path_factory.mktemp("bert")
    (root / "vocab.txt").write_text("\n".join(_VOCAB))
    transformers.BertTokenizerFast(str(root / "vocab.txt")).save_pretrained(root)
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(_VOCAB), hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=32,
    )  # fmt: skip
    transformers.BertModel(config).save_pretrained(root)
    return TextEncoder(model_dir=root, normalize=True).fit()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("media")
    catalogue = {}
    for i in range(4):
        frames = np.full((4, 16, 16, 3), 40 * i, np.uint8)
        catalogue[f"v{i}"] = root / f"v{i}.mp4"
        write_video(catalogue[f"v{i}"], frames, fps=4)
    return catalogue


@pytest.fixture(scope="module")
def video() -> VideoEncoder:
    return VideoEncoder(frame_size=16, widths=(4,), embedding_dim=6, random_state=0).init()


def _extractor(encoders, **params) -> FeatureExtractor:
    defaults = {"frames": 2, "frame_size": 16, "batch_size": 3, "verbose": False}
    return FeatureExtractor(encoders, **{**defaults, **params})


def _expected(encoder: TextEncoder, texts: list) -> np.ndarray:
    out = np.zeros((len(texts), encoder.n_features_out_), np.float32)
    rows = [i for i, t in enumerate(texts) if t is not None]
    out[rows] = encoder.transform([texts[i] for i in rows])
    return out


def test_text_from_a_mapping_with_missing_items_flagged(text_encoder, media):
    ex = _extractor({"text": text_encoder})
    texts = {**TEXT, "v3": "   "}  # blank text counts as missing
    del texts["v1"]  # left out: missing too
    with pytest.warns(DataWarning, match=r"3 of 4 items have no text.*'v1', 'v2', 'v3'"):
        feats = ex.extract(media, text=texts)
    assert feats.modalities == ["text"] and feats.items.ids.tolist() == list(media)
    expected = _expected(text_encoder, ["calm river", None, None, None])
    np.testing.assert_allclose(feats["text"], expected, atol=1e-6)
    assert ex.missing_["text"].tolist() == [False, True, True, True]
    assert feats.mask("text").tolist() == [True, False, False, False]
    assert ex.stats_["decoded"] == 0  # only text asked for: no file is opened
    # a text-only extraction needs no media at all
    table = {"item_id": ["a", "b"], "title": ["calm river", "loud car"]}
    only = _extractor({"text": text_encoder}, text_columns=["title"]).extract(table)
    np.testing.assert_allclose(
        only["text"], text_encoder.transform(["calm river", "loud car"]), atol=1e-6
    )


def test_table_catalogue_gives_media_and_text(text_encoder, video, media):
    table = {
        "item_id": list(media),
        "path": [str(p) for p in media.values()],
        "title": ["calm river", "loud engine", None, "quiet forest"],
        "tags": ["", "fast car", None, "calm"],
    }
    ex = _extractor({"video": video, "text": text_encoder}, text_columns=("title", "tags"))
    with pytest.warns(DataWarning, match="1 of 4 items have no text"):
        feats = ex.extract(table)
    joined = ["calm river", "loud engine. fast car", None, "quiet forest. calm"]
    np.testing.assert_allclose(feats["text"], _expected(text_encoder, joined), atol=1e-6)
    np.testing.assert_allclose(feats["video"], video.transform(list(media.values())), atol=1e-5)
    assert ex.missing_["text"].tolist() == [False, False, True, False]
    assert not ex.missing_["video"].any()
    # the same table as a pandas DataFrame, and the same texts given as a mapping
    pandas = pytest.importorskip("pandas")
    with pytest.warns(DataWarning):
        frame = ex.extract(pandas.DataFrame(table))
    assert frame == feats
    mapping = dict(zip(media, joined, strict=True))
    with pytest.warns(DataWarning):
        given = ex.set_params(text_columns=None).extract(media, text=mapping)
    assert given == feats


def test_undecodable_media_drops_the_item_even_with_text(text_encoder, video, media, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    catalogue = {**media, "broken": broken}
    ex = _extractor({"video": video, "text": text_encoder})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        feats = ex.extract(catalogue, text={**TEXT, "broken": "calm"})
    assert list(ex.failures_) == ["broken"] and "broken" not in feats.items.ids.tolist()
    np.testing.assert_allclose(
        feats["text"], _expected(text_encoder, list(TEXT.values())), atol=1e-6
    )


def test_cache_keys_text_by_content(text_encoder, video, media, tmp_path):
    ex = _extractor({"video": video, "text": text_encoder}, cache_dir=tmp_path / "cache")
    with pytest.warns(DataWarning):
        first = ex.extract(media, text=TEXT)
    assert ex.stats_["cached"] == 0
    with pytest.warns(DataWarning):
        second = ex.extract(media, text=TEXT)
    assert second == first
    assert ex.stats_["cached"] == 7 and ex.stats_["decoded"] == 0  # 4 video + 3 text rows
    changed = {**TEXT, "v0": "fast car"}
    with pytest.warns(DataWarning):
        third = ex.extract(media, text=changed)
    assert ex.stats_["cached"] == 6 and ex.stats_["decoded"] == 0  # only v0's text embedded
    np.testing.assert_allclose(
        third["text"], _expected(text_encoder, list(changed.values())), atol=1e-6
    )
    np.testing.assert_array_equal(third["video"], first["video"])


def test_sharded_extraction_follows_the_text(text_encoder, video, media, tmp_path):
    ex = _extractor({"video": video, "text": text_encoder})
    with pytest.warns(DataWarning):
        plain = ex.extract(media, text=TEXT)
    with pytest.warns(DataWarning):
        sharded = ex.extract(media, text=TEXT, shard_dir=tmp_path / "shards")
    assert sharded == plain and ex.stats_["shard_computed"] == 1.0
    with pytest.warns(DataWarning):
        ex.extract(media, text=TEXT, shard_dir=tmp_path / "shards")
    assert ex.stats_["shard_computed"] == 0.0  # reused
    changed = {**TEXT, "v1": "calm car"}
    with pytest.warns(DataWarning):
        again = ex.extract(media, text=changed, shard_dir=tmp_path / "shards")
    assert ex.stats_["shard_computed"] == 1.0  # new text: the shard is stale
    np.testing.assert_allclose(
        again["text"], _expected(text_encoder, list(changed.values())), atol=1e-6
    )


def test_fit_extract_fits_the_text_encoder(text_encoder, media):
    fresh = TextEncoder(model_dir=text_encoder.model_dir, normalize=True)
    with pytest.warns(DataWarning):
        feats = _extractor({"text": fresh}).fit_extract(media, text=TEXT)
    assert fresh.trained_ and fresh.fingerprint() == text_encoder.fingerprint()
    np.testing.assert_allclose(
        feats["text"], _expected(text_encoder, list(TEXT.values())), atol=1e-6
    )
    with pytest.raises(DataValidationError, match="no item has text to fit 'text'"):
        _extractor({"text": fresh}).fit_extract(media, text={"v0": None})


def test_bad_text_input(text_encoder, video, media):
    ex = _extractor({"video": video, "text": text_encoder})
    with pytest.raises(ConfigurationError, match=r"encoders \['text'\] read text"):
        ex.extract(media)
    with pytest.raises(DataValidationError, match="no entry for any catalogue item"):
        ex.extract(media, text={"x0": "calm"})
    with pytest.raises(DataValidationError, match="3 entries but the catalogue 4"):
        ex.extract(media, text=["calm"] * 3)
    with pytest.raises(DataValidationError, match="must be a str or None, got int"):
        ex.extract(media, text={"v0": 3})
    with pytest.raises(DataValidationError, match="needs a table catalogue"):
        ex.set_params(text_columns=["title"]).extract(media)
    table = {"path": list(media.values()), "title": ["calm"] * 4}
    with pytest.raises(DataValidationError, match=r"text_columns \['name'\] are not columns"):
        ex.set_params(text_columns=["name"]).extract(table)
    with pytest.raises(DataValidationError, match="either as text= or as text_columns"):
        ex.set_params(text_columns=["title"]).extract(table, text=["calm"] * 4)
    with pytest.raises(DataValidationError, match="'path' column"):
        ex.set_params(text_columns=["title"]).extract({"title": ["calm"] * 4})
    for bad in ("title", [], [3]):
        with pytest.raises(ConfigurationError, match="text_columns"):
            ex.set_params(text_columns=bad).extract(table)


def test_catalogue_rows_and_join_text():
    assert join_text(["Done!", "next", " ", None, float("nan")]) == "Done! next"
    ids, paths, texts = catalogue_rows(["a.mp4", "b.wav"], text=["x", None])
    assert (ids, paths, texts) == (["a.mp4", "b.wav"], ["a.mp4", "b.wav"], ["x", None])
    assert catalogue_rows({"a": "a.mp4"})[2] is None
    with pytest.raises(DataValidationError, match="equal lengths"):
        catalogue_rows({"path": ["a.mp4"], "title": ["x", "y"]})
    with pytest.raises(DataValidationError, match="duplicate"):
        catalogue_rows({"item_id": ["a", "a"], "path": ["a.mp4", "b.mp4"]})
