"""Faithfulness: removing items in attribution order lowers the score faster than at random."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from known_data import block_interactions

from avrec.exceptions import DataValidationError
from avrec.explain import deletion_curve, explain_recommendation, faithfulness
from avrec.recommenders import ALS, EASE, ItemKNN

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return block_interactions(n_users=40, n_items=24, seed=7)


def test_deletion_curve_matches_rescoring(data):
    model = EASE(l2=5.0).fit(data)
    user = int(np.argmax(np.diff(data.matrix.indptr)))
    exp = explain_recommendation(model, user, 3)
    curve = deletion_curve(model, user, 3, exp.items)
    assert curve.shape == (exp.items.size + 1,)
    assert curve[0] == pytest.approx(exp.score, rel=1e-5)
    assert curve[-1] == pytest.approx(0.0, abs=1e-6)
    # an additive model: each step removes exactly that item's contribution
    assert np.allclose(-np.diff(curve), exp.contributions, atol=1e-5)


@pytest.mark.parametrize("model", [ItemKNN(k=10), EASE(l2=5.0)], ids=["itemknn", "ease"])
def test_attribution_order_beats_random(model, data):
    model.fit(data)
    result = faithfulness(model, np.arange(0, 40, 2), n_random=5, random_state=0)
    assert result.mean_area > 0.05
    valid = ~np.isnan(result.areas)
    assert valid.sum() >= 10
    assert np.all(result.areas[valid] >= -1e-6)  # sorted removal is optimal for sums
    assert np.all(result.attribution_curve <= result.random_curve + 1e-9)
    assert result.grid[0] == 0 and result.grid[-1] == 1
    assert result.attribution_curve[0] == pytest.approx(1.0)
    assert result.attribution_curve[-1] == pytest.approx(0.0)


def test_als_and_reproducibility(data):
    model = ALS(factors=6, iterations=6, random_state=0, verbose=False).fit(data)
    users = np.arange(0, 40, 4)
    a = faithfulness(model, users, n_random=3, random_state=1)
    b = faithfulness(model, users, n_random=3, random_state=1)
    assert a.mean_area == b.mean_area and np.isfinite(a.mean_area)
    assert a.mean_area > 0


def test_custom_items_attribution_and_errors(data):
    model = ItemKNN(k=10).fit(data)
    user = int(np.argmax(np.diff(data.matrix.indptr)))

    def reverse(model, user, item, X):
        return explain_recommendation(model, user, item, X=X).items[::-1]

    top = int(model.recommend([user], k=1)[0][0, 0])
    worst = faithfulness(model, [user], items=[top], attribution=reverse, random_state=0)
    assert worst.explained_items.tolist() == [top] and worst.mean_area < 0
    with pytest.raises(DataValidationError, match="not in the user's history"):
        deletion_curve(model, user, 5, [999])
    with pytest.raises(DataValidationError, match="repeats"):
        hist = data.matrix[user].indices
        deletion_curve(model, user, 5, [hist[0], hist[0]])
    with pytest.raises(DataValidationError, match="one entry per user"):
        faithfulness(model, [0, 1], items=[3])
    with pytest.raises(DataValidationError, match="non-empty"):
        faithfulness(model, [])
