"""ALS: the objective, the solvers against exact least squares, fold-in and partial_fit."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from avrec.data import make_interactions, random_split
from avrec.evaluation import recall_at_k
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders import ALS, Popularity
from avrec.recommenders.cf import _als


@pytest.fixture(scope="module")
def small() -> sp.csr_matrix:
    X = sp.random(40, 25, density=0.2, random_state=3, format="csr", dtype=np.float32)
    X.data = np.ceil(X.data * 4)  # counts 1..4
    return X


def dense_loss(X: sp.csr_matrix, U: np.ndarray, V: np.ndarray, reg: float, alpha: float) -> float:
    R = X.toarray().astype(np.float64)
    C, P = 1 + alpha * R, (R > 0).astype(np.float64)
    return float((C * (P - U @ V.T) ** 2).sum() + reg * ((U**2).sum() + (V**2).sum()))


def exact_user(X: sp.csr_matrix, u: int, V: np.ndarray, reg: float, alpha: float) -> np.ndarray:
    r = X[u].toarray().ravel().astype(np.float64)
    c, p = 1 + alpha * r, (r > 0).astype(np.float64)
    A = V.T @ (c[:, None] * V) + reg * np.eye(V.shape[1])
    return np.linalg.solve(A, V.T @ (c * p))


def make(**kw) -> ALS:
    params = {"factors": 5, "regularization": 0.1, "alpha": 2.0, "iterations": 12}
    params.update(kw)
    return ALS(random_state=0, verbose=False, **params)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_loss_decreases_and_matches_the_objective(small, solver):
    model = make(solver=solver, dtype="float64").fit(small)
    hist = model.loss_history_
    assert hist.shape == (12,)
    assert np.all(np.diff(hist) <= 1e-9 * hist[:-1]), hist
    assert hist[-1] < hist[0]
    expected = dense_loss(small, model.user_factors_, model.item_factors_, 0.1, 2.0)
    assert hist[-1] == pytest.approx(expected, rel=1e-9)


def test_loss_decreases_in_float32():
    X = make_interactions(200, 120, density=0.05, n_clusters=4, random_state=0)
    hist = ALS(factors=16, iterations=10, random_state=0, verbose=False).fit(X).loss_history_
    assert np.all(np.diff(hist) <= 1e-5 * hist[:-1]), hist


def test_cholesky_equals_exact_least_squares(small):
    model = make(solver="cholesky", dtype="float64").fit(small)
    V = model.item_factors_
    for u in (0, 7, 39):
        np.testing.assert_allclose(
            model.user_factors_[u], exact_user(small, u, V, 0.1, 2.0), rtol=1e-9, atol=1e-12
        )


def test_cg_with_enough_steps_converges_to_the_exact_solution(small):
    exact = make(solver="cholesky", dtype="float64").fit(small)
    cg = make(solver="cg", cg_steps=15, dtype="float64").fit(small)
    np.testing.assert_allclose(cg.user_factors_, exact.user_factors_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(cg.item_factors_, exact.item_factors_, rtol=1e-6, atol=1e-8)
    few = make(solver="cg", cg_steps=1, dtype="float64").fit(small)
    assert not np.allclose(few.user_factors_, exact.user_factors_, atol=1e-6)


def test_fold_in_reproduces_trained_users(small):
    exact = make(solver="cholesky", dtype="float64").fit(small)
    np.testing.assert_allclose(
        exact.fold_in_users(small), exact.user_factors_, rtol=1e-9, atol=1e-12
    )
    model = make(iterations=30).fit(small)  # CG, float32: close, not exact
    folded = model.fold_in_users(small[:10])
    err = np.linalg.norm(folded - model.user_factors_[:10]) / np.linalg.norm(
        model.user_factors_[:10]
    )
    assert err < 1e-2
    # recommend(X=...) scores through the same fold-in
    np.testing.assert_allclose(
        model.score_items(X=small[:10]), folded @ model.item_factors_.T, rtol=1e-5, atol=1e-6
    )
    assert np.array_equal(model.fold_in_users(sp.csr_matrix((2, 25))), np.zeros((2, 5)))


def test_fold_in_items_solves_against_user_factors(small):
    model = make(solver="cholesky", dtype="float64").fit(small)
    got = model.fold_in_items(small.T[:3])
    for j in range(3):
        np.testing.assert_allclose(
            got[j], exact_user(small.T.tocsr(), j, model.user_factors_, 0.1, 2.0), rtol=1e-9
        )
    with pytest.raises(DataValidationError, match="one column per user"):
        model.fold_in_items(small[:, :3])


def test_partial_fit_gives_new_users_good_recommendations():
    X = make_interactions(
        400, 150, density=0.06, n_clusters=5, popularity_exponent=0.5, random_state=1
    )
    old, new = X.subset(users=np.arange(300)), X.subset(users=np.arange(300, 400))
    new_train, new_test = random_split(new, test_size=0.3, random_state=0)
    model = ALS(factors=16, iterations=10, random_state=0, verbose=False).fit(old)
    items_before, users_before = model.item_factors_.copy(), model.user_factors_.copy()
    model.partial_fit(new_train)
    assert model.n_users_ == 400 and model.user_factors_.shape == (400, 16)
    np.testing.assert_array_equal(model.item_factors_, items_before)
    np.testing.assert_array_equal(model.user_factors_[:300], users_before)
    rows = model.users_.index(new.users.ids)  # the new users were appended: rows 300..399
    np.testing.assert_array_equal(rows, np.arange(300, 400))
    idx, _ = model.recommend(rows, k=10)
    pop = Popularity().fit(old).recommend(k=10, X=new_train.matrix)[0]
    truth = new_test.matrix
    ours, base = recall_at_k(idx, truth, 10), recall_at_k(pop, truth, 10)
    assert ours > 1.3 * base, (ours, base)
    # the same users scored from their history at call time agree with the stored factors
    np.testing.assert_array_equal(model.recommend(k=10, X=new_train.matrix)[0], idx)


def test_partial_fit_updates_only_users_with_new_interactions(small):
    model = make().fit(small[:30])
    before = model.user_factors_.copy()
    extra = sp.csr_matrix((np.ones(2, np.float32), ([3, 5], [0, 1])), shape=(30, 25))
    model.partial_fit(extra)
    changed = np.flatnonzero(np.any(model.user_factors_ != before, axis=1))
    assert set(changed) <= {3, 5} and changed.size > 0


def test_threads_do_not_change_results(small, monkeypatch):
    monkeypatch.setattr(_als, "BLOCK_ENTRIES", 40)  # many blocks, shared out to the workers
    assert len(_als._row_blocks(small, 1.0, torch.float32)) > 4
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = make().fit(small).user_factors_
        torch.set_num_threads(2)
        two = make().fit(small).user_factors_
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("factors", 0),
        ("iterations", 1.5),
        ("regularization", 0.0),
        ("alpha", -1.0),
        ("alpha", float("nan")),
        ("solver", "lu"),
        ("cg_steps", 0),
        ("dtype", "int32"),
        ("dtype", "nonsense"),
    ],
)
def test_invalid_hyperparameters_raise_in_fit(small, param, value):
    model = make(**{param: value})  # __init__ stores, fit validates
    with pytest.raises(ConfigurationError, match=param):
        model.fit(small)
