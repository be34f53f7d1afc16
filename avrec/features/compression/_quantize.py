"""Post-training dynamic int8 quantisation of an encoder, and its pickle-free tensors.

:func:`quantize_dynamic` wraps :func:`torch.ao.quantization.quantize_dynamic`:
``nn.Linear`` weights become int8 (per output channel by default) with the
activations quantised on the fly, ``nn.LSTM``/``nn.GRU`` weights int8 per
tensor, and ``nn.Embedding`` tables uint8 weight-only with a float scale and
offset per row (``float_qparams_weight_only_qconfig``). Convolutions are not
covered by dynamic quantisation (they need static quantisation with
calibration data, which avrec does not offer): prune a CNN or distil it.

The quantised modules' weights are exported as plain tensors (the integer
values, the scales and the zero points) so that they can be written to
safetensors and rebuilt exactly.
"""

from __future__ import annotations

import contextlib
import fnmatch
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.ao.nn.quantized as nnq
import torch.ao.nn.quantized.dynamic as nnqd
from torch import nn
from torch.ao.nn.quantized.dynamic.modules.rnn import RNNBase as QuantizedRNNBase

from avrec.exceptions import ConfigurationError, PersistenceError

__all__ = ["quantize_dynamic"]

#: Layer names accepted in ``layers`` -> the float module types quantised.
QUANTIZABLE: dict[str, type[nn.Module]] = {
    "Embedding": nn.Embedding,
    "GRU": nn.GRU,
    "LSTM": nn.LSTM,
    "Linear": nn.Linear,
}
_SEP = "#"  # separates a weight's key from its parts: never in a module or parameter name


@contextlib.contextmanager
def quantized_engine(engine: str | None) -> Iterator[None]:
    """Pack (and unpack) quantised weights with ``engine`` (None: torch's current one)."""
    previous = torch.backends.quantized.engine
    if engine is not None:
        torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


@contextlib.contextmanager
def _quiet_deprecation() -> Iterator[None]:
    # torch 2.9 marks torch.ao.quantization deprecated in favour of torchao; the eager API
    # is what torch ships (torchao is not a dependency), so its warning is silenced here only
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning
        )
        yield


def check_layer_names(
    layers: Any, known: dict[str, type[nn.Module]], what: str, extra: str = ""
) -> list[str]:
    """``layers`` as a sorted list of names of ``known`` or a ConfigurationError."""
    if isinstance(layers, str) or not isinstance(layers, Sequence) or not layers:
        raise ConfigurationError(
            f"layers must be a non-empty sequence of names among {sorted(known)}, got {layers!r}"
        )
    for name in layers:
        if name not in known:
            raise ConfigurationError(
                f"layers: {what} does not cover {name!r}; choose among {sorted(known)}{extra}"
            )
    return sorted(set(layers))


def check_exclude(exclude: Any) -> list[str]:
    """``exclude`` as a list of glob patterns of module names or a ConfigurationError."""
    if exclude is None:
        return []
    if isinstance(exclude, str) or not isinstance(exclude, Sequence):
        raise ConfigurationError(
            f"exclude must be a sequence of module-name patterns, got {exclude!r}"
        )
    if not all(isinstance(p, str) and p for p in exclude):
        raise ConfigurationError(f"exclude must hold non-empty str patterns, got {exclude!r}")
    return list(exclude)


