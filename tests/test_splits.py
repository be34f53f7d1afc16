"""Splitters: partition property, per-user fractions, recency, time cut, cold items, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import interactions

from avrec.data import (
    ColdItemSplit,
    Interactions,
    TrainTestSplit,
    cold_item_split,
    leave_last_out,
    make_interactions,
    random_split,
    temporal_split,
)
from avrec.exceptions import DataValidationError, DataWarning

FAST = settings(max_examples=50, deadline=None)
LOGS = interactions(max_users=6, max_items=10, max_size=50, timestamps=True)


def entries(X):
    """{(row, col): (weight, timestamp)} of the stored entries."""
    rows, cols, w, t = X.to_indices()
    times = [None] * len(w) if t is None else t.tolist()
    return {
        (r, c): (x, s)
        for r, c, x, s in zip(rows.tolist(), cols.tolist(), w.tolist(), times, strict=True)
    }


def assert_partition(X, train, test):
    assert train.users == X.users and test.users == X.users
    assert train.items == X.items and test.items == X.items
    a, b = entries(train), entries(test)
    assert not a.keys() & b.keys()
    assert {**a, **b} == entries(X)


def run(split, X, *args, **kwargs):
    """Run a split that may legitimately leave one side empty on tiny logs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return split(X, *args, **kwargs)


@FAST
@given(LOGS, st.sampled_from([0.1, 0.3, 0.5, 0.9]), st.integers(0, 2), st.integers(0, 99))
def test_random_split_partitions_and_holds_out_the_fraction_per_user(X, size, min_train, seed):
    train, test = run(random_split, X, size, min_train=min_train, random_state=seed)
    assert_partition(X, train, test)
    n = X.user_counts()
    n_test = test.user_counts()
    cap = np.maximum(n - min_train, 0)
    assert np.all(n_test <= cap)
    # each user's count is size * n rounded up or down (unless min_train caps it)
    assert np.all((n_test >= np.minimum(np.floor(size * n), cap)) & (n_test <= np.ceil(size * n)))
    again = run(random_split, X, size, min_train=min_train, random_state=seed)
    assert again.train == train and again.test == test


@FAST
@given(LOGS, st.integers(1, 3))
def test_leave_last_out_takes_each_users_latest(X, n):
    train, test = run(leave_last_out, X, n)
    assert_partition(X, train, test)
    rows, cols, _, t = X.to_indices()
    for user in range(X.n_users):
        mine = [(t[k], cols[k]) for k in np.flatnonzero(rows == user)]
        got = sorted(c for c in test.matrix[user].indices.tolist())
        want = sorted(c for _, c in sorted(mine)[-n:]) if len(mine) > n else []
        assert got == want


@FAST
@given(LOGS, st.sampled_from([0.2, 0.5, 0.8]))
def test_temporal_split_cuts_once_in_time(X, size):
    train, test = run(temporal_split, X, size)
    assert_partition(X, train, test)
    if train.nnz and test.nnz:
        assert train.timestamps.max() < test.timestamps.min()
    assert test.nnz >= min(X.nnz - 1, np.floor(size * X.nnz))  # ties at the cut go to test
    cut = float(np.median(X.timestamps))
    train, test = run(temporal_split, X, at=cut)
    assert np.all(train.timestamps < cut) and np.all(test.timestamps >= cut)


@FAST
@given(LOGS, st.sampled_from([0.2, 0.5]), st.integers(0, 99))
def test_cold_items_have_no_train_interactions(X, size, seed):
    if np.count_nonzero(X.item_counts()) < 2:
        with pytest.raises(DataValidationError, match="at least two items"):
            cold_item_split(X, size, random_state=seed)
        return
    train, test, cold = cold_item_split(X, size, random_state=seed)
    assert_partition(X, train, test)
    assert np.all(train.item_counts()[cold] == 0)
    assert np.all(test.item_counts()[cold] == X.item_counts()[cold])
    warm = np.setdiff1d(np.arange(X.n_items), cold)
    assert np.all(test.item_counts()[warm] == 0)
    assert cold.size == min(
        max(1, round(size * np.count_nonzero(X.item_counts()))),
        np.count_nonzero(X.item_counts()) - 1,
    )
    assert np.all(X.item_counts()[cold] > 0) and np.all(np.diff(cold) > 0)


