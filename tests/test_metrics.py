"""Ranking metrics: agreement with plain per-user references, known answers, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avrec.data import Interactions
from avrec.evaluation import (
    coverage_at_k,
    f1_at_k,
    hit_rate_at_k,
    intra_list_diversity_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty_at_k,
    precision_at_k,
    recall_at_k,
    truncated_recall_at_k,
)
from avrec.exceptions import DataValidationError

ACCURACY = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "truncated_recall": truncated_recall_at_k,
    "f1": f1_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
}


# ---------------------------------------------------------------------- references
def reference_user(name: str, ranked: list[int], rel: set[int], k: int) -> float:
    """One user's metric, written the slow obvious way."""
    if not rel:
        return math.nan
    ranked = ranked[:k]
    hits = [i >= 0 and i in rel for i in ranked]
    n_hits = sum(hits)
    if name == "precision":
        return n_hits / k
    if name == "recall":
        return n_hits / len(rel)
    if name == "truncated_recall":
        return n_hits / min(len(rel), k)
    if name == "f1":
        p, r = n_hits / k, n_hits / len(rel)
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)
    if name == "ndcg":
        dcg = sum(1 / math.log2(j + 2) for j, h in enumerate(hits) if h)
        idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
        return dcg / idcg
    if name == "map":
        total, found = 0.0, 0
        for j, h in enumerate(hits):
            if h:
                found += 1
                total += found / (j + 1)
        return total / min(len(rel), k)
    if name == "mrr":
        return next((1 / (j + 1) for j, h in enumerate(hits) if h), 0.0)
    if name == "hit_rate":
        return float(any(hits))
    raise AssertionError(name)


def reference(name, top_k, relevant, k):
    dense = np.asarray(relevant.todense())
    kk = top_k.shape[1] if k is None else k
    per = [
        reference_user(name, list(row), set(np.flatnonzero(dense[u]).tolist()), kk)
        for u, row in enumerate(top_k.tolist())
    ]
    return np.array(per, dtype=np.float64)


def nanmean_or_nan(values):
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else math.nan


