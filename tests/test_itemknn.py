"""ItemKNN against dense numpy references of the same formulas."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from avrec.exceptions import ConfigurationError
from avrec.recommenders import ItemKNN
from avrec.recommenders.cf import _itemknn


def random_counts(n_users=40, n_items=25, density=0.2, seed=0) -> np.ndarray:
    """Dense play counts with continuous-looking values, so similarities have no ties."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    return np.where(mask, rng.integers(1, 9, size=mask.shape) + rng.random(mask.shape), 0.0)


def dense_similarity(W: np.ndarray, shrinkage: float = 0.0, cosine: bool = True) -> np.ndarray:
    dot = W.T @ W
    if cosine:
        norms = np.sqrt((W * W).sum(axis=0))
        denom = np.outer(norms, norms) + shrinkage
        dot = np.divide(dot, denom, out=np.zeros_like(dot), where=denom > 0)
    np.fill_diagonal(dot, 0.0)
    return dot


def prune_rows(S: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest non-zero entries of each row (reference, one row at a time)."""
    out = np.zeros_like(S)
    for i, row in enumerate(S):
        nz = np.flatnonzero(row)
        keep = nz[np.argsort(row[nz])[::-1][:k]]
        out[i, keep] = row[keep]
    return out


def implicit_bm25(X: np.ndarray, K1: float, B: float) -> np.ndarray:
    """implicit's ``bm25_weight`` on the item-user matrix, written out on dense arrays."""
    item_users = X.T  # documents = items, terms = users
    N = item_users.shape[0]
    idf = np.log(N) - np.log1p((item_users > 0).sum(axis=0))  # per user (column)
    row_sums = item_users.sum(axis=1)
    length_norm = (1.0 - B) + B * row_sums / row_sums.mean()
    out = np.zeros_like(item_users)
    r, c = np.nonzero(item_users)
    v = item_users[r, c]
    out[r, c] = v * (K1 + 1.0) / (K1 * length_norm[r] + v) * idf[c]
    return out.T


def implicit_tfidf(X: np.ndarray) -> np.ndarray:
    item_users = X.T
    idf = np.log(item_users.shape[0]) - np.log1p((item_users > 0).sum(axis=0))
    return (np.sqrt(item_users) * idf[None, :]).T


@pytest.mark.parametrize("shrinkage", [0.0, 3.0])
def test_cosine_equals_dense_reference(shrinkage):
    X = random_counts()
    model = ItemKNN(k=X.shape[1], shrinkage=shrinkage).fit(X)
    expected = dense_similarity(X, shrinkage)
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-5, atol=1e-7)
    assert model.similarity_.dtype == np.float32
    assert model.similarity_.diagonal().max() == 0 and model.similarity_.has_sorted_indices


@pytest.mark.parametrize(
    ("params", "weight"),
    [
        ({"weighting": "bm25"}, lambda X: implicit_bm25(X, 1.2, 0.75)),
        (
            {"weighting": "bm25", "bm25_k1": 100.0, "bm25_b": 0.8},
            lambda X: implicit_bm25(X, 100, 0.8),
        ),
        ({"weighting": "tfidf"}, implicit_tfidf),
    ],
)
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_weighting_equals_implicit_formula(params, weight, similarity):
    X = random_counts(seed=3)
    model = ItemKNN(k=X.shape[1], similarity=similarity, **params).fit(X)
    expected = dense_similarity(weight(X), cosine=similarity == "cosine")
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-5, atol=1e-6)


def test_weighting_changes_similarity():
    X = random_counts(seed=4)
    plain = ItemKNN(k=50).fit(X).similarity_.toarray()
    bm25 = ItemKNN(k=50, weighting="bm25").fit(X).similarity_.toarray()
    tfidf = ItemKNN(k=50, weighting="tfidf").fit(X).similarity_.toarray()
    assert not np.allclose(plain, bm25) and not np.allclose(bm25, tfidf)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_top_k_keeps_exactly_the_k_largest_per_row(k):
    X = random_counts(n_users=60, n_items=30, density=0.3, seed=1)
    S = ItemKNN(k=k).fit(X).similarity_
    full = dense_similarity(X)
    np.testing.assert_allclose(S.toarray(), prune_rows(full, k), rtol=1e-5, atol=1e-7)
    per_row = np.minimum(k, (full != 0).sum(axis=1))
    np.testing.assert_array_equal(np.diff(S.indptr), per_row)


def test_scores_equal_history_times_similarity():
    X = random_counts(seed=2)
    model = ItemKNN(k=5, shrinkage=1.0).fit(X)
    S = model.similarity_.toarray().astype(np.float64)
    np.testing.assert_allclose(model.score_items(), X @ S, rtol=1e-5, atol=1e-5)
    new = random_counts(n_users=3, seed=9)
    np.testing.assert_allclose(model.score_items(X=new), new @ S, rtol=1e-5, atol=1e-5)


def test_blocks_do_not_change_the_result():
    W = sp.csr_matrix(random_counts(n_items=33, seed=5))
    whole = _itemknn.item_similarity(W, k=4)
    tiny = _itemknn.item_similarity(W, k=4, block_bytes=1)  # one item per block
    assert (whole != tiny).nnz == 0


def test_unused_items_have_no_neighbours():
    X = random_counts(seed=6)
    X[:, [0, 5]] = 0
    S = ItemKNN(k=10, shrinkage=0.0).fit(X).similarity_
    assert np.isfinite(S.data).all()
    assert S[[0, 5]].nnz == 0 and S[:, [0, 5]].nnz == 0


def test_k_larger_than_catalogue():
    X = random_counts(n_items=6, seed=7)
    S = ItemKNN(k=100).fit(X).similarity_
    np.testing.assert_allclose(S.toarray(), dense_similarity(X), rtol=1e-5, atol=1e-7)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_items=st.integers(2, 12),
    k=st.integers(1, 12),
    shrinkage=st.sampled_from([0.0, 0.5, 10.0]),
)
def test_similarity_matches_reference_property(seed, n_items, k, shrinkage):
    X = random_counts(n_users=15, n_items=n_items, density=0.4, seed=seed)
    X[0, 0] = 1.0  # never empty
    S = ItemKNN(k=k, shrinkage=shrinkage).fit(X).similarity_.toarray()
    np.testing.assert_allclose(
        S, prune_rows(dense_similarity(X, shrinkage), k), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "params",
    [
        {"k": 0},
        {"k": 2.5},
        {"k": True},
        {"similarity": "pearson"},
        {"weighting": "bm15"},
        {"shrinkage": -1.0},
        {"shrinkage": float("nan")},
        {"similarity": "dot", "shrinkage": 1.0},
        {"bm25_k1": -0.1},
        {"bm25_b": 1.5},
    ],
)
def test_invalid_hyperparameters(params):
    with pytest.raises(ConfigurationError):
        ItemKNN(**params).fit(random_counts())
