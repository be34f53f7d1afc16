"""CrossModalFineTuner (text-video, audio-video) and cross_modal_search."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from finetune_data import tiny_text_encoder, tiny_video_encoder, toy_pairs
from sklearn.base import clone

from avrec.exceptions import ConfigurationError, DataValidationError, NotFittedError
from avrec.features import AudioEncoder, VideoEncoder, cross_modal_search
from avrec.features.finetune import CrossModalFineTuner, FineTuning


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
    return toy_pairs(32)


def _tuner(text_encoder, **params):
    defaults = dict(
        mode=(FineTuning("lora", lora_rank=4), "lora"),
        projection_dim=8,
        temperature=0.1,
        epochs=12,
        batch_size=8,
        learning_rate=1e-2,
        random_state=0,
    )
    return CrossModalFineTuner(text_encoder, tiny_video_encoder(), **{**defaults, **params})


@pytest.fixture(scope="module")
def fitted(text_encoder, pairs):
    return _tuner(text_encoder).fit(pairs[0], pairs[1])


def _recall_at(indices: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of queries whose top k holds an item of their own category."""
    return float(np.mean([(labels[row[:k]] == labels[q]).any() for q, row in enumerate(indices)]))


def test_loss_decreases_and_history(fitted):
    losses = fitted.history_["train_loss"]
    assert len(losses) == 12 and np.isfinite(losses).all()
    assert losses[-1] < 0.7 * losses[0]
    assert fitted.best_epoch_ is None and fitted.history_["val_loss"] == []


def test_text_to_video_retrieval_beats_chance_and_matches_brute_force(fitted, pairs, text_encoder):
    texts, clips, labels = pairs
    items = fitted.encoder_b_.transform(clips)
    idx, _ = cross_modal_search(texts, fitted.encoder_a_, items, k=1)
    # chance of a same-category top-1 is 1/4; the fine-tuned towers align the categories
    assert _recall_at(idx, labels, 1) >= 0.75
    # the same search before fine-tuning (heads only initialised) is near chance
    untrained = _tuner(text_encoder, epochs=0).fit(texts, clips)
    idx0, _ = cross_modal_search(
        texts, untrained.encoder_a_, untrained.encoder_b_.transform(clips), k=1
    )
    assert _recall_at(idx0, labels, 1) < _recall_at(idx, labels, 1)
    # brute force: full cosine matrix, stable sort
    q = fitted.encoder_a_.transform(texts)
    sim = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        items / np.linalg.norm(items, axis=1, keepdims=True)
    ).T
    ref = np.argsort(-sim, axis=1, kind="stable")[:, :5]
    idx5, sc5 = cross_modal_search(texts, fitted.encoder_a_, items, k=5, batch_size=7)
    np.testing.assert_array_equal(idx5, ref)
    np.testing.assert_allclose(sc5, np.take_along_axis(sim, ref, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.similarity(texts, clips), sim, rtol=1e-5, atol=1e-6)


def test_seed_reproduces(text_encoder, pairs):
    texts, clips, _ = pairs[0][:16], pairs[1][:16], None
    a = _tuner(text_encoder, epochs=2).fit(texts, clips).similarity(texts, clips)
    b = _tuner(text_encoder, epochs=2).fit(texts, clips).similarity(texts, clips)
    c = _tuner(text_encoder, epochs=2, random_state=1).fit(texts, clips).similarity(texts, clips)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_base_encoders_untouched(text_encoder, pairs):
    texts, clips = pairs[0][:16], pairs[1][:16]
    video = tiny_video_encoder()
    fp_text, fp_video = text_encoder.fingerprint(), video.fingerprint()
    CrossModalFineTuner(
        text_encoder, video, mode=("last_k", "lora"), projection_dim=4, epochs=1, batch_size=8
    ).fit(texts, clips)
    assert text_encoder.fingerprint() == fp_text and video.fingerprint() == fp_video


def test_early_stopping_keeps_best_epoch(text_encoder, pairs):
    texts, clips, _ = pairs
    tuner = _tuner(text_encoder, epochs=4, validation_fraction=0.25, early_stopping_patience=2).fit(
        texts, clips
    )
    val = tuner.history_["val_loss"]
    assert len(val) >= 1 and tuner.best_epoch_ == int(np.argmin(val))


def test_audio_video_frozen_trains_heads_only():
    rng = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (8, 2, 3, 16, 16), dtype=torch.uint8, generator=rng)
    sounds = torch.randn(8, 16000, generator=rng) * 0.1
    video = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8, random_state=0).init()
    audio = AudioEncoder(widths=(4,), embedding_dim=8, random_state=0).init()
    tuner = CrossModalFineTuner(
        video, audio, mode="frozen", projection_dim=4, epochs=2, batch_size=4, random_state=0
    ).fit(frames, sounds)
    for tower, base in ((tuner.encoder_a_, video), (tuner.encoder_b_, audio)):
        assert tower.n_trainable_parameters() == 8 * 4 + 4
        for name, tensor in tower.model_.network.state_dict().items():
            assert torch.equal(tensor, base.model_.state_dict()[name])


