"""DistributedDataParallel for avrec's training loops: the step, gathered rows, buffers.

Used by the encoders, BPR, VBPR and SequentialLSTM when they run in a ``torchrun``
process group (see :mod:`avrec.utils._distributed`); each is a plain call for a single
process. torch is imported lazily.
"""

from __future__ import annotations

from typing import Any

from avrec.utils._distributed import _collective_device, _dist, is_distributed

__all__ = ["DataParallelStep", "all_gather_rows", "sync_buffers"]


class DataParallelStep:
    """Run one training step's loss through DistributedDataParallel, or directly when alone.

    A training loop calls ``loss = step(compute_loss, *args)`` and then
    ``loss.backward()``. With a process group of several processes,
    ``compute_loss`` runs as the ``forward`` of a
    :class:`torch.nn.parallel.DistributedDataParallel` wrapper around
    ``module``, so the backward pass all-reduces (averages) the gradients of
    ``module``'s parameters over the processes, overlapped with the backward
    computation, exactly as for a model called through DDP; without one it is
    just ``compute_loss(*args)``. The closure form lets estimators whose loss
    calls several sub-modules (two views, a generator and a discriminator)
    use DDP unchanged.

    Parameters
    ----------
    module : torch.nn.Module
        Holds every parameter the losses train (on its device).
    find_unused_parameters : bool, default=False
        Let a step leave some parameters out (e.g. a GAN's generator in the
        discriminator's step); see DDP.
    broadcast_buffers : bool, default=False
        DDP's copy of rank 0's buffers at every forward. Off by default: it
        writes BatchNorm statistics in place, which breaks a backward through a
        sub-module run before the step (a GAN's generator); call
        :func:`sync_buffers` once per epoch instead.

    Notes
    -----
    Each process should pass the *mean* loss of its part of the batch: DDP
    averages the gradients, so equal parts give the gradient of the mean over
    the whole batch. Every process must call the step the same number of times.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> step = DataParallelStep(net)
    >>> loss = step(lambda x: net(x).pow(2).mean(), torch.ones(3, 2))
    >>> loss.backward()
    >>> net.weight.grad.shape
    torch.Size([1, 2])
    """

    def __init__(
        self,
        module: Any,
        *,
        find_unused_parameters: bool = False,
        broadcast_buffers: bool = False,
    ) -> None:
        self.module = module
        self.ddp: Any = None
        if is_distributed():
            from torch.nn.parallel import DistributedDataParallel

            device = next(module.parameters()).device
            self.ddp = DistributedDataParallel(
                _closure_module(module),
                device_ids=[_cuda_index(device)] if device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters,
                broadcast_buffers=broadcast_buffers,
            )

    def __call__(self, compute_loss: Any, *args: Any) -> Any:
        """Return ``compute_loss(*args)``, computed inside DDP's forward when distributed."""
        if self.ddp is None:
            return compute_loss(*args)
        return self.ddp(compute_loss, *args)


def _cuda_index(device: Any) -> int:
    import torch

    return torch.cuda.current_device() if device.index is None else int(device.index)


def _closure_module(module: Any) -> Any:
    from torch import nn

    class _Closure(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, compute_loss: Any, *args: Any) -> Any:
            return compute_loss(*args)

    return _Closure(module)


def all_gather_rows(tensor: Any) -> Any:
    """Concatenate every process's rows of ``tensor`` in rank order, keeping autograd.

    For losses that compare the items of a batch with each other (contrastive
    losses and their in-batch negatives): each process passes the rows of its
    part of the global batch and gets the rows of the whole batch, in the
    order of a single process. Parts may differ in length. The backward pass
    sums the gradients every process computes for a row (the autograd
    all-gather of :mod:`torch.distributed.nn`), so if every process computes
    the same loss of the gathered rows, DDP's average of the parameter
    gradients is the gradient of that loss. Without a group, ``tensor`` is
    returned as it is.

    Parameters
    ----------
    tensor : torch.Tensor of shape (n_r, ...)

    Returns
    -------
    torch.Tensor of shape (sum of n_r, ...)

    Examples
    --------
    >>> import torch
    >>> all_gather_rows(torch.ones(2, 3)).shape
    torch.Size([2, 3])
    """
    if not is_distributed():
        return tensor
    import torch
    from torch.distributed.nn.functional import all_gather

    dist = _dist()
    size = torch.tensor([tensor.shape[0]], device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    longest = max(counts)
    if tensor.shape[0] < longest:
        pad = tensor.new_zeros((longest - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, pad])
    parts = all_gather(tensor)
    return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])


def sync_buffers(module: Any, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm running statistics) to every process.

    DistributedDataParallel averages gradients, so the parameters stay equal,
    but each process updates its buffers from its own part of the batch. Call
    this before evaluating or saving a model trained in several processes.
    """
    if not is_distributed():
        return
    import torch

    dist = _dist()
    device = _collective_device()
    with torch.no_grad():
        for buffer in module.buffers():
            if buffer.dtype.is_floating_point or buffer.dtype in (torch.int64, torch.int32):
                tmp = buffer.detach().to(device)
                dist.broadcast(tmp, src=src)
                buffer.copy_(tmp)
