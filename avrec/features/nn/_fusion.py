"""Learned fusion of per-item modality embeddings with exact masking of absent modalities.

Both modules map a list (or dict) of per-modality tensors ``(n, d_m)`` and a
presence mask ``(n, M)`` to one ``(n, output_dim)`` embedding. An absent
modality contributes exactly nothing: its projection is replaced by zeros
(not multiplied by 0, so even NaN in an absent row cannot leak) and its
fusion weight is 0, so an item's output is a function of its present
modalities only. An item without any modality gets a zero vector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.features.functional._fusion import modality_dropout

__all__ = ["AttentionFusion", "GatedFusion"]


class _ModalityFusion(nn.Module):
    """Shared input handling: per-modality projections, presence masks, modality dropout."""

    def __init__(
        self,
        input_dims: Sequence[int] | Mapping[str, int],
        output_dim: int,
        modality_dropout: float,
    ) -> None:
        super().__init__()
        if isinstance(input_dims, Mapping):
            names: list[str] | None = [str(k) for k in input_dims]
            dims = list(input_dims.values())
        else:
            names, dims = None, list(input_dims)
        if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
            raise ConfigurationError(
                f"input_dims must be one positive int per modality, got {list(dims)}"
            )
        if isinstance(output_dim, bool) or not isinstance(output_dim, int) or output_dim < 1:
            raise ConfigurationError(f"output_dim must be a positive int, got {output_dim!r}")
        p = modality_dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ConfigurationError(f"modality_dropout must be in [0, 1), got {p!r}")
        self.modalities = names
        self.input_dims = dims
        self.output_dim = int(output_dim)
        self.embedding_dim = int(output_dim)
        self.modality_dropout = float(p)
        self.projections = nn.ModuleList(nn.Linear(d, output_dim) for d in dims)

    @property
    def n_modalities(self) -> int:
        """int: number of modalities ``M``."""
        return len(self.input_dims)

    def _inputs(
        self, inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor]:
        if isinstance(inputs, Mapping):
            if self.modalities is None:
                raise DataValidationError(
                    "inputs is a dict but the module was built from a list of input_dims; "
                    "pass a list of tensors"
                )
            missing = [m for m in self.modalities if m not in inputs]
            if missing:
                raise DataValidationError(
                    f"inputs lacks modalities {missing}; expected {self.modalities}"
                )
            inputs = [inputs[m] for m in self.modalities]
        inputs = list(inputs)
        if len(inputs) != self.n_modalities:
            raise DataValidationError(
                f"inputs must hold {self.n_modalities} tensors (one per modality), "
                f"got {len(inputs)}"
            )
        n = None
        for m, (x, d) in enumerate(zip(inputs, self.input_dims, strict=True)):
            if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != d:
                raise DataValidationError(
                    f"inputs[{m}] must be a tensor of shape (n_items, {d}), "
                    f"got {tuple(getattr(x, 'shape', ()))}"
                )
            if n is not None and x.shape[0] != n:
                raise DataValidationError(
                    f"inputs[{m}] has {x.shape[0]} rows, expected {n} like inputs[0]"
                )
            n = x.shape[0]
        return inputs

    def _present(self, present: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
        if present is None:
            return torch.ones(n, self.n_modalities, dtype=torch.bool, device=device)
        if (
            not isinstance(present, torch.Tensor)
            or present.dtype != torch.bool
            or tuple(present.shape) != (n, self.n_modalities)
        ):
            raise DataValidationError(
                f"present must be a bool tensor of shape ({n}, {self.n_modalities}), got "
                f"{getattr(present, 'dtype', type(present).__name__)} "
                f"{tuple(getattr(present, 'shape', ()))}"
            )
        return present.to(device)

    def _tokens(
        self,
        inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
        present: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projections ``(n, M, D)`` (zero where absent) and the mask ``(n, M)`` after dropout."""
        xs = self._inputs(inputs)
        mask = self._present(present, xs[0].shape[0], xs[0].device)
        if self.training and self.modality_dropout > 0:
            mask = modality_dropout(mask, self.modality_dropout, generator)
        h = torch.stack([proj(x) for proj, x in zip(self.projections, xs, strict=True)], dim=1)
        return torch.where(mask[..., None], h, torch.zeros((), dtype=h.dtype)), mask

    def forward(
        self,
        inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
        present: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Fuse the modalities of each item.

        Parameters
        ----------
        inputs : sequence of torch.Tensor of shape (n, d_m), or dict of them
            One tensor per modality, in the order of ``input_dims`` (a dict
            when the module was built from a dict of dims).
        present : torch.Tensor of shape (n, M), bool, optional
            Which modalities each item has. Default: all.
        generator : torch.Generator, optional
            Randomness of the modality dropout (training mode only).

        Returns
        -------
        torch.Tensor of shape (n, output_dim)
        """
        return self._fuse(*self._tokens(inputs, present, generator))[0]

    def fusion_weights(
        self,
        inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor],
        present: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return each item's weight of each modality, without modality dropout.

        Parameters
        ----------
        inputs : sequence of torch.Tensor of shape (n, d_m), or dict of them
        present : torch.Tensor of shape (n, M), bool, optional

        Returns
        -------
        torch.Tensor of shape (n, M)
            Non-negative, 0 for absent modalities, rows summing to 1 (0 for an
            item without modalities).
        """
        training = self.training
        try:
            self.train(False)
            return self._fuse(*self._tokens(inputs, present, None))[1]
        finally:
            self.train(training)

    def _fuse(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError  # pragma: no cover


class GatedFusion(_ModalityFusion):
    """Gated sum of per-modality projections; gates renormalised over the present modalities.

    With ``h_m = W_m x_m + b_m`` (zero when modality ``m`` is absent) and the
    presence indicators ``p``, the gates are
    ``g = sigmoid(G [h_1, ..., h_M, p] + c)`` (conditioned on which
    modalities the item has and what they say), the weights
    ``a_m = p_m g_m / sum_k p_k g_k`` and the output ``sum_m a_m h_m``.

    Parameters
    ----------
    input_dims : sequence of int, or dict of str to int
        Width ``d_m`` of each modality (a dict names them; ``forward`` then
        takes a dict).
    output_dim : int
        Shared width ``D`` of the projections and the output.
    modality_dropout : float, default=0.0
        In training mode, each present modality of an item is dropped with
        this probability, never all of them (:func:`~avrec.features.functional.modality_dropout`).

    Attributes
    ----------
    projections : torch.nn.ModuleList of torch.nn.Linear
        ``W_m, b_m``.
    gate : torch.nn.Linear
        ``G, c``: from ``M * D + M`` inputs to ``M`` gate logits.
    embedding_dim : int
        ``output_dim``.

    See Also
    --------
    AttentionFusion : attention of a learned query over modality tokens.

    References
    ----------
    .. [1] J. Arevalo, T. Solorio, M. Montes-y-Gomez, F. A. Gonzalez, "Gated
       Multimodal Units for Information Fusion", ICLR workshop 2017.

    Examples
    --------
    >>> import torch
    >>> fusion = GatedFusion({"audio": 4, "video": 6}, output_dim=8).eval()
    >>> x = {"audio": torch.randn(3, 4), "video": torch.randn(3, 6)}
    >>> present = torch.tensor([[True, True], [True, False], [False, True]])
    >>> fusion(x, present).shape
    torch.Size([3, 8])
    >>> fusion.fusion_weights(x, present)[1:].tolist()  # a lone modality gets all the weight
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(
        self,
        input_dims: Sequence[int] | Mapping[str, int],
        output_dim: int,
        *,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(input_dims, output_dim, modality_dropout)
        m = self.n_modalities
        self.gate = nn.Linear(m * self.output_dim + m, m)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (Xavier-uniform, zero biases); ``generator`` seeds it."""
        for layer in (*self.projections, self.gate):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)

    def _fuse(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flags = mask.to(h.dtype)
        gates = torch.sigmoid(self.gate(torch.cat([h.flatten(1), flags], dim=1)))
        gates = torch.where(mask, gates, torch.zeros((), dtype=h.dtype))
        total = gates.sum(dim=1, keepdim=True)
        weights = gates / torch.where(total > 0, total, torch.ones((), dtype=h.dtype))
        return torch.einsum("nm,nmd->nd", weights, h), weights


class AttentionFusion(_ModalityFusion):
    """Multi-head attention of a learned query over modality tokens, softmax over present ones.

    Each modality becomes a token ``t_m = W_m x_m + b_m + e_m`` (``e_m`` a
    learned modality embedding; zero when the modality is absent). Per head
    ``h`` the weights are the softmax over the *present* modalities of
    ``q_h . (K t_m)_h / sqrt(D / H)`` with a learned query ``q``, and the
    output's head-``h`` slice is ``sum_m alpha_hm (t_m)_h``: the tokens
    themselves are the values (attention pooling), so the output stays one
    linear layer away from the inputs, as in :class:`GatedFusion`.

    Parameters
    ----------
    input_dims : sequence of int, or dict of str to int
        Width ``d_m`` of each modality.
    output_dim : int
        Token and output width ``D``; divisible by ``num_heads``.
    num_heads : int, default=1
        Attention heads ``H``.
    modality_dropout : float, default=0.0
        As in :class:`GatedFusion`.

    Attributes
    ----------
    projections : torch.nn.ModuleList of torch.nn.Linear
        ``W_m, b_m``.
    modality_embedding : torch.nn.Parameter of shape (M, D)
        ``e_m``.
    query : torch.nn.Parameter of shape (D,)
        ``q``.
    key : torch.nn.Linear
        ``K`` (no bias).
    embedding_dim : int
        ``output_dim``.

    See Also
    --------
    GatedFusion : sigmoid gates renormalised over the present modalities.

    References
    ----------
    .. [1] A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> fusion = AttentionFusion([4, 6], output_dim=8, num_heads=2).eval()
    >>> x = [torch.randn(3, 4), torch.randn(3, 6)]
    >>> present = torch.tensor([[True, True], [True, False], [False, False]])
    >>> out = fusion(x, present)
    >>> out.shape, out[2].abs().sum().item()  # no modality: a zero vector
    (torch.Size([3, 8]), 0.0)
    >>> fusion.fusion_weights(x, present)[1].tolist()
    [1.0, 0.0]
    """

    def __init__(
        self,
        input_dims: Sequence[int] | Mapping[str, int],
        output_dim: int,
        *,
        num_heads: int = 1,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__(input_dims, output_dim, modality_dropout)
        if (
            isinstance(num_heads, bool)
            or not isinstance(num_heads, int)
            or num_heads < 1
            or self.output_dim % num_heads
        ):
            raise ConfigurationError(
                f"num_heads must be a positive int dividing output_dim={self.output_dim}, "
                f"got {num_heads!r}"
            )
        d = self.output_dim
        self.num_heads = int(num_heads)
        self.modality_embedding = nn.Parameter(torch.empty(self.n_modalities, d))
        self.query = nn.Parameter(torch.empty(d))
        self.key = nn.Linear(d, d, bias=False)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (Xavier-uniform, N(0, 0.02) embeddings and query)."""
        for layer in (*self.projections, self.key):
            nn.init.xavier_uniform_(layer.weight, generator=generator)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.modality_embedding, std=0.02, generator=generator)
        nn.init.normal_(self.query, std=1.0 / math.sqrt(self.output_dim), generator=generator)

    def _tokens(self, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
        h, mask = super()._tokens(*args)
        zero = torch.zeros((), dtype=h.dtype)
        h = torch.where(mask[..., None], h + self.modality_embedding, zero)
        return h, mask

    def _fuse(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, m, d = h.shape
        heads, width = self.num_heads, d // self.num_heads
        keys = self.key(h).view(n, m, heads, width)
        values = h.view(n, m, heads, width)
        q = self.query.view(heads, width)
        logits = torch.einsum("nmhw,hw->nhm", keys, q) / math.sqrt(width)
        absent = ~mask[:, None, :]
        logits = logits.masked_fill(absent, float("-inf"))
        empty = ~mask.any(dim=1)
        logits = logits.masked_fill(empty[:, None, None], 0.0)  # no NaN for items without any
        alpha = torch.softmax(logits, dim=-1).masked_fill(absent, 0.0)
        out = torch.einsum("nhm,nmhw->nhw", alpha, values).reshape(n, d)
        return out, alpha.mean(dim=1)
