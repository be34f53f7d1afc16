"""Interactions: constructors vs plain-Python references, k-core, selections, I/O, bad input."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import interaction_logs, interactions

from avrec.data import Interactions, Vocabulary
from avrec.exceptions import DataValidationError, PersistenceError, UnknownIdError

FAST = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------- references
def reference(log, duplicates="sum", min_rating=None):
    """from_arrays computed with dicts: {(user_id, item_id): (weight, timestamp)}."""
    n = len(log["user_ids"])
    w = log["weights"] if log["weights"] is not None else [1.0] * n
    t = log["timestamps"]
    agg = {}
    for pos in range(n):
        if min_rating is not None and w[pos] < min_rating:
            continue
        key = (log["user_ids"][pos], log["item_ids"][pos])
        wt, tt = float(w[pos]), None if t is None else float(t[pos])
        if key not in agg:
            agg[key] = (wt, tt, tt)  # weight, kept timestamp, timestamp of the kept weight
            continue
        pw, pt, pwt = agg[key]
        if duplicates == "sum":
            nw, nwt = pw + wt, pwt
        elif duplicates == "max":
            nw, nwt = max(pw, wt), pwt
        elif tt is None or tt >= pwt:  # "last": latest time, later input position on ties
            nw, nwt = wt, tt
        else:
            nw, nwt = pw, pwt
        agg[key] = (nw, None if tt is None else max(pt, tt), nwt)
    return {k: v[:2] for k, v in agg.items()}


def as_dict(X):
    """{(user_id, item_id): (weight, timestamp)} of the stored entries."""
    rows, cols, w, t = X.to_indices()
    uids, iids = X.users.to_ids(rows).tolist(), X.items.to_ids(cols).tolist()
    times = [None] * len(w) if t is None else t.tolist()
    return {(u, i): (float(x), s) for u, i, x, s in zip(uids, iids, w.tolist(), times, strict=True)}


def naive_k_core(pairs, min_user, min_item):
    """Peel one violating user or item at a time (a different order than Interactions uses)."""
    pairs = set(pairs)
    while True:
        users, items = {}, {}
        for u, i in pairs:
            users[u] = users.get(u, 0) + 1
            items[i] = items.get(i, 0) + 1
        bad_users = sorted(u for u, c in users.items() if c < min_user)
        bad_items = sorted(i for i, c in items.items() if c < min_item)
        if bad_users:
            pairs = {(u, i) for u, i in pairs if u != bad_users[-1]}
        elif bad_items:
            pairs = {(u, i) for u, i in pairs if i != bad_items[0]}
        else:
            return pairs


def assert_same_dict(got, expected):
    assert got.keys() == expected.keys()
    for key, (w, t) in expected.items():
        assert got[key][0] == pytest.approx(w, rel=1e-6)
        assert got[key][1] == t


# ---------------------------------------------------------------------- properties
@FAST
@given(interaction_logs(), st.sampled_from(["sum", "last", "max"]))
def test_from_arrays_matches_dict_reference(log, duplicates):
    X = Interactions.from_arrays(**log, duplicates=duplicates)
    assert_same_dict(as_dict(X), reference(log, duplicates))
    assert X.users.ids.tolist() == sorted(set(log["user_ids"]))
    assert X.items.ids.tolist() == sorted(set(log["item_ids"]))
    assert X.matrix.dtype == np.float32 and X.matrix.has_canonical_format
    assert (X.timestamps is None) == (log["timestamps"] is None)


@FAST
@given(interaction_logs(weights=True), st.sampled_from([0.5, 2.0, 4.5]))
def test_min_rating_filters_before_combining(log, min_rating):
    expected = reference(log, "sum", min_rating)
    if not expected:
        with pytest.raises(DataValidationError, match="min_rating"):
            Interactions.from_arrays(**log, min_rating=min_rating)
        return
    X = Interactions.from_arrays(**log, min_rating=min_rating)
    assert_same_dict(as_dict(X), expected)


@FAST
@given(interaction_logs(max_size=60), st.integers(1, 3), st.integers(1, 3))
def test_k_core_is_the_maximal_subgraph_meeting_the_thresholds(log, min_user, min_item):
    X = Interactions.from_arrays(**log)
    expected = naive_k_core(as_dict(X), min_user, min_item)
    if not expected:
        with pytest.raises(DataValidationError, match="removed every interaction"):
            X.k_core(min_user, min_item)
        return
    core = X.k_core(min_user, min_item)
    got = as_dict(core)
    assert set(got) == expected
    full = as_dict(X)
    assert all(got[k] == full[k] for k in got)
    assert core.user_counts().min() >= min_user and core.item_counts().min() >= min_item
    assert core.users.ids.tolist() == sorted({u for u, _ in expected})
    assert core.items.ids.tolist() == sorted({i for _, i in expected})


@FAST
@given(interactions(max_users=10), st.data())
def test_select_entries_keeps_vocabularies_and_chosen_entries(X, data):
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=X.nnz, max_size=X.nnz)), bool)
    sub = X.select_entries(mask)
    assert sub.users == X.users and sub.items == X.items and sub.shape == X.shape
    rows, cols, w, t = X.to_indices()
    expected = Interactions.from_indices(
        rows[mask],
        cols[mask],
        w[mask],
        None if t is None else t[mask],
        users=X.users,
        items=X.items,
    )
    assert sub == expected
    assert sub.user_counts().tolist() == np.bincount(rows[mask], minlength=X.n_users).tolist()
    assert X.select_entries(np.ones(X.nnz, bool)) == X


@FAST
@given(interactions(), st.data())
def test_subset_matches_dense_slicing(X, data):
    users = data.draw(st.permutations(range(X.n_users)).map(lambda p: p[: len(p) // 2 + 1]))
    items = data.draw(st.lists(st.booleans(), min_size=X.n_items, max_size=X.n_items))
    items = np.array(items, dtype=bool)
    sub = X.subset(users=users, items=items)
    np.testing.assert_array_equal(
        sub.matrix.toarray(), X.matrix.toarray()[np.ix_(users, np.flatnonzero(items))]
    )
    assert sub.users.ids.tolist() == X.users.ids[users].tolist()
    assert sub.items.ids.tolist() == X.items.ids[items].tolist()
    full = as_dict(X)
    assert all(full[k] == v for k, v in as_dict(sub).items())
    assert X.subset() == X


@FAST
@given(interactions())
def test_round_trips_save_frame_indices_csr(X):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npz"
        X.save(path)
        assert Interactions.load(path) == X
    frame = X.to_frame()
    back = Interactions.from_frame(
        frame,
        weight_col="weight",
        timestamp_col="timestamp" if X.timestamps is not None else None,
        users=X.users,
        items=X.items,
    )
    assert back == X
    rows, cols, w, t = X.to_indices()
    assert Interactions.from_indices(rows, cols, w, t, users=X.users, items=X.items) == X
    if X.timestamps is None:
        assert Interactions.from_csr(X.matrix).matrix.nnz == np.count_nonzero(X.matrix.data)


@FAST
@given(interaction_logs(), st.data())
def test_alignment_to_given_vocabularies(log, data):
    known_users = data.draw(st.sets(st.sampled_from(log["user_ids"]), min_size=1))
    users = Vocabulary.from_ids(list(known_users))
    items = Vocabulary.from_ids(log["item_ids"])
    keep = np.array([u in known_users for u in log["user_ids"]])
    dropped = Interactions.from_arrays(**log, users=users, items=items, unknown="drop")
    assert dropped.users == users and dropped.items == items
    sub_log = {
        k: (None if v is None else [x for x, m in zip(v, keep, strict=True) if m])
        for k, v in log.items()
    }
    assert_same_dict(as_dict(dropped), reference(sub_log))
    extended = Interactions.from_arrays(**log, users=users, items=items, unknown="extend")
    assert extended.users.ids.tolist()[: len(users)] == users.ids.tolist()
    assert_same_dict(as_dict(extended), reference(log))
    if not keep.all():
        with pytest.raises(UnknownIdError, match="user_ids"):
            Interactions.from_arrays(**log, users=users, items=items)


# ---------------------------------------------------------------------- examples
def test_timestamps_keep_the_latest_and_last_follows_time():
    X = Interactions.from_arrays(
        ["u", "u", "u"], ["a", "a", "a"], [1.0, 5.0, 2.0], [10, 30, 20], duplicates="last"
    )
    assert X.matrix.data.tolist() == [5.0] and X.timestamps.tolist() == [30.0]
    dates = np.array(["1970-01-02", "1970-01-01"], dtype="datetime64[D]")
    Y = Interactions.from_arrays([1, 2], [1, 1], timestamps=dates)
    assert Y.timestamps.tolist() == [86400.0, 0.0]


def test_input_order_does_not_matter_and_sorted_logs_skip_the_sort():
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 30, 400), rng.integers(0, 20, 400)
    times = rng.integers(0, 5, 400).astype(float)  # many ties
    weights = rng.integers(1, 6, 400).astype(float)
    users, items = Vocabulary(range(30)), Vocabulary(range(20))
    for duplicates in ("sum", "last", "max"):
        X = Interactions.from_indices(
            rows, cols, weights, times, users=users, items=items, duplicates=duplicates
        )
        log = {"user_ids": rows.tolist(), "item_ids": cols.tolist()}
        log |= {"weights": weights, "timestamps": times}
        assert_same_dict(as_dict(X), reference(log, duplicates))
        r, c, w, t = X.to_indices()  # sorted, distinct pairs
        assert Interactions.from_indices(r, c, w, t, users=users, items=items) == X
        p = rng.permutation(r.size)
        assert Interactions.from_indices(r[p], c[p], w[p], t[p], users=users, items=items) == X


def test_constructor_never_modifies_its_input():
    m = sp.csr_matrix(
        (np.ones(3, np.float32), np.array([1, 0, 1]), np.array([0, 3, 3])), shape=(2, 2)
    )
    assert not m.has_canonical_format
    X = Interactions(m, Vocabulary([0, 1]), Vocabulary([0, 1]))
    assert X.matrix.toarray().tolist() == [[1.0, 2.0], [0.0, 0.0]]
    assert m.indices.tolist() == [1, 0, 1]  # the caller's matrix is untouched
    with pytest.raises(DataValidationError, match="canonical"):
        Interactions(m, Vocabulary([0, 1]), Vocabulary([0, 1]), np.zeros(3))


def test_select_entries_with_empty_trailing_rows():
    # regression: np.add.reduceat failed on empty last rows and miscounted empty rows
    X = Interactions.from_indices(
        [1, 1, 3], [0, 1, 1], users=Vocabulary(range(6)), items=Vocabulary(range(2))
    )
    sub = X.select_entries(np.array([False, True, True]))
    assert sub.user_counts().tolist() == [0, 1, 0, 1, 0, 0]
    empty = X.select_entries(np.zeros(3, bool))
    assert empty.nnz == 0 and empty.shape == (6, 2)
    assert X.binarize(5.0).nnz == 0


def test_stats_binarize_repr_eq():
    X = Interactions.from_arrays(["a", "a", "b"], [1, 2, 1], [4.0, 0.0, 2.0], [1, 2, 3])
    assert X.nnz == len(X) == 3  # an explicit zero weight is a stored interaction
    stats = X.stats()
    assert stats["n_users"] == 2 and stats["user_interactions_max"] == 2
    assert stats["item_interactions_min"] == 1 and stats["has_timestamps"] is True
    assert stats["density"] == pytest.approx(0.75)
    B = X.binarize(1.0)
    assert B.matrix.toarray().tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert B.timestamps.tolist() == [1.0, 3.0]
    assert X.matrix.data.tolist() == [4.0, 0.0, 2.0]  # binarize copied
    assert repr(X) == "Interactions(n_users=2, n_items=2, nnz=3, density=0.75, timestamps=True)"
    no_times = Interactions.from_arrays(["a", "a", "b"], [1, 2, 1], [4.0, 0.0, 2.0])
    assert no_times != X
    assert X != "not interactions"
    assert X.to_csr() is X.matrix


def test_from_frame_pandas_dtypes():
    frame = pd.DataFrame(
        {
            "user": pd.array(["a", "b", "a"], dtype="string"),
            "item": pd.array([1, 2, 2], dtype="Int64"),
            "w": pd.array([1.5, 2.0, 1.0], dtype="Float64"),
            "t": pd.to_datetime([0, 1, 2], unit="s", utc=True),
        }
    )
    X = Interactions.from_frame(
        frame, user_col="user", item_col="item", weight_col="w", timestamp_col="t"
    )
    assert X.users.ids.tolist() == ["a", "b"] and X.items.ids.dtype == np.int64
    assert X.matrix.toarray().tolist() == [[1.5, 1.0], [0.0, 2.0]]
    assert X.timestamps.tolist() == [0.0, 2.0, 1.0]
    cat = pd.DataFrame({"user_id": pd.Categorical(["x", "y"]), "item_id": [1, 1]})
    assert Interactions.from_frame(cat).users.ids.tolist() == ["x", "y"]
    with_na = pd.DataFrame({"user_id": ["a", None], "item_id": [1, 2]})
    with pytest.raises(DataValidationError, match="column 'user_id' has missing values"):
        Interactions.from_frame(with_na)
    with_na = pd.DataFrame({"user_id": [1, 2], "item_id": pd.array([1, None], dtype="Int64")})
    with pytest.raises(DataValidationError, match="column 'item_id' has missing values"):
        Interactions.from_frame(with_na)
    with pytest.raises(DataValidationError, match="weight_col='rating' is not a column"):
        Interactions.from_frame(frame, user_col="user", item_col="item", weight_col="rating")
    with pytest.raises(DataValidationError, match="user_col='user_id' is not a column"):
        Interactions.from_frame({"item_id": [1]})


CSV = "user_id,item_id,rating,ts\nu1,10,4.5,100\nu2,10,3,200\nu1,11,5,150\nu1,10,1,300\n"


@pytest.mark.parametrize("with_pandas", [True, False])
def test_from_csv_with_and_without_pandas(tmp_path, monkeypatch, with_pandas):
    if not with_pandas:
        monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    path = tmp_path / "log.csv"
    path.write_text(CSV)
    X = Interactions.from_csv(path, weight_col="rating", timestamp_col="ts", duplicates="last")
    assert X.users.ids.tolist() == ["u1", "u2"] and X.items.ids.tolist() == [10, 11]
    assert X.matrix.toarray().tolist() == [[1.0, 5.0], [3.0, 0.0]]
    assert X.timestamps.tolist() == [300.0, 150.0, 200.0]
    tsv = tmp_path / "log.tsv"
    tsv.write_text(CSV.replace(",", "\t"))
    assert Interactions.from_csv(tsv, sep="\t", weight_col="rating", timestamp_col="ts") == (
        Interactions.from_csv(path, weight_col="rating", timestamp_col="ts")
    )
    bad = {
        "missing.csv": None,
        "empty.csv": "",
        "header_only.csv": "user_id,item_id\n",
        "nocol.csv": "user,item_id\n1,2\n",
        "hole.csv": "user_id,item_id\n1,2\n,3\n",
        "nan_weight.csv": "user_id,item_id,rating\n1,2,\n",
        "text_weight.csv": "user_id,item_id,rating\n1,2,good\n",
    }
    for name, text in bad.items():
        if text is not None:
            (tmp_path / name).write_text(text)
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        Interactions.from_csv(tmp_path / "missing.csv")
    with pytest.raises(DataValidationError, match="empty"):
        Interactions.from_csv(tmp_path / "empty.csv")
    with pytest.raises(DataValidationError, match="no interactions"):
        Interactions.from_csv(tmp_path / "header_only.csv")
    with pytest.raises(DataValidationError, match=r"\['user_id'\] not found"):
        Interactions.from_csv(tmp_path / "nocol.csv")
    with pytest.raises(DataValidationError, match="'user_id' has missing values"):
        Interactions.from_csv(tmp_path / "hole.csv")
    with pytest.raises(DataValidationError, match=r"(weights contains NaN|'rating' has missing)"):
        Interactions.from_csv(tmp_path / "nan_weight.csv", weight_col="rating")
    with pytest.raises(DataValidationError, match="weights must be numeric"):
        Interactions.from_csv(tmp_path / "text_weight.csv", weight_col="rating")


def test_csv_fallback_reports_short_rows(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    path = tmp_path / "short.csv"
    path.write_text("user_id,item_id,rating\n1,2,3\n4\n")
    with pytest.raises(DataValidationError, match="line 3 has 1 fields"):
        Interactions.from_csv(path, weight_col="rating")


def test_from_csr_inputs():
    dense = np.array([[0, 2], [1, 0], [0, 0]])
    X = Interactions.from_csr(dense, user_ids=["a", "b", "c"])
    assert X.shape == (3, 2) and X.nnz == 2 and X.items.ids.tolist() == [0, 1]
    coo = sp.coo_matrix((np.array([1.0, 1.0, 0.0]), (np.array([0, 0, 1]), np.array([1, 1, 0]))))
    Y = Interactions.from_csr(coo)
    assert Y.matrix.toarray().tolist() == [[0.0, 2.0], [0.0, 0.0]]  # summed, zero dropped
    assert Interactions.from_csr(sp.csr_array(dense)).shape == (3, 2)
    with pytest.raises(DataValidationError, match="user_ids has length 2, expected 3"):
        Interactions.from_csr(dense, user_ids=["a", "b"])
    with pytest.raises(DataValidationError, match="item_ids has length 3, expected 2"):
        Interactions.from_csr(dense, item_ids=[1, 2, 3])
    with pytest.raises(DataValidationError, match="matrix data contains NaN"):
        Interactions.from_csr(np.array([[np.nan, 1.0]]))
    with pytest.raises(DataValidationError, match="matrix data must be non-negative"):
        Interactions.from_csr(sp.csr_matrix(np.array([[-1.0]])))
    with pytest.raises(DataValidationError, match="2-d numeric"):
        Interactions.from_csr(np.array(["a"]))
    with pytest.raises(DataValidationError, match="timestamps has length 1, expected 2"):
        Interactions.from_csr(dense, timestamps=[1.0])


BASE = {"user_ids": ["a", "b"], "item_ids": ["x", "y"]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weights": [1.0, np.nan]}, "weights contains NaN"),
        ({"weights": [1.0, np.inf]}, "weights contains NaN or infinite"),
        ({"weights": [1.0, -2.0]}, "weights must be non-negative"),
        ({"weights": [1.0]}, "weights has length 1, expected 2"),
        ({"weights": ["a", "b"]}, "weights must be numeric"),
        ({"weights": [[1.0, 2.0]]}, "weights must be 1-d"),
        ({"timestamps": [1.0]}, "timestamps has length 1"),
        ({"timestamps": [1.0, np.nan]}, "timestamps contains NaN"),
        ({"timestamps": ["x", "y"]}, "timestamps must be numeric"),
        ({"timestamps": np.array(["NaT", "2020-01-01"], dtype="datetime64[s]")}, "NaT"),
        ({"item_ids": ["x"]}, "item_ids has length 1"),
        ({"user_ids": ["a", None]}, "user_ids contains missing ids"),
        ({"item_ids": [1.0, np.nan]}, "item_ids contains NaN"),
        ({"user_ids": [], "item_ids": []}, "no interactions"),
        ({"duplicates": "first"}, "duplicates must be"),
        ({"unknown": "ignore", "users": Vocabulary(["a", "b"])}, "unknown must be"),
        ({"users": Vocabulary(["a"])}, "user_ids: id 'b' is not in the given vocabulary"),
        ({"items": Vocabulary(["z"]), "unknown": "drop"}, "no interactions left"),
        ({"weights": [1.0, 2.0], "min_rating": 3}, "no interactions left after min_rating"),
        ({"users": ["a", "b"]}, "expected a Vocabulary"),
    ],
)
def test_from_arrays_bad_input_names_the_field(kwargs, match):
    with pytest.raises(DataValidationError, match=match):
        Interactions.from_arrays(**{**BASE, **kwargs})


V3 = Vocabulary(range(3))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([0, 3], [0, 0]), r"user_indices: index 3 is out of range \[0, 3\)"),
        (([0, 0], [-1, 0]), "item_indices: index -1 is out of range"),
        (([0.5], [0]), "user_indices must hold integers"),
        ((["0"], [0]), "user_indices must hold integers"),
        (([[0]], [0]), "user_indices must be 1-d"),
        (([0, 1], [0]), "user_indices has length 2 but item_indices has length 1"),
    ],
)
def test_from_indices_bad_input_names_the_field(args, match):
    with pytest.raises(DataValidationError, match=match):
        Interactions.from_indices(*args, users=V3, items=V3)


def test_other_bad_input():
    X = Interactions.from_arrays(["a", "b"], ["x", "y"])
    with pytest.raises(DataValidationError, match="mask must be a boolean array of shape"):
        X.select_entries([1, 0])
    with pytest.raises(DataValidationError, match="users must not repeat"):
        X.subset(users=[0, 0])
    with pytest.raises(DataValidationError, match=r"items mask must have shape \(2,\)"):
        X.subset(items=[True])
    with pytest.raises(DataValidationError, match="users: index 5 is out of range"):
        X.subset(users=[5])
    with pytest.raises(DataValidationError, match="min_user_interactions must be"):
        X.k_core(-1, 1)
    with pytest.raises(DataValidationError, match="min_item_interactions must be"):
        X.k_core(1, 1.5)
    with pytest.raises(DataValidationError, match="matrix must be a scipy sparse"):
        Interactions(np.eye(2), X.users, X.items)
    with pytest.raises(DataValidationError, match="users and items must be Vocabulary"):
        Interactions(X.matrix, ["a", "b"], X.items)
    with pytest.raises(DataValidationError, match=r"matrix has shape \(2, 2\)"):
        Interactions(X.matrix, Vocabulary(["a"]), X.items)


def test_load_rejects_bad_files(tmp_path):
    X = Interactions.from_arrays(["a"], ["x"], timestamps=[1.0])
    with pytest.raises(PersistenceError, match="not found"):
        Interactions.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(PersistenceError, match="missing"):
        Interactions.load(tmp_path / "other.npz")
    X.save(tmp_path / "x.npz")
    arrays = dict(np.load(tmp_path / "x.npz"))
    np.savez(tmp_path / "future.npz", **{**arrays, "format_version": np.array(99)})
    with pytest.raises(PersistenceError, match="format version 99"):
        Interactions.load(tmp_path / "future.npz")
    np.savez(tmp_path / "corrupt.npz", **{**arrays, "data": np.array([-1.0], np.float32)})
    with pytest.raises(PersistenceError, match="corrupt"):
        Interactions.load(tmp_path / "corrupt.npz")
