"""Next-item recommendation from the ordered history with an LSTM (GRU4Rec-style)."""

from __future__ import annotations

import logging
import numbers
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders.cf._bpr import resolve_device
from avrec.recommenders.sequential._sequences import (
    append_keys,
    entry_positions,
    merge_keys,
    pad_rows,
    padded_sequences,
    position_keys,
    training_sequences,
    widen,
)
from avrec.utils import check_positive_int, torch_seed

__all__ = ["SequentialLSTM"]

logger = logging.getLogger(__name__)

#: Scoring works on chunks of at most this many users and bytes of float64 scores;
#: states and scores are computed in float64, so a user's scores do not depend on
#: the other users in the chunk (padding is exact, and float32 rounding hides BLAS's).
_SCORE_USERS = 1024
_SCORE_BYTES = 32 * 2**20
#: Hyperparameters that fix the shape of the network; partial_fit refuses changes.
_ARCHITECTURE = ("embedding_dim", "hidden_size", "num_layers", "use_item_ids")


class SequentialLSTM(Recommender):
    """Next-item recommender: an LSTM reads each user's items in time order.

    Each user's interactions, sorted by timestamp and cut to the
    ``max_length`` most recent, form a sequence; the network learns to
    predict every item from the ones before it (cross-entropy over the
    catalogue, as in GRU4Rec with LSTM cells). A user is scored by the LSTM
    state after their last item: ``score(u, i) = P h_u . e_i + b_i``.
    Item embeddings ``e_i`` are an id embedding plus a linear map of the
    item's content features (either may be left out) and are shared by the
    input and the output layer, so items without interactions are scored
    from their features (cold start).

    Parameters
    ----------
    embedding_dim : int, default=64
        Width of the item embeddings.
    hidden_size : int, default=64
        Width of the LSTM state.
    num_layers : int, default=1
        Stacked LSTM layers.
    dropout : float, default=0.1
        Dropout on the input embeddings, between layers and on the LSTM
        outputs, in ``[0, 1)``.
    learning_rate : float, default=0.005
        Adam's step size.
    epochs : int, default=20
        Passes over the users' sequences.
    batch_size : int, default=64
        Sequences (users) per minibatch.
    max_length : int, default=50
        Most recent items per user that the model reads (and, plus one,
        trains on).
    use_item_ids : bool, default=True
        Learn an id embedding per item. With False the model is purely
        content-based and ``fit`` needs ``item_features``.
    loss : {"full", "sampled"}, default="full"
        Softmax over every item with training interactions, or a sampled
        softmax against ``n_negatives`` items drawn uniformly per minibatch
        (for large catalogues).
    n_negatives : int, default=256
        Negatives per minibatch of the sampled softmax.
    device : None, str or torch.device, default=None
        Where training runs: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; None picks
        CUDA when available. Scoring runs on the CPU.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the initial weights, dropout, the order of the minibatches and
        the negatives. Results are bit-for-bit reproducible on the CPU.
    verbose : bool, default=True
        Show a progress bar over the epochs.

    Attributes
    ----------
    weights_ : ndarray of shape (n_parameters,), dtype float32
        The network's parameters, flattened in ``SequenceNet.parameters()`` order.
    architecture_ : dict
        ``embedding_dim``, ``hidden_size``, ``num_layers``, ``use_item_ids``,
        ``n_features`` and ``max_length`` of the fitted network.
    item_features_ : ndarray of shape (n_items_, n_features), dtype float32, or None
        The content features, standardised (zero mean, unit variance per column).
    item_trained_ : ndarray of shape (n_items_,), dtype bool
        Items with training interactions: they have an id embedding and are
        the classes of the training softmax.
    sequence_keys_ : ndarray of shape (train_matrix_.nnz,), dtype float64
        Order key of every training interaction (aligned with
        ``train_matrix_.data``): its timestamp, or its position in the user's
        sequence when there were none.
    ordered_by_time_ : bool
        Whether ``sequence_keys_`` are timestamps.
    loss_history_ : ndarray of shape (epochs,), dtype float64
        Mean cross-entropy per predicted item, per epoch (of the last
        ``fit`` or ``partial_fit``).
    n_users_, n_items_, train_matrix_, users_, items_
        See :class:`~avrec.recommenders.Recommender`.

    See Also
    --------
    avrec.data.leave_last_out : the split that evaluates next-item prediction.

    Notes
    -----
    *Order.* With :class:`~avrec.data.Interactions` carrying timestamps,
    sequences follow time (ties by item index, as in
    :func:`~avrec.data.leave_last_out`); repeated consumptions of an item are
    one entry at its latest time. Without timestamps (a sparse matrix, an
    array, or Interactions without them) the column order of each row, i.e.
    the order of :meth:`~avrec.data.Interactions.to_indices`, is used and a
    warning is logged: that order is rarely meaningful. Histories given as
    ``X=`` at call time are ordered the same way (by their timestamps when
    ``X`` is an Interactions that has them).

    *Cold items.* An item without training interactions has no id embedding
    (its embedding is content only) and is left out of the training softmax,
    so training neither learns nor pushes down a representation for it; it
    is scored from its features alone. Without features such an item has a
    zero embedding and bias, so it scores 0 for everyone.

    *partial_fit* appends the new interactions to the users' sequences (new
    users are new rows), then runs ``epochs`` epochs on the sequences of
    the users with new interactions, each joined by as many sequences of the
    other users drawn afresh (rehearsal, so the network does not forget
    them). The optimiser restarts from fresh moments; the architecture
    hyperparameters cannot change.

    *Distributed training.* :class:`~avrec.recommenders.sequential._network.SequenceNet`
    returns its loss from ``forward`` and
    :func:`~avrec.recommenders.sequential._network.train_epochs` is a plain
    loop over an optimizer, so the network can be wrapped in
    :class:`torch.nn.parallel.DistributedDataParallel` with each rank given
    its shard of the sequences.

    References
    ----------
    .. [1] B. Hidasi, A. Karatzoglou, L. Baltrunas, D. Tikk, "Session-based
       Recommendations with Recurrent Neural Networks", ICLR 2016.
    .. [2] S. Hochreiter, J. Schmidhuber, "Long Short-Term Memory", Neural
       Computation 9(8), 1997.

    Examples
    --------
    >>> from avrec.data import Interactions
    >>> users = np.repeat(np.arange(40), 6)
    >>> items = (users + np.tile(np.arange(6), 40)) % 12  # user u watches u, u+1, ..., u+5
    >>> X = Interactions.from_arrays(users, items, timestamps=np.arange(240))
    >>> model = SequentialLSTM(embedding_dim=16, hidden_size=16, epochs=30, batch_size=8,
    ...                        learning_rate=0.02, device="cpu", random_state=0,
    ...                        verbose=False).fit(X)
    >>> model.recommend([3], k=1)[0].tolist()  # user 3 watched 3..8: next is 9
    [[9]]
    """

    _supports_partial_fit: ClassVar[bool] = True
    _uses_item_features: ClassVar[bool] = True
    _uses_timestamps: ClassVar[bool] = True
    _test_params: ClassVar[dict[str, Any]] = {
        "embedding_dim": 16,
        "hidden_size": 16,
        "epochs": 8,
        "batch_size": 16,
        "learning_rate": 0.01,
        "dropout": 0.0,
        "device": "cpu",
    }

    def __init__(
        self,
        embedding_dim: int = 64,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.1,
        learning_rate: float = 0.005,
        epochs: int = 20,
        batch_size: int = 64,
        max_length: int = 50,
        use_item_ids: bool = True,
        loss: Literal["full", "sampled"] = "full",
        n_negatives: int = 256,
        device: Any = None,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = True,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.use_item_ids = use_item_ids
        self.loss = loss
        self.n_negatives = n_negatives
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> Any:
        for name in (
            "embedding_dim",
            "hidden_size",
            "num_layers",
            "epochs",
            "batch_size",
            "max_length",
            "n_negatives",
        ):
            check_positive_int(getattr(self, name), name)
        dropout = self.dropout
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0.0 <= float(dropout) < 1.0
        ):
            raise ConfigurationError(f"dropout must be a float in [0, 1), got {dropout!r}")
        lr = self.learning_rate
        if (
            isinstance(lr, bool)
            or not isinstance(lr, numbers.Real)
            or not np.isfinite(lr)
            or lr <= 0
        ):
            raise ConfigurationError(f"learning_rate must be a positive finite number, got {lr!r}")
        if not isinstance(self.use_item_ids, (bool, np.bool_)):
            raise ConfigurationError(f"use_item_ids must be a bool, got {self.use_item_ids!r}")
        if self.loss not in ("full", "sampled"):
            raise ConfigurationError(f"loss must be 'full' or 'sampled', got {self.loss!r}")
        return resolve_device(self.device)

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        from avrec.recommenders.sequential._network import build_network

        device = self._validate()
        features = _standardise(data.item_features)
        if features is None and not self.use_item_ids:
            raise ConfigurationError(
                "use_item_ids=False makes the model content-only: pass item_features to fit"
            )
        X = data.X
        if data.timestamps is None:
            logger.warning(
                "SequentialLSTM: the interactions have no timestamps; each user's sequence "
                "follows the item index order (as in Interactions.to_indices), which is "
                "rarely the order of consumption"
            )
            keys = position_keys(X)
        else:
            keys = np.asarray(data.timestamps, dtype=np.float64).copy()
        architecture = {name: getattr(self, name) for name in _ARCHITECTURE}
        architecture = {name: int(v) for name, v in architecture.items() if name != "use_item_ids"}
        architecture.update(
            use_item_ids=bool(self.use_item_ids),
            n_features=0 if features is None else int(features.shape[1]),
            max_length=int(self.max_length),
        )
        trained = np.diff(X.tocsc().indptr) > 0
        init_seed, loop_seed = torch_seed(data.rng), torch_seed(data.rng)
        net = build_network(
            architecture, X.shape[1], features, trained, float(self.dropout), seed=init_seed
        )
        rows = np.arange(X.shape[0])
        weights, history = self._train(
            net, X, keys, rows, None, int(self.max_length), device, loop_seed
        )
        return {
            "weights_": weights,
            "architecture_": architecture,
            "item_features_": features,
            "item_trained_": trained,
            "sequence_keys_": keys,
            "ordered_by_time_": data.timestamps is not None,
            "loss_history_": np.asarray(history, dtype=np.float64),
        }

    def _partial_fit(self, data: FitData, X_full: sp.csr_matrix) -> dict[str, Any]:
        device = self._validate()
        changed = [
            name for name in _ARCHITECTURE if getattr(self, name) != self.architecture_[name]
        ]
        if changed:
            raise ConfigurationError(
                f"{', '.join(changed)} changed since fit "
                f"(fitted: {', '.join(f'{n}={self.architecture_[n]!r}' for n in changed)}); "
                "refit the model"
            )
        n_rows = X_full.shape[0]
        old = pad_rows(self.train_matrix_, n_rows)
        new = data.X
        new_keys = append_keys(
            old, self.sequence_keys_, new, data.timestamps, self.ordered_by_time_
        )
        keys = merge_keys([(old, self.sequence_keys_), (new, new_keys)], X_full)
        trained = np.diff(X_full.tocsc().indptr) > 0
        net = self._network(dtype=None, dropout=float(self.dropout), trained=trained)
        touched = np.flatnonzero(np.diff(new.indptr) > 0)
        others = np.setdiff1d(np.arange(n_rows), touched)
        weights, history = self._train(
            net,
            X_full,
            keys,
            touched,
            others,
            int(self.architecture_["max_length"]),
            device,
            torch_seed(data.rng),
        )
        return {
            "weights_": weights,
            "item_trained_": trained,
            "sequence_keys_": keys,
            "loss_history_": np.asarray(history, dtype=np.float64),
        }

    def _train(
        self,
        net: Any,
        X: sp.csr_matrix,
        keys: np.ndarray,
        rows: np.ndarray,
        replay_rows: np.ndarray | None,
        max_length: int,
        device: Any,
        seed: int,
    ) -> tuple[np.ndarray, list[float]]:
        """Train ``net`` on the sequences of ``rows`` (plus rehearsal of ``replay_rows``).

        On the CPU the loop runs on one worker thread with one intra-op torch
        thread, like :class:`~avrec.recommenders.BPR`: the minibatch kernels
        are too small for intra-op threads to pay off.
        """
        import torch

        from avrec.recommenders.sequential._network import (
            on_one_thread,
            seeded,
            to_tensor,
            train_epochs,
        )

        n_items = X.shape[1]
        seqs, lens = training_sequences(X, keys, rows, max_length + 1, n_items)
        replay = None
        if replay_rows is not None:
            r_seqs, r_lens = training_sequences(X, keys, replay_rows, max_length + 1, n_items)
            if r_lens.size:
                w = max(seqs.shape[1], r_seqs.shape[1])
                seqs, r_seqs = widen(seqs, w, n_items), widen(r_seqs, w, n_items)
                replay = (to_tensor(r_seqs, device), to_tensor(r_lens, device))
        if lens.size == 0:
            logger.warning("SequentialLSTM: no user has two interactions: nothing to train on")
        candidates = np.flatnonzero(net.trained.cpu().numpy())

        def run() -> list[float]:
            with seeded(seed, device):
                net.to(device)
                optimizer = torch.optim.Adam(net.parameters(), lr=float(self.learning_rate))
                generator = torch.Generator(device=device).manual_seed(seed)
                return train_epochs(
                    net,
                    optimizer,
                    to_tensor(seqs, device),
                    to_tensor(lens, device),
                    epochs=int(self.epochs),
                    batch_size=int(self.batch_size),
                    generator=generator,
                    n_negatives=int(self.n_negatives) if self.loss == "sampled" else None,
                    candidates=to_tensor(candidates, device),
                    replay=replay,
                    verbose=bool(self.verbose),
                )

        history = on_one_thread(run) if device.type == "cpu" else run()
        vector = torch.nn.utils.parameters_to_vector(net.parameters())
        return vector.detach().float().cpu().numpy().copy(), history

    # ------------------------------------------------------------------ scoring
    def _network(self, dtype: Any = None, dropout: float = 0.0, trained: Any = None) -> Any:
        """Rebuild the fitted network on the CPU (optionally cast to ``dtype``)."""
        import torch

        from avrec.recommenders.sequential._network import build_network

        net = build_network(
            self.architecture_,
            self.n_items_,
            self.item_features_,
            self.item_trained_ if trained is None else trained,
            dropout,
            seed=0,
        )
        torch.nn.utils.vector_to_parameters(
            torch.from_numpy(self.weights_.copy()), net.parameters()
        )
        return net if dtype is None else net.to(dtype)

    def _score(
        self,
        users: np.ndarray | None,
        X_users: sp.csr_matrix,
        timestamps: np.ndarray | None = None,
    ) -> np.ndarray:
        import torch

        if users is not None:
            hist = self.train_matrix_[users]
            keys = self.sequence_keys_[entry_positions(self.train_matrix_.indptr, users)]
        else:
            hist, keys = X_users, timestamps
            if keys is None and (np.diff(hist.indptr) > 1).any():
                logger.info(
                    "SequentialLSTM: histories without timestamps are read in item index order"
                )
        net = self._network(torch.float64)
        net.eval()
        n_items = self.n_items_
        scores = np.empty((hist.shape[0], n_items), dtype=np.float32)
        chunk = max(1, min(_SCORE_USERS, _SCORE_BYTES // (8 * max(n_items, 1))))
        with torch.inference_mode():
            table = net.item_table()
            table_t, bias = table.numpy().T, net.item_bias.numpy()
            for start in range(0, hist.shape[0], chunk):
                stop = min(start + chunk, hist.shape[0])
                part_keys = None
                if keys is not None:
                    part_keys = keys[hist.indptr[start] : hist.indptr[stop]]
                items, lengths = padded_sequences(
                    hist[start:stop], part_keys, int(self.architecture_["max_length"]), n_items
                )
                states = net.user_states(torch.from_numpy(items), torch.from_numpy(lengths), table)
                scores[start:stop] = states.numpy() @ table_t + bias
        return scores


# ---------------------------------------------------------------------- helpers
def _standardise(item_features: Any) -> np.ndarray | None:
    """Concatenate features and scale each column to zero mean and unit variance."""
    if item_features is None:
        return None
    arr = item_features.concat() if hasattr(item_features, "concat") else item_features
    arr = np.asarray(arr, dtype=np.float64)
    scale = arr.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    return ((arr - arr.mean(axis=0)) / scale).astype(np.float32)
