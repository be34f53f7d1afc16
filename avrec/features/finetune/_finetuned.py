"""A fine-tuned copy of a fitted encoder, saved as its trainable tensors + base fingerprint."""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avrec._version import __version__
from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    NotFittedError,
    PersistenceError,
)
from avrec.features.finetune._modes import FineTunedNet, FineTuning
from avrec.utils import atomic_directory, check_random_state, read_json, torch_seed, write_json

__all__ = ["FineTunedEncoder", "check_encoder", "convert_items", "to_device"]

_FORMAT = 1
_CONFIG = "adapter.json"
_WEIGHTS = "adapter.safetensors"
_KIND = "avrec.FineTunedEncoder"


class FineTunedEncoder:
    """A fitted encoder's network prepared for fine-tuning, with an optional projection head.

    The base encoder is left untouched: its network is deep-copied, the copy
    gets the trainable parameters that ``finetuning`` selects (none, the last
    blocks, or LoRA adapters) and, with ``projection_dim``, a linear head into
    a shared space. Trainers (:class:`CrossModalFineTuner`,
    :class:`~avrec.recommenders.EndToEndVBPR`) train ``model_`` in place; it
    embeds like an encoder (:meth:`transform`) and works with any encoder
    whose fitted ``model_`` has ``embed(x, lengths)`` and ``embedding_dim``
    and whose ``_convert(items)`` makes batches (avrec's small and pretrained
    encoders alike).

    :meth:`save` writes only the trainable tensors (adapters, unfrozen blocks,
    head) as safetensors plus JSON holding the mode, its configuration and the
    base encoder's :meth:`fingerprint`; :meth:`load` applies them onto a base
    encoder loaded from its local weights and refuses a base whose
    fingerprint differs.

    Parameters
    ----------
    base_encoder : encoder
        A fitted (or loaded) encoder.
    finetuning : str or FineTuning, default="lora"
        A mode name (``"frozen"``, ``"last_k"``, ``"lora"``) or a
        :class:`FineTuning` with its options.
    projection_dim : int, optional
        Width of a trainable linear head; None embeds with the network alone.
    random_state : None, int or numpy.random.Generator
        Seeds the head and the adapters' initial values.

    Attributes
    ----------
    model_ : FineTunedNet
        The network copy with its head; trainable parameters have ``requires_grad``.
    base_fingerprint_ : str
        ``base_encoder.fingerprint()``.
    n_features_out_ : int
    device_ : torch.device
        The base encoder's device.
    history_ : dict of str to list of float
        Filled by the trainer (empty until then).

    Examples
    --------
    >>> import torch
    >>> from avrec.features import VideoEncoder
    >>> base = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8).init()
    >>> tuned = FineTunedEncoder(base, FineTuning("lora", lora_rank=1), random_state=0)
    >>> clips = torch.randint(0, 256, (3, 2, 3, 16, 16), dtype=torch.uint8)
    >>> bool((tuned.transform(clips) == base.transform(clips)).all())  # B = 0 at the start
    True
    >>> n_base = sum(p.numel() for p in base.model_.parameters())
    >>> 0 < tuned.n_trainable_parameters() < n_base
    True
    """

    def __init__(
        self,
        base_encoder: Any,
        finetuning: str | FineTuning = "lora",
        projection_dim: int | None = None,
        random_state: Any = None,
    ) -> None:
        check_encoder(base_encoder, "base_encoder")
        spec = as_finetuning(finetuning).check()
        if projection_dim is not None and (
            isinstance(projection_dim, bool)
            or not isinstance(projection_dim, (int, np.integer))
            or projection_dim < 1
        ):
            raise ConfigurationError(
                f"projection_dim must be None or an int >= 1, got {projection_dim!r}"
            )
        seed = torch_seed(check_random_state(random_state))
        self.base_encoder = base_encoder
        self.finetuning = spec
        self.projection_dim = None if projection_dim is None else int(projection_dim)
        self.base_fingerprint_ = base_encoder.fingerprint()
        self.device_ = torch.device(getattr(base_encoder, "device_", "cpu"))
        network = spec.apply(copy.deepcopy(base_encoder.model_), seed=seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = FineTunedNet(network, self.projection_dim)
        self.model_ = model.to(self.device_).eval()
        self.n_features_out_ = int(self.model_.embedding_dim)
        self.history_: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ encoder interface
    @property
    def modality(self) -> str:
        """The base encoder's modality (``"video"``, ``"audio"``, ``"text"`` ...)."""
        return str(getattr(self.base_encoder, "modality", ""))

    def _convert(self, items: Any) -> tuple[Any, torch.Tensor | None]:
        return self.base_encoder._convert(items)

    def to(self, device: Any) -> FineTunedEncoder:
        """Move the network to ``device`` (a str or torch.device); return self."""
        self.device_ = torch.device(device)
        self.model_.to(self.device_)
        return self

    def transform(self, X: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Embed inputs (as the base encoder takes them) with the fine-tuned network.

        Parameters
        ----------
        X : sequence or batch tensor
            Inputs as the base encoder's ``transform`` accepts them.
        batch_size : int, optional
            Items per forward pass (default: the base encoder's ``batch_size`` or 32).

        Returns
        -------
        numpy.ndarray of shape (n, n_features_out_), float32
        """
        items = as_inputs(X, "X")
        size = batch_size
        if size is None:
            size = getattr(self.base_encoder, "batch_size", None) or 32
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ConfigurationError(f"batch_size must be an int >= 1, got {size!r}")
        out = [torch.empty(0, self.n_features_out_)]
        self.model_.eval()
        with torch.inference_mode():
            for start in range(0, len(items), int(size)):
                index = torch.arange(start, min(start + int(size), len(items)))
                x, lengths = convert_items(self.base_encoder, items, index)
                out.append(self.embed_batch(x, lengths))
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def embed_batch(self, x: Any, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed one converted batch in eval mode; float32 on the CPU.

        Parameters
        ----------
        x : Any
            A batch from the base encoder's ``_convert``.
        lengths : torch.Tensor of shape (B,), optional

        Returns
        -------
        torch.Tensor of shape (B, n_features_out_)
        """
        self.model_.eval()
        with torch.inference_mode():
            x, lengths = to_device(x, self.device_), to_device(lengths, self.device_)
            return self.model_.embed(x, lengths).float().cpu()

    # ------------------------------------------------------------------ trainable state
    def trainable_parameters(self) -> list[nn.Parameter]:
        """Return the parameters that train (adapters, unfrozen blocks, head)."""
        return [p for p in self.model_.parameters() if p.requires_grad]

    def n_trainable_parameters(self) -> int:
        """Return the number of trainable scalars.

        Returns
        -------
        int
        """
        return int(sum(p.numel() for p in self.trainable_parameters()))

    def adapter_state(self) -> dict[str, torch.Tensor]:
        """Return the trainable tensors by name, detached CPU copies (what :meth:`save` writes).

        Returns
        -------
        dict of str to torch.Tensor
        """
        return {
            name: p.detach().cpu().contiguous().clone()
            for name, p in self.model_.named_parameters()
            if p.requires_grad
        }

    def fingerprint(self) -> str:
        """sha256 of the base fingerprint, the configuration and the trainable tensors.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        digest = hashlib.sha256()
        digest.update(self.base_fingerprint_.encode())
        digest.update(json.dumps(self._config(), sort_keys=True).encode())
        for name, tensor in sorted(self.adapter_state().items()):
            digest.update(name.encode())
            digest.update(tensor.float().numpy().tobytes())
        return digest.hexdigest()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``adapter.safetensors`` (trainable tensors only) and ``adapter.json``, atomically.

        Parameters
        ----------
        path : str or path-like
            Directory to create or replace.
        """
        from safetensors.torch import save_file

        config = {
            "format": _FORMAT,
            "kind": _KIND,
            "avrec_version": __version__,
            **self._config(),
            "history": self.history_,
        }
        with atomic_directory(path) as tmp:
            save_file(self.adapter_state(), str(tmp / _WEIGHTS))
            write_json(tmp / _CONFIG, config)

    @classmethod
    def load(cls, path: str | os.PathLike[str], base_encoder: Any) -> FineTunedEncoder:
        """Apply saved fine-tuned tensors onto ``base_encoder``.

        Parameters
        ----------
        path : str or path-like
            A directory written by :meth:`save`.
        base_encoder : encoder
            The base the tensors were trained on, loaded from its local
            weights; its class and fingerprint must match the saved ones.

        Returns
        -------
        FineTunedEncoder

        Raises
        ------
        PersistenceError
            If the directory is not a saved fine-tuned encoder, the base
            differs (class or fingerprint), or the tensors do not fit.
        """
        from safetensors.torch import load_file

        path = Path(path)
        config = read_json(path / _CONFIG)
        if not isinstance(config, dict) or config.get("kind") != _KIND:
            raise PersistenceError(f"{path}: {_CONFIG} is not a saved avrec FineTunedEncoder")
        check_encoder(base_encoder, "base_encoder")
        klass = _qualname(type(base_encoder))
        if config.get("base_class") != klass:
            raise PersistenceError(
                f"{path}: fine-tuned on a {config.get('base_class')}, not a {klass}"
            )
        fingerprint = base_encoder.fingerprint()
        if fingerprint != config.get("base_fingerprint"):
            raise PersistenceError(
                f"{path}: the base encoder's fingerprint {fingerprint[:12]}... differs from the "
                f"one these adapters were trained on ({str(config.get('base_fingerprint'))[:12]}"
                "...); load the same base weights"
            )
        try:
            finetuning = FineTuning(**config["finetuning"])
            tuned = cls(base_encoder, finetuning, config["projection_dim"], random_state=0)
            state = load_file(str(path / _WEIGHTS), device="cpu")
        except (KeyError, TypeError, ConfigurationError) as exc:
            raise PersistenceError(f"{path}: {_CONFIG} is incomplete or invalid ({exc})") from exc
        except Exception as exc:  # safetensors raises assorted errors on bad files
            raise PersistenceError(f"{path}: cannot read {_WEIGHTS} ({exc})") from exc
        expected = {n for n, p in tuned.model_.named_parameters() if p.requires_grad}
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise PersistenceError(
                f"{path}: the saved tensors do not fit: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
        params = dict(tuned.model_.named_parameters())
        with torch.no_grad():
            for name, tensor in state.items():
                if params[name].shape != tensor.shape:
                    raise PersistenceError(
                        f"{path}: {name} has shape {tuple(tensor.shape)}, expected "
                        f"{tuple(params[name].shape)}"
                    )
                params[name].copy_(tensor)
        tuned.history_ = dict(config.get("history") or {})
        return tuned

    def _config(self) -> dict[str, Any]:
        return {
            "base_class": _qualname(type(self.base_encoder)),
            "base_fingerprint": self.base_fingerprint_,
            "finetuning": self.finetuning.get_params(deep=False),
            "projection_dim": self.projection_dim,
        }

    def __repr__(self) -> str:
        return (
            f"FineTunedEncoder({type(self.base_encoder).__name__}, "
            f"mode={self.finetuning.mode!r}, projection_dim={self.projection_dim})"
        )


# ---------------------------------------------------------------------- helpers
def as_finetuning(value: Any) -> FineTuning:
    """A FineTuning from a mode name or a FineTuning (cloned), else ConfigurationError."""
    if isinstance(value, FineTuning):
        return FineTuning(**value.get_params(deep=False))
    if isinstance(value, str):
        return FineTuning(mode=value)
    raise ConfigurationError(f"mode must be a mode name or a FineTuning, got {value!r}")


def check_encoder(encoder: Any, name: str) -> None:
    """Raise unless ``encoder`` is a fitted encoder (``model_`` with ``embed``, ``_convert``).

    Parameters
    ----------
    encoder : object
    name : str
        Argument name for the message.

    Raises
    ------
    ConfigurationError
        If ``encoder`` is not an encoder.
    NotFittedError
        If it is not fitted.

    Examples
    --------
    >>> check_encoder(object(), "encoder")
    Traceback (most recent call last):
    ...
    avrec.exceptions.ConfigurationError: encoder must be an avrec encoder ...
    """
    if not (hasattr(encoder, "_convert") and hasattr(encoder, "fingerprint")):
        raise ConfigurationError(
            f"{name} must be an avrec encoder (with _convert and fingerprint), "
            f"got {type(encoder).__name__}"
        )
    model = getattr(encoder, "model_", None)
    if model is None:
        raise NotFittedError(
            f"{name} ({type(encoder).__name__}) is not fitted: fit, init or load it "
            "(from_pretrained) before fine-tuning"
        )
    if not (hasattr(model, "embed") and hasattr(model, "embedding_dim")):
        raise ConfigurationError(
            f"{name}.model_ must have embed(x, lengths) and embedding_dim, "
            f"got {type(model).__name__}"
        )


def as_inputs(X: Any, name: str) -> Any:
    """Inputs as an indexable batch: a tensor (arrays become tensors) or a non-empty sequence."""
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if isinstance(X, torch.Tensor):
        if X.dim() == 0 or X.shape[0] == 0:
            raise DataValidationError(f"{name} must be a non-empty batch, got {tuple(X.shape)}")
        return X
    if isinstance(X, (str, bytes, os.PathLike)) or not hasattr(X, "__len__"):
        raise DataValidationError(
            f"{name} must be a sequence of items or a batch tensor, got {type(X).__name__}"
        )
    if not isinstance(X, Sequence):
        X = list(X)
    if len(X) == 0:
        raise DataValidationError(f"{name} is empty")
    return X


def convert_items(
    encoder: Any, inputs: Any, index: torch.Tensor
) -> tuple[Any, torch.Tensor | None]:
    """Convert the items ``inputs[index]`` into one batch with ``encoder._convert``.

    Parameters
    ----------
    encoder : encoder
    inputs : tensor or sequence
        As returned by ``as_inputs``.
    index : torch.Tensor of shape (B,), int64

    Returns
    -------
    x, lengths
        The batch and its lengths (or None).
    """
    if isinstance(inputs, torch.Tensor):
        return encoder._convert(inputs[index.cpu()])
    return encoder._convert([inputs[i] for i in index.tolist()])


def to_device(x: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors in a dict, list or tuple, to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    return x


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
