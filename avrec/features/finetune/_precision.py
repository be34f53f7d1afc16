"""Mixed precision and gradient checkpointing for fine-tuning, both active on CUDA only."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from torch import nn

from avrec.exceptions import ConfigurationError

__all__ = [
    "MIXED_PRECISION",
    "autocast",
    "check_mixed_precision",
    "enable_gradient_checkpointing",
    "grad_scaler",
]

logger = logging.getLogger(__name__)

#: Accepted ``mixed_precision`` values.
MIXED_PRECISION = (None, "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_mixed_precision(value: Any) -> str | None:
    """Return ``value`` if it is one of :data:`MIXED_PRECISION`, else raise ConfigurationError.

    Parameters
    ----------
    value : None, "bf16" or "fp16"

    Returns
    -------
    None or str

    Examples
    --------
    >>> check_mixed_precision("bf16")
    'bf16'
    """
    if value not in MIXED_PRECISION:
        raise ConfigurationError(f"mixed_precision must be one of {MIXED_PRECISION}, got {value!r}")
    return value


def autocast(
    device: torch.device, mixed_precision: str | None
) -> contextlib.AbstractContextManager:
    """:func:`torch.autocast` to ``mixed_precision`` on CUDA; a no-op on the CPU or with None.

    Parameters
    ----------
    device : torch.device
    mixed_precision : None, "bf16" or "fp16"

    Returns
    -------
    context manager

    Examples
    --------
    >>> import torch
    >>> with autocast(torch.device("cpu"), "fp16"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    if mixed_precision is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=_DTYPES[mixed_precision])


def grad_scaler(device: torch.device, mixed_precision: str | None) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 on CUDA (bf16 needs none)."""
    enabled = mixed_precision == "fp16" and device.type == "cuda"
    return torch.amp.GradScaler("cuda", enabled=enabled)


def enable_gradient_checkpointing(network: nn.Module, device: torch.device) -> bool:
    """Turn on gradient checkpointing in the HF or timm models inside ``network``, on CUDA.

    Transformers models are switched with ``activation_checkpointing_enable``
    (``gradient_checkpointing_enable`` before transformers 5), non-reentrant so
    that frozen inputs are fine, timm models with ``set_grad_checkpointing(True)``.
    On the CPU nothing changes. Transformers layers checkpoint only in training
    mode: :class:`FineTunedNet` sets their flag while it trains.

    Parameters
    ----------
    network : torch.nn.Module
    device : torch.device

    Returns
    -------
    bool
        Whether some submodule was switched.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enable_gradient_checkpointing(nn.Linear(2, 2), torch.device("cpu"))
    False
    """
    if device.type != "cuda":
        logger.debug("gradient checkpointing is used on CUDA only; skipped on %s", device)
        return False
    switched = False
    for module in network.modules():
        if hasattr(module, "gradient_checkpointing_enable") and getattr(
            module, "supports_gradient_checkpointing", False
        ):
            kwargs = {"use_reentrant": False}
            if hasattr(module, "activation_checkpointing_enable"):  # transformers >= 5
                module.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            switched = True
        elif hasattr(module, "set_grad_checkpointing") and not switched:
            try:
                module.set_grad_checkpointing(True)
                switched = True
            except (AssertionError, NotImplementedError):  # timm models without support
                continue
    if not switched:
        logger.info("gradient checkpointing requested but no HF or timm model supports it here")
    return switched
