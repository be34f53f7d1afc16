"""Neighbour explanations against scores computed without the explainer.

The history terms (plus bias) are checked against the model's own fold-in score of the same
history (``score_items(X=history)``); what the decomposition does not reach for training users
(stored factors versus that fold-in) is the ``residual``, checked to equal the stored minus the
fold-in score and bounded by ``RESIDUAL_BOUND`` times the user's largest absolute
history-dependent score (the score minus any item bias).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions

from avrec.exceptions import DataValidationError, NotFittedError
from avrec.explain import Explanation, explain_recommendation
from avrec.recommenders import ALS, BPR, EASE, ItemKNN, Popularity, Recommender

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return block_interactions(n_users=40, n_items=24, seed=3)


def _fit(name, X):
    models = {
        "itemknn": lambda: ItemKNN(k=10),
        "itemknn_bm25": lambda: ItemKNN(k=10, weighting="bm25"),
        "ease": lambda: EASE(l2=5.0),
        "ease64": lambda: EASE(l2=5.0, dtype="float64"),
        "als_cg": lambda: ALS(factors=6, iterations=6, random_state=0, verbose=False),
        "als_chol": lambda: ALS(
            factors=6, iterations=6, solver="cholesky", random_state=0, verbose=False
        ),
        # trained long enough that the history part of the score is not lost in the item bias
        "bpr": lambda: BPR(factors=6, iterations=40, batch_size=64, random_state=0, verbose=False),
        "popularity": lambda: Popularity(),
    }
    return models[name]().fit(X)


def _assert_adds_up(total, scores_row, score):
    """``total`` equals ``score`` to 1e-5 relative (of the user's score scale)."""
    scale = max(np.abs(scores_row).max(), 1e-12)
    assert abs(total - score) <= 1e-5 * max(abs(score), scale), (total, score)


MODELS = ["itemknn", "itemknn_bm25", "ease", "ease64", "als_chol", "bpr", "popularity"]

#: Largest ``|residual|`` allowed for training users, relative to the largest absolute
#: history-dependent score of the user (``_personal_scale``: the score minus any item bias).
#: Models that score training users through the history itself have none; Cholesky ALS solves
#: users exactly in its last sweep (float32 rounding); CG ALS stops a few conjugate-gradient
#: steps short of the solve (measured here: 0.4%); BPR's learned user factors differ from the
#: ridge fold-in of their history (measured here: 8%, and 87% after only 5 epochs, when the
#: item bias is nearly the whole score).
RESIDUAL_BOUND = {
    "itemknn": 0.0,
    "itemknn_bm25": 0.0,
    "ease": 0.0,
    "ease64": 0.0,
    "popularity": 0.0,
    "als_chol": 1e-5,
    "als_cg": 0.01,
    "bpr": 0.15,
}


def _personal_scale(model, scores):
    """Largest ``|score - item bias|`` over the user's row (the part the history drives)."""
    bias = getattr(model, "item_bias_", None)
    personal = scores if bias is None else scores - np.asarray(bias)
    return float(np.abs(personal).max())


@pytest.mark.parametrize("name", [*MODELS, "als_cg"])
def test_training_users_add_up(name, data):
    model = _fit(name, data)
    for user in (0, 5, 17):
        scores = model.score_items([user])[0]
        scale = np.abs(scores).max()
        for item in (int(np.argmax(scores)), 3, 11):
            exp = explain_recommendation(model, user, item)
            assert isinstance(exp, Explanation)
            assert exp.score == pytest.approx(float(scores[item]))
            # the history terms reproduce the model's own fold-in of this history, a score
            # computed without the explainer
            fresh = float(model.score_items([0], [item], X=data.matrix[user])[0, 0])
            _assert_adds_up(exp.contributions.sum() + exp.bias, scores, fresh)
            # the residual is what is left of the stored score, and it is bounded
            assert abs(exp.residual - (exp.score - fresh)) <= 1e-5 * scale
            bound = RESIDUAL_BOUND[name] * _personal_scale(model, scores) + 1e-6 * scale
            assert abs(exp.residual) <= bound, (exp.residual, bound)
            if RESIDUAL_BOUND[name] == 0.0:
                assert exp.residual == 0.0
            _assert_adds_up(exp.total, scores, float(scores[item]))
            assert exp.score == pytest.approx(float(model.predict([[user, item]])[0]))
            hist = data.matrix[user]
            assert sorted(exp.items.tolist()) == sorted(hist.indices.tolist())
            assert np.all(np.diff(exp.contributions) <= 0)  # sorted, largest first


@pytest.mark.parametrize("name", [*MODELS, "als_cg"])
def test_histories_given_as_X_add_up(name, data):
    model = _fit(name, data)
    rng = np.random.default_rng(0)
    X_new = sp.csr_matrix((rng.random((3, data.shape[1])) < 0.3).astype(np.float32) * 2.0)
    for user in range(3):
        scores = model.score_items([user], X=X_new)[0]
        for item in (int(np.argmax(scores)), 2):
            exp = explain_recommendation(model, user, item, X=X_new)
            _assert_adds_up(exp.total, scores, float(scores[item]))
            assert exp.residual == 0.0  # the fold-in is the decomposed solve itself
            assert np.allclose(exp.weights, 2.0)
    # a 1-d history is one user
    exp = explain_recommendation(model, None, 2, X=X_new[1].toarray().ravel())
    assert exp.score == pytest.approx(float(model.score_items([1], [2], X=X_new)[0, 0]))


def test_linear_models_have_no_residual(data):
    for name in ("itemknn", "ease"):
        exp = explain_recommendation(_fit(name, data), 2, 5)
        assert exp.residual == 0.0 and exp.bias == 0.0
        assert exp.contributions.sum() == pytest.approx(exp.score, rel=1e-5, abs=1e-7)


def test_ease_contribution_is_weight_times_b(data):
    model = _fit("ease", data)
    exp = explain_recommendation(model, 4, 7)
    for j, c, w in zip(exp.items, exp.contributions, exp.weights, strict=True):
        assert c == pytest.approx(w * float(model.weights_[j, 7]))


def test_als_cg_residual_is_stored_minus_fresh_solve(data):
    model = _fit("als_cg", data)
    user, item = 3, 9
    exp = explain_recommendation(model, user, item)
    fresh = model.fold_in_users(data.matrix[user]) @ model.item_factors_[item]
    assert exp.details["fresh_score"] == pytest.approx(float(fresh[0]), rel=1e-4)
    assert exp.contributions.sum() == pytest.approx(exp.details["fresh_score"])
    assert exp.residual == pytest.approx(exp.details["stored_score"] - exp.details["fresh_score"])
    assert exp.details["stored_score"] == pytest.approx(exp.score, rel=1e-5)
    # the stored user factors, read directly, give the stored score
    stored = float(model.user_factors_[user] @ model.item_factors_[item])
    assert exp.residual == pytest.approx(stored - float(fresh[0]), rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("name", ["als_cg", "bpr"])
def test_residual_is_reported(name, data):
    model = _fit(name, data)
    exp = explain_recommendation(model, 5, 11)
    assert exp.residual != 0.0  # stored factors are not the decomposed fold-in here
    assert f"residual={exp.residual:+.4g}" in repr(exp)
    assert "stored_score" in exp.details["residual"] and "fresh_score" in exp.details["residual"]
    assert exp.details["stored_score"] - exp.details["fresh_score"] == pytest.approx(exp.residual)


def test_als_cholesky_training_users_need_no_residual(data):
    model = _fit("als_chol", data)
    scores = model.score_items([6])[0]
    exp = explain_recommendation(model, 6, int(np.argmax(scores)))
    assert abs(exp.residual) <= 1e-5 * np.abs(scores).max()


def test_bpr_bias_and_popularity(data):
    model = _fit("bpr", data)
    exp = explain_recommendation(model, 0, 4, X=data.matrix[:2])
    assert exp.bias == pytest.approx(float(model.item_bias_[4]))
    pop = _fit("popularity", data)
    exp = explain_recommendation(pop, 0, 4)
    assert np.all(exp.contributions == 0) and exp.bias == pytest.approx(exp.score)


def test_top_labels_and_frame(data):
    model = _fit("itemknn", data)
    user = int(np.argmax(np.diff(data.matrix.indptr)))
    exp = explain_recommendation(model, user, 5)
    items, values = exp.top(2)
    assert items.tolist() == exp.items[:2].tolist() and values.shape == (2,)
    assert exp.labels(items)[0].startswith("i")  # ids from the Interactions vocabulary
    frame = exp.to_frame()
    assert list(frame.columns) == ["item", "label", "weight", "contribution"]
    assert frame["contribution"].sum() == pytest.approx(exp.contributions.sum())
    assert "Explanation(i5" in repr(exp)
    plain = ItemKNN(k=5).fit(data.matrix)
    assert explain_recommendation(plain, user, 5).labels()[0].startswith("item ")


def test_empty_history_explains_zero(data):
    model = _fit("ease", data)
    exp = explain_recommendation(model, 0, 1, X=sp.csr_matrix((1, data.shape[1])))
    assert exp.items.size == 0 and exp.score == 0.0 and exp.total == 0.0


def test_bad_input(data):
    model = _fit("itemknn", data)
    with pytest.raises(DataValidationError, match="item"):
        explain_recommendation(model, 0, data.shape[1])
    with pytest.raises(DataValidationError, match="item"):
        explain_recommendation(model, 0, 1.5)
    with pytest.raises(DataValidationError, match="user"):
        explain_recommendation(model, -1, 0)
    with pytest.raises(DataValidationError, match="columns"):
        explain_recommendation(model, 0, 0, X=np.ones((1, 3)))
    with pytest.raises(NotFittedError):
        explain_recommendation(ItemKNN(), 0, 0)

    class Opaque(Recommender):
        def _fit(self, data):
            return {}

        def _score(self, users, X_users):
            return np.ones(X_users.shape, dtype=np.float32)

    with pytest.raises(TypeError, match="counterfactual"):
        explain_recommendation(Opaque().fit(data), 0, 0)


@pytest.mark.parametrize(
    "params",
    [{}, {"half_life": 3e7}, {"weighting": "binary", "modality_weights": {"audio": 2, "video": 1}}],
    ids=["plain", "decay", "binary-weighted"],
)
def test_content_knn_over_history_and_modalities(params):
    from known_data import block_item_features

    from avrec.recommenders import ContentKNN

    data = block_interactions(n_users=40, n_items=24, seed=3)
    features = block_item_features(n_items=24, seed=3)
    model = ContentKNN(**params).fit(data, item_features=features)
    for user in (0, 9):
        scores = model.score_items([user])[0]
        for item in (int(np.argmax(scores)), 4):
            exp = explain_recommendation(model, user, item)
            _assert_adds_up(exp.total, scores, float(scores[item]))
            assert set(exp.feature_contributions) == {"audio", "video"}
            by_modality = sum(exp.feature_contributions.values())
            _assert_adds_up(by_modality, scores, float(scores[item]))
            dims = exp.details["dimension_contributions"]
            assert dims.shape == (model.item_vectors_.shape[1],)
            assert dims.sum() == pytest.approx(by_modality)
    # histories given at call time, with timestamps (decay) or as a bare matrix
    for X in (data, data.matrix):
        scores = model.score_items([5], X=X)[0]
        exp = explain_recommendation(model, 5, 7, X=X)
        _assert_adds_up(exp.total, scores, float(scores[7]))


@pytest.mark.parametrize("normalization", ["zscore", "minmax", "none"])
def test_hybrid_blend_over_history_and_components(normalization):
    from known_data import block_item_features

    from avrec.recommenders import ContentKNN
    from avrec.recommenders.hybrid import HybridBlend

    data = block_interactions(n_users=40, n_items=24, seed=3)
    features = block_item_features(n_items=24, seed=3)
    blend = HybridBlend(
        [("ease", EASE(l2=5.0)), ("content", ContentKNN(half_life=3e7))],
        weights=[2.0, 1.0],
        normalization=normalization,
    ).fit(data, item_features=features)
    for user in (0, 9):
        scores = blend.score_items([user])[0]
        # the blend recomputed from the components' own score rows, without the explainer
        rows = [c.score_items([user])[0].astype(np.float64) for c in blend.components_]
        centres, spreads = _centre_spread(rows, normalization)
        scales = np.asarray(blend.weights_, dtype=np.float64) / spreads
        offset = -float(scales @ centres)
        for item in (int(np.argmax(scores)), 4):
            exp = explain_recommendation(blend, user, item)
            _assert_adds_up(exp.total, scores, float(scores[item]))
            assert set(exp.feature_contributions) == {"ease", "content"}
            _assert_adds_up(sum(exp.feature_contributions.values()), scores, float(scores[item]))
            per_component = scales * (np.array([r[item] for r in rows]) - centres)
            assert [exp.feature_contributions[n] for n in ("ease", "content")] == pytest.approx(
                per_component.tolist(), rel=1e-5, abs=1e-7
            )
            # EASE and ContentKNN have no residual: the blend's is the centring term alone
            assert exp.residual == pytest.approx(offset, rel=1e-6, abs=1e-9)
            history_part = float(scales @ np.array([r[item] for r in rows]))
            _assert_adds_up(exp.contributions.sum() + exp.bias, scores, history_part)
    scores = blend.score_items([5], X=data)[0]
    exp = explain_recommendation(blend, 5, 7, X=data)
    _assert_adds_up(exp.total, scores, float(scores[7]))
    with pytest.raises(TypeError, match="rank"):
        explain_recommendation(blend.set_params(normalization="rank"), 0, 1)


def _centre_spread(rows, normalization):
    rows = np.asarray(rows)
    if normalization == "zscore":
        return rows.mean(axis=1), rows.std(axis=1)
    if normalization == "minmax":
        return rows.min(axis=1), rows.max(axis=1) - rows.min(axis=1)
    return np.zeros(len(rows)), np.ones(len(rows))


def test_hybrid_blend_residual_adds_the_components_residuals(data):
    from known_data import block_item_features

    from avrec.recommenders import ContentKNN
    from avrec.recommenders.hybrid import HybridBlend

    features = block_item_features(n_items=24, seed=3)
    blend = HybridBlend(
        [("als", _fit("als_cg", data)), ("content", ContentKNN())],
        weights=[1.0, 0.5],
        normalization="zscore",
    ).fit(data, item_features=features)
    als = blend.components_[0]
    user = 5
    rows = [c.score_items([user])[0].astype(np.float64) for c in blend.components_]
    centres, spreads = _centre_spread(rows, "zscore")
    scales = np.asarray(blend.weights_, dtype=np.float64) / spreads
    scores = blend.score_items([user])[0]
    for item in (3, 11):
        exp = explain_recommendation(blend, user, item)
        fresh = float(als.score_items([0], [item], X=data.matrix[user])[0, 0])
        als_residual = float(rows[0][item]) - fresh
        expected = -float(scales @ centres) + scales[0] * als_residual
        assert exp.residual == pytest.approx(expected, rel=1e-4, abs=1e-7)
        assert abs(als_residual) <= RESIDUAL_BOUND["als_cg"] * _personal_scale(als, rows[0])
        _assert_adds_up(exp.total, scores, float(scores[item]))


def test_hybrid_blend_cold_item_uses_the_cold_weights():
    import scipy.sparse as sp
    from known_data import block_item_features

    from avrec.recommenders import ContentKNN
    from avrec.recommenders.hybrid import HybridBlend

    data = block_interactions(n_users=40, n_items=24, seed=3)
    train = data.matrix.tolil()
    train[:, [4, 9]] = 0  # two cold items
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    blend = HybridBlend(
        [("ease", EASE(l2=5.0)), ("content", ContentKNN())], weights=[0.7, 0.3]
    ).fit(train, item_features=block_item_features(n_items=24, seed=3))
    scores = blend.score_items([2])[0]
    for item in (4, 9, 5):
        exp = explain_recommendation(blend, 2, item)
        _assert_adds_up(exp.total, scores, float(scores[item]))
    assert explain_recommendation(blend, 2, 4).feature_contributions["ease"] == 0.0
