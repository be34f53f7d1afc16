"""make_interactions: size, reproducibility, popularity tail, learnable cluster structure."""

from __future__ import annotations

import numpy as np
import pytest

from avrec.data import Interactions, make_interactions, random_split
from avrec.exceptions import ConfigurationError, DataValidationError


def recall_at_10(scores, train, test):
    """Mean recall@10 over users with test items; seen items excluded."""
    scores = np.array(scores, dtype=np.float64)
    scores[train.matrix.toarray() > 0] = -np.inf
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    truth = test.matrix.toarray() > 0
    hits = np.take_along_axis(truth, top, axis=1).sum(axis=1)
    n_test = truth.sum(axis=1)
    users = n_test > 0
    return float(np.mean(hits[users] / np.minimum(n_test[users], 10)))


@pytest.mark.parametrize(
    ("n_users", "n_items", "density"), [(1000, 500, 0.02), (300, 2000, 0.005), (50, 40, 0.3)]
)
def test_shape_density_weights_and_timestamps(n_users, n_items, density):
    X = make_interactions(n_users, n_items, density, random_state=0)
    assert isinstance(X, Interactions) and X.shape == (n_users, n_items)
    assert X.density == pytest.approx(density, rel=0.03)
    assert X.users.ids.tolist() == list(range(n_users))
    assert X.user_counts().min() >= 1 and X.user_counts().max() <= n_items // 2
    assert np.all(X.matrix.data == 1.0) and X.matrix.has_canonical_format
    t = X.timestamps
    assert t is not None and np.all(t == np.floor(t))
    assert t.min() >= 1.5e9 and t.max() <= 1.5e9 + 3 * 365 * 86400
    assert make_interactions(n_users, n_items, density, timestamps=False).timestamps is None


def test_reproducible_with_a_seed_and_different_across_seeds():
    a = make_interactions(300, 200, random_state=7)
    assert a == make_interactions(300, 200, random_state=7)
    assert a == make_interactions(300, 200, random_state=np.random.default_rng(7))
    assert a != make_interactions(300, 200, random_state=8)
    assert make_interactions(300, 200) != make_interactions(300, 200)  # fresh entropy


def test_item_popularity_is_heavy_tailed():
    X = make_interactions(2000, 1000, density=0.01, random_state=1)
    counts = np.sort(X.item_counts())[::-1]
    assert counts[:100].sum() > 0.3 * counts.sum()
    flat = make_interactions(2000, 1000, density=0.01, popularity_exponent=0.0, random_state=1)
    flat_counts = np.sort(flat.item_counts())[::-1]
    assert flat_counts[:100].sum() < 0.2 * flat_counts.sum()


def test_ground_truth_clusters():
    X, users, items = make_interactions(
        500, 300, 0.05, n_clusters=5, cluster_strength=0.8, return_clusters=True, random_state=2
    )
    assert users.shape == (500,) and items.shape == (300,)
    assert np.bincount(items).tolist() == [60] * 5 and np.bincount(users).tolist() == [100] * 5
    rows, cols, _, _ = X.to_indices()
    same = np.mean(users[rows] == items[cols])
    assert 0.7 < same < 0.9  # 0.8 from the cluster + 0.2 / 5 by chance, less duplicates


def item_cosine_scores(train):
    """A cheap structure learner: item-item cosine similarity of co-occurrence counts."""
    A = train.matrix.astype(np.float64)
    cooccurrence = (A.T @ A).toarray()
    np.fill_diagonal(cooccurrence, 0.0)
    norm = np.sqrt(np.maximum(train.item_counts(), 1))
    return A @ (cooccurrence / norm[:, None] / norm[None, :])


def popularity_scores(train):
    return np.tile(train.item_counts(), (train.n_users, 1))


def test_cluster_structure_beats_popularity():
    X = make_interactions(800, 400, density=0.05, n_clusters=8, random_state=3)
    train, test = random_split(X, test_size=0.2, random_state=0)
    structure = recall_at_10(item_cosine_scores(train), train, test)
    popularity = recall_at_10(popularity_scores(train), train, test)
    assert structure > 1.5 * popularity, (structure, popularity)  # measured: 0.42 vs 0.24
    # without clusters there is nothing to learn beyond popularity
    Y = make_interactions(800, 400, density=0.05, cluster_strength=0.0, random_state=3)
    train, test = random_split(Y, test_size=0.2, random_state=0)
    structure = recall_at_10(item_cosine_scores(train), train, test)
    popularity = recall_at_10(popularity_scores(train), train, test)
    assert structure < 1.1 * popularity, (structure, popularity)


def test_a_million_interactions_at_movielens_1m_shape():
    X = make_interactions(6040, 3706, density=1_000_209 / (6040 * 3706), random_state=0)
    assert abs(X.nnz - 1_000_209) < 2000


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_users": 0}, "n_users must be a positive int"),
        ({"n_items": 2.5}, "n_items must be a positive int"),
        ({"n_clusters": True}, "n_clusters must be a positive int"),
        ({"n_items": 4, "n_clusters": 5}, "n_clusters=5 exceeds n_items=4"),
        ({"density": 0.0}, r"density must be a real number in \(0.0, 0.5\]"),
        ({"density": 0.6}, "density must be"),
        ({"density": float("nan")}, "density must be"),
        ({"cluster_strength": 1.5}, r"cluster_strength must be a real number in \[0.0, 1.0\]"),
        ({"popularity_exponent": -1.0}, "popularity_exponent must be"),
        ({"activity_spread": "1"}, "activity_spread must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(DataValidationError, match=match):
        make_interactions(**kwargs)


def test_bad_random_state():
    with pytest.raises(ConfigurationError, match="random_state"):
        make_interactions(10, 10, random_state="seed")
