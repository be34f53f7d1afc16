"""evaluate(): batching, exclusion of training items, agreement with the metric functions."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import scipy.sparse as sp

import avrec.evaluation
from avrec.data import Interactions
from avrec.evaluation import (
    EvaluationResult,
    coverage_at_k,
    evaluate,
    intra_list_diversity_at_k,
    ndcg_at_k,
    novelty_at_k,
    precision_at_k,
    recall_at_k,
)
from avrec.exceptions import DataValidationError, NotFittedError

ALL_METRICS = (
    "precision",
    "recall",
    "truncated_recall",
    "f1",
    "ndcg",
    "map",
    "mrr",
    "hit_rate",
    "coverage",
    "novelty",
    "diversity",
)


class ScoreModel:
    """Ranks by a fixed score matrix (n_users, n_items), honouring ``exclude``.

    Stands in for a Recommender; checks that evaluate calls it as documented.
    """

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float64)
        self.n_items_ = self.scores.shape[1]
        self.calls = []

    def recommend(self, users, k=10, exclude_seen=True, exclude=None):
        users = np.asarray(users)
        assert exclude_seen is False
        assert sp.issparse(exclude) and exclude.shape == (users.size, self.n_items_)
        self.calls.append(users.copy())
        scores = self.scores[users].copy()
        scores[exclude.nonzero()] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(scores, order, axis=1)
        return np.where(np.isfinite(top), order, -1), top


def fixed_model(item_scores, n_users):
    return ScoreModel(np.tile(np.asarray(item_scores, dtype=np.float64), (n_users, 1)))


def random_split(n_users=30, n_items=15, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.35
    held_out = dense & (rng.random((n_users, n_items)) < 0.3)
    train = sp.csr_matrix((dense & ~held_out).astype(np.float32))
    test = sp.csr_matrix(held_out.astype(np.float32))
    return train, test


# ---------------------------------------------------------------------- known answers
def test_oracle_scores_one():
    train, test = random_split()
    oracle = ScoreModel(test.toarray() * 10 + np.linspace(1, 0, test.shape[1]))
    metrics = ("ndcg", "map", "mrr", "hit_rate", "truncated_recall")
    result = evaluate(oracle, train, test, k=(1, 3, 5), metrics=metrics)
    assert dict(result) == {f"{m}@{c}": 1.0 for m in metrics for c in (1, 3, 5)}
    k_all = int(np.diff(test.indptr).max())
    assert evaluate(oracle, train, test, k=k_all, metrics="recall")[f"recall@{k_all}"] == 1.0


def test_hand_computed_fixed_scores():
    # item scores 5 > 4 > 3 > 2 > 1 for every user, so the global order is 0, 1, 2, 3, 4
    train = sp.csr_matrix(
        np.array(
            [
                [1, 0, 0, 0, 0],  # user 0 ranks 1, 2, 3, 4
                [0, 1, 1, 0, 0],  # user 1 ranks 0, 3, 4
                [0, 0, 0, 0, 1],  # user 2: no test items -> skipped
                [1, 1, 1, 1, 0],  # user 3 ranks 4 only, then padding
            ]
        )
    )
    test = sp.csr_matrix(
        np.array(
            [
                [0, 0, 1, 0, 1],  # relevant {2, 4}: ranks 2 and 4
                [0, 0, 0, 1, 0],  # relevant {3}: rank 2
                [0, 0, 0, 0, 0],
                [0, 0, 0, 0, 1],  # relevant {4}: rank 1
            ]
        )
    )
    model = fixed_model([5, 4, 3, 2, 1], 4)
    result = evaluate(model, train, test, k=(1, 2), metrics=ALL_METRICS[:-1])
    assert (result.n_users, result.n_skipped) == (3, 1)
    np.testing.assert_array_equal(result.users, [0, 1, 3])
    d3 = 1 / math.log2(3)
    expected = {
        # @1 lists: [1], [0], [4] -> hits 0, 0, 1
        "precision@1": 1 / 3,
        "recall@1": 1 / 3,
        "truncated_recall@1": 1 / 3,
        "f1@1": (0 + 0 + 1) / 3,
        "ndcg@1": 1 / 3,
        "map@1": 1 / 3,
        "mrr@1": 1 / 3,
        "hit_rate@1": 1 / 3,
        "coverage@1": 3 / 5,  # {1, 0, 4}
        # @2 lists: [1, 2], [0, 3], [4, -1] -> hits at rank 2, rank 2, rank 1
        "precision@2": (1 / 2 + 1 / 2 + 1 / 2) / 3,
        "recall@2": (1 / 2 + 1 + 1) / 3,
        "truncated_recall@2": (1 / 2 + 1 + 1) / 3,
        "f1@2": (2 / 4 + 2 / 3 + 2 / 3) / 3,  # 2 hits / (k + |rel|)
        "ndcg@2": (d3 / (1 + d3) + d3 / 1 + 1) / 3,
        "map@2": ((1 / 2) / 2 + (1 / 2) / 1 + 1) / 3,
        "mrr@2": (1 / 2 + 1 / 2 + 1) / 3,
        "hit_rate@2": 1.0,
        "coverage@2": 5 / 5,
        # popularity over 4 train users: [2, 2, 2, 1, 1] / 4 -> information [1, 1, 1, 2, 2]
        "novelty@1": (1 + 1 + 2) / 3,
        "novelty@2": ((1 + 1) / 2 + (1 + 2) / 2 + 2) / 3,
    }
    assert list(result) == [f"{m}@{c}" for m in ALL_METRICS[:-1] for c in (1, 2)]
    for key, value in expected.items():
        assert result[key] == pytest.approx(value), key


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_metric_functions(seed):
    train, test = random_split(seed=seed)
    rng = np.random.default_rng(seed)
    model = ScoreModel(rng.random(train.shape))
    feats = rng.normal(size=(train.shape[1], 3))
    result = evaluate(
        model, train, test, k=(2, 5), metrics=ALL_METRICS, item_features=feats, per_user=True
    )
    users = result.users
    top_k, _ = model.recommend(users, k=5, exclude_seen=False, exclude=train[users])
    rel = test[users]
    for c in (2, 5):
        assert result[f"ndcg@{c}"] == pytest.approx(ndcg_at_k(top_k, rel, c))
        assert result[f"precision@{c}"] == pytest.approx(precision_at_k(top_k, rel, c))
        assert result[f"recall@{c}"] == pytest.approx(recall_at_k(top_k, rel, c))
        assert result[f"coverage@{c}"] == pytest.approx(coverage_at_k(top_k, train.shape[1], c))
        assert result[f"novelty@{c}"] == pytest.approx(novelty_at_k(top_k, train, c))
        assert result[f"diversity@{c}"] == pytest.approx(intra_list_diversity_at_k(top_k, feats, c))
        per = result.per_user[f"ndcg@{c}"]
        np.testing.assert_allclose(per[users], ndcg_at_k(top_k, rel, c, per_user=True))


def test_batch_size_does_not_change_results():
    train, test = random_split(n_users=23)
    model = ScoreModel(np.random.default_rng(3).random(train.shape))
    feats = np.random.default_rng(4).random((train.shape[1], 4))
    runs = [
        evaluate(
            model,
            train,
            test,
            k=(3, 7),
            metrics=ALL_METRICS,
            item_features=feats,
            per_user=True,
            batch_size=bs,
        )
        for bs in (1, 4, None)
    ]
    for other in runs[1:]:
        assert dict(other) == dict(runs[0])
        for key, values in runs[0].per_user.items():
            np.testing.assert_array_equal(other.per_user[key], values)
    # batch_size=4 -> ceil(n_evaluated / 4) recommend calls, each user exactly once
    model.calls.clear()
    evaluate(model, train, test, batch_size=4, k=3)
    assert len(model.calls) == math.ceil(runs[0].n_users / 4)
    np.testing.assert_array_equal(np.concatenate(model.calls), runs[0].users)


def test_per_user_arrays_and_skipped_users():
    train, test = random_split()
    test = test.tolil()
    test[[0, 5], :] = 0
    test = test.tocsr()
    model = fixed_model(np.arange(15)[::-1], 30)
    result = evaluate(model, train, test, k=3, per_user=True)
    n_with = int((np.diff(test.indptr) > 0).sum())
    assert result.n_users == n_with and result.n_skipped == 30 - n_with
    assert set(result.per_user) == {f"{m}@3" for m in result.metrics if m != "coverage"}
    for values in result.per_user.values():
        assert values.shape == (30,) and values.dtype == np.float64
        assert np.isnan(values[[0, 5]]).all()
        assert not np.isnan(values[result.users]).any()
    assert evaluate(model, train, test, k=3).per_user is None


def test_interactions_inputs_match_csr():
    train, test = random_split()
    model = fixed_model(np.arange(15), 30)
    expected = dict(evaluate(model, train, test))
    got = evaluate(model, Interactions.from_csr(train), Interactions.from_csr(test))
    assert dict(got) == expected
    other_items = Interactions.from_csr(test, item_ids=[f"x{i}" for i in range(15)])
    with pytest.raises(DataValidationError, match="different items vocabularies"):
        evaluate(model, Interactions.from_csr(train), other_items)


def test_short_lists_are_padded():
    class ShortModel(ScoreModel):
        def recommend(self, users, k=10, exclude_seen=True, exclude=None):
            items, scores = super().recommend(users, k, exclude_seen, exclude)
            return items[:, :2], scores[:, :2]

    train, test = random_split()
    model = ShortModel(np.random.default_rng(0).random(train.shape))
    short = evaluate(model, train, test, k=(2, 5), metrics=("precision", "hit_rate"))
    assert short["precision@5"] == pytest.approx(short["precision@2"] * 2 / 5)
    assert short["hit_rate@5"] == short["hit_rate@2"]


def test_overlap_between_train_and_test_is_logged(caplog):
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0]]))
    test = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 1]]))
    with caplog.at_level(logging.WARNING, logger="avrec.evaluation"):
        evaluate(fixed_model([1, 2, 3], 2), train, test, k=1)
    assert "1 test interactions also appear in train" in caplog.text


def test_popularity_end_to_end(blocks):
    from avrec.recommenders import Popularity

    rng = np.random.default_rng(0)
    held = rng.random(blocks.nnz) < 0.25
    train, test = blocks.select_entries(~held), blocks.select_entries(held)
    model = Popularity().fit(train)
    result = evaluate(model, train, test, k=(5, 10), metrics=ALL_METRICS[:-1], batch_size=7)
    users = result.users
    top_k, _ = model.recommend(users, k=10)  # exclude_seen=True: the same training items
    rel = test.matrix[users]
    assert result["ndcg@10"] == pytest.approx(ndcg_at_k(top_k, rel, 10))
    assert result["precision@5"] == pytest.approx(precision_at_k(top_k, rel, 5))
    assert 0 < result["ndcg@10"] < 1
    assert result.n_users + result.n_skipped == blocks.n_users


# ---------------------------------------------------------------------- errors
def test_bad_arguments_raise():
    train, test = random_split()
    model = fixed_model(np.arange(15), 30)
    with pytest.raises(DataValidationError, match=r"unknown metric\(s\) \['ndgc'\].*ndcg, map"):
        evaluate(model, train, test, metrics=["ndgc"])
    with pytest.raises(DataValidationError, match="metrics must not be empty"):
        evaluate(model, train, test, metrics=[])
    with pytest.raises(DataValidationError, match="'diversity' needs item_features"):
        evaluate(model, train, test, metrics=["diversity"])
    with pytest.raises(DataValidationError, match="item_features has 3 rows but there are 15"):
        evaluate(model, train, test, metrics=["diversity"], item_features=np.ones((3, 2)))
    with pytest.raises(DataValidationError, match=r"train has shape \(30, 15\) but test"):
        evaluate(model, train, test[:, :14])
    with pytest.raises(DataValidationError, match="model was fitted on 15 items but"):
        evaluate(model, train[:, :14], test[:, :14])
    for bad in (0, [], [3, 0], 2.5, True):
        with pytest.raises(DataValidationError, match="k must"):
            evaluate(model, train, test, k=bad)
    for bad in (0, -3, 1.5):
        with pytest.raises(DataValidationError, match="batch_size must be a positive int"):
            evaluate(model, train, test, batch_size=bad)
    with pytest.raises(DataValidationError, match="test has no held-out interactions"):
        evaluate(model, train, sp.csr_matrix(train.shape))
    with pytest.raises(DataValidationError, match="test must be a sparse matrix"):
        evaluate(model, train, "test.csv")
    unfitted = fixed_model(np.arange(15), 30)
    del unfitted.n_items_
    with pytest.raises(NotFittedError, match="fit it before evaluate"):
        evaluate(unfitted, train, test)
    model.n_users_ = 20
    with pytest.raises(
        DataValidationError, match="test has 30 users but the model was fitted on 20"
    ):
        evaluate(model, train, test)


def test_misbehaving_models_raise():
    train, test = random_split()

    class IgnoresExclude(ScoreModel):
        def recommend(self, users, k=10, exclude_seen=True, exclude=None):
            return super().recommend(users, k, exclude_seen, sp.csr_matrix(exclude.shape))

    class WrongShape(ScoreModel):
        def recommend(self, users, k=10, exclude_seen=True, exclude=None):
            items, scores = super().recommend(users, k, exclude_seen, exclude)
            return items[:-1], scores[:-1]

    class NotATuple(ScoreModel):
        def recommend(self, users, k=10, exclude_seen=True, exclude=None):
            return super().recommend(users, k, exclude_seen, exclude)[0]

    scores = np.ones(train.shape)
    with pytest.raises(DataValidationError, match="must honour exclude="):
        evaluate(IgnoresExclude(scores), train, test)
    with pytest.raises(DataValidationError, match="returned item_indices of shape"):
        evaluate(WrongShape(scores), train, test)
    with pytest.raises(DataValidationError, match="must return a tuple"):
        evaluate(NotATuple(scores), train, test)


# ---------------------------------------------------------------------- result object
def test_evaluation_result_mapping_and_tables():
    train, test = random_split()
    result = evaluate(fixed_model(np.arange(15), 30), train, test, k=[20, 10, 10])
    assert result.k == (10, 20)
    assert len(result) == 14 and "ndcg@10" in result and isinstance(result["mrr@20"], float)
    with pytest.raises(KeyError, match="'ndcg@5' was not computed"):
        result["ndcg@5"]
    frame = result.to_frame()
    assert frame.shape == (7, 2) and list(frame.columns) == [10, 20]
    assert frame.loc["ndcg", 20] == result["ndcg@20"]
    table = result.to_markdown()
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "metric" and len(lines) == 2 + 7
    assert f"{result['map@10']:.4f}" in lines[5]
    assert repr(result).startswith(f"EvaluationResult(n_users={result.n_users}, n_skipped=")
    assert table in repr(result)
    assert isinstance(result, EvaluationResult)


def test_all_is_sorted_and_complete():
    names = avrec.evaluation.__all__
    assert names == sorted(names)
    public = {n for n in dir(avrec.evaluation) if not n.startswith("_")}
    assert public == set(names)


def test_items_restricts_candidates():
    from avrec.data import cold_item_split, make_interactions
    from avrec.recommenders import Popularity

    X = make_interactions(80, 40, density=0.15, random_state=0)
    train, test, cold = cold_item_split(X, test_size=0.25, random_state=0)
    model = Popularity().fit(train)
    res = evaluate(model, train, test, k=5, metrics=("ndcg", "recall"), items=cold, per_user=True)
    # reference: rank only the cold items by the model's own scores
    users = res.users
    scores = model.score_items(users)[:, cold]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    top = cold[order]
    truth = test.matrix[users].toarray() > 0
    hits = truth[np.arange(users.size)[:, None], top]
    recall = hits.sum(1) / truth.sum(1)
    np.testing.assert_allclose(res["recall@5"], recall.mean())
    with pytest.raises(DataValidationError, match="items"):
        evaluate(model, train, test, k=5, items=[X.n_items])
