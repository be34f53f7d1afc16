"""Sequence models: :class:`TemporalPooling` and :class:`TemporalLSTM`.

Sequences are batch-first ``(B, L, d)``; a boolean ``mask`` of shape ``(B, L)``
marks the valid steps (True) and ``lengths`` of shape ``(B,)`` counts them.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = ["TemporalLSTM", "TemporalPooling"]


def _check_input(x: Any, name: str, ndim: int, layout: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != ndim or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        dtype = f", dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""
        raise DataValidationError(
            f"{name} must be a floating tensor of shape {layout}, got {got}{dtype}"
        )
    return x


def _check_positive(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigurationError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_widths(widths: Sequence[int], name: str = "widths") -> tuple[int, ...]:
    widths = tuple(widths)
    if not widths:
        raise ConfigurationError(f"{name} must be a non-empty sequence of ints >= 1")
    return tuple(_check_positive(w, name) for w in widths)


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {choices}, got {value!r}")
    return str(value)


def _check_mask(mask: torch.Tensor | None, batch: int, length: int) -> torch.Tensor | None:
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.shape != (batch, length):
        got = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise DataValidationError(f"mask must be a tensor of shape ({batch}, {length}), got {got}")
    mask = mask.bool()
    if not bool(mask.any(dim=1).all()):
        raise DataValidationError("mask must keep at least one step of every sequence")
    return mask


class TemporalPooling(nn.Module):
    """Pool a sequence ``(B, L, d)`` over time into ``(B, d)``, ignoring masked steps.

    Parameters
    ----------
    dim : int
        Feature size ``d``.
    mode : {"mean", "attention", "max"}, default="mean"
        ``"attention"`` is additive attention pooling: weights
        ``softmax_t(v . tanh(W x_t + b))`` over the valid steps.
    attention_dim : int or None, default=None
        Hidden size of the attention scorer (default ``dim``).

    Attributes
    ----------
    embedding_dim : int
        Output size (``dim``).

    Notes
    -----
    :meth:`reset_parameters` draws ``W`` and ``v`` Xavier-uniform and zeroes ``b``.

    Examples
    --------
    >>> import torch
    >>> pool = TemporalPooling(4, "attention")
    >>> x = torch.randn(2, 5, 4)
    >>> mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    >>> pool(x, mask).shape
    torch.Size([2, 4])
    >>> torch.allclose(TemporalPooling(4)(x, mask)[1], x[1, :2].mean(0))
    True
    """

    def __init__(
        self,
        dim: int,
        mode: Literal["mean", "attention", "max"] = "mean",
        attention_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.dim = _check_positive(dim, "dim")
        self.mode = _check_choice(mode, "mode", ("mean", "attention", "max"))
        self.embedding_dim = self.dim
        if self.mode == "attention":
            hidden = (
                self.dim
                if attention_dim is None
                else _check_positive(attention_dim, "attention_dim")
            )
            self.project = nn.Linear(self.dim, hidden)
            self.score = nn.Linear(hidden, 1, bias=False)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the attention weights (no-op for mean and max)."""
        if self.mode == "attention":
            nn.init.xavier_uniform_(self.project.weight, generator=generator)
            nn.init.zeros_(self.project.bias)
            nn.init.xavier_uniform_(self.score.weight, generator=generator)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pool.

        Parameters
        ----------
        x : torch.Tensor of shape (B, L, dim)
        mask : torch.Tensor of shape (B, L), bool, optional
            True for valid steps; every row needs one.

        Returns
        -------
        torch.Tensor of shape (B, dim)
        """
        _check_input(x, "x", 3, "(B, L, dim)")
        mask = _check_mask(mask, x.shape[0], x.shape[1])
        if self.mode == "mean":
            if mask is None:
                return x.mean(dim=1)
            weights = mask.to(x.dtype)
            return (x * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)
        if self.mode == "max":
            if mask is None:
                return x.amax(dim=1)
            return x.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        scores = self.score(torch.tanh(self.project(x))).squeeze(-1)  # (B, L)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return (torch.softmax(scores, dim=1)[..., None] * x).sum(dim=1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, mode={self.mode!r}"


class TemporalLSTM(nn.Module):
    """(Bi)LSTM over a sequence of embeddings, pooled into one vector per sequence.

    Padded steps (beyond ``lengths``) are packed away, so a sequence gives the
    same output whatever it is padded to.

    Parameters
    ----------
    input_dim : int
        Size ``d_in`` of each step.
    hidden_dim : int, default=128
        LSTM hidden size per direction.
    num_layers : int, default=1
    bidirectional : bool, default=True
    dropout : float, default=0.0
        Dropout between LSTM layers (needs ``num_layers > 1``).
    pooling : {"attention", "mean", "max", "last"}, default="attention"
        How the outputs are pooled over time; ``"last"`` concatenates the final
        hidden state of each direction.

    Attributes
    ----------
    embedding_dim : int
        Output size ``d_out = hidden_dim * (2 if bidirectional else 1)``.

    Notes
    -----
    :meth:`reset_parameters`: input-hidden weights Xavier-uniform, hidden-hidden
    weights orthogonal, biases zero except the forget-gate bias (1), then the
    pooling's own initialisation.

    Examples
    --------
    >>> import torch
    >>> lstm = TemporalLSTM(16, hidden_dim=8)
    >>> x = torch.randn(3, 10, 16)
    >>> lstm(x, lengths=torch.tensor([10, 4, 1])).shape
    torch.Size([3, 16])
    >>> lstm.sequence(x).shape
    torch.Size([3, 10, 16])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int = 128,
        num_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.0,
        pooling: Literal["attention", "mean", "max", "last"] = "attention",
    ) -> None:
        super().__init__()
        self.input_dim = _check_positive(input_dim, "input_dim")
        self.hidden_dim = _check_positive(hidden_dim, "hidden_dim")
        self.num_layers = _check_positive(num_layers, "num_layers")
        self.bidirectional = bool(bidirectional)
        if not 0.0 <= dropout < 1.0:
            raise ConfigurationError(f"dropout must be in [0, 1), got {dropout!r}")
        self.pooling = _check_choice(pooling, "pooling", ("attention", "mean", "max", "last"))
        self.embedding_dim = self.hidden_dim * (2 if self.bidirectional else 1)
        self.lstm = nn.LSTM(
            self.input_dim,
            self.hidden_dim,
            num_layers=self.num_layers,
            batch_first=True,
            bidirectional=self.bidirectional,
            dropout=dropout if self.num_layers > 1 else 0.0,
        )
        self.pool = TemporalPooling(
            self.embedding_dim, "mean" if self.pooling == "last" else self.pooling
        )
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise all weights (see Notes); ``generator`` makes it reproducible."""
        h = self.hidden_dim
        for name, param in self.lstm.named_parameters():
            if name.startswith("weight_ih"):
                for gate in param.data.split(h):
                    nn.init.xavier_uniform_(gate, generator=generator)
            elif name.startswith("weight_hh"):
                for gate in param.data.split(h):
                    nn.init.orthogonal_(gate, generator=generator)
            else:
                nn.init.zeros_(param)
                if name.startswith("bias_ih"):
                    nn.init.ones_(param.data[h : 2 * h])
        self.pool.reset_parameters(generator)

    def _run(
        self, x: torch.Tensor, lengths: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        _check_input(x, "x", 3, "(B, L, input_dim)")
        batch, length = x.shape[:2]
        if x.shape[2] != self.input_dim:
            raise DataValidationError(f"x must have {self.input_dim} features, got {x.shape[2]}")
        steps = torch.arange(length, device=x.device)
        if mask is not None:
            mask = _check_mask(mask, batch, length)
            lengths_from_mask = mask.sum(dim=1)
            if not torch.equal(mask, steps < lengths_from_mask[:, None]):
                raise DataValidationError("mask must mark a prefix of each sequence")
            if lengths is not None and not torch.equal(lengths.to(mask.device), lengths_from_mask):
                raise DataValidationError("lengths and mask disagree")
            lengths = lengths_from_mask
        if lengths is None:
            output, (h_n, _) = self.lstm(x)
            return output, h_n, None
        lengths = torch.as_tensor(lengths, device=x.device)
        if lengths.shape != (batch,) or bool(((lengths < 1) | (lengths > length)).any()):
            raise DataValidationError(f"lengths must be ({batch},) ints in [1, {length}]")
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        output, (h_n, _) = self.lstm(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=length)
        return output, h_n, steps < lengths[:, None]

    def sequence(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-step outputs.

        Parameters
        ----------
        x : torch.Tensor of shape (B, L, input_dim)
        lengths : torch.Tensor of shape (B,), int, optional
            Valid steps per sequence (``1 <= lengths <= L``).
        mask : torch.Tensor of shape (B, L), bool, optional
            Alternative to ``lengths``: True on a prefix of each row.

        Returns
        -------
        torch.Tensor of shape (B, L, embedding_dim)
            Zero beyond each sequence's length.
        """
        return self._run(x, lengths, mask)[0]

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pooled sequence embedding.

        Parameters
        ----------
        x : torch.Tensor of shape (B, L, input_dim)
        lengths : torch.Tensor of shape (B,), int, optional
        mask : torch.Tensor of shape (B, L), bool, optional

        Returns
        -------
        torch.Tensor of shape (B, embedding_dim)
        """
        output, h_n, valid = self._run(x, lengths, mask)
        if self.pooling == "last":
            directions = 2 if self.bidirectional else 1
            last = h_n.view(self.num_layers, directions, x.shape[0], self.hidden_dim)[-1]
            return last.transpose(0, 1).reshape(x.shape[0], self.embedding_dim)
        return self.pool(output, valid)

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, pooling={self.pooling!r}"
