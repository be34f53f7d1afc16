"""The contract every recommender honours, run against every exported model.

A model joins this suite by being exported from ``avrec.recommenders`` (or
``avrec.privacy``) as a concrete :class:`~avrec.recommenders.Recommender` subclass; it can set
``_test_params`` to small, fast hyperparameters, and ``_test_variants`` (name -> extra
hyperparameters) to run the whole suite again on other configurations (e.g. a learned fusion).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import scipy.sparse as sp
from known_data import block_interactions, block_item_features
from sklearn.base import clone

import avrec.privacy as privacy
import avrec.recommenders as recommenders
from avrec.data import Interactions
from avrec.exceptions import DataValidationError, NotFittedError, PersistenceError
from avrec.recommenders import Popularity, Recommender


def discover() -> list[type[Recommender]]:
    found = []
    for package in (recommenders, privacy):
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) and issubclass(obj, Recommender) and obj is not Recommender:
                found.append(obj)
    return found


MODELS = discover()
CASES = [
    pytest.param(cls, name, id=cls.__name__ if name is None else f"{cls.__name__}[{name}]")
    for cls in MODELS
    for name in (None, *getattr(cls, "_test_variants", {}))
]


@pytest.fixture(autouse=True)
def variant(request, monkeypatch):
    """Run a test on a model's variant: its ``_test_params`` updated with the variant's."""
    name = getattr(request, "param", None)
    if name is not None:
        cls = request.node.callspec.params["cls"]
        monkeypatch.setattr(cls, "_test_params", {**cls._test_params, **cls._test_variants[name]})
    return name


def make(cls: type[Recommender], **extra) -> Recommender:
    params = dict(cls._test_params)
    if "random_state" in inspect.signature(cls.__init__).parameters:
        params.setdefault("random_state", 0)
    if "verbose" in inspect.signature(cls.__init__).parameters:
        params.setdefault("verbose", False)
    params.update(extra)
    return cls(**params)


def releases_only(cls: type[Recommender]) -> bool:
    """DP models save only their release and take a public item catalogue."""
    return hasattr(cls, "_released_attributes")


def fit(model: Recommender, X) -> Recommender:
    """Fit ``model`` on ``X``, with the fixture's content features when the model uses them.

    DP models get the Interactions' item vocabulary as their public catalogue.
    """
    if releases_only(type(model)) and isinstance(X, Interactions):
        features = block_item_features() if model._uses_item_features else None
        return model.fit(X, item_features=features, catalogue=X.items)
    if not getattr(model, "_uses_item_features", False):
        return model.fit(X)
    features = block_item_features()
    n_items = X.shape[1] if hasattr(X, "shape") and len(X.shape) == 2 else features.n_items
    if n_items != features.n_items:  # deliberately malformed X: let fit report it
        features = None
    return model.fit(X, item_features=features)


@pytest.fixture(scope="module")
def data():
    return block_interactions()


def holdout(data, seed=1):
    """Hide one random interaction per user for a quick accuracy check."""
    rng = np.random.default_rng(seed)
    rows, _cols, _w, _t = data.to_indices()
    keys = rng.random(rows.size)
    order = np.lexsort((keys, rows))
    first = np.r_[True, rows[order][1:] != rows[order][:-1]]
    test_mask = np.zeros(rows.size, dtype=bool)
    test_mask[order[first]] = True
    return data.select_entries(~test_mask), data.select_entries(test_mask)


def test_discovery_finds_models():
    assert Popularity in MODELS


@pytest.mark.parametrize(("cls", "variant"), CASES, indirect=["variant"])
class TestContract:
    def test_fit_returns_self_and_sets_attributes(self, cls, data):
        model = make(cls)
        assert fit(model, data) is model
        assert model.n_users_ == data.n_users and model.n_items_ == data.n_items
        assert model.users_ == data.users and model.items_ == data.items

    def test_init_stores_params_verbatim(self, cls):
        model = make(cls)
        params = model.get_params()
        for name in inspect.signature(cls.__init__).parameters:
            if name != "self":
                assert name in params

    def test_unfitted_raises(self, cls):
        model = make(cls)
        with pytest.raises(NotFittedError, match="not fitted"):
            model.recommend([0])
        with pytest.raises(NotFittedError):
            model.predict([[0, 0]])
        with pytest.raises(NotFittedError):
            model.save("never-written")

    def test_second_fit_starts_over(self, cls, data):
        small = data.subset(users=np.arange(20))
        fresh = fit(make(cls), small)
        refit = fit(fit(make(cls), data), small)
        assert refit.n_users_ == 20
        np.testing.assert_allclose(refit.score_items(), fresh.score_items(), rtol=1e-5, atol=1e-6)

    def test_failed_fit_keeps_previous_state(self, cls, data):
        model = fit(make(cls), data)
        before = model.score_items([0, 1])
        bad = data.matrix.copy()
        bad.data[0] = np.nan
        with pytest.raises(DataValidationError, match="NaN"):
            fit(model, bad)
        np.testing.assert_array_equal(model.score_items([0, 1]), before)

    def test_batch_equals_single(self, cls, data):
        model = fit(make(cls), data)
        users = np.arange(data.n_users)
        idx_all, sc_all = model.recommend(users, k=7)
        idx_b, sc_b = model.recommend(users, k=7, batch_size=3)
        np.testing.assert_array_equal(idx_all, idx_b)
        np.testing.assert_allclose(sc_all, sc_b, rtol=1e-6)
        for u in (0, 5, data.n_users - 1):
            idx_1, sc_1 = model.recommend([u], k=7)
            np.testing.assert_array_equal(idx_1[0], idx_all[u])
            np.testing.assert_allclose(sc_1[0], sc_all[u], rtol=1e-6)

    def test_seen_items_excluded(self, cls, data):
        model = fit(make(cls), data)
        idx, _ = model.recommend(k=data.n_items)
        seen = data.matrix.toarray() > 0
        for u in range(data.n_users):
            got = idx[u][idx[u] >= 0]
            assert not seen[u, got].any()
            assert got.size == data.n_items - seen[u].sum()
        idx_all, _ = model.recommend([0], k=data.n_items, exclude_seen=False)
        assert (idx_all >= 0).all()

    def test_scores_sorted_and_consistent_with_predict(self, cls, data):
        model = fit(make(cls), data)
        idx, scores = model.recommend(np.arange(10), k=5)
        assert np.all(np.diff(scores, axis=1) <= 0)
        pairs = np.column_stack([np.repeat(np.arange(10), 5), idx.ravel()])
        np.testing.assert_allclose(model.predict(pairs), scores.ravel(), rtol=1e-5, atol=1e-6)
        full = model.score_items(np.arange(10))
        np.testing.assert_allclose(np.take_along_axis(full, idx, 1), scores, rtol=1e-5, atol=1e-6)

    def test_unknown_users_raise(self, cls, data):
        model = fit(make(cls), data)
        for bad in ([-1], [data.n_users]):
            with pytest.raises(DataValidationError, match="out of range"):
                model.recommend(bad)
        with pytest.raises(DataValidationError, match="out of range"):
            model.predict([[data.n_users, 0]])

    def test_new_users_from_history(self, cls, data):
        model = fit(make(cls), data)
        hist = data.matrix[:4]
        idx_x, _ = model.recommend(k=5, X=hist)
        assert idx_x.shape == (4, 5)
        for u in range(4):
            assert not np.isin(idx_x[u], hist[u].indices).any()
        empty = sp.csr_matrix((2, data.n_items), dtype=np.float32)
        idx_e, _ = model.recommend(k=3, X=empty)
        assert idx_e.shape == (2, 3)

    def test_clone_and_params(self, cls, data):
        model = make(cls)
        copy = clone(model)
        assert copy.get_params() == model.get_params()
        assert copy is not model
        fitted = fit(make(cls), data)
        assert not hasattr(clone(fitted), "n_items_")
        name = next(iter(model.get_params()), None)
        if name is not None:
            assert model.set_params(**{name: model.get_params()[name]}) is model

    def test_save_load_round_trip(self, cls, data, tmp_path):
        model = fit(make(cls), data)
        model.save(tmp_path / "model")
        loaded = cls.load(tmp_path / "model")
        assert type(loaded) is cls
        assert loaded.get_params() == model.get_params()
        if releases_only(cls):  # no user data was saved: users come with their history
            hist = data.matrix
            np.testing.assert_array_equal(loaded.score_items(X=hist), model.score_items(X=hist))
            np.testing.assert_array_equal(
                loaded.recommend(k=5, X=hist)[0], model.recommend(k=5, X=hist)[0]
            )
            with pytest.raises(DataValidationError, match="pass X="):
                loaded.recommend([0])
        else:
            np.testing.assert_array_equal(loaded.score_items(), model.score_items())
            np.testing.assert_array_equal(loaded.recommend(k=5)[0], model.recommend(k=5)[0])
        assert loaded.items_ == model.items_
        via_base = Recommender.load(tmp_path / "model")
        assert type(via_base) is cls
        # saving again over the same directory replaces it atomically
        model.save(tmp_path / "model")
        assert cls.load(tmp_path / "model").n_items_ == data.n_items

    def test_load_rejects_other_class(self, cls, data, tmp_path):
        fit(make(cls), data).save(tmp_path / "m")

        class Other(Recommender):
            pass

        with pytest.raises(PersistenceError, match="not a Other"):
            Other.load(tmp_path / "m")
        with pytest.raises(PersistenceError, match="no saved model"):
            cls.load(tmp_path / "missing")

    def test_reproducible_with_seed(self, cls, data):
        a = fit(make(cls), data).score_items()
        b = fit(make(cls), data).score_items()
        np.testing.assert_array_equal(a, b)

    def test_accepts_sparse_and_dense(self, cls, data):
        dense = data.matrix.toarray()
        a = fit(make(cls), data.matrix).score_items()
        b = fit(make(cls), dense).score_items()
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def test_bad_input(self, cls, data):
        model = make(cls)
        with pytest.raises(DataValidationError, match="empty"):
            fit(model, sp.csr_matrix((3, 4), dtype=np.float32))
        neg = data.matrix.copy()
        neg.data[0] = -1
        with pytest.raises(DataValidationError, match="negative"):
            fit(model, neg)
        with pytest.raises(DataValidationError, match="2-d"):
            fit(model, np.ones(5))
        fit(model, data)
        with pytest.raises(DataValidationError, match="k must be a positive int"):
            model.recommend([0], k=0)
        with pytest.raises(DataValidationError, match="item columns"):
            model.recommend(X=sp.csr_matrix((1, data.n_items + 1), dtype=np.float32))
        with pytest.raises(DataValidationError, match="pairs must have shape"):
            model.predict([0, 1])

    def test_beats_popularity_on_structured_data(self, cls, data):
        if cls is Popularity:
            pytest.skip("popularity is the baseline")
        train, test = holdout(data)
        hits = {}
        for name, model in (("model", make(cls)), ("pop", Popularity())):
            fit(model, train)
            idx, _ = model.recommend(k=5)
            truth = test.matrix.toarray() > 0
            valid = idx >= 0
            hits[name] = truth[np.arange(idx.shape[0])[:, None], np.where(valid, idx, 0)][
                valid
            ].sum()
        assert hits["model"] > hits["pop"] * 1.2, hits

    def test_cold_items_scored_from_features(self, cls, data):
        if not getattr(cls, "_uses_item_features", False):
            pytest.skip("the model does not use item features")
        # items 1, 5, 9, ... of group 1 and 2, 6, 10, ... of group 2 lose all interactions
        cold = np.r_[np.arange(1, 60, 4)[:5], np.arange(2, 60, 4)[:5]]
        train = data.matrix.tolil()
        train[:, cold] = 0
        train = sp.csr_matrix(train)
        train.eliminate_zeros()
        model = make(cls).fit(train, item_features=block_item_features())
        group1_users = np.arange(1, data.n_users, 4)
        scores = model.score_items(group1_users, cold)
        assert np.isfinite(scores).all()
        own, other = scores[:, :5].mean(), scores[:, 5:].mean()
        assert own > other, (own, other)
        idx, _ = model.recommend(group1_users, k=3, items=cold)
        assert np.isin(idx, cold[:5]).mean() > 0.8
