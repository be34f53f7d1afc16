"""BPR's epochs over the processes of a ``torchrun`` job, with DistributedDataParallel.

The single-process path (:mod:`avrec.recommenders.cf._bpr`) writes the gradients by hand.
Here the same loss is written for autograd on an ``nn.Module`` holding the two tables, and
:class:`~avrec.utils.DataParallelStep` (DDP) all-reduces their gradients. Every process
draws the same order and the same negatives for a *global* batch of
``world_size * batch_size`` triples (one generator, its state copied from rank 0) and
trains on its contiguous part; each process's loss is the sum over its part times
``world_size``, so DDP's average is the gradient of the sum over the global batch — the
single-process update with ``batch_size * world_size``, up to the order of float sums.
The optimiser then updates the rows the global batch touched (SGD or lazy Adam), as in
the single-process path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.utils import (
    DataParallelStep,
    broadcast_generator,
    get_rank,
    get_world_size,
    progress,
    shard,
)

__all__ = ["distributed_epochs"]


def _tables(U: Any, V: Any) -> Any:
    from torch import nn

    class _Tables(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.U = nn.Parameter(U)  # shares U's storage: updates land in U
            self.V = nn.Parameter(V)

    return _Tables()


def distributed_epochs(
    model: Any,
    U: Any,
    V: Any,
    rows: Any,
    cols: Any,
    replay: tuple[Any, Any] | None,
    X_full: sp.csr_matrix,
    gen: Any,
) -> list[float]:
    """Run ``model.iterations`` epochs on ``U`` and ``V`` in place, in every process.

    Parameters
    ----------
    model : BPR
        Supplies the hyperparameters.
    U : torch.Tensor of shape (n_users, factors)
    V : torch.Tensor of shape (n_items, factors + 1)
        Item factors and bias.
    rows, cols : torch.Tensor of shape (nnz,)
        The interactions to visit each epoch.
    replay : (torch.Tensor, torch.Tensor) or None
        Old interactions to replay (``partial_fit``).
    X_full : scipy.sparse.csr_matrix
        Every known interaction (negatives are checked against it).
    gen : torch.Generator
        Its state is replaced by rank 0's so that all processes draw alike.

    Returns
    -------
    list of float
        Mean loss of each epoch over all processes' triples.
    """
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    from avrec.recommenders.cf._bpr import (
        PositivePairs,
        _RowOptimizer,
        popularity_cdf,
        sample_negatives,
    )

    rank, world = get_rank(), get_world_size()
    device = U.device
    coll = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    broadcast_generator(gen)
    tables = _tables(U, V)
    step = DataParallelStep(tables)  # copies rank 0's tables
    n_items = V.shape[0]
    positives = PositivePairs(X_full, device)
    cdf = None
    if model.negative_sampling == "popularity":
        counts = np.bincount(X_full.indices, minlength=n_items).astype(np.float64)
        cdf = popularity_cdf(counts, float(model.popularity_alpha), device)
    opt_u = _RowOptimizer(U, model.optimizer, float(model.learning_rate))
    opt_v = _RowOptimizer(V, model.optimizer, float(model.learning_rate))
    reg, bs = float(model.regularization), int(model.batch_size) * world
    f = U.shape[1]

    def loss_of(u: Any, i: Any, j: Any, keep: Any) -> tuple[Any, Any]:
        wu, hi, hj = tables.U[u], tables.V[i], tables.V[j]
        diff = hi - hj
        x = torch.sum(wu * diff[:, :f], dim=1) + diff[:, f]
        losses = F.softplus(-x) * keep
        penalty = 0.5 * reg * (wu.square().sum() + hi.square().sum() + hj.square().sum())
        return (losses.sum() + penalty) * world, torch.sum(losses.detach(), dtype=torch.float64)

    history = []
    verbose = bool(model.verbose) and rank == 0
    for _ in progress(range(model.iterations), verbose=verbose, desc="BPR (DDP)"):
        if replay is None:
            users, pos = rows, cols
        else:
            pick = torch.randint(replay[0].numel(), (rows.numel(),), generator=gen, device=device)
            users = torch.cat([rows, replay[0][pick]])
            pos = torch.cat([cols, replay[1][pick]])
        order = torch.randperm(users.numel(), generator=gen, device=device)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, order.numel(), bs):
            sel = order[start : start + bs]
            u, i = users.index_select(0, sel), pos.index_select(0, sel)
            j, keep = sample_negatives(u, n_items, positives, gen, cdf)
            part = shard(int(sel.numel()), rank, world)
            mine = slice(part.start, part.stop)
            loss, fit = step(loss_of, u[mine], i[mine], j[mine], keep[mine].to(U.dtype))
            tables.zero_grad(set_to_none=False)
            loss.backward()  # DDP averages: the gradient of the global batch's sum
            total += fit
            with torch.no_grad():
                touched_u = torch.unique(u)
                touched_v = torch.unique(torch.cat([i, j]))
                opt_u.update(touched_u, tables.U.grad.index_select(0, touched_u))
                opt_v.update(touched_v, tables.V.grad.index_select(0, touched_v))
        total = total.to(coll)
        dist.all_reduce(total)
        history.append(float(total) / max(int(order.numel()), 1))
    return history
