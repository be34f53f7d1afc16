"""ContentKNN: values against a plain per-user reference, decay, modality weights, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from known_data import block_interactions, block_item_features

from avrec.data import Interactions, ItemFeatures, Vocabulary
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders import ContentKNN


def tiny(seed=0, n_users=7, n_items=9):
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < 0.35) * rng.integers(1, 4, (n_users, n_items))
    dense[0] = 0  # a user without history
    dense[1, 0] = 2
    feats = ItemFeatures(
        {
            "audio": rng.normal(size=(n_items, 3)) + 1.0,
            "video": rng.normal(size=(n_items, 4)),
        }
    )
    ts = rng.integers(0, 100_000, size=int((dense > 0).sum())).astype(np.float64)
    X = Interactions.from_csr(sp.csr_matrix(dense.astype(np.float32)), timestamps=ts)
    return X, feats


def reference_scores(X, feats, weights=None, standardize=True, half_life=None, binary=False):
    """Straightforward per-user loop in float64, following the formula of the docstring."""
    dense = X.matrix.toarray().astype(np.float64)
    times = None
    if half_life is not None:
        times = sp.csr_matrix((X.timestamps, X.matrix.indices, X.matrix.indptr), shape=X.shape)
        times = times.toarray()
    names = feats.modalities
    if weights is None:
        weights = {m: 1.0 for m in names}
    total = sum(weights.get(m, 0.0) for m in names)
    out = np.zeros(X.shape)
    for u in range(X.shape[0]):
        hist = np.flatnonzero(dense[u])
        a = np.ones(hist.size) if binary else dense[u, hist]
        if half_life is not None and hist.size:
            age = times[u, hist].max() - times[u, hist]
            a = a * 0.5 ** (age / half_life)
        for m in names:
            w = weights.get(m, 0.0) / total
            F = np.asarray(feats[m], dtype=np.float64)
            if standardize:
                sd = F.std(axis=0)
                sd[sd == 0] = 1
                F = (F - F.mean(axis=0)) / sd
            F = F / np.linalg.norm(F, axis=1, keepdims=True)
            p = (a[:, None] * F[hist]).sum(axis=0)
            norm = np.linalg.norm(p)
            if norm > 0 and w > 0:
                out[u] += w * (F @ p) / norm
    return out


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"standardize": False},
        {"weighting": "binary"},
        {"half_life": 20_000.0},
        {"modality_weights": {"audio": 3.0, "video": 1.0}},
    ],
)
def test_scores_match_reference(params):
    X, feats = tiny()
    model = ContentKNN(**params).fit(X, item_features=feats)
    expected = reference_scores(
        X,
        feats,
        weights=params.get("modality_weights"),
        standardize=params.get("standardize", True),
        half_life=params.get("half_life"),
        binary=params.get("weighting") == "binary",
    )
    np.testing.assert_allclose(model.score_items(), expected, rtol=1e-5, atol=1e-6)
    assert np.all(model.score_items([0]) == 0)  # empty history


def test_history_scoring_matches_training_users():
    X, feats = tiny()
    model = ContentKNN().fit(X, item_features=feats)
    np.testing.assert_allclose(
        model.score_items(X=X.matrix[2:5]), model.score_items([2, 3, 4]), rtol=1e-6
    )


def test_decomposition_sums_to_the_score():
    X, feats = tiny(seed=3)
    model = ContentKNN(half_life=50_000.0).fit(X, item_features=feats)
    scores = model.score_items()
    profiles = model.user_profiles()
    V = model.item_vectors_
    # over feature dimensions
    np.testing.assert_allclose(profiles @ V.T, scores, rtol=1e-5, atol=1e-6)
    # over history items: c_u^m * a_uj * (v_j . v_i), summed over j and m
    A = model.user_weights_.toarray().astype(np.float64)
    raw = A @ V.astype(np.float64)
    recon = np.zeros(scores.shape)
    for name in model.modalities_:
        start, stop = model.modality_slices_[name]
        norm = np.linalg.norm(raw[:, start:stop], axis=1)
        c = np.divide(model.modality_weights_[name], norm, out=np.zeros_like(norm), where=norm > 0)
        sims = V[:, start:stop] @ V[:, start:stop].T  # (history item j, item i)
        per_item = c[:, None, None] * A[:, :, None] * sims[None, :, :]  # (u, j, i)
        recon += per_item.sum(axis=1)
    np.testing.assert_allclose(recon, scores, rtol=1e-5, atol=1e-6)


def test_time_decay_prefers_recent_items():
    # one user: an old item of group A, a recent item of group B
    feats = np.array([[1.0, 0.0], [0.0, 1.0], [0.95, 0.05], [0.05, 0.95]], dtype=np.float32)
    X = Interactions.from_indices(
        [0, 0], [0, 1], [1.0, 1.0], [0.0, 1000.0], users=Vocabulary([0]), items=Vocabulary(range(4))
    )
    plain = ContentKNN(standardize=False).fit(X, item_features=feats).score_items()[0]
    assert plain[2] == pytest.approx(plain[3], rel=1e-5)
    decayed = ContentKNN(standardize=False, half_life=100.0).fit(X, item_features=feats)
    s = decayed.score_items()[0]
    assert s[3] > s[2]
    np.testing.assert_allclose(decayed.user_weights_.data, [2.0**-10, 1.0], rtol=1e-6)
    # a longer half-life decays less
    slow = ContentKNN(standardize=False, half_life=1e6).fit(X, item_features=feats)
    assert slow.score_items()[0][3] - slow.score_items()[0][2] < s[3] - s[2]
    # X= histories given as Interactions with timestamps decay too, bare matrices do not
    np.testing.assert_allclose(decayed.score_items(X=X)[0], s, rtol=1e-6)
    np.testing.assert_allclose(decayed.score_items(X=X.matrix)[0], plain, rtol=1e-5)


def test_half_life_needs_timestamps():
    X, feats = tiny()
    with pytest.raises(DataValidationError, match="half_life"):
        ContentKNN(half_life=10.0).fit(X.matrix, item_features=feats)


def test_modality_weight_zero_ignores_the_modality():
    X, feats = tiny(seed=1)
    audio_only = ContentKNN(modality_weights={"audio": 1.0, "video": 0.0}).fit(
        X, item_features=feats
    )
    alone = ContentKNN().fit(X, item_features=feats.select(["audio"]))
    np.testing.assert_allclose(audio_only.score_items(), alone.score_items(), rtol=1e-5, atol=1e-6)
    # a modality missing from the dict has weight 0 as well
    missing = ContentKNN(modality_weights={"audio": 2.0}).fit(X, item_features=feats)
    np.testing.assert_allclose(missing.score_items(), alone.score_items(), rtol=1e-5, atol=1e-6)
    assert missing.modality_weights_ == {"audio": 1.0, "video": 0.0}


def test_ndarray_features_are_one_modality():
    X, feats = tiny()
    model = ContentKNN().fit(X, item_features=feats["audio"])
    assert model.modalities_ == ["features"]
    assert model.modality_slices_ == {"features": [0, 3]}


def test_partial_fit_equals_refit():
    X, feats = tiny(seed=2)
    rows, cols, w, t = X.to_indices()
    first = np.arange(rows.size) < rows.size // 2
    old = Interactions.from_indices(
        rows[first], cols[first], w[first], t[first], users=X.users, items=X.items
    )
    new = Interactions.from_indices(
        rows[~first], cols[~first], w[~first], t[~first], users=X.users, items=X.items
    )
    model = ContentKNN(half_life=30_000.0).fit(old, item_features=feats)
    model.partial_fit(new)
    full = ContentKNN(half_life=30_000.0).fit(X, item_features=feats)
    np.testing.assert_allclose(model.score_items(), full.score_items(), rtol=1e-5, atol=1e-6)
    with pytest.raises(DataValidationError, match="timestamps"):
        model.partial_fit(new.matrix)


def test_cold_items_ranked_by_content():
    data = block_interactions()
    train = data.matrix.tolil()
    group1 = np.arange(1, 60, 4)
    cold = group1[::2]  # half the items of group 1 lose every interaction
    train[:, cold] = 0
    model = ContentKNN().fit(sp.csr_matrix(train), item_features=block_item_features())
    idx, _ = model.recommend(np.arange(1, 120, 4), k=5, items=cold)
    assert np.isin(idx, cold).all()
    idx, _ = model.recommend(np.arange(1, 120, 4), k=5)
    assert np.isin(idx, group1).mean() > 0.6  # random: 0.25
    assert np.isin(idx, cold).mean() > 0.3  # cold items compete with warm ones


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"weighting": "log"}, "weighting"),
        ({"half_life": -1.0}, "half_life"),
        ({"half_life": "1d"}, "half_life"),
        ({"modality_weights": {"text": 1.0}}, "unknown modalities"),
        ({"modality_weights": {"audio": -1.0}}, "modality_weights"),
        ({"modality_weights": {"audio": 0.0}}, "all 0"),
        ({"modality_weights": [1.0, 2.0]}, "modality_weights"),
        ({"standardize": "yes"}, "standardize"),
    ],
)
def test_bad_configuration(params, match):
    X, feats = tiny()
    with pytest.raises(ConfigurationError, match=match):
        ContentKNN(**params).fit(X, item_features=feats)


def test_needs_item_features():
    X, _ = tiny()
    with pytest.raises(DataValidationError, match="needs item_features"):
        ContentKNN().fit(X)