def test_precision_flags_do_not_change_cpu_results(text_encoder, pairs):
    texts, clips = pairs[0][:16], pairs[1][:16]
    plain = _tuner(text_encoder, epochs=1).fit(texts, clips).similarity(texts, clips)
    for precision in ("bf16", "fp16"):
        flagged = _tuner(
            text_encoder, epochs=1, mixed_precision=precision, gradient_checkpointing=True
        ).fit(texts, clips)
        np.testing.assert_array_equal(flagged.similarity(texts, clips), plain)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_mixed_precision_and_checkpointing(text_encoder, pairs):
    texts, clips = pairs[0][:16], pairs[1][:16]
    for precision in ("bf16", "fp16"):
        tuner = _tuner(
            text_encoder,
            epochs=2,
            device="cuda",
            mixed_precision=precision,
            gradient_checkpointing=True,
        ).fit(texts, clips)
        assert np.isfinite(tuner.history_["train_loss"]).all()
        assert tuner.similarity(texts, clips).shape == (16, 16)


def test_clone_keeps_the_encoders(text_encoder):
    tuner = _tuner(text_encoder)
    copy = clone(tuner)
    assert copy.encoder_a is text_encoder and copy.get_params()["epochs"] == 12


def test_bad_input(text_encoder, pairs):
    texts, clips, _ = pairs
    with pytest.raises(DataValidationError, match="pair up"):
        _tuner(text_encoder).fit(texts[:5], clips)
    with pytest.raises(NotFittedError, match="encoder_b"):
        CrossModalFineTuner(text_encoder, VideoEncoder()).fit(texts, clips)
    with pytest.raises(ConfigurationError, match="mixed_precision"):
        _tuner(text_encoder, mixed_precision="fp8").fit(texts, clips)
    with pytest.raises(ConfigurationError, match="projection_dim"):
        _tuner(text_encoder, projection_dim=0).fit(texts, clips)
    with pytest.raises(ConfigurationError, match="mode must be one of"):
        _tuner(text_encoder, mode="everything").fit(texts, clips)
    with pytest.raises(NotFittedError, match="not fitted"):
        _tuner(text_encoder).similarity(texts, clips)


# ---------------------------------------------------------------------- cross_modal_search
def test_search_equals_brute_force_and_pads():
    rng = np.random.default_rng(0)
    items, queries = rng.normal(size=(50, 6)), rng.normal(size=(9, 6))
    sim = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ (
        items / np.linalg.norm(items, axis=1, keepdims=True)
    ).T
    ref = np.argsort(-sim, axis=1)[:, :10]
    for batch_size in (1, 4, 1024):
        idx, sc = cross_modal_search(queries, None, items, k=10, batch_size=batch_size)
        np.testing.assert_array_equal(idx, ref)
        np.testing.assert_allclose(sc, np.take_along_axis(sim, ref, 1), rtol=1e-5, atol=1e-6)
        assert sc.dtype == np.float32 and idx.dtype == np.int64
    idx, sc = cross_modal_search(queries[:2], None, items[:3], k=5)
    assert (idx[:, 3:] == -1).all() and np.isneginf(sc[:, 3:]).all()
    assert sorted(idx[0, :3]) == [0, 1, 2]


def test_search_ties_go_to_the_lower_index():
    items = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    idx, _ = cross_modal_search(np.array([[1.0, 0.0]]), None, items, k=3)
    assert idx.tolist() == [[0, 1, 3]]


def test_search_bad_input():
    items = np.eye(3)
    with pytest.raises(DataValidationError, match="dims"):
        cross_modal_search(np.ones((1, 2)), None, items)
    with pytest.raises(DataValidationError, match="item_embeddings contains NaN"):
        cross_modal_search(np.ones((1, 3)), None, np.full((2, 3), np.nan))
    with pytest.raises(DataValidationError, match="k must be a positive int"):
        cross_modal_search(np.ones((1, 3)), None, items, k=0)
    with pytest.raises(DataValidationError, match="query_encoder must have transform"):
        cross_modal_search(["a"], object(), items)
