"""ItemFeatures: the modality container shared by features and recommenders."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avrec.data import Interactions, ItemFeatures, Vocabulary
from avrec.exceptions import DataValidationError, PersistenceError
from avrec.recommenders import Popularity


def make(n=4):
    rng = np.random.default_rng(0)
    return ItemFeatures(
        {"audio": rng.normal(size=(n, 3)), "video": rng.normal(size=(n, 5))},
        items=[f"i{k}" for k in range(n)],
    )


def test_mapping_and_dims():
    f = make()
    assert f.modalities == ["audio", "video"] and list(f) == ["audio", "video"]
    assert f.dims == {"audio": 3, "video": 5} and f.n_items == 4
    assert f["audio"].dtype == np.float32
    with pytest.raises(KeyError, match="no modality 'text'"):
        f["text"]
    with pytest.raises(ValueError):
        f["audio"][0, 0] = 1.0  # read-only


def test_concat_normalize_and_weights():
    f = make()
    plain = f.concat()
    np.testing.assert_allclose(plain, np.hstack([f["audio"], f["video"]]))
    l2 = f.concat(["video", "audio"], normalize="l2", weights={"audio": 2.0})
    np.testing.assert_allclose(np.linalg.norm(l2[:, :5], axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(l2[:, 5:], axis=1), 2.0, rtol=1e-5)
    with pytest.raises(DataValidationError, match="normalize"):
        f.concat(normalize="max")


@settings(max_examples=30, deadline=None)
@given(perm=st.permutations(list(range(6))), drop=st.integers(0, 5))
def test_align_follows_target_order(perm, drop):
    f = make(6)
    target_ids = [f"i{k}" for k in perm if k != drop] + ["unknown"]
    aligned = f.align(Vocabulary(target_ids), missing="zero")
    for row, item in enumerate(target_ids[:-1]):
        np.testing.assert_array_equal(aligned["video"][row], f["video"][int(item[1:])])
    assert not aligned["audio"][-1].any()
    with pytest.raises(DataValidationError, match=r"1 items have no features, e\.g\. 'unknown'"):
        f.align(Vocabulary(target_ids))


def test_save_load_round_trip(tmp_path):
    f = make()
    f.save(tmp_path / "f.npz")
    g = ItemFeatures.load(tmp_path / "f.npz")
    assert g == f and g.modalities == f.modalities
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(PersistenceError):
        ItemFeatures.load(tmp_path / "bad.npz")


def test_select_and_with_modality():
    f = make()
    assert f.select(["video"]).modalities == ["video"]
    g = f.with_modality("text", np.ones((4, 2)))
    assert g.modalities == ["audio", "video", "text"] and f.modalities == ["audio", "video"]


@pytest.mark.parametrize(
    ("modalities", "items", "match"),
    [
        ({}, None, "non-empty mapping"),
        ({"a": np.ones(3)}, None, "must be 2-d"),
        ({"a": np.ones((2, 2)), "b": np.ones((3, 2))}, None, "has 3 rows, expected 2"),
        ({"a": np.full((2, 2), np.nan)}, None, "finite"),
        ({"a:b": np.ones((2, 2))}, None, "without ':'"),
        ({"a": np.ones((2, 2))}, ["x"], "items has 1 ids"),
    ],
)
def test_bad_input(modalities, items, match):
    with pytest.raises(DataValidationError, match=match):
        ItemFeatures(modalities, items)


def test_fit_aligns_features_to_interaction_items():
    X = Interactions.from_arrays(["u1", "u2"], ["i2", "i0"])
    f = make(4)
    model = Popularity().fit(X, item_features=f)
    assert model.n_items_ == 2
    with pytest.raises(DataValidationError, match="no features"):
        Popularity().fit(Interactions.from_arrays(["u1"], ["zzz"]), item_features=f)
    with pytest.raises(DataValidationError, match="item_features has 4 rows"):
        Popularity().fit(X.matrix, item_features=f.concat())


# ---------------------------------------------------------------------- missing modalities
def test_presence_masks_zero_absent_rows_and_round_trip(tmp_path):
    video = np.arange(12, dtype=np.float32).reshape(4, 3) + 1
    f = ItemFeatures(
        {"audio": np.ones((4, 2)), "video": video},
        items=["a", "b", "c", "d"],
        present={"video": [True, False, True, False], "audio": np.ones(4, bool)},
    )
    assert f.has_missing and not make().has_missing
    np.testing.assert_array_equal(f["video"][[1, 3]], 0.0)
    np.testing.assert_array_equal(f["video"][[0, 2]], video[[0, 2]])
    np.testing.assert_array_equal(f.mask("video"), [True, False, True, False])
    np.testing.assert_array_equal(f.mask("audio"), np.ones(4, bool))
    np.testing.assert_array_equal(
        f.presence(["video", "audio"]), np.column_stack([[1, 0, 1, 0], np.ones(4)]).astype(bool)
    )
    mask = f.mask("video")
    mask[:] = False  # a fresh copy
    assert f.mask("video")[0]
    f.save(tmp_path / "f.npz")
    g = ItemFeatures.load(tmp_path / "f.npz")
    assert g == f
    assert g != ItemFeatures({"audio": np.ones((4, 2)), "video": f["video"]}, f.items)
    # select / with_modality / align carry the masks
    np.testing.assert_array_equal(f.select(["video"]).mask("video"), f.mask("video"))
    h = f.with_modality("text", np.ones((4, 1)), present=[1, 1, 0, 1])
    np.testing.assert_array_equal(h.presence(), np.column_stack([np.ones(4), f.mask("video"),
                                                                 [1, 1, 0, 1]]).astype(bool))
    assert not f.with_modality("video", np.ones((4, 3))).has_missing
    aligned = f.align(Vocabulary(["c", "zzz", "b"]), missing="zero")
    np.testing.assert_array_equal(aligned.presence(), [[True, True], [False, False], [True, False]])
    with pytest.raises(KeyError, match="no modality 'text'"):
        f.mask("text")


@pytest.mark.parametrize(
    ("present", "match"),
    [
        ({"text": [True, True]}, "names modality 'text'"),
        ({"a": [True]}, r"present\['a'\] must be 2 bools"),
        ({"a": [0.5, 1.0]}, r"present\['a'\] must be 2 bools"),
        ({"a": [2, 1]}, r"present\['a'\] must be 2 bools"),
        ([True, False], "present must be a mapping"),
    ],
)
def test_bad_presence(present, match):
    with pytest.raises(DataValidationError, match=match):
        ItemFeatures({"a": np.ones((2, 2))}, present=present)
