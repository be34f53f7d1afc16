"""Recommender base and Popularity behaviour that the contract suite does not pin down."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avrec.data import Interactions
from avrec.exceptions import ConfigurationError, DataValidationError, PersistenceError
from avrec.recommenders import Popularity, Recommender, top_k


# ---------------------------------------------------------------- top_k
@settings(max_examples=80, deadline=None)
@given(
    scores=arrays(
        np.float32,
        st.tuples(st.integers(1, 6), st.integers(1, 12)),
        elements=st.one_of(st.sampled_from([-np.inf, 0.0, 1.0]), st.floats(-5, 5, width=32)),
    ),
    k=st.integers(1, 15),
)
def test_top_k_matches_full_sort(scores, k):
    idx, val = top_k(scores, k)
    assert idx.shape == val.shape == (scores.shape[0], k)
    for r in range(scores.shape[0]):
        finite = np.flatnonzero(~np.isneginf(scores[r]))
        # reference: sort by (-score, index), keep finite ones
        ref = sorted(finite.tolist(), key=lambda i: (-scores[r, i], i))[:k]
        assert idx[r, : len(ref)].tolist() == ref
        np.testing.assert_array_equal(val[r, : len(ref)], scores[r, ref])
        assert (idx[r, len(ref) :] == -1).all()
        assert np.isneginf(val[r, len(ref) :]).all()


def test_top_k_nan_is_never_returned():
    idx, _val = top_k(np.array([[np.nan, 1.0, np.nan]], dtype=np.float32), 3)
    assert idx.tolist() == [[1, -1, -1]]


# ---------------------------------------------------------------- recommend options
@pytest.fixture
def fitted(blocks):
    return Popularity().fit(blocks), blocks


def test_items_filter_restricts_and_pads(fitted):
    model, _data = fitted
    cand = np.array([3, 5, 7])
    idx, sc = model.recommend([0, 1], k=5, items=cand, exclude_seen=False)
    assert set(idx[idx >= 0].tolist()) <= set(cand.tolist())
    assert (idx[:, 3:] == -1).all() and np.isneginf(sc[:, 3:]).all()
    with pytest.raises(DataValidationError, match="items: index 99"):
        model.recommend([0], items=[99])


def test_exclude_matrix(fitted):
    model, data = fitted
    top, _ = model.recommend([0, 1], k=1, exclude_seen=False)
    excl = sp.csr_matrix(
        (np.ones(2), (np.arange(2), top[:, 0])), shape=(2, data.n_items), dtype=np.float32
    )
    again, _ = model.recommend([0, 1], k=1, exclude_seen=False, exclude=excl)
    assert (again[:, 0] != top[:, 0]).all()
    with pytest.raises(DataValidationError, match="exclude must have shape"):
        model.recommend([0, 1], exclude=excl[:1])


def test_history_rows_are_selected_by_users(fitted):
    model, data = fitted
    hist = data.matrix[:5]
    idx_sub, _ = model.recommend([4, 2], k=3, X=hist)
    idx_all, _ = model.recommend(k=3, X=hist)
    np.testing.assert_array_equal(idx_sub, idx_all[[4, 2]])
    with pytest.raises(DataValidationError, match="rows of X"):
        model.recommend([5], X=hist)


def test_score_items_subset_of_items(fitted):
    model, _ = fitted
    full = model.score_items([0, 1])
    np.testing.assert_array_equal(model.score_items([0, 1], items=[4, 2]), full[:, [4, 2]])


def test_batch_size_validation(fitted):
    model, _ = fitted
    with pytest.raises(DataValidationError, match="batch_size"):
        model.recommend([0], batch_size=0)


def test_users_must_be_integers(fitted):
    model, _ = fitted
    with pytest.raises(DataValidationError, match="integer row indices"):
        model.recommend(["u1"])


# ---------------------------------------------------------------- Popularity
def test_popularity_reference(blocks):
    counts = (blocks.matrix.toarray() > 0).sum(axis=0)
    np.testing.assert_array_equal(Popularity().fit(blocks).item_scores_, counts)
    weighted = Interactions.from_arrays([1, 2, 2], ["a", "a", "b"], [5.0, 1.0, 2.0])
    np.testing.assert_array_equal(
        Popularity(weighting="weight").fit(weighted).item_scores_, [6.0, 2.0]
    )


def test_popularity_time_decay_reference():
    X = Interactions.from_arrays([1, 2, 3], ["old", "old", "new"], timestamps=[0.0, 100.0, 200.0])
    model = Popularity(half_life=100.0).fit(X)
    # "new" (t=200) counts 1; "old" counts 2^-2 + 2^-1
    np.testing.assert_allclose(model.item_scores_, [1.0, 0.75])
    assert model.reference_time_ == 200.0


def test_popularity_partial_fit_equals_full_fit():
    rng = np.random.default_rng(3)
    n = 300
    users = rng.integers(0, 30, n)
    items = rng.integers(0, 12, n)
    ts = np.sort(rng.uniform(0, 1000, n))
    vocab_items = Interactions.from_arrays(users, items).items
    first, second = slice(0, 200), slice(200, n)
    old = Interactions.from_arrays(
        users[first], items[first], timestamps=ts[first], items=vocab_items
    )
    new = Interactions.from_arrays(
        users[second], items[second], timestamps=ts[second], items=vocab_items
    )
    model = Popularity(half_life=250.0).fit(old).partial_fit(new)
    # reference: every (user, item) pair of each log counts once, decayed from its
    # latest timestamp, measured from the newest interaction overall
    t_ref = ts.max()
    expect = np.zeros(vocab_items.__len__())
    for log in (old, new):
        _, cols, _, t = log.to_indices()
        expect += np.bincount(cols, weights=np.exp2(-(t_ref - t) / 250.0), minlength=expect.size)
    assert model.reference_time_ == pytest.approx(t_ref)
    np.testing.assert_allclose(model.item_scores_, expect, rtol=1e-12)
    assert model.n_users_ == len(model.users_) == np.unique(users).size


def test_partial_fit_adds_new_users_and_rejects_new_items(blocks):
    model = Popularity().fit(blocks)
    new = Interactions.from_arrays(["newbie", "newbie", "u0"], ["i1", "i2", "i3"])
    model.partial_fit(new)
    assert model.n_users_ == blocks.n_users + 1
    assert model.users_.index(["newbie"])[0] == blocks.n_users
    row = model.train_matrix_[blocks.n_users]
    assert sorted(model.items_.ids[row.indices].tolist()) == ["i1", "i2"]
    idx, _ = model.recommend([blocks.n_users], k=3)
    assert not np.isin(idx, model.items_.index(["i1", "i2"])).any()
    with pytest.raises(DataValidationError, match="unknown to the model"):
        model.partial_fit(Interactions.from_arrays(["u1"], ["brand-new-item"]))
    with pytest.raises(DataValidationError, match="item columns"):
        model.partial_fit(sp.csr_matrix((2, blocks.n_items + 3), dtype=np.float32))


def test_partial_fit_on_unfitted_model_fits(blocks):
    a = Popularity().partial_fit(blocks)
    b = Popularity().fit(blocks)
    np.testing.assert_array_equal(a.item_scores_, b.item_scores_)


def test_partial_fit_unsupported_model_raises(blocks):
    class Frozen(Recommender):
        def _fit(self, data):
            return {"w_": np.ones(data.X.shape[1])}

        def _score(self, users, X_users):
            return np.tile(self.w_, (X_users.shape[0], 1)).astype(np.float32)

    model = Frozen().fit(blocks)
    with pytest.raises(NotImplementedError, match="does not support partial_fit"):
        model.partial_fit(blocks)


def test_popularity_bad_params(blocks):
    with pytest.raises(ConfigurationError, match="weighting"):
        Popularity(weighting="loud").fit(blocks)
    with pytest.raises(ConfigurationError, match="half_life"):
        Popularity(half_life=-1).fit(blocks)
    with pytest.raises(DataValidationError, match="needs timestamps"):
        Popularity(half_life=10.0).fit(blocks.matrix)


def test_fitted_attribute_set_only_after_success(blocks):
    model = Popularity(weighting="loud")
    with pytest.raises(ConfigurationError):
        model.fit(blocks)
    assert not hasattr(model, "item_scores_") and not hasattr(model, "n_items_")


def test_save_refuses_unserialisable_params(blocks, tmp_path):
    bad = Popularity()
    bad.fit(blocks)
    bad.weighting = {1, 2}
    with pytest.raises(PersistenceError, match="cannot be saved as JSON"):
        bad.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_failed_save_keeps_previous_directory(blocks, tmp_path):
    model = Popularity().fit(blocks)
    model.save(tmp_path / "m")
    before = (tmp_path / "m" / "state.npz").read_bytes()
    model.weighting = {1}
    with pytest.raises(PersistenceError):
        model.save(tmp_path / "m")
    assert (tmp_path / "m" / "state.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
