"""VBPR's trainable parts: the :class:`torch.nn.Module`, the triple sampler and the epoch loop.

Kept apart from the estimator (:mod:`avrec.recommenders.hybrid._vbpr`) so that
the loop can be driven with any :mod:`torch.optim` optimiser and the module
wrapped in :class:`torch.nn.parallel.DistributedDataParallel`: everything a
gradient needs is computed in :meth:`_VBPRModule.forward`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from avrec.recommenders.cf._bpr import PositivePairs, popularity_cdf, sample_negatives
from avrec.utils import (
    DataParallelStep,
    broadcast_generator,
    get_rank,
    get_world_size,
    progress,
    shard,
)

__all__ = ["TripleSampler", "run_epochs", "run_single_threaded"]

logger = logging.getLogger(__name__)


class _VBPRModule(nn.Module):
    """Parameters of VBPR and the pairwise score difference of a batch of triples.

    ``x_ui = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i``.
    Without features (``features.shape[1] == 0``) the content parameters
    are absent (``None``) and the model is BPR with an item bias.

    Parameters
    ----------
    user_factors : Tensor of shape (n_users, factors)
        ``gamma_u``.
    item_factors : Tensor of shape (n_items, factors)
        ``gamma_i``.
    item_bias : Tensor of shape (n_items,)
        ``b_i``.
    user_content : Tensor of shape (n_users, content_factors)
        ``theta_u``.
    projection : Tensor of shape (content_factors, d)
        ``E``.
    feature_bias : Tensor of shape (d,)
        ``beta'``.
    features : Tensor of shape (n_items, d)
        Standardised item features ``f_i`` (a buffer, not trained).
    regularization, content_regularization : float
        L2 weights, see :meth:`forward`.
    fusion : torch.nn.Module, optional
        A learned fusion (:class:`~avrec.features.nn.GatedFusion` or
        :class:`~avrec.features.nn.AttentionFusion`) of the modality blocks of
        ``features`` into the content space: it replaces ``E f_i`` (then
        ``projection`` is ignored and ``feature_bias`` has ``content_factors``
        entries, applied to the fused vector). Its weights count as shared
        content parameters.
    presence : Tensor of shape (n_items, n_modalities), bool, optional
        Which items have which modality (default: all).
    blocks : list of (int, int), optional
        Column range of each modality in ``features`` (default: one block).
    modality_dropout : float, default=0.0
        In training mode, drop each present modality of an item with this
        probability, never all of them: with ``fusion`` through the fusion's
        mask, without it by zeroing the modality's (standardised) columns.
    """

    def __init__(
        self,
        user_factors: torch.Tensor,
        item_factors: torch.Tensor,
        item_bias: torch.Tensor,
        user_content: torch.Tensor,
        projection: torch.Tensor,
        feature_bias: torch.Tensor,
        features: torch.Tensor,
        regularization: float,
        content_regularization: float,
        fusion: nn.Module | None = None,
        presence: torch.Tensor | None = None,
        blocks: list[tuple[int, int]] | None = None,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.user_factors = nn.Parameter(user_factors)
        self.item_factors = nn.Parameter(item_factors)
        self.item_bias = nn.Parameter(item_bias)
        self.has_content = features.shape[1] > 0
        for name, value in (
            ("user_content", user_content),
            ("projection", projection),
            ("feature_bias", feature_bias),
        ):
            self.register_parameter(name, nn.Parameter(value) if self.has_content else None)
        if fusion is not None:
            self.projection = None
        self.fusion = fusion
        self.register_buffer("features", features)
        self.blocks = list(blocks) if blocks is not None else [(0, int(features.shape[1]))]
        if presence is None:
            presence = torch.ones(features.shape[0], len(self.blocks), dtype=torch.bool)
        self.register_buffer("presence", presence)
        widths = torch.tensor([b - a for a, b in self.blocks], dtype=torch.int64)
        self.register_buffer("block_of_column", torch.repeat_interleave(widths))
        self.modality_dropout = float(modality_dropout)
        #: torch.Generator of the modality dropout (set by the trainer; None: global RNG)
        self.generator: torch.Generator | None = None
        self.regularization = float(regularization)
        self.content_regularization = float(content_regularization)

    def _dropped_features(self, items: torch.Tensor) -> torch.Tensor:
        """``f_i`` of ``items`` with the columns of dropped modalities zeroed (training)."""
        from avrec.features.functional import modality_dropout

        f = self.features.index_select(0, items)
        if self.training and self.modality_dropout > 0 and len(self.blocks) > 1:
            mask = modality_dropout(
                self.presence.index_select(0, items), self.modality_dropout, self.generator
            )
            f = f * mask[:, self.block_of_column].to(f.dtype)
        return f

    def fused(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The fused content vectors of ``items`` (all items by default), shape (n, c).

        Modality dropout applies in training mode. Only with a ``fusion``.
        """
        f = self.features if items is None else self.features.index_select(0, items)
        present = self.presence if items is None else self.presence.index_select(0, items)
        xs = [f[:, start:stop] for start, stop in self.blocks]
        return self.fusion(xs, present, self.generator)

    def forward(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``x_ui - x_uj`` and each triple's L2 penalty, both of shape (n,).

        The penalty of a triple is ``regularization / 2`` times the squared
        norms of the rows it touches (``gamma_u, theta_u, gamma_i, gamma_j,
        b_i, b_j``) plus ``content_regularization / 2 * (||E||^2 + ||beta'||^2)``,
        so that summing over triples weighs the shared content parameters
        once per triple, as per-triple SGD does.
        """
        gu = self.user_factors.index_select(0, users)
        gi = self.item_factors.index_select(0, pos)
        gj = self.item_factors.index_select(0, neg)
        bi, bj = self.item_bias.index_select(0, pos), self.item_bias.index_select(0, neg)
        x = torch.sum(gu * (gi - gj), dim=1) + (bi - bj)
        sq = gu.square().sum(1) + gi.square().sum(1) + gj.square().sum(1) + bi**2 + bj**2
        penalty = 0.5 * self.regularization * sq
        if self.has_content and self.fusion is not None:
            tu = self.user_content.index_select(0, users)
            dc = self.fused(torch.cat([pos, neg])).view(2, pos.numel(), -1)
            dc = dc[0] - dc[1]
            x = x + torch.sum(tu * dc, dim=1) + dc @ self.feature_bias
            shared = self.feature_bias.square().sum()
            shared = shared + sum(p.square().sum() for p in self.fusion.parameters())
            penalty = (
                penalty
                + 0.5 * self.regularization * tu.square().sum(1)
                + 0.5 * self.content_regularization * shared
            )
        elif self.has_content:
            tu = self.user_content.index_select(0, users)
            df = self._dropped_features(pos) - self._dropped_features(neg)
            x = x + torch.sum(tu * (df @ self.projection.T), dim=1) + df @ self.feature_bias
            shared = self.projection.square().sum() + self.feature_bias.square().sum()
            penalty = (
                penalty
                + 0.5 * self.regularization * tu.square().sum(1)
                + 0.5 * self.content_regularization * shared
            )
        return x, penalty


class TripleSampler:
    """Minibatches of ``(user, positive, negative, keep)`` for one epoch at a time.

    Parameters
    ----------
    rows, cols : Tensor of shape (nnz,), int64
        The interactions to visit once per epoch, in random order.
    replay : tuple of two Tensors, optional
        Old interactions: each epoch adds as many of them as there are
        ``rows``, drawn uniformly with replacement (``partial_fit``).
    X_full : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Every known interaction: negatives are re-drawn when they hit one.
    negative_sampling : {"uniform", "popularity"}
    popularity_alpha : float
    device : torch.device

    Notes
    -----
    Items without interactions in ``X_full`` (cold items) are never drawn as
    negatives: the uniform sampler draws from the items that occur.
    """

    def __init__(
        self,
        rows: torch.Tensor,
        cols: torch.Tensor,
        replay: tuple[torch.Tensor, torch.Tensor] | None,
        X_full: sp.csr_matrix,
        negative_sampling: str,
        popularity_alpha: float,
        device: Any,
    ) -> None:
        self.rows, self.cols, self.replay = rows, cols, replay
        self.n_items = X_full.shape[1]
        self.positives = PositivePairs(X_full, device)
        counts = np.bincount(X_full.indices, minlength=self.n_items).astype(np.float64)
        alpha = float(popularity_alpha) if negative_sampling == "popularity" else 0.0
        self.cdf = None
        if alpha > 0 or (counts == 0).any():  # alpha 0: uniform over the items that occur
            self.cdf = popularity_cdf(counts, alpha, device)

    def __len__(self) -> int:
        return self.rows.numel() * (1 if self.replay is None else 2)

    def batches(
        self, batch_size: int, gen: torch.Generator
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield one epoch of minibatches of at most ``batch_size`` triples."""
        users, pos = self.rows, self.cols
        if self.replay is not None:
            old_rows, old_cols = self.replay
            pick = torch.randint(
                old_rows.numel(), (users.numel(),), generator=gen, device=users.device
            )
            users = torch.cat([users, old_rows[pick]])
            pos = torch.cat([pos, old_cols[pick]])
        order = torch.randperm(users.numel(), generator=gen, device=users.device)
        for start in range(0, order.numel(), batch_size):
            sel = order[start : start + batch_size]
            u, i = users.index_select(0, sel), pos.index_select(0, sel)
            j, keep = sample_negatives(u, self.n_items, self.positives, gen, self.cdf)
            yield u, i, j, keep


def run_epochs(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    sampler: TripleSampler,
    *,
    iterations: int,
    batch_size: int,
    gen: torch.Generator,
    verbose: bool = False,
    desc: str = "VBPR",
) -> list[float]:
    """Train ``module`` for ``iterations`` epochs on the BPR loss; return each epoch's mean loss.

    Each minibatch minimises ``sum(softplus(-x_uij) + penalty)`` over its
    kept triples (see :meth:`_VBPRModule.forward`) with one ``optimizer``
    step. ``module`` may be wrapped (e.g. in ``DistributedDataParallel``): it
    is only called.

    In a ``torchrun`` process group of ``W`` processes, every process draws
    the same global batches of ``W * batch_size`` triples (``gen``'s state is
    copied from rank 0), trains on its contiguous part through
    DistributedDataParallel and scales its loss by ``W``, so the averaged
    gradient is the single-process gradient of the global batch.

    Returns
    -------
    list of float
        Mean ``-ln sigma(x_uij)`` of each epoch's kept triples (no penalty).
    """
    rank, world = get_rank(), get_world_size()
    step = DataParallelStep(module)  # DDP in a process group, a plain call otherwise
    broadcast_generator(gen)
    history = []
    for epoch in progress(range(iterations), verbose=verbose and rank == 0, desc=desc):
        total = torch.zeros((), dtype=torch.float64, device=gen.device)
        count = torch.zeros((), dtype=torch.int64, device=gen.device)
        for u, i, j, keep in sampler.batches(batch_size * world, gen):
            if world > 1:  # this process's part of the global batch
                part = shard(u.numel(), rank, world)
                u, i, j, keep = (t[part.start : part.stop] for t in (u, i, j, keep))
            x, penalty = step(module, u, i, j)
            w = keep.to(x.dtype)
            ranking = torch.nn.functional.softplus(-x)
            loss = torch.sum((ranking + penalty) * w) * world
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += torch.sum(ranking.detach() * w, dtype=torch.float64)
            count += keep.sum()
        if world > 1:
            total, count = _all_reduce_sum(total), _all_reduce_sum(count)
        mean = float(total) / max(int(count), 1)
        history.append(mean)
        logger.debug("%s epoch %d: loss %.6g", desc, epoch + 1, mean)
    return history


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    t = t.to(device)
    dist.all_reduce(t)
    return t


def run_single_threaded(fn: Any) -> Any:
    """Return ``fn()`` computed on a worker thread that uses one intra-op torch thread.

    Minibatch kernels are too small for intra-op threads to pay off, and their
    barriers stall when the cores are shared (see :class:`~avrec.recommenders.BPR`).
    The caller's thread count is restored afterwards.
    """
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return pool.submit(fn).result()
    finally:
        torch.set_num_threads(threads)
