"""EndToEndVBPR: VBPR with the item encoder fine-tuned on the ranking loss.

Without an encoder the model is VBPR and runs through the recommender
contract suite (``tests/test_recommender_contract.py``); these tests cover
the encoder path on the contract's block data, with frames or titles that
show each item's group.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from finetune_data import COLOURS, RGB, tiny_text_encoder, tiny_video_encoder
from known_data import block_interactions
from sklearn.base import clone

from avrec.exceptions import ConfigurationError, DataValidationError, PersistenceError
from avrec.features.finetune import FineTunedEncoder, FineTuning
from avrec.recommenders import EndToEndVBPR, Popularity, Recommender

N_ITEMS = 60


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny kernels: one intra-op thread avoids barrier stalls on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return block_interactions()


@pytest.fixture(scope="module")
def frames():
    """Clips whose colour is the item's group (``i % 4``), with noise."""
    rng = np.random.default_rng(0)
    groups = np.arange(N_ITEMS) % 4
    clips = RGB[groups][:, None, :, None, None] + rng.normal(0, 30, (N_ITEMS, 2, 3, 16, 16))
    return torch.from_numpy(np.clip(clips, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def titles():
    return [f"{COLOURS[i % 4]} ball" for i in range(N_ITEMS)]


@pytest.fixture(scope="module")
def video():
    return tiny_video_encoder()


def make(encoder, **params) -> EndToEndVBPR:
    defaults = dict(
        encoder=encoder,
        finetune=FineTuning("lora", lora_rank=2),
        encoder_learning_rate=5e-3,
        factors=8,
        content_factors=4,
        learning_rate=0.02,
        iterations=8,
        batch_size=128,
        device="cpu",
        random_state=0,
        verbose=False,
    )
    return EndToEndVBPR(**{**defaults, **params})


@pytest.fixture(scope="module")
def fitted(data, frames, video):
    return make(video).fit(data, item_inputs=frames)


def test_lora_trains_adapters_in_the_loop(fitted, video, frames):
    losses = fitted.loss_history_
    assert losses.shape == (8,) and losses[-1] < losses[0]
    tuned = fitted.encoder_
    assert isinstance(tuned, FineTunedEncoder) and tuned.finetuning.mode == "lora"
    lora_b = [p for n, p in tuned.model_.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)  # B left its zero start
    assert not np.allclose(tuned.transform(frames), video.transform(frames))
    # item_features_ are the fine-tuned embeddings, standardised with the fixed statistics
    expected = (tuned.transform(frames) - fitted.feature_mean_) / fitted.feature_scale_
    np.testing.assert_allclose(fitted.item_features_, expected, rtol=1e-4, atol=1e-4)
    assert video.fingerprint() == tuned.base_fingerprint_  # the base was not modified


def test_beats_popularity_and_scores_cold_items(data, frames, video):
    cold = np.r_[np.arange(1, 60, 4)[:5], np.arange(2, 60, 4)[:5]]
    train = data.matrix.tolil()
    train[:, cold] = 0
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    model = make(video).fit(train, item_inputs=frames)
    group1 = np.arange(1, data.n_users, 4)
    scores = model.score_items(group1, cold)
    assert scores[:, :5].mean() > scores[:, 5:].mean()
    pop = Popularity().fit(train)
    truth = data.matrix.toarray() > 0
    hits = {}
    for name, m in (("model", model), ("pop", pop)):
        idx, _ = m.recommend(k=5, items=cold)
        hits[name] = truth[np.arange(idx.shape[0])[:, None], idx].sum()
    assert hits["model"] > 1.2 * hits["pop"], hits


def test_last_k_and_frozen(data, frames, video):
    last = make(video, finetune=FineTuning("last_k", last_k=1), iterations=2)
    last.fit(data, item_inputs=frames)
    changed = {
        name
        for name, tensor in last.encoder_.model_.network.state_dict().items()
        if not torch.equal(tensor, video.model_.state_dict()[name])
    }
    assert changed and all(name.startswith("cnn.backbone.8.") for name in changed)
    frozen = make(video, finetune="frozen").fit(data, item_inputs=frames)
    raw = video.transform(frames).astype(np.float64)
    np.testing.assert_allclose(
        frozen.item_features_, (raw - raw.mean(0)) / raw.std(0), rtol=1e-4, atol=1e-4
    )
    assert frozen.encoder_.n_trainable_parameters() == 0


def test_seed_reproduces(data, frames, video):
    a = make(video, iterations=2).fit(data, item_inputs=frames).score_items()
    b = make(video, iterations=2).fit(data, item_inputs=frames).score_items()
    c = make(video, iterations=2, random_state=1).fit(data, item_inputs=frames).score_items()
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_text_titles_with_lora(tmp_path, data, titles):
    text = tiny_text_encoder(tmp_path / "bert")
    model = make(text, iterations=3).fit(data, item_inputs=titles)
    assert model.item_features_.shape == (N_ITEMS, 16)
    assert all("lora_" in n for n, p in model.encoder_.model_.named_parameters() if p.requires_grad)
    assert np.isfinite(model.score_items()).all()


def test_save_load_round_trip_and_fingerprint_refusal(tmp_path, fitted, frames, video):
    fitted.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    assert type(loaded) is EndToEndVBPR
    np.testing.assert_array_equal(loaded.score_items(), fitted.score_items())
    assert not hasattr(loaded, "encoder_")
    assert loaded.get_params()["encoder"].get_params() == video.get_params()
    base = type(video)(**video.get_params()).init()  # the same seeded weights again
    tuned = loaded.load_encoder(tmp_path / "model", base)
    np.testing.assert_array_equal(tuned.transform(frames), fitted.encoder_.transform(frames))
    other = tiny_video_encoder(seed=5)
    with pytest.raises(PersistenceError, match="fingerprint"):
        loaded.load_encoder(tmp_path / "model", other)


def test_clone_keeps_the_encoder_and_second_fit_starts_over(data, frames, video, fitted):
    copy = clone(fitted)
    assert copy.encoder is video and not hasattr(copy, "encoder_")
    refit = copy.fit(data, item_inputs=frames)
    np.testing.assert_array_equal(refit.score_items(), fitted.score_items())
    plain = copy.set_params(encoder=None).fit(data, item_features=np.eye(N_ITEMS)[:, :8])
    assert plain.encoder_ is None


def test_precision_flags_do_not_change_cpu_results(data, frames, video):
    plain = make(video, iterations=1).fit(data, item_inputs=frames).score_items()
    flagged = make(video, iterations=1, mixed_precision="fp16", gradient_checkpointing=True)
    np.testing.assert_array_equal(flagged.fit(data, item_inputs=frames).score_items(), plain)


def test_bad_input(data, frames, video):
    with pytest.raises(DataValidationError, match="item_inputs are required"):
        make(video).fit(data)
    with pytest.raises(DataValidationError, match="one entry per item"):
        make(video).fit(data, item_inputs=frames[:10])
    with pytest.raises(DataValidationError, match="item_features"):
        make(video).fit(data, item_inputs=frames, item_features=np.ones((N_ITEMS, 3)))
    with pytest.raises(ConfigurationError, match="item_inputs need an encoder"):
        make(None).fit(data, item_inputs=frames)
    with pytest.raises(ConfigurationError, match="fusion"):
        make(video, fusion="gated").fit(data, item_inputs=frames)
    with pytest.raises(ConfigurationError, match="mode must be one of"):
        make(video, finetune="all").fit(data, item_inputs=frames)
    with pytest.raises(ConfigurationError, match="encoder_learning_rate"):
        make(video, encoder_learning_rate=0).fit(data, item_inputs=frames)
    with pytest.raises(ConfigurationError, match="mixed_precision"):
        make(video, mixed_precision="int8").fit(data, item_inputs=frames)


def test_partial_fit_keeps_the_encoder(data, frames, fitted):
    model = clone(fitted).fit(data.matrix[:100], item_inputs=frames)
    tuned = model.encoder_
    new = data.matrix.tolil()
    new[:100] = 0  # rows past n_users_ are new users
    model.partial_fit(sp.csr_matrix(new))
    assert model.n_users_ == data.n_users and model.encoder_ is tuned
    idx, _ = model.recommend(np.arange(100, data.n_users), k=5)
    assert (idx >= 0).all()