def test_results_are_named_tuples_and_reproducible():
    X = make_interactions(200, 100, density=0.1, random_state=0)
    split = random_split(X, random_state=1)
    assert isinstance(split, TrainTestSplit) and split.train is split[0]
    assert split.test.nnz / X.nnz == pytest.approx(0.2, abs=0.02)
    assert random_split(X, random_state=2).test != split.test
    gen_a, gen_b = np.random.default_rng(5), np.random.default_rng(5)
    assert random_split(X, random_state=gen_a) == random_split(X, random_state=gen_b)
    cold = cold_item_split(X, 0.1, random_state=3)
    assert isinstance(cold, ColdItemSplit) and cold.cold_items.dtype == np.int64
    assert cold_item_split(X, 0.1, random_state=3).cold_items.tolist() == cold.cold_items.tolist()
    assert cold_item_split(X, 0.1, random_state=4).cold_items.tolist() != cold.cold_items.tolist()
    assert temporal_split(X).test.nnz / X.nnz == pytest.approx(0.2, abs=0.01)


def test_leave_last_out_fractional_and_wide_timestamps_agree_with_whole_seconds():
    X = make_interactions(100, 50, density=0.2, random_state=4)
    test = leave_last_out(X, n=2).test
    for scaled in (X.timestamps / 7.0, X.timestamps * 100.0):  # lexsort fallback paths
        Y = Interactions(X.matrix, X.users, X.items, scaled)
        assert leave_last_out(Y, n=2).test.matrix.indices.tolist() == test.matrix.indices.tolist()


def test_leave_last_out_ties_are_broken_by_item_index():
    X = Interactions.from_arrays(["u"] * 3, ["a", "b", "c"], timestamps=[5, 5, 1])
    assert X.items.to_ids(leave_last_out(X).test.matrix.indices).tolist() == ["b"]
    assert X.items.to_ids(leave_last_out(X, n=2).test.matrix.indices).tolist() == ["a", "b"]


def test_small_users_stay_in_train():
    X = Interactions.from_arrays(["a", "a", "b"], [1, 2, 1], timestamps=[1, 2, 3])
    train, test = leave_last_out(X)
    assert test.user_counts().tolist() == [1, 0] and train.user_counts().tolist() == [1, 1]
    train, test = random_split(X, 0.5, min_train=1, random_state=0)
    assert test.user_counts()[1] == 0
    with pytest.warns(DataWarning, match="test set empty"):
        leave_last_out(X, n=2)
    with pytest.warns(DataWarning, match="test set empty"):
        random_split(X, 0.5, min_train=2, random_state=0)


def test_temporal_split_options():
    X = Interactions.from_arrays([1, 1, 2, 2], [1, 2, 1, 3], timestamps=[10, 20, 30, 40])
    assert temporal_split(X, 0.25).test.timestamps.tolist() == [40.0]
    day = np.datetime64("1970-01-01T00:00:25")
    assert temporal_split(X, at=day).test.timestamps.tolist() == [30.0, 40.0]
    with pytest.warns(DataWarning, match="test set empty"):
        temporal_split(X, at=100)
    with pytest.warns(DataWarning, match="train set empty"):
        temporal_split(X, at=0)
    with pytest.raises(DataValidationError, match="test_size or at, not both"):
        temporal_split(X, 0.2, at=15)
    with pytest.raises(DataValidationError, match="at must be a number or a datetime64"):
        temporal_split(X, at="yesterday")


def test_sparse_matrix_input():
    m = sp.random(30, 20, density=0.3, format="csr", random_state=0)
    train, test = random_split(m, 0.3, random_state=0)
    np.testing.assert_array_equal(
        (train.matrix + test.matrix).toarray(), m.astype(np.float32).toarray()
    )
    train, test, cold = cold_item_split(m, random_state=0)
    assert train.item_counts()[cold].sum() == 0


NO_TIMES = Interactions.from_arrays([1, 1, 2], [1, 2, 2])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: leave_last_out(NO_TIMES), "timestamps: leave_last_out needs"),
        (lambda: temporal_split(NO_TIMES), "timestamps: temporal_split needs"),
        (lambda: leave_last_out(make_interactions(5, 10, 0.2, random_state=0), n=0), "n must be"),
        (lambda: random_split(NO_TIMES, min_train=-1), "min_train must be"),
        (lambda: random_split([[1, 0]]), "X must be an Interactions"),
        (lambda: cold_item_split(Interactions.from_arrays([1, 2], [1, 1])), "at least two items"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(DataValidationError, match=match):
        call()


@pytest.mark.parametrize("size", [0, 1, 0.0, 1.0, -0.1, 1.5, float("nan"), "0.2", True, None])
@pytest.mark.parametrize("split", [random_split, cold_item_split, temporal_split])
def test_test_size_outside_the_open_unit_interval(split, size):
    X = make_interactions(20, 10, 0.3, random_state=0)
    if split is temporal_split and size is None:
        return  # None means "use the default" there
    with pytest.raises(DataValidationError, match="test_size must be a float in"):
        split(X, size)
