"""The :class:`Recommender` contract, implemented once for every model."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from avrec._version import __version__
from avrec.data import Interactions
from avrec.exceptions import DataValidationError, NotFittedError, PersistenceError
from avrec.recommenders._input import FitData, check_interactions, check_item_features
from avrec.recommenders._state import (
    decode_params,
    decode_state,
    encode_params,
    encode_state,
)
from avrec.recommenders._topk import mask_entries, top_k
from avrec.utils import (
    atomic_directory,
    check_random_state,
    check_top_k,
    check_users,
    load_arrays,
    qualified_name,
    read_json,
    resolve_class,
    save_arrays,
    write_json,
)
from avrec.utils._registry import register_avrec_subclass

__all__ = ["Recommender"]

logger = logging.getLogger(__name__)

#: Dense score blocks are at most this many bytes unless ``batch_size`` is given.
SCORE_BLOCK_BYTES = 128 * 2**20
_SAVE_FORMAT = 1


class Recommender(BaseEstimator):
    """Base class of every avrec recommender.

    It implements the contract of the design once: input validation,
    ``fit``/``partial_fit`` bookkeeping, batched scoring, ``recommend`` with
    ``exclude_seen``, candidate filters and padding, ``predict`` on pairs,
    ``score_items``, and pickle-free ``save``/``load``. A model implements

    * ``_fit(data: FitData) -> dict`` returning its fitted attributes (names
      ending in ``_``); they are assigned only after it returns, so a failed
      ``fit`` leaves the previous state intact and a second ``fit`` starts over;
    * ``_score(users, X_users) -> ndarray (len, n_items)`` returning a fresh
      float32 array of scores, where ``users`` are training rows (or ``None``
      for users known only by their history ``X_users``);
    * optionally ``_partial_fit(data, X_full) -> dict`` with
      ``_supports_partial_fit = True``.

    Being a :class:`sklearn.base.BaseEstimator`, models support
    ``get_params``, ``set_params`` and :func:`sklearn.base.clone`.

    Attributes
    ----------
    n_users_ : int
        Number of users (rows) seen in fit.
    n_items_ : int
        Number of items (columns) seen in fit.
    train_matrix_ : scipy.sparse.csr_matrix of shape (n_users_, n_items_)
        The training interactions, used to exclude seen items.
    users_ : Vocabulary or None
        User ids when fit got :class:`~avrec.data.Interactions`.
    items_ : Vocabulary or None
        Item ids when fit got :class:`~avrec.data.Interactions`.

    Notes
    -----
    Unknown users: ``users`` are row indices in ``[0, n_users_)``; anything
    else (including ``-1``, which :meth:`Vocabulary.index` returns for
    unknown ids) raises :class:`~avrec.exceptions.DataValidationError`. To
    score users that were not in the training data, pass their histories as
    ``X=`` (row-aligned with ``users``).
    """

    #: Whether :meth:`partial_fit` updates the model incrementally.
    _supports_partial_fit: ClassVar[bool] = False
    #: Whether ``fit`` uses ``item_features`` (content-aware models); such a model
    #: can score items without interactions (cold start) from their features.
    _uses_item_features: ClassVar[bool] = False
    #: Whether ``_score`` takes ``timestamps=`` (sequence-aware models): the
    #: timestamps of ``X=`` histories given as an Interactions, aligned with the
    #: entries of ``X_users``; None for training users (the model keeps their
    #: order itself) and for histories without timestamps.
    _uses_timestamps: ClassVar[bool] = False
    #: Small, fast hyperparameters used by the contract test suite.
    _test_params: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_avrec_subclass(cls)  # avrec's own models load by name; others register

    # ------------------------------------------------------------------ hooks
    def _fit(self, data: FitData) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _score(  # pragma: no cover - abstract
        self, users: np.ndarray | None, X_users: sp.csr_matrix
    ) -> np.ndarray:
        raise NotImplementedError

    def _partial_fit(  # pragma: no cover - abstract
        self, data: FitData, X_full: sp.csr_matrix
    ) -> dict[str, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, item_features: Any = None) -> Recommender:
        """Fit the model from scratch.

        Parameters
        ----------
        X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
            Non-negative interaction weights.
        item_features : ItemFeatures or ndarray of shape (n_items, d), optional
            Content features, for models that use them.

        Returns
        -------
        self
            The fitted model.

        Raises
        ------
        DataValidationError
            If ``X`` is empty, has negative or non-finite weights, or
            ``item_features`` does not have one row per item.
        """
        csr, interactions = check_interactions(X)
        item_features = check_item_features(
            item_features, csr.shape[1], None if interactions is None else interactions.items
        )
        data = FitData(
            X=csr,
            timestamps=None if interactions is None else interactions.timestamps,
            item_features=item_features,
            rng=check_random_state(getattr(self, "random_state", None)),
            interactions=interactions,
        )
        state = self._fit(data)
        state.update(
            n_users_=csr.shape[0],
            n_items_=csr.shape[1],
            train_matrix_=csr,
            users_=None if interactions is None else interactions.users,
            items_=None if interactions is None else interactions.items,
        )
        self._set_state(state, replace=True)
        logger.debug("fitted %s on %d users x %d items", type(self).__name__, *csr.shape)
        return self

    def partial_fit(self, X_new: Any) -> Recommender:
        """Update a fitted model with new interactions, without refitting.

        On an unfitted model this is :meth:`fit`. Rows of ``X_new`` beyond
        ``n_users_`` are new users (with :class:`~avrec.data.Interactions`,
        new user ids are appended to ``users_``). The item catalogue is fixed.

        Parameters
        ----------
        X_new : Interactions, scipy.sparse matrix or ndarray of shape (n_rows, n_items)
            New interactions only; they are added to ``train_matrix_``.

        Returns
        -------
        self

        Raises
        ------
        NotImplementedError
            If the model does not support incremental updates.
        DataValidationError
            If ``X_new`` has a different item catalogue.
        """
        if not self._is_fitted():
            return self.fit(X_new)
        if not self._supports_partial_fit:
            raise NotImplementedError(
                f"{type(self).__name__} does not support partial_fit; call fit on all the data"
            )
        csr, interactions = check_interactions(X_new, "X_new", allow_empty=True)
        users = self.users_
        timestamps = None if interactions is None else interactions.timestamps
        if interactions is not None and self.users_ is not None and self.items_ is not None:
            if interactions.items != self.items_:
                item_rows = self.items_.index(interactions.items.ids)
                if (item_rows < 0).any():
                    raise DataValidationError(
                        "X_new has items unknown to the model (e.g. "
                        f"{interactions.items.ids[item_rows < 0].tolist()[0]!r}); "
                        "refit to extend the catalogue"
                    )
            users = self.users_.extend(interactions.users.ids)
            rows, cols, w, t = interactions.to_indices()
            aligned = Interactions.from_indices(
                users.index(interactions.users.ids)[rows],
                self.items_.index(interactions.items.ids)[cols],
                w,
                t,
                users=users,
                items=self.items_,
            )
            csr, timestamps = aligned.matrix, aligned.timestamps
        elif csr.shape[1] != self.n_items_:
            raise DataValidationError(
                f"X_new has {csr.shape[1]} item columns but the model was fitted on "
                f"{self.n_items_} items; refit to extend the catalogue"
            )
        n_rows = max(csr.shape[0], self.n_users_)
        new = _pad_rows(csr, n_rows)
        full = (_pad_rows(self.train_matrix_, n_rows) + new).tocsr()
        full.sort_indices()
        data = FitData(
            X=new,
            timestamps=timestamps,
            item_features=None,
            rng=check_random_state(getattr(self, "random_state", None)),
            interactions=None,
        )
        state = self._partial_fit(data, full)
        state.update(n_users_=n_rows, train_matrix_=full.astype(np.float32), users_=users)
        self._set_state(state, replace=False)
        return self

    # ------------------------------------------------------------------ inference
    def score_items(
        self, users: Any = None, items: Any = None, *, X: Any = None, batch_size: int | None = None
    ) -> np.ndarray:
        """Return dense scores for users x items (higher is better).

        Parameters
        ----------
        users : array-like of int, shape (n_query,), optional
            Training rows, or rows of ``X`` when it is given. Default: all.
        items : array-like of int, shape (n_candidates,), optional
            Item columns to return. Default: all ``n_items_``.
        X : Interactions or sparse matrix of shape (n_rows, n_items_), optional
            Histories to score users from instead of the training data.
        batch_size : int, optional
            Users scored per block (bounded memory); chosen automatically.

        Returns
        -------
        ndarray of shape (n_query, n_candidates), dtype float32

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        DataValidationError
            For out-of-range users or items.
        """
        self._check_fitted()
        user_rows, hist, from_train, times = self._query(users, X)
        item_idx = None if items is None else _check_items(items, self.n_items_)
        width = self.n_items_ if item_idx is None else item_idx.size
        out = np.empty((user_rows.size, width), dtype=np.float32)
        for sl in self._batches(user_rows.size, batch_size):
            scores = self._score_block(
                user_rows[sl] if from_train else None, hist[sl], _block_times(times, hist, sl)
            )
            out[sl] = scores if item_idx is None else scores[:, item_idx]
        return out

    def recommend(
        self,
        users: Any = None,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        X: Any = None,
        exclude: Any = None,
        batch_size: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the top-``k`` items for each user.

        Parameters
        ----------
        users : array-like of int, shape (n_query,), optional
            Training rows, or rows of ``X`` when it is given. Default: all.
        k : int, default=10
            Items per user.
        exclude_seen : bool, default=True
            Leave out items in the user's history (training data, or ``X``).
        items : array-like of int, optional
            Restrict the candidates to these item columns.
        X : Interactions or sparse matrix of shape (n_rows, n_items_), optional
            Histories given at call time (new users, or fold-in).
        exclude : sparse matrix of shape (n_query, n_items_), optional
            More items to leave out, row-aligned with ``users``.
        batch_size : int, optional
            Users scored per block. By default blocks of dense scores stay
            under 128 MiB; results do not depend on it.

        Returns
        -------
        item_indices : ndarray of shape (n_query, k), dtype int64
            Best first; rows with fewer than ``k`` candidates are padded with ``-1``.
        scores : ndarray of shape (n_query, k), dtype float32
            Padded with ``-inf``.

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        DataValidationError
            For unknown users, out-of-range items or mis-shaped ``exclude``.
        """
        self._check_fitted()
        k = check_top_k(k)
        user_rows, hist, from_train, times = self._query(users, X)
        n_query = user_rows.size
        allowed = None
        if items is not None:
            allowed = np.zeros(self.n_items_, dtype=bool)
            allowed[_check_items(items, self.n_items_)] = True
        if exclude is not None:
            exclude, _ = check_interactions(exclude, "exclude", allow_empty=True)
            if exclude.shape != (n_query, self.n_items_):
                raise DataValidationError(
                    f"exclude must have shape ({n_query}, {self.n_items_}), got {exclude.shape}"
                )
        out_idx = np.empty((n_query, k), dtype=np.int64)
        out_val = np.empty((n_query, k), dtype=np.float32)
        for sl in self._batches(n_query, batch_size):
            scores = self._score_block(
                user_rows[sl] if from_train else None, hist[sl], _block_times(times, hist, sl)
            )
            if exclude_seen:
                mask_entries(scores, hist[sl])
            if exclude is not None:
                mask_entries(scores, exclude[sl])
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            out_idx[sl], out_val[sl] = top_k(scores, k)
        return out_idx, out_val

    def predict(self, pairs: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Score (user, item) pairs.

        Parameters
        ----------
        pairs : array-like of int, shape (n, 2)
            Each row is ``[user_row, item_column]``.
        batch_size : int, optional
            Distinct users scored per block.

        Returns
        -------
        ndarray of shape (n,), dtype float32

        Raises
        ------
        DataValidationError
            If ``pairs`` is not ``(n, 2)`` or holds out-of-range indices.
        """
        self._check_fitted()
        arr = np.asarray(pairs)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise DataValidationError(f"pairs must have shape (n, 2), got {arr.shape}")
        users = check_users(arr[:, 0], self.n_users_, name="pairs[:, 0]")
        items = _check_items(arr[:, 1], self.n_items_, name="pairs[:, 1]")
        uniq, inverse = np.unique(users, return_inverse=True)
        out = np.empty(users.size, dtype=np.float32)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(uniq.size + 1))
        for sl in self._batches(uniq.size, batch_size):
            scores = self._score_block(uniq[sl], self.train_matrix_[uniq[sl]])
            sel = order[bounds[sl.start] : bounds[sl.stop]]
            out[sel] = scores[inverse[sel] - sl.start, items[sel]]
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted model to a directory (``params.json`` + ``state.npz``), atomically.

        No pickle is involved: hyperparameters go to JSON and fitted arrays to
        an ``.npz`` file. Hyperparameters that are estimators (a wrapped base
        model, the components of a blend) are stored as their class and
        parameters, recursively; fitted attributes that are fitted models (or
        lists of them) are saved by their own ``save`` logic into
        subdirectories named after the attribute. An existing directory is
        replaced only once the new one is complete.

        Parameters
        ----------
        path : str or path-like
            Target directory.

        Raises
        ------
        NotFittedError
            If the model is not fitted.
        PersistenceError
            If a hyperparameter or fitted attribute cannot be stored without pickle.
        """
        self._check_fitted()
        with atomic_directory(path) as tmp:
            self._write(tmp)

    def _write(self, directory: Path) -> None:
        """Write ``params.json``, ``state.npz`` and one subdirectory per fitted sub-model."""
        params = encode_params(self.get_params(deep=False))
        state = self._persisted_state()
        nested = {name: value for name, value in state.items() if _sub_models(value) is not None}
        arrays, meta = encode_state({k: v for k, v in state.items() if k not in nested})
        for name, value in nested.items():
            models = _sub_models(value)
            if isinstance(value, Recommender):
                meta[name] = {"type": "estimator", "dir": name}
            else:
                meta[name] = {"type": "estimators", "dir": name, "count": len(models)}
            for i, model in enumerate(models):
                model._check_fitted()
                target = directory / name
                model._write(target if isinstance(value, Recommender) else target / str(i))
        doc = {
            "format": _SAVE_FORMAT,
            "avrec_version": __version__,
            "class": qualified_name(type(self)),
            "params": params,
            "state": meta,
        }
        directory.mkdir(parents=True, exist_ok=True)
        save_arrays(directory / "state.npz", arrays)
        write_json(directory / "params.json", doc)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Recommender:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            Directory written by :meth:`save`.

        Returns
        -------
        Recommender
            An instance of the saved class (which must be ``cls`` or a subclass).

        Raises
        ------
        PersistenceError
            If the directory is missing, incomplete or holds another model
            class, or names a class (at the top or in a hyperparameter) that is
            not in avrec's registry: only avrec's models and classes registered
            with :func:`avrec.utils.register_class` are ever built, and a name
            read from the file is never imported.
        """
        path = Path(path)
        if not path.is_dir():
            raise PersistenceError(f"{path}: no saved model directory here")
        doc = read_json(path / "params.json")
        try:
            name, params, meta = doc["class"], doc["params"], doc["state"]
        except (KeyError, TypeError) as exc:
            raise PersistenceError(f"{path}: params.json is not a saved avrec model") from exc
        if not isinstance(meta, dict):
            raise PersistenceError(f"{path}: params.json is not a saved avrec model (state)")
        klass = resolve_class(name)  # a registry look-up: nothing named by the file is imported
        if not issubclass(klass, cls):
            raise PersistenceError(f"{path} holds a {name}, not a {cls.__name__}")
        try:
            model = klass(**decode_params(params))
        except TypeError as exc:
            raise PersistenceError(
                f"{path}: {name} does not accept its saved parameters: {exc}"
            ) from exc
        nested = {
            name
            for name, info in meta.items()
            if isinstance(info, dict) and info.get("type") in ("estimator", "estimators")
        }
        state = decode_state(
            load_arrays(path / "state.npz"), {k: v for k, v in meta.items() if k not in nested}
        )
        for attr in nested:  # fitted sub-models, each saved by its own class in a subdirectory
            info = meta[attr]
            sub = path / _sub_dir(info.get("dir"), path)
            if info["type"] == "estimator":
                state[attr] = Recommender.load(sub)
            else:
                count = info.get("count")
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise PersistenceError(f"{path}: bad sub-model count {count!r} for {attr}")
                state[attr] = [Recommender.load(sub / str(i)) for i in range(count)]
        model._set_state(state, replace=True)
        return model

    # ------------------------------------------------------------------ internals
    def __sklearn_is_fitted__(self) -> bool:
        return self._is_fitted()

    def _is_fitted(self) -> bool:
        return hasattr(self, "train_matrix_")

    def _check_fitted(self) -> None:
        if not self._is_fitted():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit first"
            )

    def _fitted_state(self) -> dict[str, Any]:
        return {
            name: value
            for name, value in vars(self).items()
            if name.endswith("_") and not name.startswith("_")
        }

    def _persisted_state(self) -> dict[str, Any]:
        """The fitted attributes :meth:`save` writes: all of them, unless a model says less.

        Differentially private models override it to persist only their release.
        """
        return self._fitted_state()

    def _set_state(self, state: dict[str, Any], *, replace: bool) -> None:
        bad = [name for name in state if not name.endswith("_") or name.startswith("_")]
        if bad:
            raise RuntimeError(f"fitted attribute names must end in '_': {bad}")
        if replace:
            for name in self._fitted_state():
                delattr(self, name)
        for name, value in state.items():
            setattr(self, name, value)

    def _query(
        self, users: Any, X: Any
    ) -> tuple[np.ndarray, sp.csr_matrix, bool, np.ndarray | None]:
        """Return ``(rows, hist, from_train, timestamps)``.

        ``timestamps`` is aligned with the entries of ``hist``; it is given only
        for models with ``_uses_timestamps`` when ``X`` is an Interactions with
        timestamps, else None.
        """
        if X is None:
            rows = (
                np.arange(self.n_users_, dtype=np.int64)
                if users is None
                else check_users(users, self.n_users_)
            )
            return rows, self.train_matrix_[rows], True, None
        hist, interactions = check_interactions(X, "X", n_items=self.n_items_, allow_empty=True)
        rows = (
            np.arange(hist.shape[0], dtype=np.int64)
            if users is None
            else check_users(users, hist.shape[0], name="users (rows of X)")
        )
        times = None
        if (
            self._uses_timestamps
            and interactions is not None
            and interactions.timestamps is not None
        ):
            times = interactions.timestamps[_row_entries(hist.indptr, rows)]
        return rows, hist[rows], False, times

    def _batches(self, n: int, batch_size: int | None) -> list[slice]:
        if batch_size is None:
            batch_size = max(1, SCORE_BLOCK_BYTES // (4 * max(self.n_items_, 1)))
        elif (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise DataValidationError(f"batch_size must be a positive int, got {batch_size!r}")
        return [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]

    def _score_block(
        self, users: np.ndarray | None, hist: sp.csr_matrix, timestamps: np.ndarray | None = None
    ) -> np.ndarray:
        if self._uses_timestamps:
            scores = np.asarray(self._score(users, hist, timestamps=timestamps), dtype=np.float32)
        else:
            scores = np.asarray(self._score(users, hist), dtype=np.float32)
        expected = (hist.shape[0], self.n_items_)
        if scores.shape != expected:  # pragma: no cover - a model bug, not user error
            raise RuntimeError(
                f"{type(self).__name__}._score returned shape {scores.shape}, expected {expected}"
            )
        if not scores.flags.writeable or not scores.flags.owndata:
            scores = scores.copy()
        return scores


def _row_entries(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions of the stored entries of CSR ``rows`` (in order), as in ``X[rows]``."""
    starts = indptr[rows].astype(np.int64)
    lengths = indptr[rows + 1].astype(np.int64) - starts
    out_starts = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - out_starts, lengths)


