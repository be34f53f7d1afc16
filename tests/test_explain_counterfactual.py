"""Counterfactuals: the returned removals really change the top recommendation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from known_data import block_interactions, block_item_features

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.explain import Counterfactual, counterfactual
from avrec.recommenders import ALS, EASE, ContentKNN, ItemKNN

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return block_interactions(n_users=40, n_items=24, seed=5)


def _without(row: sp.csr_matrix, removed: np.ndarray) -> sp.csr_matrix:
    dense = row.toarray()
    dense[0, removed] = 0.0
    return sp.csr_matrix(dense)


def _check(model, data, user, k=1):
    row = data.matrix[user]
    cf = counterfactual(model, user, k=k)
    assert isinstance(cf, Counterfactual)
    exclude = sp.csr_matrix(row.toarray() > 0, dtype=np.float32)
    before, _ = model.recommend([0], k=k, X=row, exclude=exclude)
    assert cf.item == before[0, 0]
    if not cf.found:
        return cf
    assert 1 <= cf.removed.size <= row.nnz
    assert set(cf.removed.tolist()) <= set(row.indices.tolist())
    after, _ = model.recommend([0], k=k, X=_without(row, cf.removed), exclude=exclude)
    assert cf.item not in after[0].tolist()  # removing the set really changes the top
    assert after[0].tolist() == cf.new_items.tolist()
    for put_back in cf.removed:  # irreducible: every removed item is needed
        rest = cf.removed[cf.removed != put_back]
        again, _ = model.recommend([0], k=k, X=_without(row, rest), exclude=exclude)
        assert cf.item in again[0].tolist()
    return cf


@pytest.mark.parametrize(
    "model",
    [
        ItemKNN(k=10),
        EASE(l2=5.0),
        ALS(factors=6, iterations=6, random_state=0, verbose=False),
        ContentKNN(),
    ],
    ids=["itemknn", "ease", "als", "contentknn"],
)
def test_removal_changes_the_top_item(model, data):
    model.fit(data, item_features=block_item_features(n_items=24, seed=5))
    found = 0
    for user in range(0, 40, 4):
        found += _check(model, data, user).found
    assert found >= 5


def test_time_decay_uses_the_training_timestamps(data):
    model = ContentKNN(half_life=3e7).fit(data, item_features=block_item_features(24, seed=5))
    for user in range(0, 40, 5):
        cf = counterfactual(model, user)
        assert cf.item == model.recommend([user], k=1)[0][0, 0]  # scored as in training


def test_top_k_and_limits(data):
    model = EASE(l2=5.0).fit(data)
    user = int(np.argmax(np.diff(data.matrix.indptr)))
    cf = _check(model, data, user, k=3)
    assert cf.k == 3 and cf.new_items.shape == (3,)
    assert cf.found and "leaves the top" in repr(cf)


def test_max_removals_bounds_the_search(data):
    model = EASE(l2=5.0).fit(data)
    user = 0  # the greedy search needs three removals to move this user's top item
    full = _check(model, data, user)
    assert full.found and full.removed.size == 3
    for limit in (1, 2):  # too few removals allowed: nothing found, nothing claimed
        limited = counterfactual(model, user, max_removals=limit)
        assert not limited.found
        assert limited.removed.size == 0
        assert limited.item == full.item
        assert limited.new_items.tolist() == limited.original_items.tolist()
        assert "no set of removals found" in repr(limited)
    for limit in (3, 4):
        limited = counterfactual(model, user, max_removals=limit)
        assert limited.found and limited.removed.size <= limit
        assert sorted(limited.removed.tolist()) == sorted(full.removed.tolist())
        assert limited.new_items.tolist() == full.new_items.tolist()


def test_new_history_given_as_X(data):
    model = ItemKNN(k=10).fit(data)
    X_new = data.matrix[[3, 7]]
    cf = counterfactual(model, 1, X=X_new)
    assert cf.history.tolist() == X_new[1].indices.tolist()


def test_bad_arguments(data):
    model = ItemKNN(k=10).fit(data)
    with pytest.raises(ConfigurationError, match="k"):
        counterfactual(model, 0, k=0)
    with pytest.raises(ConfigurationError, match="max_removals"):
        counterfactual(model, 0, max_removals=0)
    with pytest.raises(DataValidationError, match="user"):
        counterfactual(model, 99)
    with pytest.raises(DataValidationError, match="candidate"):
        counterfactual(model, 0, k=data.shape[1])
