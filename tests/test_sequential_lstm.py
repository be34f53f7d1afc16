"""SequentialLSTM: next-item accuracy, order, cold items, partial_fit, padding, seeds, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from avrec.data import Interactions, ItemFeatures, Vocabulary, leave_last_out
from avrec.evaluation import evaluate
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders import ItemKNN, Popularity, SequentialLSTM
from avrec.recommenders.sequential._network import SequenceNet
from avrec.recommenders.sequential._sequences import (
    append_keys,
    merge_keys,
    padded_sequences,
    position_keys,
)

torch.set_num_threads(1)

FAST = {
    "embedding_dim": 32,
    "hidden_size": 32,
    "epochs": 20,
    "batch_size": 32,
    "learning_rate": 0.01,
    "device": "cpu",
    "verbose": False,
}


def markov_interactions(
    n_users: int = 200,
    n_items: int = 30,
    length: int = 15,
    p_next: float = 0.85,
    seed: int = 0,
    items: np.ndarray | None = None,
) -> Interactions:
    """Each user walks a cycle of items: after ``i`` comes ``i + 1`` with probability ``p_next``.

    Otherwise the next item is drawn uniformly. ``items`` (default
    ``0 .. n_items-1``) is the cycle; the vocabulary always holds all
    ``n_items`` ids. Timestamps follow the walk, so the order is known.
    """
    rng = np.random.default_rng(seed)
    cycle = np.arange(n_items) if items is None else np.asarray(items)
    u, i, t = [], [], []
    for user in range(n_users):
        pos = int(rng.integers(cycle.size))
        for step in range(length):
            u.append(user)
            i.append(int(cycle[pos]))
            t.append(1000.0 * user + step)
            pos = (pos + 1) % cycle.size if rng.random() < p_next else int(rng.integers(cycle.size))
    return Interactions.from_arrays(
        u, i, timestamps=t, duplicates="last", items=Vocabulary(np.arange(n_items))
    )


def metrics(model, train, test) -> tuple[float, float]:
    result = evaluate(model, train, test, k=5, metrics=("hit_rate", "ndcg"))
    return result["hit_rate@5"], result["ndcg@5"]


def hit_rate(idx: np.ndarray, test: sp.csr_matrix) -> float:
    truth = test.toarray() > 0
    rows = np.flatnonzero(truth.any(axis=1))
    return float(truth[rows[:, None], np.maximum(idx[rows], 0)].any(axis=1).mean())


@pytest.fixture(scope="module")
def split():
    return leave_last_out(markov_interactions())


@pytest.fixture(scope="module")
def fitted(split):
    train, _ = split
    return SequentialLSTM(random_state=0, **FAST).fit(train)


# ---------------------------------------------------------------------- accuracy and order
def test_next_item_beats_popularity_and_itemknn(split, fitted):
    train, test = split
    ours = metrics(fitted, train, test)
    pop = metrics(Popularity().fit(train), train, test)
    knn = metrics(ItemKNN(k=20).fit(train), train, test)
    assert ours[0] > 2.5 * pop[0], (ours, pop)
    assert ours[0] > knn[0] + 0.1, (ours, knn)
    assert ours[1] > knn[1] + 0.1, (ours, knn)
    assert fitted.loss_history_[-1] < 0.5 * fitted.loss_history_[0]
    assert fitted.ordered_by_time_


def test_order_matters(split, fitted):
    train, test = split
    ordered = metrics(fitted, train, test)
    rng = np.random.default_rng(1)
    shuffled = Interactions(
        train.matrix, train.users, train.items, rng.permutation(train.timestamps)
    )
    lost = metrics(SequentialLSTM(random_state=0, **FAST).fit(shuffled), shuffled, test)
    assert lost[0] < ordered[0] - 0.2, (ordered, lost)


def test_sampled_softmax_learns(split):
    train, test = split
    model = SequentialLSTM(loss="sampled", n_negatives=8, random_state=0, **FAST).fit(train)
    pop = metrics(Popularity().fit(train), train, test)
    assert metrics(model, train, test)[0] > 2.5 * pop[0]


def test_stacked_layers_with_dropout_run(split):
    train, _ = split
    params = {**FAST, "epochs": 2}
    model = SequentialLSTM(num_layers=2, dropout=0.3, random_state=0, **params).fit(train)
    assert model.loss_history_.shape == (2,)
    assert np.isfinite(model.score_items([0, 1])).all()


# ---------------------------------------------------------------------- order of histories
def test_without_timestamps_uses_index_order_and_warns(split, caplog):
    train, _ = split
    small = train.subset(users=np.arange(40))
    params = {**FAST, "epochs": 3}
    with caplog.at_level(logging.WARNING, logger="avrec.recommenders.sequential._lstm"):
        plain = SequentialLSTM(random_state=0, **params).fit(small.matrix)
    assert "no timestamps" in caplog.text
    assert not plain.ordered_by_time_
    by_index = Interactions(small.matrix, small.users, small.items, small.matrix.indices * 1.0)
    timed = SequentialLSTM(random_state=0, **params).fit(by_index)
    np.testing.assert_array_equal(plain.weights_, timed.weights_)


def test_histories_given_as_x_follow_their_timestamps(split, fitted):
    train, _ = split
    rows = np.arange(10)
    own = fitted.score_items(rows)
    hist = train.subset(users=rows)
    np.testing.assert_allclose(fitted.score_items(X=hist), own, rtol=1e-6)
    reversed_ = Interactions(hist.matrix, hist.users, hist.items, -hist.timestamps)
    assert not np.allclose(fitted.score_items(X=reversed_), own, atol=1e-3)
    # a matrix has no timestamps: it is read in item index order, like timestamps = column
    by_index = Interactions(hist.matrix, hist.users, hist.items, hist.matrix.indices * 1.0)
    np.testing.assert_array_equal(fitted.score_items(X=hist.matrix), fitted.score_items(X=by_index))
    # the user's own history predicts the next item of the chain
    last = [
        hist.matrix.indices[
            hist.matrix.indptr[u]
            + np.argmax(hist.timestamps[hist.matrix.indptr[u] : hist.matrix.indptr[u + 1]])
        ]
        for u in range(10)
    ]
    top, _ = fitted.recommend(X=hist, k=3)
    assert np.mean([(last[u] + 1) % 30 in top[u] for u in range(10)]) >= 0.7


# ---------------------------------------------------------------------- padding and batches
def test_score_does_not_depend_on_batch_composition(split, fitted):
    train, _ = split
    users = np.arange(0, train.n_users, 4)
    together = fitted.score_items(users)
    one_by_one = fitted.score_items(users, batch_size=1)
    np.testing.assert_allclose(one_by_one, together, rtol=1e-6, atol=1e-6)
    # histories of very different lengths in one block
    hist = train.matrix[:6].tolil()
    hist[0, :] = 0
    hist[1, 5:] = 0
    hist = sp.csr_matrix(hist)
    hist.eliminate_zeros()
    block = fitted.score_items(X=hist)
    for u in range(6):
        np.testing.assert_allclose(fitted.score_items([u], X=hist)[0], block[u], rtol=1e-6)


def test_padding_does_not_change_states():
    torch.manual_seed(0)
    net = SequenceNet(10, 0, 8, 8, 2, 0.0, True).double().eval()
    seq = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[3, 4, 5, 10, 10, 10], [1, 10, 10, 10, 10, 10]])
    with torch.inference_mode():
        alone = net.user_states(seq, torch.tensor([3]))
        both = net.user_states(padded, torch.tensor([3, 1]))
        empty = net.user_states(padded[:, :0], torch.tensor([0, 0]))
    torch.testing.assert_close(both[:1], alone)
    torch.testing.assert_close(empty[0], net.project.bias)


def test_padded_sequences_keep_the_most_recent_items():
    X = sp.csr_matrix(np.array([[1, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]))
    keys = np.array([4.0, 1.0, 3.0, 2.0, 7.0])
    items, lengths = padded_sequences(X, keys, 3, pad=-1)
    assert items.tolist() == [[3, 2, 0], [4, -1, -1], [-1, -1, -1]]
    assert lengths.tolist() == [3, 1, 0]
    ties = padded_sequences(X, np.zeros(5), 10, pad=-1)[0]
    assert ties[0].tolist() == [0, 1, 2, 3]  # equal times: item index order
    assert position_keys(X, keys).tolist() == [3.0, 0.0, 2.0, 1.0, 0.0]


def test_new_interactions_are_appended_to_sequences():
    old = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32))
    new = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 1]], dtype=np.float32))
    old_keys = np.array([1.0, 0.0])  # user 0 watched item 1, then item 0
    new_keys = append_keys(old, old_keys, new, None, use_timestamps=False)
    assert new_keys.tolist() == [2.0, 3.0, 0.0]
    full = (old + new).tocsr()
    keys = merge_keys([(old, old_keys), (new, new_keys)], full)
    items, _ = padded_sequences(full, keys, 10, pad=-1)
    assert items[0].tolist() == [1, 0, 2]  # item 0 again: it moves to the end
    assert items[1].tolist()[:1] == [3]


# ---------------------------------------------------------------------- cold items
def test_cold_items_are_scored_from_features():
    n_items = 30
    angle = 2 * np.pi * np.arange(n_items) / n_items
    circle = np.column_stack([np.cos(angle), np.sin(angle), np.cos(2 * angle), np.sin(2 * angle)])
    features = ItemFeatures({"audio": circle.astype(np.float32)}, items=np.arange(n_items))
    X = markov_interactions(n_users=300, p_next=0.9, seed=3)
    cold = np.array([4, 11, 17, 26])
    keep = ~np.isin(X.matrix.indices, cold)
    train = X.select_entries(keep)
    # the cold items' predecessors end the histories: is the cold successor ranked first?
    last = np.array([3, 10, 16, 25])
    hist = sp.csr_matrix((np.ones(4, dtype=np.float32), last, np.arange(5)), shape=(4, n_items))
    for use_ids in (True, False):
        model = SequentialLSTM(use_item_ids=use_ids, random_state=0, **FAST)
        model.fit(train, item_features=features)
        assert not model.item_trained_[cold].any() and model.item_trained_.sum() == 26
        scores = model.score_items(X=hist, items=cold)
        assert np.isfinite(scores).all()
        top, _ = model.recommend(X=hist, k=1, items=cold)
        assert (top[:, 0] == cold).mean() >= 0.75, (use_ids, top[:, 0])


def test_content_only_needs_features(split):
    train, _ = split
    with pytest.raises(ConfigurationError, match="item_features"):
        SequentialLSTM(use_item_ids=False, **FAST).fit(train)


# ---------------------------------------------------------------------- partial_fit
def test_partial_fit_learns_new_users_without_forgetting():
    n_items = 40
    old_part = markov_interactions(n_users=150, n_items=n_items, items=np.arange(30), seed=5)
    new_part = markov_interactions(n_users=50, n_items=n_items, items=np.arange(30, 40), seed=6)
    old_train, old_test = leave_last_out(old_part)
    new_train, new_test = leave_last_out(new_part)
    new_train = Interactions(
        new_train.matrix,
        Vocabulary(np.arange(1000, 1050)),
        new_train.items,
        new_train.timestamps,
    )
    model = SequentialLSTM(random_state=0, **FAST).fit(old_train)
    old_before = metrics(model, old_train, old_test)
    new_before = hit_rate(model.recommend(X=new_train, k=5)[0], new_test.matrix)
    model.partial_fit(new_train)
    assert model.n_users_ == 200
    new_after = hit_rate(model.recommend(np.arange(150, 200), k=5)[0], new_test.matrix)
    old_after = metrics(model, old_train, old_test)
    assert new_after > new_before + 0.3, (new_before, new_after)
    assert old_after[0] >= 0.8 * old_before[0], (old_before, old_after)
    assert old_after[1] >= 0.8 * old_before[1], (old_before, old_after)
    assert model.item_trained_[30:].all()


def test_partial_fit_appends_to_existing_and_new_sequences(split):
    train, test = split
    model = SequentialLSTM(random_state=0, **{**FAST, "epochs": 2}).fit(train)
    model.partial_fit(test)  # each user's held-out (latest) item
    X, keys = model.train_matrix_, model.sequence_keys_
    assert X.nnz == train.nnz + test.nnz
    for u in (0, 7, 42):
        row = slice(X.indptr[u], X.indptr[u + 1])
        latest = X.indices[row][np.argmax(keys[row])]
        assert latest == test.matrix.indices[test.matrix.indptr[u]]
    # a plain matrix of new users: appended rows, read in item index order
    extra = sp.csr_matrix(
        np.eye(3, train.n_items, k=2, dtype=np.float32) + np.eye(3, train.n_items)
    )
    model.partial_fit(sp.vstack([sp.csr_matrix((train.n_users, train.n_items)), extra]).tocsr())
    assert model.n_users_ == train.n_users + 3
    assert model.sequence_keys_[-2:].tolist() == [0.0, 1.0]
    assert np.isfinite(model.score_items(np.arange(train.n_users, train.n_users + 3))).all()


def test_partial_fit_refuses_a_changed_architecture(split, fitted):
    train, _ = split
    model = SequentialLSTM(random_state=0, **{**FAST, "epochs": 1}).fit(train)
    model.set_params(hidden_size=8)
    with pytest.raises(ConfigurationError, match="hidden_size"):
        model.partial_fit(train.matrix[:3])


# ---------------------------------------------------------------------- seeds and devices
def test_reproducible_and_leaves_global_rng_alone(split):
    train, _ = split
    params = {**FAST, "epochs": 2, "dropout": 0.2}
    state = torch.get_rng_state()
    a = SequentialLSTM(random_state=3, **params).fit(train)
    assert torch.equal(torch.get_rng_state(), state)
    b = SequentialLSTM(random_state=3, **params).fit(train)
    c = SequentialLSTM(random_state=4, **params).fit(train)
    np.testing.assert_array_equal(a.weights_, b.weights_)
    np.testing.assert_array_equal(a.score_items(), b.score_items())
    assert not np.array_equal(a.weights_, c.weights_)
    a.score_items()
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_matches_quality(split):
    train, test = split
    model = SequentialLSTM(random_state=0, **{**FAST, "device": "cuda"}).fit(train)
    pop = metrics(Popularity().fit(train), train, test)
    assert metrics(model, train, test)[0] > 2.5 * pop[0]


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("param", "value", "match"),
    [
        ("max_length", 0, "max_length"),
        ("max_length", 2.5, "max_length"),
        ("max_length", True, "max_length"),
        ("hidden_size", -1, "hidden_size"),
        ("dropout", 1.0, "dropout"),
        ("learning_rate", 0.0, "learning_rate"),
        ("loss", "bogus", "loss"),
        ("use_item_ids", "yes", "use_item_ids"),
        ("device", "tpu", "device"),
    ],
)
def test_bad_hyperparameters(split, param, value, match):
    train, _ = split
    with pytest.raises(ConfigurationError, match=match):
        SequentialLSTM(**{**FAST, param: value}).fit(train)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_is_a_configuration_error(split):
    with pytest.raises(ConfigurationError, match="CUDA is not available"):
        SequentialLSTM(**{**FAST, "device": "cuda"}).fit(split[0])


def test_features_with_wrong_rows(split):
    train, _ = split
    with pytest.raises(DataValidationError, match="rows"):
        SequentialLSTM(**FAST).fit(train, item_features=np.ones((train.n_items + 1, 3)))
