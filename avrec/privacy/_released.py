"""What a differentially private model is fitted from, and what it keeps when saved.

:class:`AccountedFit` is the mixin of :class:`~avrec.privacy.DPItemKNN`,
:class:`~avrec.privacy.DPEASE`, :class:`~avrec.privacy.DPBPR` and
:class:`~avrec.privacy.DPVBPR`. It

* charges a privacy accountant given to ``fit`` before any noise is drawn;
* takes the item catalogue as a *public* input (``fit(X, catalogue=...)``): which items
  exist must not come from the private log, where an item with one listener would
  reveal that listener;
* saves only the release (:attr:`_released_attributes`, the public catalogue and the
  hyperparameters): no training matrix, user ids, user count, user factors or
  training losses. A loaded model scores users from their own history (``X=``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from avrec.data import Interactions, Vocabulary
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.privacy._randomness import release_generator

__all__ = ["AccountedFit"]

#: Fitted attributes every saved DP model keeps besides its own release.
PUBLIC_ATTRIBUTES = ("items_", "n_items_")


def _catalogue_vocabulary(catalogue: Any) -> Vocabulary:
    if isinstance(catalogue, Vocabulary):
        return catalogue
    if isinstance(catalogue, (str, bytes)) or np.ndim(catalogue) != 1:
        raise ConfigurationError(
            "catalogue must be a Vocabulary or a 1-d sequence of item ids, got "
            f"{type(catalogue).__name__}"
        )
    return Vocabulary(np.asarray(catalogue))


def align_to_catalogue(X: Any, catalogue: Any) -> Any:
    """Re-index ``X``'s items on the public ``catalogue``; interactions outside it are dropped.

    Parameters
    ----------
    X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
    catalogue : None, Vocabulary or sequence of item ids
        None is allowed only for a matrix, whose columns are then the catalogue.

    Returns
    -------
    Interactions or the matrix unchanged
        An Interactions whose item vocabulary is ``catalogue``.

    Raises
    ------
    ConfigurationError
        If ``X`` is an Interactions and ``catalogue`` is None, or ``catalogue`` is malformed.
    DataValidationError
        If a matrix ``X`` does not have one column per catalogue item.

    Examples
    --------
    >>> import numpy as np
    >>> log = Interactions.from_arrays(["u1", "u2"], ["b", "z"], np.ones(2))
    >>> aligned = align_to_catalogue(log, ["a", "b", "c"])
    >>> aligned.items.ids.tolist(), aligned.matrix.toarray().tolist()
    (['a', 'b', 'c'], [[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    """
    if catalogue is None:
        if isinstance(X, Interactions):
            raise ConfigurationError(
                "catalogue is required when X is an Interactions: its item vocabulary comes "
                "from the private log (an item with one listener would reveal that listener); "
                "pass the public item catalogue, e.g. fit(X, catalogue=all_item_ids)"
            )
        return X
    vocab = _catalogue_vocabulary(catalogue)
    if not isinstance(X, Interactions):
        n_cols = np.shape(X)[1] if np.ndim(X) == 2 or hasattr(X, "tocsr") else None
        if n_cols is not None and n_cols != len(vocab):
            raise DataValidationError(
                f"X has {n_cols} item columns but catalogue has {len(vocab)} items"
            )
        if n_cols is None:
            return X  # malformed X: fit reports it
        import scipy.sparse as sp

        csr = sp.csr_matrix(X)
        return Interactions.from_csr(csr, item_ids=vocab.ids.copy())
    rows, cols, weights, times = X.to_indices()
    new_cols = vocab.index(X.items.ids)[cols]
    keep = new_cols >= 0
    return Interactions.from_indices(
        rows[keep],
        new_cols[keep],
        weights[keep],
        None if times is None else times[keep],
        users=X.users,
        items=vocab,
    )


class AccountedFit:
    """Mixin of the DP models: accounted ``fit`` on a public catalogue; saves the release only.

    The accountant is an argument of the *call*, not a hyperparameter: a
    budget is spent by the act of fitting, hyperparameters must stay
    JSON-storable for ``save``/``load``, and :func:`sklearn.base.clone` must
    not copy a ledger. Each ``fit`` charges the accountant before any noise
    is drawn, so an overspend raises
    :class:`~avrec.exceptions.PrivacyBudgetExceeded` with the model untouched.
    """

    #: The fitted attributes that the DP release covers (plus ``items_``, ``n_items_``).
    _released_attributes: ClassVar[tuple[str, ...]] = ()

    def fit(
        self,
        X: Any,
        item_features: Any = None,
        *,
        accountant: Any = None,
        catalogue: Any = None,
    ) -> Any:
        """Fit the model, charging ``accountant`` (if given) for the release.

        Parameters
        ----------
        X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
            Non-negative interaction weights.
        item_features : ItemFeatures or ndarray of shape (n_items, d), optional
            Public content features, for the models that use them (rows follow
            ``catalogue``).
        accountant : PrivacyAccountant, optional
            Charged with this fit's ``(epsilon, delta)`` before any noise is
            drawn; raises :class:`~avrec.exceptions.PrivacyBudgetExceeded`
            (leaving the model as it was) when the budget cannot cover it.
        catalogue : Vocabulary or sequence of item ids, optional
            The public item catalogue: the released model has one entry per
            catalogue item, whether or not anyone interacted with it, and
            interactions with items outside it are dropped. Required when ``X``
            is an :class:`~avrec.data.Interactions` (its item vocabulary comes
            from the log); for a matrix, its columns are the catalogue, so they
            must be fixed in advance, not derived from the data.

        Returns
        -------
        self
        """
        X = align_to_catalogue(X, catalogue)
        self._accountant = accountant
        try:
            return super().fit(X, item_features)  # type: ignore[misc]
        finally:
            del self._accountant

    def _current_accountant(self) -> Any:
        return getattr(self, "_accountant", None)

    def _release_generator(self, rng: np.random.Generator, *context: Any) -> np.random.Generator:
        """The PCG64 generator of this fit's noise: OS entropy for ``random_state=None``.

        Seeded runs get a stream of this release's own (a child seed keyed by
        ``context``), drawing 128 bits from ``rng``; see :class:`SecureRandom`.
        """
        seed = None if getattr(self, "random_state", None) is None else rng
        return release_generator(seed, *context)

    # ------------------------------------------------------------------ persistence
    def _persisted_state(self) -> dict[str, Any]:
        state = self._fitted_state()  # type: ignore[attr-defined]
        keep = (*self._released_attributes, *PUBLIC_ATTRIBUTES)
        return {name: state[name] for name in keep if name in state}

    def _is_fitted(self) -> bool:
        return hasattr(self, "n_items_")

    def _holds_training_data(self) -> bool:
        return hasattr(self, "train_matrix_")

    def _no_users_error(self, what: str) -> DataValidationError:
        return DataValidationError(
            f"this {type(self).__name__} holds only its DP release (no training users); "
            f"{what} needs the users' own histories: pass X= (rows of X are the users)"
        )

    def _query(self, users: Any, X: Any) -> Any:
        if X is None and not self._holds_training_data():
            raise self._no_users_error("scoring")
        return super()._query(users, X)  # type: ignore[misc]

    def predict(self, pairs: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Score (user, item) pairs of training users (see :meth:`Recommender.predict`).

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
            On a loaded model, which holds no training users: use ``score_items(X=...)``.
        """
        self._check_fitted()  # type: ignore[attr-defined]
        if not self._holds_training_data():
            raise self._no_users_error("predict")
        return super().predict(pairs, batch_size=batch_size)  # type: ignore[misc]
