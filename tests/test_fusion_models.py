"""Learned fusion inside the content/hybrid models: VBPR and FeatureToFactor, missing modalities.

Save/load, reproducibility and the rest of the contract run on the fusion variants through
``_test_variants`` in ``tests/test_recommender_contract.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions, block_item_features

from avrec.data import ItemFeatures, cold_item_split, make_interactions
from avrec.evaluation import evaluate
from avrec.exceptions import ConfigurationError
from avrec.features import AttentionFusion, GatedFusion
from avrec.recommenders import VBPR, ContentKNN, FeatureToFactor

torch.set_num_threads(1)

FAST = {
    "factors": 8,
    "content_factors": 4,
    "learning_rate": 0.02,
    "iterations": 20,
    "batch_size": 128,
    "device": "cpu",
    "verbose": False,
    "random_state": 0,
}
FUSIONS = {"gated": GatedFusion, "attention": AttentionFusion}


@pytest.fixture(scope="module")
def blocks():
    return block_interactions()


@pytest.fixture(scope="module")
def masked():
    """The block features with the video of every third item missing."""
    f = block_item_features()
    present = np.arange(f.n_items) % 3 != 0
    return ItemFeatures(dict(f), f.items, present={"video": present})


def rebuilt(model, fusion: str, out_dim: int):
    """The fitted fusion module, rebuilt from ``fusion_parameters_``."""
    module = FUSIONS[fusion](list(model.modality_dims_.values()), out_dim).double().eval()
    vector = torch.from_numpy(model.fusion_parameters_.astype(np.float64))
    torch.nn.utils.vector_to_parameters(vector, module.parameters())
    return module


def blocks_of(Z: np.ndarray, dims: dict[str, int]) -> list[torch.Tensor]:
    stops = np.cumsum(list(dims.values()))
    return [
        torch.from_numpy(Z[:, a:b].astype(np.float64))
        for a, b in zip(stops - np.array(list(dims.values())), stops, strict=True)
    ]


# ---------------------------------------------------------------------- VBPR
@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_vbpr_content_vectors_are_the_fused_features(blocks, masked, fusion):
    model = VBPR(**FAST, fusion=fusion, modality_dropout=0.2).fit(blocks, item_features=masked)
    assert model.projection_.shape == (0, 14) and model.feature_bias_.shape == (4,)
    np.testing.assert_array_equal(model.item_presence_, masked.presence())
    module = rebuilt(model, fusion, 4)
    Z = model.item_features_
    with torch.no_grad():
        fused = module(blocks_of(Z, model.modality_dims_), torch.from_numpy(model.item_presence_))
    np.testing.assert_allclose(model.item_content_factors_, fused.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        model.item_content_bias_, model.item_content_factors_ @ model.feature_bias_, atol=1e-5
    )
    # a score is b_i + gamma_u.gamma_i + theta_u.fused_i + beta'.fused_i
    expected = (
        model.user_factors_ @ model.item_factors_.T
        + model.user_content_factors_ @ model.item_content_factors_.T
        + model.item_bias_
        + model.item_content_bias_
    )
    np.testing.assert_allclose(model.score_items(), expected, rtol=1e-4, atol=1e-5)


def test_vbpr_standardises_over_present_rows(blocks, masked):
    model = VBPR(**FAST).fit(blocks, item_features=masked)
    video = model.item_features_[:, 8:]
    present = masked.mask("video")
    np.testing.assert_array_equal(video[~present], 0.0)  # absent: the standardised mean
    np.testing.assert_allclose(video[present].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(video[present].std(axis=0), 1.0, atol=1e-5)
    # without a mask nothing changes: the zero rows count as data
    plain = VBPR(**FAST).fit(blocks, item_features=ItemFeatures(dict(masked), masked.items))
    assert not np.allclose(plain.item_features_[~present, 8:], 0.0)
    assert plain.fusion_parameters_.size == 0 and plain.item_presence_.all()


def test_vbpr_concat_default_and_dropout_changes_training(blocks, masked):
    default = VBPR(**FAST).fit(blocks, item_features=masked)
    explicit = VBPR(**FAST, fusion="concat", modality_dropout=0.0).fit(blocks, item_features=masked)
    np.testing.assert_array_equal(default.score_items(), explicit.score_items())
    dropped = VBPR(**FAST, modality_dropout=0.3).fit(blocks, item_features=masked)
    assert not np.allclose(dropped.score_items(), default.score_items())
    # one modality: nothing to drop
    single = masked.select(["audio"])
    a = VBPR(**FAST).fit(blocks, item_features=single).score_items()
    b = VBPR(**FAST, modality_dropout=0.3).fit(blocks, item_features=single).score_items()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_vbpr_partial_fit_keeps_training_the_fusion(blocks, masked, fusion):
    model = VBPR(**FAST, fusion=fusion).fit(blocks, item_features=masked)
    before = model.fusion_parameters_.copy()
    new = sp.csr_matrix(blocks.matrix[:10])
    model.partial_fit(new)
    assert model.fusion_parameters_.shape == before.shape
    assert not np.array_equal(model.fusion_parameters_, before)
    assert np.isfinite(model.score_items()).all()
    model.set_params(fusion="concat")
    with pytest.raises(ConfigurationError, match="fusion was changed after fit"):
        model.partial_fit(new)


def test_vbpr_bad_fusion_params(blocks, masked):
    with pytest.raises(ConfigurationError, match="fusion must be one of"):
        VBPR(**{**FAST, "fusion": "sum"}).fit(blocks, item_features=masked)
    with pytest.raises(ConfigurationError, match="modality_dropout"):
        VBPR(**FAST, modality_dropout=1.0).fit(blocks, item_features=masked)


def test_vbpr_without_features_ignores_fusion(blocks):
    a = VBPR(**FAST, fusion="gated").fit(blocks).score_items()
    b = VBPR(**FAST).fit(blocks).score_items()
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------- FeatureToFactor
@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_feature_to_factor_maps_through_the_fusion(blocks, masked, fusion):
    model = FeatureToFactor(
        mapper="mlp",
        fusion=fusion,
        hidden_size=8,
        epochs=50,
        modality_dropout=0.2,
        random_state=0,
    ).fit(blocks, item_features=masked)
    assert model.mapper_hidden_coef_ is None and model.mapper_coef_.shape[0] == 8
    np.testing.assert_array_equal(model.item_presence_, masked.presence())
    Z = np.hstack(
        [
            np.where(masked.mask(m)[:, None], (masked[m] - mu) / sd, 0.0)
            for m, mu, sd in zip(
                masked.modalities,
                np.split(model.feature_mean_, [8]),
                np.split(model.feature_scale_, [8]),
                strict=True,
            )
        ]
    )
    module = rebuilt(model, fusion, 8)
    with torch.no_grad():
        hidden = torch.relu(
            module(blocks_of(Z, model.modality_dims_), torch.from_numpy(model.item_presence_))
        ).numpy()
    expected = hidden @ model.mapper_coef_ + model.mapper_intercept_
    np.testing.assert_allclose(model.mapped_item_factors_, expected, rtol=1e-4, atol=1e-5)


def test_feature_to_factor_fusion_needs_the_mlp(blocks, masked):
    with pytest.raises(ConfigurationError, match="set mapper='mlp'"):
        FeatureToFactor(fusion="gated").fit(blocks, item_features=masked)
    with pytest.raises(ConfigurationError, match="fusion must be"):
        FeatureToFactor(mapper="mlp", fusion="max").fit(blocks, item_features=masked)
    with pytest.raises(ConfigurationError, match="modality_dropout"):
        FeatureToFactor(mapper="mlp", modality_dropout=-0.1).fit(blocks, item_features=masked)


# ---------------------------------------------------------------------- ContentKNN
def test_content_knn_gives_absent_modalities_zero_vectors(blocks, masked):
    model = ContentKNN().fit(blocks, item_features=masked)
    start, stop = model.modality_slices_["video"]
    absent = ~masked.mask("video")
    np.testing.assert_array_equal(model.item_vectors_[absent, start:stop], 0.0)
    np.testing.assert_allclose(
        np.linalg.norm(model.item_vectors_[~absent, start:stop], axis=1), 1.0, rtol=1e-5
    )


# ---------------------------------------------------------------------- graceful degradation
def _shared_nuisance_data(seed: int):
    """Clustered interactions; audio and video both code the cluster plus a *shared* nuisance.

    With both modalities a fusion can cancel the nuisance (video - audio); an item that lacks
    video is then left with a noisy audio view, unless training taught the fusion to use audio
    alone (modality dropout).
    """
    X, _, clusters = make_interactions(
        200,
        100,
        density=0.1,
        n_clusters=6,
        cluster_strength=0.9,
        return_clusters=True,
        random_state=seed,
    )
    rng = np.random.default_rng(seed)
    shared = 1.5 * rng.normal(size=(X.n_items, 8))
    feats = {
        name: rng.normal(size=(6, 8))[clusters] + shared + 0.3 * rng.normal(size=(X.n_items, 8))
        for name in ("audio", "video")
    }
    return X, feats


@pytest.mark.parametrize("fusion", ["gated", "attention"])
def test_modality_dropout_degrades_gracefully(fusion):
    drops = {}
    for p in (0.0, 0.5):
        drop = 0.0
        for seed in (0, 1):
            X, feats = _shared_nuisance_data(seed)
            train, test, cold = cold_item_split(X, 0.3, random_state=seed)
            no_video = np.ones(X.n_items, dtype=bool)
            no_video[cold] = False  # every cold item loses its video
            recall = []
            for present in (None, {"video": no_video}):
                model = FeatureToFactor(
                    mapper="mlp",
                    fusion=fusion,
                    modality_dropout=p,
                    hidden_size=16,
                    epochs=150,
                    random_state=seed,
                )
                model.fit(train, item_features=ItemFeatures(feats, X.items, present=present))
                res = evaluate(model, train, test, k=(10,), metrics=("recall",), items=cold)
                recall.append(res["recall@10"])
            drop += recall[0] - recall[1]
        drops[p] = drop / 2
    # blanking the video of the cold items costs less recall after training with dropout
    assert drops[0.5] < 0.8 * drops[0.0], drops
    assert drops[0.0] > 0.05, drops
