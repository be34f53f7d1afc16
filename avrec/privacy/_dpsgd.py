"""User-level DP-SGD building blocks: per-user gradients, clipping, negatives, the optimiser.

Used by :class:`~avrec.privacy.DPBPR` and :class:`~avrec.privacy.DPVBPR`, which also share
:func:`fold_in_users` (user factors from a user's own history, no privacy cost). A *user*
is the privacy unit: each sampled user's gradient (the sum over their triples) is
computed with ``torch.func.vmap(grad(...))``, clipped as a whole, and only then summed and
noised.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError

__all__ = [
    "clip_per_user",
    "clipped_gradient_sum",
    "fold_in_users",
    "noisy_gradient",
    "per_user_gradients",
    "sample_distinct_negatives",
]

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


def _user_loss(pos: Any, neg: Any, user: Any, mask: Any) -> Any:
    """BPR loss of one user: ``sum_t mask_t * softplus(-(u . (h_i - h_j) + b_i - b_j))``.

    ``pos`` and ``neg`` are ``(T, f + 1)`` rows of the item table (factors and
    bias in the last column), ``user`` is ``(f,)``, ``mask`` is ``(T,)``.
    """
    import torch

    diff = pos - neg
    x = diff[:, :-1] @ user + diff[:, -1]
    return torch.sum(torch.nn.functional.softplus(-x) * mask)


def per_user_gradients(pos: Any, neg: Any, users: Any, mask: Any) -> tuple[Any, Any, Any]:
    """Per-user gradients of the summed BPR loss, vectorised with ``torch.func``.

    ``vmap(grad(loss))`` evaluates, for every user ``b`` of the batch, the
    gradient of that user's own loss (the sum over their triples) with
    respect to the item rows the triples touch and to the user's factor.

    Parameters
    ----------
    pos : torch.Tensor of shape (B, T, f + 1)
        Item rows (factors, then bias) of each user's positive items.
    neg : torch.Tensor of shape (B, T, f + 1)
        Item rows of the matching negative items.
    users : torch.Tensor of shape (B, f)
        User factors.
    mask : torch.Tensor of shape (B, T)
        1 for real triples, 0 for padding.

    Returns
    -------
    grad_pos, grad_neg : torch.Tensor of shape (B, T, f + 1)
    grad_users : torch.Tensor of shape (B, f)

    Examples
    --------
    >>> import torch
    >>> g = per_user_gradients(torch.ones(2, 3, 5), torch.zeros(2, 3, 5),
    ...                        torch.ones(2, 4), torch.ones(2, 3))
    >>> [t.shape for t in g]
    [torch.Size([2, 3, 5]), torch.Size([2, 3, 5]), torch.Size([2, 4])]
    """
    from torch.func import grad, vmap

    return vmap(grad(_user_loss, argnums=(0, 1, 2)))(pos, neg, users, mask)


def clip_per_user(grad_pos: Any, grad_neg: Any, max_norm: float) -> tuple[Any, Any, Any]:
    """Scale each user's item gradient to an L2 norm of at most ``max_norm``.

    The norm of user ``b`` is taken over all of ``grad_pos[b]`` and
    ``grad_neg[b]`` together. When the rows they belong to are distinct items
    (as :class:`DPBPR` guarantees: distinct positives, distinct negatives
    outside the history, padding with zero gradient), this is the norm of the
    user's gradient with respect to the whole item table.

    Parameters
    ----------
    grad_pos, grad_neg : torch.Tensor of shape (B, T, d)
    max_norm : float
        The clipping bound ``C``.

    Returns
    -------
    clipped_pos, clipped_neg : torch.Tensor of shape (B, T, d)
    norms : torch.Tensor of shape (B,)
        Norms before clipping.

    Examples
    --------
    >>> import torch
    >>> p, n, norms = clip_per_user(torch.full((1, 1, 4), 3.0), torch.zeros(1, 1, 4), 1.0)
    >>> float(norms[0]), round(float(torch.linalg.norm(p)), 6)
    (6.0, 1.0)
    """
    import torch

    sq = grad_pos.pow(2).sum(dim=(1, 2)) + grad_neg.pow(2).sum(dim=(1, 2))
    norms = torch.sqrt(sq)
    scale = (max_norm / torch.clamp(norms, min=max_norm)).to(grad_pos.dtype)
    return grad_pos * scale[:, None, None], grad_neg * scale[:, None, None], norms


def sample_distinct_negatives(history: Any, n: int, gen: Any) -> tuple[Any, Any]:
    """Draw ``n`` distinct items outside each user's history, uniformly without replacement.

    Parameters
    ----------
    history : torch.Tensor of shape (B, n_items), bool
        The users' histories.
    n : int
        Negatives per user (at most ``n_items``).
    gen : torch.Generator

    Returns
    -------
    items : torch.Tensor of shape (B, n), int64
        Distinct within each row.
    valid : torch.Tensor of shape (B, n), bool
        False where the user had fewer than ``n`` items outside their history
        (those entries are history items and must be masked out).

    Examples
    --------
    >>> import torch
    >>> hist = torch.tensor([[True, False, False, True]])
    >>> items, ok = sample_distinct_negatives(hist, 3, torch.Generator().manual_seed(0))
    >>> sorted(items[ok].tolist()), int(ok.sum())
    ([1, 2], 2)
    """
    import torch

    keys = torch.rand(history.shape, generator=gen, device=history.device)
    keys.masked_fill_(history, 2.0)
    neg_keys, items = torch.topk(keys, n, dim=1, largest=False)
    return items, neg_keys < 1.0


def clipped_gradient_sum(
    table: Any, users: Any, pos: Any, neg: Any, mask: Any, max_norm: float
) -> tuple[Any, Any, float]:
    """Sum over users of their item-table gradients, each clipped to L2 norm ``max_norm``.

    Parameters
    ----------
    table : torch.Tensor of shape (n_items, f + 1)
        Item factors and bias (last column).
    users : torch.Tensor of shape (B, f)
        The users' factors.
    pos, neg : torch.Tensor of shape (B, T), int64
        Item indices of each user's triples: distinct positives, distinct
        negatives outside the history.
    mask : torch.Tensor of shape (B, T)
        1 for real triples, 0 for padding.
    max_norm : float
        Clipping bound ``C``.

    Returns
    -------
    summed : torch.Tensor of shape (n_items, f + 1)
        Sum of the clipped per-user gradients (no noise yet).
    grad_users : torch.Tensor of shape (B, f)
        Unclipped gradients with respect to each user's own factor.
    loss : float
        Mean BPR loss per real triple (NaN when there is none).
    """
    import torch

    with torch.no_grad():
        rows_p, rows_n = table[pos], table[neg]
    g_pos, g_neg, g_user = per_user_gradients(rows_p, rows_n, users, mask)
    g_pos, g_neg, _ = clip_per_user(g_pos, g_neg, max_norm)
    d = table.shape[1]
    summed = torch.zeros_like(table)
    summed.index_add_(0, pos.reshape(-1), g_pos.reshape(-1, d))
    summed.index_add_(0, neg.reshape(-1), g_neg.reshape(-1, d))
    with torch.no_grad():
        diff = rows_p - rows_n
        x = torch.einsum("btf,bf->bt", diff[..., :-1], users) + diff[..., -1]
        n_trip = float(mask.sum())
        loss = (
            float((torch.nn.functional.softplus(-x) * mask).sum()) / n_trip if n_trip else math.nan
        )
    return summed, g_user, loss


def noisy_gradient(
    summed: Any, noise_multiplier: float, max_norm: float, normaliser: float, rng: Any
) -> Any:
    """The DP-SGD update direction: ``(summed + N(0, (sigma C)^2 I)) / normaliser``.

    The noise is drawn with numpy (``rng``, a PCG64 generator seeded with at least
    128 bits, see :func:`~avrec.privacy._randomness.release_generator`) rather than
    torch, whose CPU generator keeps only a 32-bit seed.

    Parameters
    ----------
    summed : torch.Tensor
        Sum of the clipped per-user gradients.
    noise_multiplier : float
        ``sigma``; 0 adds no noise.
    max_norm : float
        Clipping bound ``C``: the L2 sensitivity of ``summed``.
    normaliser : float
        Public divisor, the expected batch size ``q * n``.
    rng : numpy.random.Generator

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``summed``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> g = noisy_gradient(torch.zeros(20_000), 2.0, 0.5, 10.0, np.random.default_rng(0))
    >>> round(float(g.std()), 2)  # sigma * C / normaliser
    0.1
    """
    import torch

    out = summed
    if noise_multiplier > 0:
        z = rng.standard_normal(tuple(summed.shape), dtype=np.float32)
        noise = torch.from_numpy(z).to(device=summed.device, dtype=summed.dtype)
        out = summed + noise * (float(noise_multiplier) * float(max_norm))
    return out / float(normaliser)


class DenseAdam:
    """Dense Adam (Kingma & Ba 2015) on one tensor, updated in place.

    Written out rather than :class:`torch.optim.Adam`, whose first use imports
    torch's compiler stack (seconds) for a three-line update.
    """

    def __init__(self, param: Any, lr: float) -> None:
        import torch

        self.param, self.lr, self.t = param, lr, 0
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)

    def step(self, grad: Any) -> None:
        self.t += 1
        self.m.mul_(_BETA1).add_(grad, alpha=1 - _BETA1)
        self.v.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
        step = self.lr * math.sqrt(1 - _BETA2**self.t) / (1 - _BETA1**self.t)
        self.param.addcdiv_(self.m, self.v.sqrt().add_(_EPS), value=-step)


def padded_rows(X: sp.csr_matrix, width: int, device: Any) -> tuple[Any, Any]:
    """Each row's column indices, padded with 0 to ``width``, and the validity mask."""
    import torch

    counts = np.diff(X.indptr)
    idx = np.zeros((X.shape[0], width), dtype=np.int64)
    mask = np.arange(width)[None, :] < counts[:, None]
    idx[mask] = X.indices
    return torch.from_numpy(idx).to(device), torch.from_numpy(mask).to(device)


