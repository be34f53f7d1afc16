"""An encoder compressed by a recipe of steps (quantisation, pruning) applied to a fitted one.

Persistence choice: the compressed weights themselves are stored (int8 values
with their scales and zero points for quantised layers, floats otherwise), so
the saved directory is as small as the model; the recipe is re-applied on load
only to rebuild the *structure* (which modules are quantised), the exact
stored weights are then set and the result must reproduce the saved
fingerprint. Re-running the recipe on the float base weights instead would
need the full float model on disk, which defeats the purpose of compressing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from sklearn.base import BaseEstimator
from torch import nn

from avrec._version import __version__
from avrec.exceptions import ConfigurationError, PersistenceError
from avrec.features.compression._prune import apply_prune, check_prune_step
from avrec.features.compression._quantize import (
    apply_quantize,
    check_quantize_step,
    export_state,
    float_state,
    import_quantized,
)
from avrec.features.encoders._base import (
    _CONFIG,
    _WEIGHTS,
    BaseEncoder,
    _read_state,
)
from avrec.utils import atomic_directory, qualified_name, read_json, resolve_class, write_json

__all__ = ["CompressedEncoder"]

_FORMAT = 1
_BASE_DIR = "base"
_CHECKS = {"quantize_dynamic": check_quantize_step, "prune": check_prune_step}


def check_recipe(recipe: Any) -> list[dict[str, Any]]:
    """Validate a recipe (a non-empty sequence of step dicts); return it normalised."""
    if isinstance(recipe, (str, dict)) or not isinstance(recipe, Sequence) or not recipe:
        raise ConfigurationError(
            f"recipe must be a non-empty sequence of step dicts, got {recipe!r}"
        )
    steps = []
    for step in recipe:
        method = step.get("method") if isinstance(step, dict) else None
        if method not in _CHECKS:
            raise ConfigurationError(
                f"recipe: each step must be a dict with 'method' in {sorted(_CHECKS)}, got {step!r}"
            )
        steps.append(_CHECKS[method](step))
    return steps


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


class CompressedEncoder(BaseEncoder):
    """A fitted encoder compressed by quantisation and/or pruning, behind the same contract.

    Usually made by :func:`quantize_dynamic` or :func:`prune` (which chain:
    ``quantize_dynamic(prune(enc))``). ``fit`` applies ``recipe`` to a copy
    of ``base.model_``; inputs are converted as ``base`` converts them, and
    ``base``'s hyperparameters (``frames``, ``sample_rate``, ``batch_size``
    ...) read through, so a compressed encoder works in
    :class:`~avrec.features.FeatureExtractor`. Its fingerprint differs from
    the base's (the cache never mixes them).

    Parameters
    ----------
    base : BaseEncoder
        The fitted float encoder (not itself compressed).
    recipe : sequence of dict
        Steps applied in order: ``{"method": "quantize_dynamic", "layers",
        "per_channel", "exclude"}`` or ``{"method": "prune", "kind",
        "amount", "scope", "n", "dim", "layers", "exclude"}`` (see
        :func:`quantize_dynamic` and :func:`prune` for the meaning).

    Attributes
    ----------
    model_ : torch.nn.Module
        The compressed network (eval mode; on the CPU once quantised).
    base_fingerprint_ : str
        Fingerprint of the base encoder the recipe was applied to.
    n_features_out_ : int
    device_ : torch.device

    See Also
    --------
    quantize_dynamic, prune, sparsity, Distiller

    Notes
    -----
    ``save`` writes ``config.json`` (recipe, base class and fingerprint, the
    compressed fingerprint, the quantisation scheme of each int8 tensor),
    ``model.safetensors`` (int8 values + scales + zero points for quantised
    layers, floats for the rest) and ``base/`` (the base encoder's own
    configuration files, without its weights). ``from_pretrained`` rebuilds
    the base from those with the dequantised weights, re-applies the
    quantisation steps to get the structure, sets the exact int8 weights and
    checks the saved fingerprint. After loading, ``base`` holds those
    (dequantised) weights, so a new ``fit`` compresses them, not the
    original float ones.

    Examples
    --------
    >>> import tempfile, torch
    >>> from avrec.features import VideoEncoder
    >>> enc = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8, random_state=0).init()
    >>> small = CompressedEncoder(enc, [{"method": "quantize_dynamic", "layers": ["Linear"]}])
    >>> small = small.fit()
    >>> clips = torch.randint(0, 256, (2, 4, 3, 16, 16), dtype=torch.uint8)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     small.save(d + "/q")
    ...     again = CompressedEncoder.from_pretrained(d + "/q")
    >>> bool((again.transform(clips) == small.transform(clips)).all())
    True
    >>> again.fingerprint() == small.fingerprint() != enc.fingerprint()
    True
    """

    def __init__(self, base: Any = None, recipe: Sequence[dict[str, Any]] = ()) -> None:
        self.base = base
        self.recipe = recipe

    # ------------------------------------------------------------------ delegation
    @property
    def modality(self) -> str:  # type: ignore[override]
        """The base encoder's modality ("video", "audio", "text" ...)."""
        return getattr(self.__dict__.get("base"), "modality", "")

    def __getattr__(self, name: str) -> Any:
        # the base's hyperparameters read through (the extractor reads e.g. sample_rate)
        base = self.__dict__.get("base")
        if (
            not name.startswith("_")
            and not name.endswith("_")
            and isinstance(base, BaseEstimator)
            and name in base.get_params(deep=False)
        ):
            return getattr(base, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.base._convert(items)

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> torch.device:
        if isinstance(self.base, CompressedEncoder):
            raise ConfigurationError(
                "base must be an uncompressed encoder; extend a CompressedEncoder's recipe "
                "(quantize_dynamic and prune do) instead of nesting it"
            )
        if not isinstance(self.base, BaseEncoder):
            raise ConfigurationError(f"base must be a fitted encoder, got {self.base!r}")
        self.base._check_fitted()
        check_recipe(self.recipe)
        return self.base.device_

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any = None, y: Any = None) -> CompressedEncoder:
        """Apply ``recipe`` to a copy of the base network (``X`` and ``y`` are ignored).

        Parameters
        ----------
        X, y : None
            Ignored (post-training compression needs no data).

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            If ``base`` or ``recipe`` is invalid.
        NotFittedError
            If ``base`` is not fitted.
        """
        device = self._check_params()
        steps = check_recipe(self.recipe)
        self.__dict__.pop("model_", None)  # a second fit starts over
        model = copy.deepcopy(self.base.model_)
        model, device = _apply(model, steps, device, skip_pruning=False)
        self._set_fitted(
            model, device, {"train_loss": [], "val_loss": []}, None, trained=self.base.trained_
        )
        self.base_fingerprint_ = self.base.fingerprint()
        return self

    def init(self) -> CompressedEncoder:
        """Same as :meth:`fit`: compress the (fitted) base.

        Returns
        -------
        self
        """
        return self.fit()

    def fingerprint(self) -> str:
        """sha256 of the class, the recipe, the base's fingerprint and the compressed weights.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        self._check_fitted()
        tensors, meta = export_state(self.model_)
        digest = hashlib.sha256()
        digest.update(qualified_name(type(self)).encode())
        digest.update(json.dumps(check_recipe(self.recipe), sort_keys=True).encode())
        digest.update(json.dumps(meta, sort_keys=True).encode())
        digest.update(self.base_fingerprint_.encode())
        for key in sorted(tensors):
            digest.update(key.encode())
            digest.update(str(tensors[key].dtype).encode())
            digest.update(_tensor_bytes(tensors[key]))
        return digest.hexdigest()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the compressed weights, the recipe and the base's configuration, atomically.

        Parameters
        ----------
        path : str or path-like
            Directory to create or replace; nothing is pickled.
        """
        from safetensors.torch import save_file

        self._check_fitted()
        tensors, meta = export_state(self.model_)
        config = {
            "format": _FORMAT,
            "avrec_version": __version__,
            "class": qualified_name(type(self)),
            "recipe": check_recipe(self.recipe),
            "base_class": qualified_name(type(self.base)),
            "base_fingerprint": self.base_fingerprint_,
            "fingerprint": self.fingerprint(),
            "quantized": meta,
            "trained": bool(self.trained_),
        }
        with atomic_directory(path) as tmp:
            self.base.save(tmp / _BASE_DIR)  # its configuration files; its weights are not kept
            if not (tmp / _BASE_DIR / _WEIGHTS).is_file():
                raise PersistenceError(
                    f"{type(self.base).__name__}.save does not write {_WEIGHTS}: this base "
                    "cannot be stored under a compressed encoder"
                )
            (tmp / _BASE_DIR / _WEIGHTS).unlink()
            save_file(tensors, str(tmp / _WEIGHTS))
            write_json(tmp / _CONFIG, config)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **params: Any) -> CompressedEncoder:
        """Load a compressed encoder written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The saved directory.
        **params
            Hyperparameters of the base overriding the saved ones (e.g.
            ``device="cpu"``; a quantised network always runs on the CPU).

        Returns
        -------
        CompressedEncoder

        Raises
        ------
        PersistenceError
            If the directory is missing, holds something else, or its weights
            do not reproduce the saved fingerprint.
        """
        from safetensors.torch import save_file

        path = Path(path)
        config = read_json(path / _CONFIG)
        try:
            if config["class"] != qualified_name(cls):
                raise PersistenceError(
                    f"{path} holds a {config['class']}, not a {qualified_name(cls)}"
                )
            recipe = check_recipe(config["recipe"])
            meta, expected = dict(config["quantized"]), str(config["fingerprint"])
            base_fingerprint, trained = str(config["base_fingerprint"]), bool(config["trained"])
        except (KeyError, TypeError, ValueError, ConfigurationError) as exc:
            raise PersistenceError(f"{path}: {_CONFIG} is not a saved compressed encoder") from exc
        base_config = read_json(path / _BASE_DIR / _CONFIG)
        name = base_config.get("class") if isinstance(base_config, dict) else None
        klass = resolve_class(name, base=BaseEncoder)  # a registry look-up, nothing imported
        if issubclass(klass, CompressedEncoder):
            raise PersistenceError(f"{path}: the base is not an uncompressed avrec encoder")
        tensors = _read_state(path / _WEIGHTS)
        state = float_state(tensors, meta)
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(path / _BASE_DIR, Path(tmp) / _BASE_DIR)
            save_file(state, str(Path(tmp) / _BASE_DIR / _WEIGHTS))
            base = klass.from_pretrained(Path(tmp) / _BASE_DIR, **params)
        encoder = cls(base=base, recipe=recipe)
        model = copy.deepcopy(base.model_)
        model, device = _apply(model, recipe, base.device_, skip_pruning=True)
        engines = [s["engine"] for s in recipe if s["method"] == "quantize_dynamic"]
        import_quantized(model, tensors, meta, engines[-1] if engines else None)
        encoder._set_fitted(
            model, device, {"train_loss": [], "val_loss": []}, None, trained=trained
        )
        encoder.base_fingerprint_ = base_fingerprint
        if encoder.fingerprint() != expected:
            raise PersistenceError(
                f"{path}: the loaded weights do not reproduce the saved fingerprint "
                "(modified or truncated files)"
            )
        return encoder


def _apply(
    model: nn.Module, steps: list[dict[str, Any]], device: torch.device, *, skip_pruning: bool
) -> tuple[nn.Module, torch.device]:
    """Apply the steps; quantised networks move to the CPU. Return the network and device."""
    model.eval()
    for step in steps:
        if step["method"] == "quantize_dynamic":
            device = torch.device("cpu")
            model = apply_quantize(model.cpu(), step)
        elif not skip_pruning:  # pruning changes values only: the saved weights carry it
            model = apply_prune(model, step)
    return model.to(device), device


def compress(encoder: Any, step: dict[str, Any]) -> CompressedEncoder:
    """A new :class:`CompressedEncoder`: ``encoder`` (or its base) with ``step`` appended."""
    if isinstance(encoder, CompressedEncoder):
        encoder._check_fitted()
        return CompressedEncoder(base=encoder.base, recipe=[*encoder.recipe, step]).fit()
    if not isinstance(encoder, BaseEncoder):
        raise ConfigurationError(f"encoder must be a fitted avrec encoder, got {encoder!r}")
    return CompressedEncoder(base=encoder, recipe=[step]).fit()