def selected_modules(
    model: nn.Module, types: tuple[type[nn.Module], ...], exclude: Sequence[str]
) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` of ``types`` in ``model`` whose name matches no ``exclude``."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if name
        and isinstance(module, types)
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
    ]


def check_quantize_step(step: dict[str, Any]) -> dict[str, Any]:
    """Validate a ``quantize_dynamic`` recipe step; return it normalised."""
    extra = (
        "; dynamic quantisation does not cover convolutions (static quantisation with "
        "calibration data is out of scope): prune or distil a CNN instead"
    )
    layers = check_layer_names(step.get("layers"), QUANTIZABLE, "dynamic quantisation", extra)
    per_channel = step.get("per_channel", True)
    if not isinstance(per_channel, bool):
        raise ConfigurationError(f"per_channel must be a bool, got {per_channel!r}")
    engine = step.get("engine")
    engines = torch.backends.quantized.supported_engines
    if engine is not None and (engine not in engines or engine == "none"):
        raise ConfigurationError(
            f"engine must be None or one of this torch build's {engines}, got {engine!r}"
        )
    return {
        "method": "quantize_dynamic",
        "layers": layers,
        "per_channel": per_channel,
        "exclude": check_exclude(step.get("exclude")),
        "engine": engine,
    }


def apply_quantize(model: nn.Module, step: dict[str, Any]) -> nn.Module:
    """A dynamically quantised copy of a CPU float ``model`` (``step`` already checked)."""
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        per_channel_dynamic_qconfig,
    )

    linear = per_channel_dynamic_qconfig if step["per_channel"] else default_dynamic_qconfig
    qconfigs = {
        nn.Embedding: float_qparams_weight_only_qconfig,
        nn.GRU: default_dynamic_qconfig,
        nn.LSTM: default_dynamic_qconfig,
        nn.Linear: linear,
    }
    types = tuple(QUANTIZABLE[name] for name in step["layers"])
    chosen = selected_modules(model, types, step["exclude"])
    if not chosen:
        raise ConfigurationError(
            f"the network has no {'/'.join(step['layers'])} layer left to quantise "
            f"(after exclude={step['exclude']}); dynamic quantisation does not cover "
            "convolutions"
        )
    spec = {}
    for name, module in chosen:
        # the most specific type decides (an nn.Linear subclass is still a Linear)
        spec[name] = next(q for t, q in qconfigs.items() if isinstance(module, t))
    with _quiet_deprecation(), quantized_engine(step["engine"]):
        from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic
        from torch.ao.quantization.quantization_mappings import (
            get_default_dynamic_quant_module_mappings,
        )

        mapping = {**get_default_dynamic_quant_module_mappings(), nn.Embedding: QuantizedEmbedding}
        return torch_quantize_dynamic(model, spec, dtype=torch.qint8, mapping=mapping)


class QuantizedEmbedding(nnq.Embedding):
    """A weight-only quantised embedding that also takes non-contiguous indices.

    transformers models index their position and token-type tables with
    expanded (non-contiguous) id tensors, which the quantised kernel refuses.
    """

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return super().forward(indices.contiguous())

    @classmethod
    def from_float(cls, mod: nn.Module, use_precomputed_fake_quant: bool = False) -> nnq.Embedding:
        quantized = nnq.Embedding.from_float(mod, use_precomputed_fake_quant)
        out = cls(quantized.num_embeddings, quantized.embedding_dim)
        out.set_weight(quantized.weight())
        return out


# ---------------------------------------------------------------------- tensors of a model
def _quantized_weights(module: nn.Module) -> dict[str, torch.Tensor] | None:
    """The named tensors of a quantised module (quantised weights and float biases)."""
    if isinstance(module, nnqd.Linear):
        out = {"weight": module.weight()}
        bias = module.bias()
        if bias is not None:
            out["bias"] = bias
        return out
    if isinstance(module, nnq.Embedding):
        return {"weight": module.weight()}
    if isinstance(module, QuantizedRNNBase):
        weights = module._weight_bias()
        return {**weights["weight"], **weights["bias"]}
    return None


def export_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """Every tensor of a (partly) quantised model as plain tensors, and the quantisation meta.

    A quantised tensor ``key`` becomes ``key#int_repr`` (int8/uint8) with
    ``key#scale`` and ``key#zero_point`` (one per tensor or per channel);
    ``meta[key]`` records its scheme and channel axis. Other tensors keep
    their ``state_dict`` keys.
    """
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, dict[str, Any]] = {}
    prefixes = []
    for name, module in model.named_modules():
        parts = _quantized_weights(module) if name else None
        if parts is None:
            continue
        prefixes.append(name + ".")
        for part, value in parts.items():
            key = f"{name}.{part}"
            if value.is_quantized:
                meta[key] = _encode(key, value, tensors)
            else:
                tensors[key] = value.detach().cpu().contiguous()
    for key, value in model.state_dict().items():
        if not key.startswith(tuple(prefixes)) and isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().contiguous()
    return tensors, meta


def _encode(key: str, q: torch.Tensor, out: dict[str, torch.Tensor]) -> dict[str, Any]:
    scheme = q.qscheme()
    out[f"{key}{_SEP}int_repr"] = q.int_repr().cpu().contiguous()
    if scheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        out[f"{key}{_SEP}scale"] = torch.tensor([q.q_scale()], dtype=torch.float64)
        out[f"{key}{_SEP}zero_point"] = torch.tensor([q.q_zero_point()], dtype=torch.int64)
        return {"qscheme": "per_tensor", "axis": None}
    out[f"{key}{_SEP}scale"] = q.q_per_channel_scales().cpu().contiguous()
    out[f"{key}{_SEP}zero_point"] = q.q_per_channel_zero_points().cpu().contiguous()
    return {"qscheme": "per_channel", "axis": int(q.q_per_channel_axis())}


def decode(key: str, tensors: dict[str, torch.Tensor], info: Any) -> torch.Tensor:
    """Rebuild the quantised tensor ``key`` exported by :func:`export_state`."""
    try:
        values = tensors[f"{key}{_SEP}int_repr"]
        scale = tensors[f"{key}{_SEP}scale"]
        zero_point = tensors[f"{key}{_SEP}zero_point"]
        if info["qscheme"] == "per_tensor":
            return torch._make_per_tensor_quantized_tensor(
                values, float(scale[0]), int(zero_point[0])
            )
        if info["qscheme"] == "per_channel":
            return torch._make_per_channel_quantized_tensor(
                values, scale, zero_point, int(info["axis"])
            )
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise PersistenceError(
            f"quantised weight {key!r} is incomplete or invalid ({exc})"
        ) from exc
    raise PersistenceError(f"quantised weight {key!r}: unknown scheme {info.get('qscheme')!r}")


def float_state(
    tensors: dict[str, torch.Tensor], meta: dict[str, dict[str, Any]]
) -> dict[str, torch.Tensor]:
    """A plain float ``state_dict`` from exported tensors (quantised ones dequantised)."""
    state = {k: v for k, v in tensors.items() if _SEP not in k}
    for key, info in meta.items():
        state[key] = decode(key, tensors, info).dequantize().contiguous()
    return state


def import_quantized(
    model: nn.Module,
    tensors: dict[str, torch.Tensor],
    meta: dict[str, dict[str, Any]],
    engine: str | None = None,
) -> None:
    """Set the exact quantised weights of ``model``'s quantised modules from exported tensors."""
    with quantized_engine(engine):
        _import_quantized(model, tensors, meta)


def _import_quantized(
    model: nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, dict[str, Any]]
) -> None:
    for name, module in model.named_modules():
        parts = _quantized_weights(module) if name else None
        if parts is None:
            continue
        values = {}
        for part, current in parts.items():
            key = f"{name}.{part}"
            if current.is_quantized:
                if key not in meta:
                    raise PersistenceError(f"the saved weights lack quantised {key!r}")
                values[part] = decode(key, tensors, meta[key])
            else:
                if key not in tensors:
                    raise PersistenceError(f"the saved weights lack {key!r}")
                values[part] = tensors[key]
        if isinstance(module, nnqd.Linear):
            module.set_weight_bias(values["weight"], values.get("bias"))
        elif isinstance(module, nnq.Embedding):
            module.set_weight(values["weight"])
        else:
            module.set_weight_bias(values)


def quantize_dynamic(
    encoder: Any,
    *,
    layers: Sequence[str] = ("Embedding", "LSTM", "Linear"),
    per_channel: bool = True,
    exclude: Sequence[str] = (),
    engine: str | None = None,
) -> Any:
    """A dynamically int8-quantised copy of a fitted encoder (the original is untouched).

    Parameters
    ----------
    encoder : BaseEncoder
        A fitted encoder (or a :class:`CompressedEncoder`, whose recipe the
        new step extends).
    layers : sequence of str, default=("Embedding", "LSTM", "Linear")
        Layer types to quantise, among "Embedding", "GRU", "LSTM" and
        "Linear". Linear and recurrent weights become int8 (activations are
        quantised on the fly), embedding tables uint8
        weight-only with a float scale and offset per row. Convolutions are
        not covered (``"Conv2d"`` raises): prune or distil a CNN instead.
    per_channel : bool, default=True
        One scale per output channel of the Linear weights (more accurate)
        rather than one per tensor.
    exclude : sequence of str, default=()
        Glob patterns of module names to keep in float (e.g.
        ``"*.output.dense"`` for layers with outlying activations).
    engine : str, optional
        The quantised kernels' backend, one of
        ``torch.backends.quantized.supported_engines`` (e.g. ``"x86"``,
        ``"fbgemm"``, ``"onednn"``, ``"qnnpack"``); None: torch's current
        one. The weights are packed for it (and repacked for it on load);
        which is fastest depends on the CPU (measured per engine in
        ``benchmarks/RESULTS.md``, ``benchmarks/bench_compression.py``).

    Returns
    -------
    CompressedEncoder
        Runs on the CPU; saves int8 weights with :meth:`~CompressedEncoder.save`.

    Raises
    ------
    ConfigurationError
        If an argument is invalid or no layer is left to quantise.
    NotFittedError
        If ``encoder`` is not fitted.

    Examples
    --------
    >>> import torch
    >>> from avrec.features import VideoEncoder
    >>> enc = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8, use_lstm=True,
    ...                    random_state=0).init()
    >>> small = quantize_dynamic(enc)
    >>> clips = torch.randint(0, 256, (3, 4, 3, 16, 16), dtype=torch.uint8)
    >>> small.transform(clips).shape
    (3, 8)
    >>> small.recipe[0]["layers"]
    ['Embedding', 'LSTM', 'Linear']
    """
    from avrec.features.compression._compressed import compress

    step = {
        "method": "quantize_dynamic",
        "layers": list(layers) if not isinstance(layers, str) else layers,
        "per_channel": per_channel,
        "exclude": list(exclude) if not isinstance(exclude, str) else exclude,
        "engine": engine,
    }
    return compress(encoder, step)
