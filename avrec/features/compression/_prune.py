"""Magnitude and structured pruning of an encoder through :mod:`torch.nn.utils.prune`.

Unstructured pruning (``"l1_unstructured"``) zeroes the weights of smallest
magnitude, over all chosen layers at once (``scope="global"``) or the same
fraction in each layer (``scope="layer"``). Structured pruning
(``"ln_structured"``) zeroes whole channels, those of smallest L-n norm along
``dim`` (``dim=0``: a Linear layer's output units, a convolution's filters),
and also their biases, so that a pruned channel outputs a constant 0. Either
way ``prune.remove`` makes the pruning permanent: the network keeps its shape
with zeros in place (physically removing channels is not done).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
import torch.nn.utils.prune as torch_prune
from torch import nn

from avrec.exceptions import ConfigurationError
from avrec.features.compression._quantize import (
    check_exclude,
    check_layer_names,
    selected_modules,
)

__all__ = ["prune", "sparsity"]

#: Layer names accepted in ``layers`` -> the module types whose ``weight`` is pruned.
PRUNABLE: dict[str, type[nn.Module]] = {
    "Conv1d": nn.Conv1d,
    "Conv2d": nn.Conv2d,
    "Conv3d": nn.Conv3d,
    "Embedding": nn.Embedding,
    "Linear": nn.Linear,
}
_KINDS = ("l1_unstructured", "ln_structured")
#: Quantised modules counted by :func:`sparsity` under the name of the layer they replace.
_QUANTIZED = {"Linear": nnqd.Linear, "Embedding": nnq.Embedding}


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_prune_step(step: dict[str, Any]) -> dict[str, Any]:
    """Validate a ``prune`` recipe step; return it normalised."""
    kind = step.get("kind")
    if kind not in _KINDS:
        raise ConfigurationError(f"method must be one of {_KINDS}, got {kind!r}")
    amount = step.get("amount")
    if not _is_real(amount) or not 0.0 < float(amount) < 1.0:
        raise ConfigurationError(f"amount must be a fraction in (0, 1), got {amount!r}")
    scope = step.get("scope", "global")
    if scope not in ("global", "layer"):
        raise ConfigurationError(f"scope must be 'global' or 'layer', got {scope!r}")
    if kind == "ln_structured" and scope == "global":
        raise ConfigurationError(
            "scope='global' is for l1_unstructured only (torch prunes channels per layer); "
            "use scope='layer' with ln_structured"
        )
    n = 2 if step.get("n") is None else step["n"]  # None: the unused norm of l1_unstructured
    if not (_is_real(n) and (math.isinf(n) or n > 0)):
        raise ConfigurationError(f"n must be a norm order > 0 (or inf), got {n!r}")
    dim = 0 if step.get("dim") is None else step["dim"]
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 0:
        raise ConfigurationError(f"dim must be an int >= 0, got {dim!r}")
    return {
        "method": "prune",
        "kind": kind,
        "amount": float(amount),
        "scope": scope,
        "n": float(n) if kind == "ln_structured" else None,
        "dim": dim if kind == "ln_structured" else None,
        "layers": check_layer_names(step.get("layers"), PRUNABLE, "pruning"),
        "exclude": check_exclude(step.get("exclude")),
    }


def apply_prune(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """Prune ``model`` in place as ``step`` (already checked) says; return it."""
    types = tuple(PRUNABLE[name] for name in step["layers"])
    chosen = [
        (name, module)
        for name, module in selected_modules(model, types, step["exclude"])
        if isinstance(getattr(module, "weight", None), nn.Parameter)
    ]
    if not chosen:
        raise ConfigurationError(
            f"the network has no float {'/'.join(step['layers'])} layer to prune "
            f"(after exclude={step['exclude']})"
        )
    amount = step["amount"]
    with torch.no_grad():
        if step["kind"] == "l1_unstructured" and step["scope"] == "global":
            torch_prune.global_unstructured(
                [(m, "weight") for _, m in chosen],
                pruning_method=torch_prune.L1Unstructured,
                amount=amount,
            )
        elif step["kind"] == "l1_unstructured":
            for _, module in chosen:
                torch_prune.l1_unstructured(module, "weight", amount=amount)
        else:
            dim = step["dim"]
            for name, module in chosen:
                if dim >= module.weight.dim():
                    raise ConfigurationError(
                        f"dim={dim} is out of range for {name!r} (weight of "
                        f"{module.weight.dim()} dimensions)"
                    )
                torch_prune.ln_structured(module, "weight", amount=amount, n=step["n"], dim=dim)
        for _, module in chosen:
            torch_prune.remove(module, "weight")
            bias = getattr(module, "bias", None)
            if step["kind"] == "ln_structured" and step["dim"] == 0 and bias is not None:
                dead = module.weight.flatten(1).eq(0).all(dim=1)
                bias[dead] = 0.0
    return model


def prune(
    encoder: Any,
    *,
    method: str = "l1_unstructured",
    amount: float = 0.5,
    scope: str = "global",
    n: float = 2,
    dim: int = 0,
    layers: Sequence[str] = ("Conv2d", "Linear"),
    exclude: Sequence[str] = (),
) -> Any:
    """A pruned copy of a fitted encoder (the original is untouched).

    Parameters
    ----------
    encoder : BaseEncoder
        A fitted encoder (or a :class:`CompressedEncoder`, whose recipe the
        new step extends).
    method : {"l1_unstructured", "ln_structured"}, default="l1_unstructured"
        Zero the individual weights of smallest magnitude, or whole channels
        of smallest L-``n`` norm along ``dim`` (and their biases when
        ``dim=0``).
    amount : float, default=0.5
        Fraction in (0, 1) of the weights (or channels) to zero:
        ``round(amount * size)``, as :mod:`torch.nn.utils.prune` counts.
    scope : {"global", "layer"}, default="global"
        ``"global"`` ranks the weights of all chosen layers together (layers
        end up with different sparsities); ``"layer"`` prunes each layer by
        ``amount``. Structured pruning is per layer only.
    n : float, default=2
        Norm order of ``ln_structured`` (``float("inf")`` allowed).
    dim : int, default=0
        Channel axis of ``ln_structured`` (0: output channels).
    layers : sequence of str, default=("Conv2d", "Linear")
        Layer types whose ``weight`` is pruned, among "Conv1d", "Conv2d",
        "Conv3d", "Embedding" and "Linear".
    exclude : sequence of str, default=()
        Glob patterns of module names left alone.

    Returns
    -------
    CompressedEncoder
        The pruned encoder; :func:`sparsity` reports its zeros.

    Raises
    ------
    ConfigurationError
        If an argument is invalid or no layer matches.
    NotFittedError
        If ``encoder`` is not fitted.

    Examples
    --------
    >>> from avrec.features import VideoEncoder
    >>> enc = VideoEncoder(frame_size=16, widths=(4, 8), embedding_dim=8, random_state=0).init()
    >>> pruned = prune(enc, amount=0.5, layers=("Conv2d",))
    >>> round(sparsity(pruned, layers=("Conv2d",))["total"], 2)
    0.5
    >>> round(sparsity(enc, layers=("Conv2d",))["total"], 2)  # the original is untouched
    0.0
    """
    from avrec.features.compression._compressed import compress

    step = {
        "method": "prune",
        "kind": method,
        "amount": amount,
        "scope": scope,
        "n": n,
        "dim": dim,
        "layers": list(layers) if not isinstance(layers, str) else layers,
        "exclude": list(exclude) if not isinstance(exclude, str) else exclude,
    }
    return compress(encoder, step)


def sparsity(model: Any, *, layers: Sequence[str] = ("Conv2d", "Linear")) -> dict[str, Any]:
    """Fraction of zero weights of an encoder's (or a module's) layers.

    Parameters
    ----------
    model : BaseEncoder or torch.nn.Module
        A fitted encoder (its ``model_`` is inspected) or a network.
    layers : sequence of str, default=("Conv2d", "Linear")
        Layer types counted (names as in :func:`prune`); dynamically
        quantised Linear and Embedding layers count with their dequantised
        weights.

    Returns
    -------
    dict
        ``"total"``: zeros / weights over all counted layers (float);
        ``"layers"``: the fraction per layer name; ``"zeros"`` and
        ``"weights"``: the counts.

    Raises
    ------
    ConfigurationError
        If ``layers`` names an unknown type or ``model`` is neither.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2))
    >>> _ = nn.init.zeros_(net[0].weight[0])
    >>> sparsity(net)["total"]
    0.5
    """
    names = check_layer_names(layers, PRUNABLE, "sparsity")
    if hasattr(model, "_check_fitted") and not isinstance(model, nn.Module):
        model._check_fitted()
        model = model.model_
    if not isinstance(model, nn.Module):
        raise ConfigurationError(f"model must be an encoder or an nn.Module, got {model!r}")
    types = tuple(PRUNABLE[name] for name in names)
    quantized = tuple(_QUANTIZED[name] for name in names if name in _QUANTIZED)
    per_layer: dict[str, float] = {}
    zeros = total = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, types) and isinstance(
                getattr(module, "weight", None), torch.Tensor
            ):
                weight = module.weight
            elif quantized and isinstance(module, quantized):
                weight = module.weight().dequantize()
            else:
                continue
            z, t = int((weight == 0).sum()), weight.numel()
            per_layer[name] = z / t
            zeros, total = zeros + z, total + t
    return {
        "total": zeros / total if total else 0.0,
        "layers": per_layer,
        "zeros": zeros,
        "weights": total,
    }