def check_real(value: Any, name: str, *, allow_zero: bool) -> None:
    """Validate a finite non-negative (or positive) real hyperparameter."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        need = "a non-negative" if allow_zero else "a positive"
        raise ConfigurationError(f"{name} must be {need} finite number, got {value!r}")


#: Bound on the ``users x history x items`` float32 block of the fold-in.
_FOLD_IN_BLOCK = 2**24


def fold_in_users(
    hist: sp.csr_matrix,
    V: np.ndarray,
    bias: np.ndarray,
    *,
    steps: int,
    learning_rate: float,
    regularization: float,
) -> np.ndarray:
    """User vectors from their histories alone: gradient descent on each user's BPR loss.

    Each history item is paired with every non-history item as a negative;
    the user vector starts at zero. Deterministic; each result depends only
    on the user's own history and the (DP) item vectors ``V`` and ``bias``.

    Parameters
    ----------
    hist : scipy.sparse.csr_matrix of shape (n, n_items)
    V : ndarray of shape (n_items, k)
    bias : ndarray of shape (n_items,)
    steps : int
    learning_rate, regularization : float

    Returns
    -------
    ndarray of shape (n, k), dtype float32
    """
    import torch

    Vt = torch.from_numpy(np.ascontiguousarray(V, dtype=np.float32))
    b = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    n_items, k = Vt.shape
    n = hist.shape[0]
    out = np.zeros((n, k), dtype=np.float32)
    lengths = np.diff(hist.indptr)
    hmax = int(lengths.max()) if n else 0
    if hmax == 0 or k == 0:
        return out
    chunk = max(1, _FOLD_IN_BLOCK // (hmax * n_items))
    for start in range(0, n, chunk):
        rows = hist[start : start + chunk]
        B = rows.shape[0]
        cnt = np.diff(rows.indptr)
        idx = np.zeros((B, hmax), dtype=np.int64)
        pm = np.arange(hmax)[None, :] < cnt[:, None]
        idx[pm] = rows.indices
        idx_t, pm_t = torch.from_numpy(idx), torch.from_numpy(pm).float()
        neg = torch.ones(B, n_items)
        neg[torch.from_numpy(np.repeat(np.arange(B), cnt)), torch.from_numpy(rows.indices)] = 0
        n_neg = neg.sum(1, keepdim=True)
        norm = torch.where(n_neg > 0, 1.0 / n_neg.clamp(min=1), torch.zeros_like(n_neg))
        u = torch.zeros(B, k)
        V_h = Vt[idx_t]  # (B, hmax, k)
        for _ in range(steps):
            s = u @ Vt.T + b
            s_pos = torch.gather(s, 1, idx_t)
            P = torch.sigmoid(s[:, None, :] - s_pos[:, :, None])
            P *= pm_t[:, :, None] * neg[:, None, :]
            col, row = P.sum(1), P.sum(2)
            g = (col @ Vt - torch.einsum("bh,bhf->bf", row, V_h)) * norm
            u -= learning_rate * (g + regularization * u)
        out[start : start + B] = u.numpy()
    return out
