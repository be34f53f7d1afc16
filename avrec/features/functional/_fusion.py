"""Presence masks of item modalities: per-modality dropout for training learned fusion."""

from __future__ import annotations

import torch

from avrec.exceptions import ConfigurationError, DataValidationError

__all__ = ["modality_dropout"]


def modality_dropout(
    present: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Drop whole modalities per item with probability ``p``, never all of an item's.

    Each present modality of each item is dropped independently with
    probability ``p``; an item that would lose every modality it has keeps
    one of them, chosen uniformly at random. Training a fusion model on
    such masks (as DropoutNet does for cold items) teaches it to score items
    that miss a modality at inference time.

    Parameters
    ----------
    present : torch.Tensor of shape (n_items, n_modalities), bool
        Which modalities each item has.
    p : float
        Drop probability, in ``[0, 1]``.
    generator : torch.Generator, optional
        Source of randomness (on ``present``'s device), for reproducible masks.

    Returns
    -------
    torch.Tensor of shape (n_items, n_modalities), bool
        A subset of ``present``, with at least one True in every row that had one.

    Raises
    ------
    DataValidationError
        If ``present`` is not a 2-d bool tensor.
    ConfigurationError
        If ``p`` is not in ``[0, 1]``.

    Notes
    -----
    For an item with ``k`` present modalities, each of them is dropped with
    probability ``p - p**k / k`` (all ``k`` are drawn with probability
    ``p**k``, and then one of them is kept).

    Examples
    --------
    >>> import torch
    >>> present = torch.tensor([[True, True], [True, False]])
    >>> out = modality_dropout(present, 1.0, torch.Generator().manual_seed(0))
    >>> out.sum(dim=1).tolist()  # everything dropped but one modality per item
    [1, 1]
    >>> bool((out & ~present).any())
    False
    """
    if not isinstance(present, torch.Tensor) or present.dtype != torch.bool or present.ndim != 2:
        raise DataValidationError(
            "present must be a bool tensor of shape (n_items, n_modalities), got "
            f"{getattr(present, 'dtype', type(present).__name__)} "
            f"{tuple(getattr(present, 'shape', ()))}"
        )
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ConfigurationError(f"p must be a probability in [0, 1], got {p!r}")
    if p == 0 or present.numel() == 0:
        return present.clone()
    draws = torch.rand(present.shape, generator=generator, device=present.device)
    keep = present & (draws >= float(p))
    lost = present.any(dim=1) & ~keep.any(dim=1)
    # one present modality per lost item, uniformly: the largest of fresh uniforms
    pick = torch.rand(present.shape, generator=generator, device=present.device)
    pick = pick.masked_fill(~present, -1.0).argmax(dim=1)
    restore = torch.zeros_like(present)
    restore[torch.arange(present.shape[0], device=present.device), pick] = True
    return keep | (restore & lost[:, None])
