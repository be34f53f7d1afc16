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
