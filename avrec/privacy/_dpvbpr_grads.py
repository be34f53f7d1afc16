"""DP-SGD building blocks of DPVBPR: per-user gradients with a content term, clipping, fold-in.

The released item-side parameters of VBPR (item factors with bias, the projection ``E`` and
the feature bias ``beta'``) get per-user gradients with :func:`torch.func.vmap` of
:func:`torch.func.grad`; :func:`clip_jointly` bounds each user's contribution before the
sum is noised.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "clip_jointly",
    "clipped_content_gradient_sum",
    "per_user_content_gradients",
]

#: Bound on the per-user ``content_factors x d`` gradients held at once (floats).
_GRAD_BLOCK = 2**24


def _user_content_loss(
    pos: Any, neg: Any, user: Any, theta: Any, E: Any, beta: Any, dfeat: Any, mask: Any
) -> Any:
    """VBPR loss of one user: ``sum_t mask_t * softplus(-x_uij)``.

    ``pos``/``neg`` are ``(T, f + 1)`` item-table rows (bias last), ``user``
    is ``gamma_u`` ``(f,)``, ``theta`` is ``theta_u`` ``(c,)``, ``E`` is
    ``(c, d)``, ``beta`` is ``(d,)``, ``dfeat`` is ``f_i - f_j`` ``(T, d)``.
    """
    import torch

    diff = pos - neg
    x = diff[:, :-1] @ user + diff[:, -1] + (dfeat @ E.T) @ theta + dfeat @ beta
    return torch.sum(torch.nn.functional.softplus(-x) * mask)


def per_user_content_gradients(
    pos: Any, neg: Any, users: Any, theta: Any, E: Any, beta: Any, dfeat: Any, mask: Any
) -> tuple[Any, ...]:
    """Per-user gradients of the VBPR loss, vectorised with ``torch.func.vmap(grad(...))``.

    Parameters
    ----------
    pos, neg : torch.Tensor of shape (B, T, f + 1)
        Item-table rows of each user's positives and negatives.
    users : torch.Tensor of shape (B, f)
        ``gamma_u``.
    theta : torch.Tensor of shape (B, c)
        ``theta_u``.
    E : torch.Tensor of shape (c, d)
    beta : torch.Tensor of shape (d,)
    dfeat : torch.Tensor of shape (B, T, d)
        ``f_i - f_j`` of each triple.
    mask : torch.Tensor of shape (B, T)
        1 for real triples, 0 for padding.

    Returns
    -------
    tuple of torch.Tensor
        Gradients with respect to ``pos`` and ``neg`` (B, T, f + 1), ``users``
        (B, f), ``theta`` (B, c), ``E`` (B, c, d) and ``beta`` (B, d), each
        user's own.
    """
    from torch.func import grad, vmap

    per_user = grad(_user_content_loss, argnums=(0, 1, 2, 3, 4, 5))
    return vmap(per_user, in_dims=(0, 0, 0, 0, None, None, 0, 0))(
        pos, neg, users, theta, E, beta, dfeat, mask
    )


def clip_jointly(grads: list[Any], max_norm: float) -> tuple[list[Any], Any]:
    """Scale each user's gradients (all of ``grads`` together) to L2 norm at most ``max_norm``.

    Parameters
    ----------
    grads : list of torch.Tensor, each of shape (B, ...)
        Per-user gradients; user ``b``'s norm is over ``g[b]`` of every ``g``.
    max_norm : float

    Returns
    -------
    clipped : list of torch.Tensor
    norms : torch.Tensor of shape (B,)
        Norms before clipping.
    """
    import torch

    sq = sum(g.pow(2).reshape(g.shape[0], -1).sum(1) for g in grads)
    norms = torch.sqrt(sq)
    scale = max_norm / torch.clamp(norms, min=max_norm)
    return [g * scale.reshape(-1, *([1] * (g.dim() - 1))).to(g.dtype) for g in grads], norms


def clipped_content_gradient_sum(
    table: Any,
    E: Any,
    beta: Any,
    features: Any,
    users: Any,
    theta: Any,
    pos: Any,
    neg: Any,
    mask: Any,
    max_norm: float,
    content_share: float | None = None,
) -> tuple[Any, Any, Any, Any, Any, float]:
    """Sum over users of their gradients of ``(table, E, beta)``, each user clipped jointly.

    Parameters
    ----------
    table : torch.Tensor of shape (n_items, f + 1)
        ``gamma_i`` and ``b_i`` (last column).
    E : torch.Tensor of shape (c, d)
    beta : torch.Tensor of shape (d,)
    features : torch.Tensor of shape (n_items, d)
        Standardised public features.
    users : torch.Tensor of shape (B, f)
    theta : torch.Tensor of shape (B, c)
    pos, neg : torch.Tensor of shape (B, T), int64
        Distinct positives, distinct negatives outside the history.
    mask : torch.Tensor of shape (B, T)
    max_norm : float
        Clipping bound ``C`` of each user's whole contribution.
    content_share : float in (0, 1), optional
        None clips each user's gradient of ``(table, E, beta)`` as one vector
        to ``C``. A share ``s`` clips the table part to ``C sqrt(1 - s)`` and the
        ``(E, beta)`` part to ``C sqrt(s)`` separately (per-layer clipping,
        McMahan et al. 2018): the whole is still at most ``C``.

    Returns
    -------
    sum_table : torch.Tensor of shape (n_items, f + 1)
    sum_E : torch.Tensor of shape (c, d)
    sum_beta : torch.Tensor of shape (d,)
        Sums of the clipped per-user gradients (no noise yet).
    grad_users, grad_theta : torch.Tensor of shape (B, f), (B, c)
        Unclipped gradients of each user's own ``gamma_u`` and ``theta_u``.
    loss : float
        Mean loss per real triple (NaN when there is none).
    """
    import torch

    B = users.shape[0]
    c, d = E.shape
    chunk = max(1, _GRAD_BLOCK // max(1, c * d))
    sum_table, sum_E, sum_beta = (
        torch.zeros_like(table),
        torch.zeros_like(E),
        torch.zeros_like(beta),
    )
    g_users, g_thetas = [], []
    total = 0.0
    for s in range(0, B, chunk):
        sl = slice(s, s + chunk)
        p, n, w = pos[sl], neg[sl], mask[sl]
        with torch.no_grad():
            rows_p, rows_n = table[p], table[n]
            dfeat = features[p] - features[n]
        g_p, g_n, g_u, g_t, g_E, g_b = per_user_content_gradients(
            rows_p, rows_n, users[sl], theta[sl], E, beta, dfeat, w
        )
        if content_share is None:
            (g_p, g_n, g_E, g_b), _ = clip_jointly([g_p, g_n, g_E, g_b], max_norm)
        else:
            (g_p, g_n), _ = clip_jointly([g_p, g_n], max_norm * math.sqrt(1 - content_share))
            (g_E, g_b), _ = clip_jointly([g_E, g_b], max_norm * math.sqrt(content_share))
        width = table.shape[1]
        sum_table.index_add_(0, p.reshape(-1), g_p.reshape(-1, width))
        sum_table.index_add_(0, n.reshape(-1), g_n.reshape(-1, width))
        sum_E += g_E.sum(0)
        sum_beta += g_b.sum(0)
        g_users.append(g_u)
        g_thetas.append(g_t)
        with torch.no_grad():
            diff = rows_p - rows_n
            x = (
                torch.einsum("btf,bf->bt", diff[..., :-1], users[sl])
                + diff[..., -1]
                + torch.einsum("btc,bc->bt", dfeat @ E.T, theta[sl])
                + dfeat @ beta
            )
            total += float((torch.nn.functional.softplus(-x) * w).sum())
    n_trip = float(mask.sum())
    loss = total / n_trip if n_trip else math.nan
    return sum_table, sum_E, sum_beta, torch.cat(g_users), torch.cat(g_thetas), loss
