"""Vocabulary: ids <-> rows, unknown ids, order, extend, persistence, bad input."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import id_lists, int_ids, str_ids

from avrec.data import Vocabulary
from avrec.exceptions import DataValidationError, PersistenceError, UnknownIdError

FAST = settings(max_examples=60, deadline=None)


@FAST
@given(id_lists(unique=True))
def test_ids_index_ids_round_trip_in_given_order(ids):
    vocab = Vocabulary(ids)
    assert vocab.ids.tolist() == ids
    assert len(vocab) == len(ids) and list(vocab) == ids
    idx = vocab.index(ids)
    assert idx.dtype == np.int64
    assert idx.tolist() == list(range(len(ids)))
    assert vocab.to_ids(idx).tolist() == ids
    assert all(x in vocab for x in ids)


@FAST
@given(id_lists(min_size=1))
def test_from_ids_sorted_or_first_appearance(ids):
    assert Vocabulary.from_ids(ids).ids.tolist() == sorted(set(ids))
    assert Vocabulary.from_ids(ids, sort=False).ids.tolist() == list(dict.fromkeys(ids))


@FAST
@given(st.data(), st.sampled_from(["int", "str"]))
def test_unknown_ids_map_to_minus_one_or_raise(data, kind):
    ids = data.draw(id_lists(min_size=1, unique=True, kind=kind))
    strategy = int_ids if kind == "int" else str_ids
    query = data.draw(st.lists(strategy, min_size=1, max_size=10))
    vocab = Vocabulary(ids)
    expected = [ids.index(q) if q in ids else -1 for q in query]
    assert vocab.index(query).tolist() == expected
    if -1 in expected:
        first = query[expected.index(-1)]
        with pytest.raises(UnknownIdError, match="not in the vocabulary") as info:
            vocab.index(query, unknown="raise")
        assert f"id {first!r} is not" in str(info.value)
    else:
        assert vocab.index(query, unknown="raise").tolist() == expected


@FAST
@given(st.data(), st.sampled_from(["int", "str"]))
def test_extend_keeps_old_indices_and_appends_in_first_appearance_order(data, kind):
    old = data.draw(id_lists(unique=True, kind=kind))
    more = data.draw(id_lists(kind=kind))
    vocab = Vocabulary(old)
    bigger = vocab.extend(more)
    assert bigger.ids.tolist()[: len(old)] == old
    assert bigger.index(old).tolist() == list(range(len(old)))
    new = [x for x in dict.fromkeys(more) if x not in old]
    assert bigger.ids.tolist()[len(old) :] == new
    if not new:
        assert bigger is vocab


@FAST
@given(id_lists(unique=True))
def test_save_load_and_json_round_trip(ids):
    vocab = Vocabulary(ids)
    assert Vocabulary.from_json(json.loads(json.dumps(vocab.to_json()))) == vocab
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.json"
        vocab.save(path)
        loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.ids.dtype.kind == vocab.ids.dtype.kind


@FAST
@given(
    st.lists(st.integers(-20, 60), min_size=1, max_size=30, unique=True),
    st.lists(st.one_of(st.integers(-30, 70), int_ids), max_size=30),
)
def test_compact_integer_ids_take_the_table_path_with_the_same_answers(ids, query):
    compact = Vocabulary(ids)  # small range: dense id -> index table
    assert compact._dense_table() is not None
    expected = [ids.index(q) if q in ids else -1 for q in query]
    assert compact.index(query).tolist() == expected
    assert Vocabulary.from_ids(ids + ids).ids.tolist() == sorted(ids)
    extremes = [-(2**63), 2**63 - 1]
    assert compact.index(extremes).tolist() == [-1, -1]  # no overflow into the table
    spread = Vocabulary([*ids, 2**62])  # huge range: binary search
    assert spread._dense_table() is None
    assert spread.index(query).tolist() == expected


def test_kinds_do_not_mix():
    assert Vocabulary(["1", "2"]).index([1, 2]).tolist() == [-1, -1]
    assert Vocabulary([1, 2]).index(["1"]).tolist() == [-1]
    assert 1 not in Vocabulary(["1"])
    assert Vocabulary([1]) != Vocabulary(["1"])
    with pytest.raises(DataValidationError, match="cannot extend"):
        Vocabulary([1]).extend(["a"])
    # an empty vocabulary adopts the kind of its first ids
    assert Vocabulary([]).extend(["a"]).ids.tolist() == ["a"]


def test_id_conversions():
    assert Vocabulary([1.0, 2.0]).ids.dtype == np.int64
    assert Vocabulary(np.array([3, 4], dtype=np.uint8)).ids.dtype == np.int64
    assert Vocabulary([b"a", b"b"]).ids.tolist() == ["a", "b"]
    assert Vocabulary(np.array([5, 6], dtype=object)).ids.dtype == np.int64
    assert Vocabulary(np.array(["x", 1], dtype=object)).ids.tolist() == ["x", "1"]
    assert Vocabulary(7).ids.tolist() == [7]
    assert Vocabulary([]).ids.size == 0 and len(Vocabulary([])) == 0
    assert Vocabulary([]).index([1]).tolist() == [-1]


def test_does_not_freeze_the_callers_array():
    ids = np.arange(3)
    names = np.array(["a", "b"])
    Vocabulary(ids)
    Vocabulary(names)
    ids[0] = 9  # regression: the vocabulary used to mark the caller's array read-only
    names[0] = "z"
    vocab = Vocabulary(np.array([1, 2]))
    with pytest.raises(ValueError, match="read-only"):
        vocab.ids[0] = 5
    arr = vocab.to_arrays()
    arr[0] = 5
    assert vocab.ids.tolist() == [1, 2]


def test_repr_eq_hash():
    vocab = Vocabulary(["a", "b", "c", "d"])
    assert repr(vocab) == "Vocabulary(n=4, ids=['a', 'b', 'c', ...])"
    assert vocab == Vocabulary(["a", "b", "c", "d"])
    assert vocab != Vocabulary(["a", "b", "d", "c"])
    assert vocab != ["a", "b", "c", "d"]
    with pytest.raises(TypeError):
        hash(vocab)


@pytest.mark.parametrize(
    ("ids", "match"),
    [
        ([1, 2, 1], "distinct; 1 appears"),
        (["b", "a", "b"], "distinct; 'b' appears"),
        (["a", None], "missing ids"),
        (np.array(["a", np.nan], dtype=object), "missing ids"),
        ([1.0, np.nan], "NaN or infinite"),
        ([1.5], "non-integer"),
        ([[1, 2]], "must be 1-d"),
        ([True, False], "booleans"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "integers or strings"),
    ],
)
def test_bad_ids_raise(ids, match):
    with pytest.raises(DataValidationError, match=match):
        Vocabulary(ids)


def test_bad_lookups_raise():
    vocab = Vocabulary(["a", "b"])
    with pytest.raises(DataValidationError, match="indices must lie in"):
        vocab.to_ids([0, 2])
    with pytest.raises(DataValidationError, match="indices must lie in"):
        vocab.to_ids([-1])
    with pytest.raises(DataValidationError, match="indices must be integers"):
        vocab.to_ids([0.0])
    with pytest.raises(DataValidationError, match="unknown must be"):
        vocab.index(["a"], unknown="drop")
    with pytest.raises(DataValidationError, match="missing ids"):
        vocab.index([None])
    assert None not in vocab


def test_bad_saved_vocabularies(tmp_path):
    with pytest.raises(PersistenceError, match="missing"):
        Vocabulary.from_json({"ids": [1]})
    with pytest.raises(PersistenceError, match="kind"):
        Vocabulary.from_json({"kind": "float", "ids": [1.5]})
    with pytest.raises(PersistenceError, match="not a saved Vocabulary"):
        Vocabulary.from_json({"kind": "int", "ids": [1, 1]})
    with pytest.raises(PersistenceError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PersistenceError, match="not valid JSON"):
        Vocabulary.load(tmp_path / "bad.json")
    assert Vocabulary.from_json({"kind": "str", "ids": []}) == Vocabulary(np.array([], dtype=str))