# ---------------------------------------------------------------------- strategies
@st.composite
def rankings(draw, max_users=6, max_items=10, max_k=7):
    """(top_k (n_users, K) distinct rows padded with -1 at the end, n_items)."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    width = draw(st.integers(1, max_k))
    rows = []
    for _ in range(n_users):
        length = draw(st.integers(0, min(width, n_items)))
        order = draw(st.permutations(range(n_items)))
        rows.append(list(order[:length]) + [-1] * (width - length))
    return np.array(rows, dtype=np.int64).reshape(n_users, width), n_items


@st.composite
def ranking_cases(draw):
    top_k, n_items = draw(rankings())
    dense = draw(arrays(np.bool_, (top_k.shape[0], n_items)))
    k = draw(st.none() | st.integers(1, top_k.shape[1]))
    return top_k, sp.csr_matrix(dense.astype(np.float32)), k


# ---------------------------------------------------------------------- properties
@pytest.mark.parametrize("name", list(ACCURACY))
@settings(max_examples=50, deadline=None)
@given(case=ranking_cases())
def test_accuracy_metric_matches_reference(name, case):
    top_k, relevant, k = case
    expected = reference(name, top_k, relevant, k)
    got = ACCURACY[name](top_k, relevant, k, per_user=True)
    assert got.shape == (top_k.shape[0],) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    mean = ACCURACY[name](top_k, relevant, k)
    assert isinstance(mean, float)
    exp_mean = nanmean_or_nan(expected)
    assert (math.isnan(mean) and math.isnan(exp_mean)) or mean == pytest.approx(exp_mean)
    finite = got[~np.isnan(got)]
    assert np.all((finite >= 0) & (finite <= 1))


@settings(max_examples=50, deadline=None)
@given(case=ranking_cases())
def test_perfect_ranking_scores_one(case):
    _, relevant, _ = case
    n_items = relevant.shape[1]
    dense = relevant.toarray() > 0
    # relevant items first, then the others: the best possible list of all items
    top_k = np.argsort(~dense, axis=1, kind="stable")
    n_rel = dense.sum(axis=1)
    for name in ("ndcg", "map", "mrr", "hit_rate", "truncated_recall"):
        for k in range(1, n_items + 1):
            per = ACCURACY[name](top_k, relevant, k, per_user=True)
            np.testing.assert_array_equal(per[n_rel > 0], 1.0)
            assert np.isnan(per[n_rel == 0]).all()
    k = n_items
    recall = recall_at_k(top_k, relevant, k, per_user=True)
    np.testing.assert_array_equal(recall[n_rel > 0], 1.0)


@settings(max_examples=50, deadline=None)
@given(case=ranking_cases())
def test_padding_never_counts(case):
    top_k, relevant, k = case
    padded = np.full_like(top_k, -1)
    for name, metric in ACCURACY.items():
        per = metric(padded, relevant, k, per_user=True)
        has_rel = np.diff(relevant.indptr) > 0
        np.testing.assert_array_equal(per[has_rel], 0.0, err_msg=name)
    # -1 in the middle of a row is a miss, the items after it keep their rank
    holes = top_k.copy()
    holes[:, 0] = -1
    expected = reference("ndcg", holes, relevant, k)
    np.testing.assert_allclose(
        ndcg_at_k(holes, relevant, k, per_user=True), expected, equal_nan=True
    )


@settings(max_examples=50, deadline=None)
@given(data=rankings(), k_frac=st.floats(0, 1))
def test_coverage_matches_reference(data, k_frac):
    top_k, n_items = data
    k = max(1, round(k_frac * top_k.shape[1]))
    distinct = {i for row in top_k[:, :k].tolist() for i in row if i >= 0}
    assert coverage_at_k(top_k, n_items, k) == pytest.approx(len(distinct) / n_items)
    assert 0.0 <= coverage_at_k(top_k, n_items) <= 1.0


@settings(max_examples=50, deadline=None)
@given(data=rankings(), seed=st.integers(0, 2**16), n_train=st.integers(1, 8))
def test_novelty_matches_reference(data, seed, n_train):
    top_k, n_items = data
    train = sp.random(n_train, n_items, density=0.3, format="csr", random_state=seed)
    counts = (train.toarray() != 0).sum(axis=0)
    expected = []
    for row in top_k.tolist():
        info = [-math.log2(max(counts[i], 1) / n_train) for i in row if i >= 0]
        expected.append(sum(info) / len(info) if info else math.nan)
    got = novelty_at_k(top_k, train, per_user=True)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12, equal_nan=True)
    finite = got[~np.isnan(got)]
    assert np.all((finite >= 0) & (finite <= math.log2(n_train) + 1e-12))
    # a popularity vector gives the same values when no recommended item has pop 0
    pop = np.maximum(counts, 1) / n_train
    np.testing.assert_allclose(novelty_at_k(top_k, pop, per_user=True), got, equal_nan=True)


@settings(max_examples=50, deadline=None)
@given(data=rankings(), features=st.data())
def test_diversity_matches_reference(data, features):
    top_k, n_items = data
    d = features.draw(st.integers(1, 4))
    elements = st.integers(-3, 3).map(float)
    feats = features.draw(arrays(np.float64, (n_items, d), elements=elements))
    expected = []
    for row in top_k.tolist():
        items = [i for i in row if i >= 0]
        dists = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                x, y = feats[items[a]], feats[items[b]]
                nx, ny = np.linalg.norm(x), np.linalg.norm(y)
                cos = 0.0 if nx == 0 or ny == 0 else float(x @ y / (nx * ny))
                dists.append(1.0 - cos)
        expected.append(sum(dists) / len(dists) if dists else math.nan)
    got = intra_list_diversity_at_k(top_k, feats, per_user=True)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)
    finite = got[~np.isnan(got)]
    assert np.all((finite >= 0) & (finite <= 2))
    nonneg = intra_list_diversity_at_k(top_k, np.abs(feats), per_user=True)
    finite = nonneg[~np.isnan(nonneg)]
    assert np.all((finite >= 0) & (finite <= 1 + 1e-12))


# ---------------------------------------------------------------------- known answers
def test_hand_computed_accuracy():
    # user 0: relevant {0, 2, 4}; list [2, 1, 0, 3]: hits at ranks 1 and 3
    # user 1: relevant {3};       list [0, 1, 2, -1]: no hit
    # user 2: no relevant items -> skipped (NaN)
    relevant = sp.csr_matrix(
        np.array([[1, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=np.float32)
    )
    top_k = np.array([[2, 1, 0, 3], [0, 1, 2, -1], [4, 3, 2, 1]])
    l2, l4 = math.log2(3), math.log2(4)  # discounts of ranks 2 and 3 are 1/l2, 1/l4
    user0 = {
        "precision": 2 / 4,
        "recall": 2 / 3,
        "truncated_recall": 2 / 3,
        "f1": 2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3),  # = 4/7
        "ndcg": (1 + 1 / l4) / (1 + 1 / l2 + 1 / l4),  # = 1.5 / 2.13093 = 0.703918
        "map": (1 / 1 + 2 / 3) / 3,  # = 0.5556
        "mrr": 1.0,
        "hit_rate": 1.0,
    }
    assert user0["f1"] == pytest.approx(4 / 7)
    assert user0["ndcg"] == pytest.approx(0.703918, abs=1e-6)
    for name, value in user0.items():
        per = ACCURACY[name](top_k, relevant, per_user=True)
        np.testing.assert_allclose(per, [value, 0.0, np.nan], equal_nan=True, err_msg=name)
        assert ACCURACY[name](top_k, relevant) == pytest.approx(value / 2), name
    # at k=2 only the hit at rank 1 remains for user 0
    assert precision_at_k(top_k, relevant, k=2, per_user=True)[0] == 0.5
    assert recall_at_k(top_k, relevant, k=2, per_user=True)[0] == pytest.approx(1 / 3)
    assert truncated_recall_at_k(top_k, relevant, k=2, per_user=True)[0] == 0.5
    assert map_at_k(top_k, relevant, k=2, per_user=True)[0] == 0.5
    assert ndcg_at_k(top_k, relevant, k=2, per_user=True)[0] == pytest.approx(1 / (1 + 1 / l2))


def test_hand_computed_beyond_accuracy():
    top_k = np.array([[0, 1, 2], [1, 3, -1]])
    assert coverage_at_k(top_k, 5) == pytest.approx(4 / 5)
    assert coverage_at_k(top_k, 5, k=1) == pytest.approx(2 / 5)
    # 4 training users; item popularity [4, 2, 1, 0 -> floored to 1, 0 -> 1] / 4
    train = sp.csr_matrix(
        np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    )
    # user 0: (0 + 1 + 2) / 3 = 1; user 1: (1 + 2) / 2 = 1.5
    np.testing.assert_allclose(novelty_at_k(top_k, train, per_user=True), [1.0, 1.5])
    assert novelty_at_k(top_k, train) == pytest.approx(1.25)
    assert novelty_at_k(top_k, train, k=1) == pytest.approx((0 + 1) / 2)
    feats = np.array([[1.0, 0], [0, 1.0], [1.0, 1.0], [0, 0], [2.0, 0]])
    # user 0 pairs: (0,1) 1, (0,2) and (1,2) 1 - 1/sqrt2; user 1: (1, zero vector) 1
    expected0 = (1 + 2 * (1 - 1 / math.sqrt(2))) / 3
    np.testing.assert_allclose(
        intra_list_diversity_at_k(top_k, feats, per_user=True), [expected0, 1.0]
    )
    # identical directions: distance 0
    assert intra_list_diversity_at_k(np.array([[0, 4]]), feats) == pytest.approx(0.0)


def test_item_features_object_with_concat():
    class Features:
        def concat(self):
            return np.eye(3, dtype=np.float32)

    assert intra_list_diversity_at_k(np.array([[0, 1, 2]]), Features()) == pytest.approx(1.0)


# ---------------------------------------------------------------------- input handling
def test_relevant_input_forms_agree():
    dense = np.array([[0, 2, 0, 1], [3, 0, 0, 0]], dtype=np.float32)
    top_k = np.array([[1, 0], [2, 0]], dtype=np.int32)
    expected = ndcg_at_k(top_k, sp.csr_matrix(dense), per_user=True)
    for form in (
        dense,
        sp.csc_matrix(dense),
        sp.csr_array(dense),
        sp.coo_matrix(dense),
        Interactions.from_csr(sp.csr_matrix(dense)),
    ):
        np.testing.assert_array_equal(ndcg_at_k(top_k, form, per_user=True), expected)


def test_explicit_zeros_and_duplicates_do_not_count_nor_mutate():
    # row 0 stores item 1 twice (sums to 2) and an explicit zero at item 0
    data, indices, indptr = [0.0, 1.0, 1.0], [0, 1, 1], [0, 3, 3]
    relevant = sp.csr_matrix((data, indices, indptr), shape=(2, 3))
    before = (relevant.data.copy(), relevant.indices.copy(), relevant.indptr.copy())
    per = hit_rate_at_k(np.array([[0, 2], [1, 2]]), relevant, per_user=True)
    np.testing.assert_array_equal(per, [0.0, np.nan])
    assert recall_at_k(np.array([[1, 0], [1, 2]]), relevant, per_user=True)[0] == 1.0
    for was, now in zip(before, (relevant.data, relevant.indices, relevant.indptr), strict=True):
        np.testing.assert_array_equal(was, now)


def test_no_relevant_items_gives_nan_mean():
    relevant = sp.csr_matrix((2, 3))
    assert math.isnan(ndcg_at_k(np.array([[0], [1]]), relevant))


def test_many_users_at_once():
    rng = np.random.default_rng(0)
    n_users, n_items = 20_000, 5_000
    base = rng.integers(0, n_items, size=(n_users, 1))
    cols = (base + np.arange(5)) % n_items  # 5 relevant items per user
    relevant = sp.csr_matrix(
        (np.ones(cols.size), cols.ravel(), np.arange(0, cols.size + 1, 5)), shape=(n_users, n_items)
    )
    top_k = (base + np.arange(-15, 5)) % n_items  # the relevant items at ranks 16..20
    np.testing.assert_array_equal(recall_at_k(top_k, relevant, per_user=True), 1.0)
    np.testing.assert_array_equal(precision_at_k(top_k, relevant, per_user=True), 0.25)
    np.testing.assert_array_equal(mrr_at_k(top_k, relevant, per_user=True), 1 / 16)
    assert hit_rate_at_k(top_k, relevant, k=15) == 0.0


@pytest.mark.parametrize(
    ("top_k", "k", "match"),
    [
        (np.array([0, 1]), None, "top_k must be a 2-d"),
        (np.zeros((2, 2, 1), dtype=int), None, "top_k must be a 2-d"),
        (np.zeros((2, 0), dtype=int), None, "top_k has no columns"),
        (np.array([[0.0, 1.0], [1.0, 2.0]]), None, "integer item indices"),
        (np.array([[0, 3], [1, 2]]), None, r"top_k\[0, 1\] = 3 is out of range for 3 items"),
        (np.array([[0, 1], [-2, 2]]), None, "out of range"),
        (np.array([[0, 1], [2, 2]]), None, "row 1 recommends item 2 more than once"),
        (np.array([[0, 1, 2]]), None, "top_k has 1 rows but relevant has 2"),
        (np.array([[0, 1], [1, 2]]), 0, "k must be a positive int"),
        (np.array([[0, 1], [1, 2]]), 2.0, "k must be a positive int"),
        (np.array([[0, 1], [1, 2]]), True, "k must be a positive int"),
        (np.array([[0, 1], [1, 2]]), 3, "k=3 is larger than the 2 columns of top_k"),
    ],
)
def test_bad_input_raises(top_k, k, match):
    relevant = sp.csr_matrix(np.eye(2, 3))
    for metric in ACCURACY.values():
        with pytest.raises(DataValidationError, match=match):
            metric(top_k, relevant, k)


def test_bad_relevant_raises():
    with pytest.raises(DataValidationError, match="relevant must be a sparse matrix"):
        precision_at_k(np.array([[0]]), np.array([1, 0]))
    with pytest.raises(DataValidationError, match="relevant must be a sparse matrix"):
        precision_at_k(np.array([[0]]), [["a", "b"]])


def test_beyond_accuracy_bad_input_raises():
    top_k = np.array([[0, 1]])
    with pytest.raises(DataValidationError, match="n_items must be a positive int"):
        coverage_at_k(top_k, 0)
    with pytest.raises(DataValidationError, match="n_items must be a positive int"):
        coverage_at_k(top_k, "five")
    with pytest.raises(DataValidationError, match="out of range for 1 items"):
        coverage_at_k(top_k, 1)
    with pytest.raises(DataValidationError, match="k=3 is larger"):
        coverage_at_k(top_k, 2, k=3)
    with pytest.raises(DataValidationError, match="popularity of recommended item 1 is 0"):
        novelty_at_k(top_k, np.array([0.5, 0.0]))
    with pytest.raises(DataValidationError, match=r"popularity must hold fractions"):
        novelty_at_k(top_k, np.array([0.5, 2.0]))
    with pytest.raises(DataValidationError, match="popularity must be a training matrix"):
        novelty_at_k(top_k, np.zeros((2, 2, 2)))
    with pytest.raises(DataValidationError, match="no users"):
        novelty_at_k(top_k, sp.csr_matrix((0, 2)))
    with pytest.raises(DataValidationError, match="out of range for 2 items"):
        novelty_at_k(np.array([[2]]), sp.csr_matrix(np.ones((1, 2))))
    with pytest.raises(DataValidationError, match="item_features must be finite"):
        intra_list_diversity_at_k(top_k, np.array([[1.0], [np.nan]]))
    with pytest.raises(DataValidationError, match=r"item_features must be a numeric array"):
        intra_list_diversity_at_k(top_k, np.ones(2))
    with pytest.raises(DataValidationError, match="out of range for 2 items"):
        intra_list_diversity_at_k(np.array([[0, 2]]), np.ones((2, 3)))
