"""The LSTM next-item network and its epoch loop (plain torch: an optimizer, a module, batches).

Kept apart from the estimator so the training can be wrapped without change:
``forward`` returns the loss of a minibatch, so the module can be put in
:class:`torch.nn.parallel.DistributedDataParallel` and handed to
:func:`train_epochs` with each rank's shard of the sequences.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avrec.utils import (
    DataParallelStep,
    broadcast_generator,
    get_rank,
    get_world_size,
    progress,
    shard,
)

__all__ = [
    "SequenceNet",
    "build_network",
    "on_one_thread",
    "seeded",
    "to_tensor",
    "train_epochs",
]

logger = logging.getLogger(__name__)

#: Standard deviation of the initial item id embeddings.
_ID_INIT_STD = 0.1


class SequenceNet(nn.Module):
    """Next-item LSTM with item embeddings built from ids and content features.

    The embedding of item ``i`` is ``id_emb[i] * trained[i] + W f_i + c``
    (either part optional), where ``f_i`` are the item's standardised
    features and ``trained[i]`` marks items with training interactions (an
    item without them has content only). The same table embeds the inputs
    and scores the outputs (tied embeddings), so an item without
    interactions is both readable and scoreable from its features:
    ``score(u, i) = P h_u . emb_i + b_i``, with ``h_u`` the LSTM state after
    the user's last item and ``P`` a linear map to the embedding space.

    Parameters
    ----------
    n_items : int
    n_features : int
        Width of ``features`` (0: ids only).
    embedding_dim, hidden_size, num_layers : int
    dropout : float
        On the input embeddings, between LSTM layers and on the LSTM outputs.
    use_item_ids : bool
        Learn an id embedding per item.

    Attributes
    ----------
    features : torch.Tensor of shape (n_items, n_features)
        Buffer; standardised content features.
    trained : torch.Tensor of shape (n_items,), bool
        Buffer; items with training interactions. Only these have an id
        embedding and take part in the training softmax.
    """

    def __init__(
        self,
        n_items: int,
        n_features: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        use_item_ids: bool,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.item_ids = nn.Embedding(n_items, embedding_dim) if use_item_ids else None
        if self.item_ids is not None:
            nn.init.normal_(self.item_ids.weight, std=_ID_INIT_STD)
        self.content = nn.Linear(n_features, embedding_dim) if n_features else None
        self.register_buffer("features", torch.zeros(n_items, n_features))
        self.register_buffer("trained", torch.ones(n_items, dtype=torch.bool))
        self.lstm = nn.LSTM(
            embedding_dim,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.project = nn.Linear(hidden_size, embedding_dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def item_table(self) -> Any:
        """Return the item embeddings, shape ``(n_items, embedding_dim)``."""
        table = self.item_bias.new_zeros(self.n_items, self.project.out_features)
        if self.item_ids is not None:
            table = table + self.item_ids.weight * self.trained.unsqueeze(1).to(table.dtype)
        if self.content is not None:
            table = table + self.content(self.features)
        return table

    def encode(self, items: Any, table: Any = None) -> Any:
        """Projected LSTM outputs ``(batch, length, embedding_dim)`` for right-padded ``items``.

        ``items`` holds item indices, padded with ``n_items`` after each
        sequence's end. The LSTM is causal, so the output at a position
        depends only on the items up to it: padding never changes it.
        """
        if table is None:
            table = self.item_table()
        padded = torch.cat([table, table.new_zeros(1, table.shape[1])])
        out, _ = self.lstm(self.drop(F.embedding(items, padded)))
        return self.project(self.drop(out))

    def user_states(self, items: Any, lengths: Any, table: Any = None) -> Any:
        """The projected state after each sequence's last item, ``(batch, embedding_dim)``.

        A sequence of length 0 gets the projection of the zero state.
        """
        if items.shape[1] == 0 or int(lengths.max()) == 0:
            zero = self.project.bias.new_zeros(items.shape[0], self.project.in_features)
            return self.project(zero)
        out = self.encode(items, table)
        last = (lengths - 1).clamp(min=0)
        states = out[torch.arange(items.shape[0], device=items.device), last]
        empty = lengths == 0
        if bool(empty.any()):
            zero = self.project.bias.new_zeros(1, self.project.in_features)
            states = torch.where(empty.unsqueeze(1), self.project(zero), states)
        return states

    def forward(self, items: Any, targets: Any, negatives: Any = None) -> Any:
        """Mean cross-entropy of predicting ``targets`` (the next items) at every position.

        Parameters
        ----------
        items : torch.Tensor of shape (batch, length), int64
            Input items, right-padded with ``n_items``.
        targets : torch.Tensor of shape (batch, length), int64
            The item that follows each input; ``n_items`` where there is none.
        negatives : torch.Tensor of shape (n_negatives,), int64, optional
            Shared negatives of a sampled softmax (the target against these);
            None: full softmax over the items with training interactions.

        Returns
        -------
        torch.Tensor
            Scalar loss (0 when no position has a target).
        """
        table = self.item_table()
        states = self.encode(items, table)
        valid = targets != self.n_items
        states, targets = states[valid], targets[valid]
        if targets.numel() == 0:
            return states.sum() * 0.0
        if negatives is None:
            logits = states @ table.T + self.item_bias
            logits = logits.masked_fill(~self.trained, float("-inf"))
            return F.cross_entropy(logits, targets)
        positive = (states * table[targets]).sum(1, keepdim=True) + self.item_bias[targets, None]
        negative = states @ table[negatives].T + self.item_bias[negatives]
        negative = negative.masked_fill(negatives[None, :] == targets[:, None], float("-inf"))
        logits = torch.cat([positive, negative], dim=1)
        return F.cross_entropy(logits, torch.zeros_like(targets))


def train_epochs(
    module: Any,
    optimizer: Any,
    sequences: Any,
    lengths: Any,
    *,
    epochs: int,
    batch_size: int,
    generator: Any,
    n_negatives: int | None = None,
    candidates: Any = None,
    replay: tuple[Any, Any] | None = None,
    verbose: bool = False,
    desc: str = "SequentialLSTM",
) -> list[float]:
    """Run ``epochs`` passes of minibatch training over padded sequences.

    Parameters
    ----------
    module : SequenceNet or a wrapper of it (e.g. DistributedDataParallel)
        Called as ``module(items, targets, negatives)``; returns the loss.
    optimizer : torch.optim.Optimizer
    sequences : torch.Tensor of shape (n, max_len), int64
        Item sequences, oldest first, right-padded with ``n_items``; each
        sequence of length ``L >= 2`` yields ``L - 1`` (input, next item) pairs.
    lengths : torch.Tensor of shape (n,), int64
    epochs, batch_size : int
        Passes, and sequences per minibatch.
    generator : torch.Generator
        On the sequences' device; orders the sequences and draws negatives.
    n_negatives : int, optional
        Sampled softmax with this many shared negatives per minibatch, drawn
        uniformly from ``candidates``; None: full softmax.
    candidates : torch.Tensor of shape (n_candidates,), int64, optional
        Items negatives are drawn from.
    replay : (sequences, lengths), optional
        More sequences (as wide as ``sequences``), of which ``n`` drawn afresh
        each epoch join them (rehearsal, so an incremental update does not
        forget them).
    verbose : bool, default=False
        Show a progress bar over the epochs.
    desc : str
        Label of the progress bar and of the debug log lines.

    Returns
    -------
    list of float
        Mean loss per target item, per epoch.
    """
    device = sequences.device
    # In a torchrun process group of W processes: the same global batches of
    # W * batch_size sequences everywhere (the generator's state comes from rank 0),
    # each process trains on its contiguous part through DDP, its loss weighted by its
    # share of the batch's targets, so the averaged gradient is the global batch's.
    rank, world = get_rank(), get_world_size()
    step = DataParallelStep(module)
    broadcast_generator(generator)
    history = []
    for epoch in progress(range(epochs), verbose=verbose and rank == 0, desc=desc):
        module.train()
        seqs, lens = sequences, lengths
        if replay is not None and replay[0].shape[0]:
            pick = torch.randint(
                replay[0].shape[0], (sequences.shape[0],), generator=generator, device=device
            )
            seqs = torch.cat([seqs, replay[0][pick]])
            lens = torch.cat([lens, replay[1][pick]])
        order = torch.randperm(seqs.shape[0], generator=generator, device=device)
        total, count = 0.0, 0
        for start in range(0, order.numel(), batch_size * world):
            sel = order[start : start + batch_size * world]
            width = int(lens[sel].max())
            n_all = int((lens[sel] - 1).clamp(min=0).sum())
            if world > 1:
                if sel.numel() < world:
                    continue  # a last batch too small to give every process a sequence
                part = shard(sel.numel(), rank, world)
                sel = sel[part.start : part.stop]
            batch = seqs[sel, :width]
            items, targets = batch[:, :-1], batch[:, 1:]
            negatives = None
            if n_negatives is not None:
                draw = torch.randint(
                    candidates.numel(), (n_negatives,), generator=generator, device=device
                )
                negatives = candidates[draw]
            loss = step(module, items, targets, negatives)
            n = int((lens[sel] - 1).clamp(min=0).sum())
            optimizer.zero_grad(set_to_none=True)
            (loss * (n * world / max(n_all, 1)) if world > 1 else loss).backward()
            optimizer.step()
            total += float(loss.detach()) * n
            count += n
        if world > 1:
            sums = torch.tensor([total, count], dtype=torch.float64, device=_collective())
            torch.distributed.all_reduce(sums)
            total, count = float(sums[0]), int(sums[1])
        mean = total / max(count, 1)
        history.append(mean)
        logger.debug("%s epoch %d: loss %.6g", desc, epoch + 1, mean)
    return history


def _collective() -> torch.device:
    nccl = torch.distributed.get_backend() == "nccl"
    return torch.device("cuda") if nccl else torch.device("cpu")


def to_tensor(array: np.ndarray, device: Any) -> Any:
    """``torch.from_numpy`` onto ``device`` (a copy, so the array is never aliased)."""
    return torch.from_numpy(np.ascontiguousarray(array)).to(device, copy=True)


def build_network(
    architecture: dict[str, Any],
    n_items: int,
    features: np.ndarray | None,
    trained: np.ndarray,
    dropout: float,
    seed: int,
) -> Any:
    """A SequenceNet on the CPU, initialised from ``seed`` without touching torch's global RNG."""
    with seeded(seed, torch.device("cpu")):
        net = SequenceNet(
            n_items,
            int(architecture["n_features"]),
            int(architecture["embedding_dim"]),
            int(architecture["hidden_size"]),
            int(architecture["num_layers"]),
            dropout,
            bool(architecture["use_item_ids"]),
        )
    if features is not None:
        net.features.copy_(torch.from_numpy(features))
    net.trained.copy_(torch.from_numpy(np.asarray(trained, dtype=bool)))
    return net


@contextmanager
def seeded(seed: int, device: Any) -> Iterator[None]:
    """Fork torch's global RNG (CPU and a CUDA ``device``), seed it, and restore it on exit."""
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def on_one_thread(fn: Any) -> Any:
    """Run ``fn()`` on a worker thread that uses one intra-op torch thread."""
    main_threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return pool.submit(fn).result()
    finally:
        torch.set_num_threads(main_threads)  # as TorchWorkers: never leak the setting