def _block_times(times: np.ndarray | None, hist: sp.csr_matrix, sl: slice) -> np.ndarray | None:
    """The part of ``times`` (aligned with ``hist``'s entries) that belongs to rows ``sl``."""
    if times is None:
        return None
    return times[hist.indptr[sl.start] : hist.indptr[sl.stop]]


def _sub_dir(name: Any, path: Path) -> str:
    """A sub-model's folder name from ``params.json``: one plain name inside the model folder."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
        raise PersistenceError(f"{path}: unsafe sub-model folder {name!r} in params.json")
    return name


def _sub_models(value: Any) -> list[Recommender] | None:
    """The fitted sub-models in a fitted attribute (one model, or a list of them), else None."""
    if isinstance(value, Recommender):
        return [value]
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, Recommender) for v in value)
    ):
        return list(value)
    return None


def _pad_rows(X: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
    if X.shape[0] == n_rows:
        return X
    indptr = np.concatenate([X.indptr, np.full(n_rows - X.shape[0], X.indptr[-1])])
    return sp.csr_matrix((X.data, X.indices, indptr), shape=(n_rows, X.shape[1]))


def _check_items(items: Any, n_items: int, name: str = "items") -> np.ndarray:
    arr = np.asarray(items)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise DataValidationError(
            f"{name} must be a 1-d array of item indices, got {arr.dtype} {arr.shape}"
        )
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        bad = arr[(arr < 0) | (arr >= n_items)][0]
        raise DataValidationError(f"{name}: index {bad} is out of range for {n_items} items")
    return arr
