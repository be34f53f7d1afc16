"""FeatureExtractor: catalogue to ItemFeatures, workers, failures, missing streams, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avrec.data import ItemFeatures
from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    DataWarning,
    MediaDecodeError,
    NotFittedError,
)
from avrec.features import (
    AudioEncoder,
    FeatureExtractor,
    GANEncoder,
    MediaDataset,
    VideoEncoder,
    collate_media,
)
from avrec.features._cache import FeatureCache, file_sha256
from avrec.media import read_audio, read_video, write_audio, write_video

FRAMES, SIZE = 4, 16


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _write_item(path, seed: int, seconds: float = 1.0) -> None:
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, 3, dtype=np.uint8)
    frames = np.broadcast_to(colour, (8, 32, 32, 3)).copy()
    frames[:, 8:16, 8 + seed % 8 : 16 + seed % 8] = 255
    t = np.arange(round(16000 * seconds)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (200 + 100 * seed) * t)[None]
    write_video(path, frames, fps=8, audio=tone, sample_rate=16000)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    catalogue = {}
    for i in range(4):
        catalogue[f"v{i}"] = root / f"v{i}.mp4"
        _write_item(catalogue[f"v{i}"], i, seconds=1.0 + 0.25 * i)
    catalogue["a0"] = root / "a0.wav"  # audio only
    write_audio(catalogue["a0"], 0.2 * np.sin(np.arange(12000) / 7)[None], 16000)
    return catalogue


@pytest.fixture(scope="module")
def encoders():
    return {
        "video": VideoEncoder(frame_size=SIZE, widths=(4, 8), embedding_dim=8, random_state=0),
        "audio": AudioEncoder(widths=(4, 8), embedding_dim=6, random_state=0),
        "gan": GANEncoder(image_size=16, generator_width=4, discriminator_width=4, random_state=0),
    }


@pytest.fixture(scope="module")
def ready(encoders, media):
    paths = list(media.values())[:4]  # the last one has no video
    video = [read_video(p, num_frames=FRAMES, size=(SIZE, SIZE)).frames for p in paths]
    audio = [read_audio(p).samples[0] for p in media.values()]
    encoders["video"].set_params(epochs=1, batch_size=2).fit(torch.stack(video))
    encoders["audio"].set_params(epochs=1, batch_size=2).fit(audio)
    encoders["gan"].set_params(epochs=1, batch_size=8).fit(torch.stack(video))
    return encoders


def extractor(encoders, **params) -> FeatureExtractor:
    defaults = {"frames": FRAMES, "frame_size": SIZE, "batch_size": 2, "verbose": False}
    return FeatureExtractor(encoders, **{**defaults, **params})


def test_extract_matches_the_encoders_and_flags_missing_streams(ready, media):
    ex = extractor(ready)
    feats = ex.extract(media)
    assert isinstance(feats, ItemFeatures) and feats.modalities == ["video", "audio", "gan"]
    assert feats.items.ids.tolist() == list(media)
    assert feats.dims == {"video": 8, "audio": 6, "gan": 8}
    assert ex.failures_ == {} and ex.stats_["decoded"] == 5 and ex.stats_["cached"] == 0
    assert ex.missing_["video"].tolist() == [False] * 4 + [True]
    assert ex.missing_["audio"].tolist() == [False] * 5
    assert not feats["video"][4].any() and not feats["gan"][4].any()  # zero rows
    paths = list(media.values())
    direct = ready["video"].set_params(frames=FRAMES).transform(paths[:4])
    np.testing.assert_allclose(feats["video"][:4], direct, atol=1e-5)
    sounds = [read_audio(p).samples[0] for p in paths]  # different lengths: masked
    np.testing.assert_allclose(feats["audio"], ready["audio"].transform(sounds), atol=1e-5)


def test_undecodable_files_are_skipped_and_reported(ready, media, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x01 definitely not a video" * 50)
    catalogue = {**media, "broken": broken, "gone": tmp_path / "missing.mp4"}
    ex = extractor(ready)
    with pytest.warns(DataWarning, match="2 of 7 items could not be decoded"):
        feats = ex.extract(catalogue)
    assert sorted(ex.failures_) == ["broken", "gone"]
    assert "MediaDecodeError" in ex.failures_["broken"]
    assert feats.items.ids.tolist() == list(media) and len(ex.missing_["video"]) == 5
    with pytest.raises(MediaDecodeError, match="broken"):
        extractor(ready, on_error="raise").extract(catalogue)
    with pytest.warns(DataWarning), pytest.raises(DataValidationError, match="no item"):
        extractor(ready).extract({"broken": broken})


def test_cache_skips_unchanged_files_and_recomputes_changed_ones(ready, media, tmp_path):
    root = tmp_path / "items"
    root.mkdir()
    catalogue = {}
    for key, path in media.items():
        catalogue[key] = root / path.name
        catalogue[key].write_bytes(path.read_bytes())
    ex = extractor({"video": ready["video"], "audio": ready["audio"]}, cache_dir=tmp_path / "c")
    first = ex.extract(catalogue)
    assert ex.stats_["decoded"] == 5 and ex.stats_["cached"] == 0
    second = ex.extract(catalogue)
    assert ex.stats_["decoded"] == 0 and ex.stats_["cached"] == 10  # nothing decoded
    assert second == first and ex.missing_["video"][4]
    _write_item(catalogue["v1"], 99)  # new bytes for one file
    third = ex.extract(catalogue)
    assert ex.stats_["decoded"] == 1 and ex.stats_["cached"] == 8
    changed = third.items.index(["v1"])[0]
    assert not np.allclose(third["video"][changed], first["video"][changed])
    keep = np.arange(5) != changed
    np.testing.assert_array_equal(third["video"][keep], first["video"][keep])
    # other weights (or decoding settings) are another cache key: computed afresh
    other = VideoEncoder(**{**ready["video"].get_params(), "random_state": 1}).init()
    ex.set_params(encoders={"video": other}).extract(catalogue)
    assert ex.stats_["decoded"] == 5
    assert not list((tmp_path / "c").rglob("*.tmp"))


def test_a_corrupt_cache_entry_is_a_miss(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put("k" * 64, "f" * 64, np.ones(2), missing=False)
    cache.path("k" * 64, "f" * 64).write_bytes(b"junk")
    assert cache.get("k" * 64, "f" * 64) is None
    (tmp_path / "x").write_bytes(b"abc")
    assert file_sha256(tmp_path / "x").startswith("ba7816bf")


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")
def test_worker_processes_give_the_same_features(ready, media):
    one = extractor(ready).extract(media)
    ex = extractor(ready, num_workers=2)
    two = ex.extract(media)
    for name in one:
        np.testing.assert_allclose(two[name], one[name], atol=1e-5)
    assert ex.stats_["decode_seconds"] > 0


def test_sequence_catalogue_uses_paths_as_ids(ready, media):
    paths = [str(p) for p in media.values()][:2]
    feats = extractor({"audio": ready["audio"]}, audio_seconds=0.5).extract(paths)
    assert feats.items.ids.tolist() == paths and feats.modalities == ["audio"]


def test_fit_extract_trains_the_encoders(media):
    encoders = {
        "video": VideoEncoder(frame_size=SIZE, widths=(4,), embedding_dim=4, epochs=1,
                              batch_size=2, random_state=0),
        "audio": AudioEncoder(widths=(4,), embedding_dim=4, epochs=1, batch_size=2,
                              random_state=0),
    }  # fmt: skip
    feats = extractor(encoders).fit_extract(media)
    assert encoders["video"].trained_ and encoders["audio"].trained_
    assert feats.n_items == 5 and feats.dims == {"video": 4, "audio": 4}


def test_dataset_and_collate(media):
    paths = list(media.values())
    data = MediaDataset(paths, {"v": "video", "a": "audio"}, FRAMES, SIZE, 16000, None)
    items = [data[i] for i in (0, 3, 4)]
    assert items[0]["video"].shape == (FRAMES, 3, SIZE, SIZE) and items[2]["video"] is None
    batch = collate_media(items)
    rows, video, lengths = batch["video"]
    assert rows == [0, 1] and video.shape == (2, FRAMES, 3, SIZE, SIZE) and lengths is None
    rows, audio, lengths = batch["audio"]
    assert rows == [0, 1, 2] and audio.shape == (3, int(lengths.max()))
    assert lengths.tolist() == [len(items[i]["audio"]) for i in range(3)]


def test_invalid_configuration(ready, encoders, media):
    with pytest.raises(ConfigurationError, match="on_error"):
        extractor(ready, on_error="ignore").extract(media)
    with pytest.raises(ConfigurationError, match="sample_rate"):
        extractor(ready, sample_rate=8000).extract(media)
    with pytest.raises(ConfigurationError, match="non-empty mapping"):
        extractor({}).extract(media)
    with pytest.raises(ConfigurationError, match="avrec encoder"):
        extractor({"x": object()}).extract(media)
    with pytest.raises(NotFittedError, match="init\\(\\)"):
        extractor({"video": VideoEncoder()}).extract(media)
    with pytest.raises(DataValidationError, match="empty"):
        extractor(ready).extract({})
    with pytest.raises(DataValidationError, match="mapping"):
        extractor(ready).extract("one/path.mp4")


def test_features_save_and_load(ready, media, tmp_path):
    feats = extractor({"audio": ready["audio"]}).extract(media)
    feats.save(tmp_path / "f.npz")
    assert ItemFeatures.load(tmp_path / "f.npz") == feats
