"""Shared estimator plumbing of the feature encoders.

:class:`BaseEncoder` owns what every encoder does the same way: parameter
validation in ``fit``, seeding, the device, the training loop (Adam or SGD,
weight decay, a cosine or step learning-rate schedule, early stopping on a
held-out loss that keeps the best weights), progress and logging, batched
``transform`` under :func:`torch.inference_mode`, and pickle-free
``save``/``from_pretrained``. A concrete encoder supplies its network and how
it turns inputs into batches; the contrastive ones share the SimCLR step here.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import logging
import math
import numbers
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from avrec._version import __version__
from avrec.exceptions import (
    ConfigurationError,
    DataValidationError,
    NotFittedError,
    PersistenceError,
)
from avrec.utils import (
    DataParallelStep,
    all_gather_rows,
    all_reduce_mean,
    atomic_directory,
    broadcast_object,
    check_positive_int,
    check_random_state,
    get_rank,
    get_world_size,
    init_from_env,
    is_main_process,
    progress,
    qualified_name,
    read_json,
    resolve_class,
    shard,
    sync_buffers,
    torch_seed,
)
from avrec.utils._registry import register_avrec_subclass

__all__ = ["BaseEncoder", "TrainingLoop", "nt_xent_loss"]

logger = logging.getLogger(__name__)

_FORMAT = 1
_CONFIG = "config.json"
_WEIGHTS = "model.safetensors"
#: Parameters that do not change what an encoder computes (left out of its fingerprint).
_NON_SEMANTIC = frozenset({"verbose", "device", "batch_size"})


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent, the normalised-temperature cross entropy of SimCLR (Chen et al., 2020).

    Row ``i`` of ``z1`` and row ``i`` of ``z2`` are two views of one example (a
    positive pair); every other row of either matrix is a negative.

    Parameters
    ----------
    z1, z2 : torch.Tensor of shape (n, k)
        Projections of the two views; ``n >= 1``.
    temperature : float
        Softmax temperature of the cosine similarities.

    Returns
    -------
    torch.Tensor of shape ()
        Mean loss over the ``2n`` anchors.

    Examples
    --------
    >>> import torch
    >>> z = torch.eye(4)
    >>> bool(nt_xent_loss(z, z, 0.1) < nt_xent_loss(z, z.roll(1, 0), 0.1))
    True
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, targets)


def resolve_device(device: Any) -> torch.device:
    """``None`` -> CPU; a CUDA device only when asked for and available."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigurationError(
            f"device must be None, 'cpu' or 'cuda[:N]', got {device!r}"
        ) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigurationError(
                f"device={device!r} was requested but CUDA is not available in this torch "
                f"build or machine (torch {torch.__version__}); use device=None or 'cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigurationError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    elif dev.type != "cpu":
        raise ConfigurationError(f"device must be None, 'cpu' or 'cuda[:N]', got {device!r}")
    return dev


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_int(value: Any, name: str, minimum: int) -> int:
    """An int ``>= minimum`` or a :class:`ConfigurationError` naming ``name``."""
    return check_positive_int(value, name, minimum=minimum)


def check_float(value: Any, name: str, low: float, high: float | None = None) -> float:
    """A finite number in ``(low, high]`` (``low`` exclusive) or a ConfigurationError."""
    if not _is_real(value) or value <= low or (high is not None and value > high):
        upper = "" if high is None else f" and <= {high}"
        raise ConfigurationError(f"{name} must be a number > {low}{upper}, got {value!r}")
    return float(value)


#: Temporal pooling modes the contrastive encoders accept.
POOLING = ("mean", "attention", "max")


def check_backbone_params(encoder: Any) -> None:
    """Validate what the contrastive encoders share: head, pooling, LSTM width, augment dict."""
    check_int(encoder.projection_dim, "projection_dim", 1)
    check_float(encoder.temperature, "temperature", 0.0)
    if encoder.pooling not in POOLING:
        raise ConfigurationError(f"pooling must be one of {POOLING}, got {encoder.pooling!r}")
    if encoder.lstm_hidden_dim is not None:
        check_int(encoder.lstm_hidden_dim, "lstm_hidden_dim", 1)
    if encoder.augment is not None and not isinstance(encoder.augment, dict):
        raise ConfigurationError(f"augment must be a dict, got {encoder.augment!r}")


def _weights_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class TrainingLoop:
    """The training plumbing shared by the encoders and :class:`AVCorrespondence`.

    Reads the hyperparameters ``epochs``, ``batch_size``, ``optimizer``,
    ``learning_rate``, ``weight_decay``, ``lr_schedule``,
    ``validation_fraction``, ``early_stopping_patience``, ``device``,
    ``random_state`` and ``verbose`` from the estimator.
    """

    _adam_betas: ClassVar[tuple[float, float]] = (0.9, 0.999)
    #: Smallest useful training batch (a contrastive batch needs a negative).
    _min_batch: ClassVar[int] = 2

    def _check_training_params(self) -> torch.device:
        """Validate the shared training hyperparameters; return the resolved device."""
        check_int(self.epochs, "epochs", 0)
        check_int(self.batch_size, "batch_size", self._min_batch)
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigurationError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        check_float(self.learning_rate, "learning_rate", 0.0)
        if not _is_real(self.weight_decay) or self.weight_decay < 0:
            raise ConfigurationError(
                f"weight_decay must be a number >= 0, got {self.weight_decay!r}"
            )
        if self.lr_schedule not in (None, "cosine", "step"):
            raise ConfigurationError(
                f"lr_schedule must be None, 'cosine' or 'step', got {self.lr_schedule!r}"
            )
        fraction = self.validation_fraction
        if not _is_real(fraction) or not 0.0 <= fraction < 1.0:
            raise ConfigurationError(f"validation_fraction must be in [0, 1), got {fraction!r}")
        patience = self.early_stopping_patience
        if patience is not None:
            check_int(patience, "early_stopping_patience", 1)
            if fraction == 0:
                raise ConfigurationError(
                    "early_stopping_patience needs a held-out set: set validation_fraction > 0"
                )
        if not isinstance(self.verbose, (bool, np.bool_)) and self.verbose not in (0, 1):
            raise ConfigurationError(f"verbose must be a bool, got {self.verbose!r}")
        check_random_state(self.random_state)  # raises ConfigurationError on a bad seed
        return resolve_device(self.device)

    def _optimizer(self, params: Any) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(
                params,
                lr=self.learning_rate,
                betas=self._adam_betas,
                weight_decay=self.weight_decay,
            )
        return torch.optim.SGD(
            params, lr=self.learning_rate, momentum=0.9, weight_decay=self.weight_decay
        )

    def _scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        if self.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, self.epochs))
        if self.lr_schedule == "step":
            step = max(1, self.epochs // 3)
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step, gamma=0.1)
        return None

    def _split(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        order = torch.randperm(n, generator=generator)
        n_val = 0
        if self.validation_fraction > 0:
            n_val = max(self._min_batch, round(self.validation_fraction * n))
        if n - n_val < self._min_batch:
            raise DataValidationError(
                f"{n} training items leave {n - n_val} after holding out {n_val} for "
                f"validation; at least {self._min_batch} are needed"
            )
        if n_val == 0:
            return order, None
        return order[n_val:].sort().values, order[:n_val].sort().values

    def _batches(self, index: torch.Tensor, world_size: int = 1) -> list[torch.Tensor]:
        batches = list(index.split(self.batch_size * world_size))
        if len(batches) > 1 and len(batches[-1]) < self._min_batch * world_size:
            batches[-2] = torch.cat([batches[-2], batches.pop()])
        return batches

    def _run_epochs(
        self,
        *,
        n: int,
        modules: nn.Module,
        train_step: Callable[[torch.Tensor], dict[str, float]],
        val_loss: Callable[[torch.Tensor], float],
        schedulers: Sequence[Any],
        shuffle_seed: int,
        desc: str,
        before_validation: Callable[[], None] | None = None,
    ) -> tuple[dict[str, list[float]], int | None]:
        """The epoch loop: shuffling, schedule, held-out loss, early stopping, best weights.

        ``train_step(index)`` trains on one batch of item indices and returns
        named losses (``"train_loss"`` first); ``val_loss(index)`` returns the
        held-out loss of a batch (called under ``torch.no_grad`` in eval mode,
        after ``before_validation()``, which can reseed the held-out views so
        that every epoch is scored on the same ones).

        In a process group of ``W`` processes (``torchrun``; ``train_step``
        goes through :class:`~avrec.utils.DataParallelStep`), every process
        draws the same shuffled order, cuts it into global batches of
        ``W * batch_size`` items and trains on its contiguous part of each (as
        :class:`~torch.utils.data.DistributedSampler` does); the losses are
        averaged over the processes, buffers are copied from rank 0 after each
        epoch and the held-out loss is computed alike everywhere, so all
        processes keep the same weights and stop at the same epoch.
        """
        rank, world = get_rank(), get_world_size()
        generator = torch.Generator().manual_seed(shuffle_seed)
        train_idx, val_idx = self._split(n, generator)
        if len(train_idx) < self._min_batch * world:
            raise DataValidationError(
                f"{len(train_idx)} training items cannot give each of {world} processes "
                f"at least {self._min_batch}"
            )
        history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
        best_loss, best_epoch, best_state, stale = math.inf, None, None, 0
        verbose = bool(self.verbose) and is_main_process()
        epochs = progress(range(self.epochs), verbose=verbose, desc=desc, unit="epoch")
        for epoch in epochs:
            modules.train()
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            sums: dict[str, float] = {}
            batches = self._batches(order, world)
            for index in batches:
                if world > 1:  # this process's part of the global batch
                    part = shard(len(index), rank, world)
                    index = index[part.start : part.stop]
                for key, value in train_step(index).items():
                    sums[key] = sums.get(key, 0.0) + value
            for key, total in sums.items():
                history.setdefault(key, []).append(all_reduce_mean(total / len(batches)))
            sync_buffers(modules)
            if not math.isfinite(history["train_loss"][-1]):
                raise RuntimeError(
                    f"{type(self).__name__}: training diverged (loss "
                    f"{history['train_loss'][-1]}) at epoch {epoch}; lower learning_rate"
                )
            for scheduler in schedulers:
                if scheduler is not None:
                    scheduler.step()
            message = (
                f"{desc} epoch {epoch + 1}/{self.epochs}: "
                f"train loss {history['train_loss'][-1]:.4f}"
            )
            if val_idx is not None:
                modules.eval()
                if before_validation is not None:
                    before_validation()
                with torch.no_grad():
                    parts = self._batches(val_idx)
                    loss = sum(val_loss(p) * len(p) for p in parts) / len(val_idx)
                loss = broadcast_object(float(loss))  # one decision for every process
                history["val_loss"].append(float(loss))
                message += f", validation loss {loss:.4f}"
                if loss < best_loss:
                    best_loss, best_epoch, stale = float(loss), epoch, 0
                    best_state = copy.deepcopy(modules.state_dict())
                else:
                    stale += 1
            logger.log(logging.INFO if verbose else logging.DEBUG, message)
            if verbose and hasattr(epochs, "set_postfix_str"):
                epochs.set_postfix_str(message.split(": ", 1)[1])
            patience = self.early_stopping_patience
            if patience is not None and stale >= patience:
                logger.info("%s: early stopping after epoch %d", desc, epoch + 1)
                break
        if best_state is not None:
            modules.load_state_dict(best_state)
        return history, best_epoch


class BaseEncoder(TrainingLoop, BaseEstimator):
    """Base class of the feature encoders (not used directly).

    Subclasses implement ``_build_model`` (the network, an ``nn.Module`` with
    ``embedding_dim`` and ``embed(x, lengths)``), ``_convert`` (a slice of the
    input to a batch tensor and optional lengths), and either the contrastive
    hooks ``_make_augmenter`` / ``_views`` or their own ``_fit_model``.

    The fitted state is ``model_`` (the network, in eval mode), ``history_``
    (``{"train_loss": [...], "val_loss": [...]}`` per epoch; subclasses may add
    keys), ``best_epoch_`` (the 0-based epoch whose weights were kept, or
    None), ``trained_`` (False for the random baseline of :meth:`init`),
    ``n_features_out_`` and ``device_``.
    """

    #: Which decoded stream the encoder reads: "video" or "audio".
    modality: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_avrec_subclass(cls)  # avrec's encoders load by name; others register

    # ------------------------------------------------------------------ hooks
    def _build_model(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _check_own_params(self) -> None:
        """Validate subclass hyperparameters (raise ConfigurationError)."""

    def _make_augmenter(self, seed: int) -> Any:  # pragma: no cover - contrastive only
        raise NotImplementedError

    def _views(
        self, model: nn.Module, x: torch.Tensor, lengths: torch.Tensor | None, augmenter: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover - contrastive only
        raise NotImplementedError

    # ------------------------------------------------------------------ validation
    def _check_params(self) -> torch.device:
        device = self._check_training_params()
        self._check_own_params()
        return device

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any, y: Any = None) -> BaseEncoder:
        """Train the encoder self-supervised from scratch (``y`` is ignored).

        Parameters
        ----------
        X : sequence of clips, tensors or paths, or a batch tensor
            See the class documentation for the accepted inputs.
        y : None
            Ignored; present for scikit-learn pipelines.

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            If a hyperparameter is invalid.
        DataValidationError
            If ``X`` is empty or malformed.
        MediaDecodeError
            If a path in ``X`` cannot be decoded.
        """
        device = self._check_params()
        init_from_env()  # joins the torchrun process group, if launched by torchrun
        rng = check_random_state(self.random_state)
        seeds = [torch_seed(rng) for _ in range(4)]  # init, shuffle, augment, validation
        seeds = broadcast_object(seeds)  # every process agrees (random_state=None)
        x, lengths = self._convert_all(X)
        model = self._init_model(seeds[0], device)
        history, best_epoch = self._fit_model(model, x, lengths, seeds, device)
        self._set_fitted(model, device, history, best_epoch, trained=self.epochs > 0)
        return self

    def init(self) -> BaseEncoder:
        """Initialise the network with seeded random weights and no training.

        The untrained encoder is the baseline of the same architecture: after
        ``init()`` :meth:`transform` works (as it does after ``fit`` with
        ``epochs=0``). Without ``fit``, ``init`` or :meth:`from_pretrained`,
        :meth:`transform` raises :class:`~avrec.exceptions.NotFittedError`.

        Returns
        -------
        self
        """
        device = self._check_params()
        seed = torch_seed(check_random_state(self.random_state))
        model = self._init_model(seed, device)
        self._set_fitted(model, device, {"train_loss": [], "val_loss": []}, None, trained=False)
        return self

    def transform(self, X: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Embed inputs with the network in eval mode.

        Parameters
        ----------
        X : sequence of clips, tensors or paths, or a batch tensor
        batch_size : int, optional
            Items per forward pass (default ``self.batch_size``); the result
            does not depend on it.

        Returns
        -------
        numpy.ndarray of shape (n, n_features_out_), dtype float32

        Raises
        ------
        NotFittedError
            If the encoder was neither fitted, initialised nor loaded.
        """
        self._check_fitted()
        size = check_int(self.batch_size if batch_size is None else batch_size, "batch_size", 1)
        model = self.model_.eval()
        out = [torch.empty(0, self.n_features_out_)]
        with torch.inference_mode():
            for x, lengths in self._iter_batches(X, size):
                x = x.to(self.device_)
                lengths = None if lengths is None else lengths.to(self.device_)
                out.append(model.embed(x, lengths).float().cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """:meth:`fit`, then :meth:`transform` of the same inputs."""
        return self.fit(X).transform(X)

    def embed_batch(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embed one prepared batch (used by the feature extractor).

        Parameters
        ----------
        x : torch.Tensor
            A batch as the encoder's input converter produces it (see the class).
        lengths : torch.Tensor of shape (B,), optional
            Valid frames or samples per item.

        Returns
        -------
        torch.Tensor of shape (B, n_features_out_), float32, on the CPU
        """
        self._check_fitted()
        model = self.model_.eval()
        with torch.inference_mode():
            x, own = self._convert(x)
            lengths = own if lengths is None else lengths
            x = x.to(self.device_)
            lengths = None if lengths is None else lengths.to(self.device_)
            return model.embed(x, lengths).float().cpu()

    def fingerprint(self) -> str:
        """sha256 of the class, the semantic hyperparameters and the weights.

        Two encoders with the same fingerprint compute the same embeddings; the
        feature cache keys on it.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        return self._fingerprint()

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``config.json`` and ``model.safetensors`` into a directory, atomically.

        Parameters
        ----------
        path : str or path-like
            Directory to create or replace; nothing is pickled.
        """
        self._save(path)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **params: Any) -> BaseEncoder:
        """Load an encoder saved with :meth:`save`, or bare local weights.

        Parameters
        ----------
        path : str or path-like
            A directory written by :meth:`save`, or a local ``state_dict``
            file (``.safetensors``; ``.pt``/``.pth``/``.bin`` are read with
            ``torch.load(weights_only=True)``) for the architecture that
            ``cls(**params)`` builds: the whole network or its backbone
            (e.g. a :class:`~avrec.features.nn.FrameCNN` state_dict).
        **params
            Hyperparameters overriding the saved ones (e.g. ``device="cpu"``),
            or defining the architecture for a bare weights file.

        Returns
        -------
        BaseEncoder
            Ready for :meth:`transform` (and :meth:`fit`, which starts over).

        Raises
        ------
        PersistenceError
            If the path is missing, holds another class, or the weights do not
            fit the architecture; or ``config.json`` names a class that is not
            in avrec's registry (avrec's encoders and classes registered with
            :func:`avrec.utils.register_class`; nothing named by the file is
            imported).
        """
        path = Path(path)
        if path.is_dir():
            config = read_json(path / _CONFIG)
            try:
                name = config["class"]
                saved, fitted = dict(config["params"]), dict(config["fitted"])
            except (KeyError, TypeError, ValueError) as exc:
                raise PersistenceError(f"{path}: {_CONFIG} is not a saved avrec encoder") from exc
            klass = resolve_class(name)  # a registry look-up: nothing named here is imported
            if not issubclass(klass, cls):
                raise PersistenceError(f"{path} holds a {name}, not a {cls.__name__}")
            if klass is not cls:  # the saved class's own loader (pretrained encoders extend it)
                return klass.from_pretrained(path, **params)
            encoder = klass(**_restore_tuples(klass, {**saved, **params}))
            state = _read_state(path / _WEIGHTS)
        elif path.is_file():
            encoder = cls(**params)
            fitted = {"history_": {"train_loss": [], "val_loss": []}, "best_epoch_": None}
            fitted["trained_"] = True
            state = _read_state(path)
        else:
            raise PersistenceError(f"{path}: no saved encoder or weights file here")
        device = encoder._check_params()
        model = encoder._build_model()
        _load_state(model, state, path)
        model.to(device)
        history = fitted.get("history_") or {"train_loss": [], "val_loss": []}
        trained = bool(fitted.get("trained_", True))
        encoder._set_fitted(model, device, history, fitted.get("best_epoch_"), trained=trained)
        return encoder

    # ------------------------------------------------------------------ internals
    def _fingerprint(self, skip: Iterable[str] = (), extra: Sequence[Any] = ()) -> str:
        """sha256 of the class, the semantic parameters (less ``skip``), ``extra`` and weights."""
        self._check_fitted()
        skip = _NON_SEMANTIC | set(skip)
        params = {k: v for k, v in self._json_params().items() if k not in skip}
        digest = hashlib.sha256()
        digest.update(qualified_name(type(self)).encode())
        digest.update(json.dumps(params, sort_keys=True, default=repr).encode())
        for part in extra:
            digest.update(json.dumps(part, sort_keys=True, default=repr).encode())
        digest.update(_weights_digest(self.model_).encode())
        return digest.hexdigest()

    def _save(self, path: str | os.PathLike[str], **extra: Any) -> None:
        """Write ``config.json`` (with ``extra`` after the params) and the weights, atomically."""
        self._check_fitted()
        with atomic_directory(path) as tmp:
            self._write_files(tmp, **extra)

    def _write_files(self, folder: Path, **extra: Any) -> None:
        """Write what :meth:`save` stores into ``folder`` (a fresh temporary directory).

        Subclasses that store more (a tokenizer) extend this, inside the same atomic write.
        """
        from safetensors.torch import save_file

        from avrec.utils import write_json

        state = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        config = {
            "format": _FORMAT,
            "avrec_version": __version__,
            "class": qualified_name(type(self)),
            "params": self._json_params(),
            **extra,
            "fitted": {
                "history_": self.history_,
                "best_epoch_": self.best_epoch_,
                "trained_": self.trained_,
            },
        }
        save_file(state, str(folder / _WEIGHTS))
        write_json(folder / _CONFIG, config)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted: call fit(), init() for the "
                "untrained random-weights baseline, or from_pretrained()"
            )

    def _set_fitted(
        self,
        model: nn.Module,
        device: torch.device,
        history: dict[str, list[float]],
        best_epoch: int | None,
        *,
        trained: bool,
    ) -> None:
        model.eval()
        self.model_ = model
        self.device_ = device
        self.history_ = history
        self.best_epoch_ = best_epoch
        self.trained_ = trained
        self.n_features_out_ = int(model.embedding_dim)

    def _json_params(self) -> dict[str, Any]:
        params = {}
        for key, value in self.get_params(deep=False).items():
            if isinstance(value, np.random.Generator):
                value = None  # not reproducible from JSON; the weights carry the result
            elif isinstance(value, torch.device):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            params[key] = value
        return params

    def _init_model(self, seed: int, device: torch.device) -> nn.Module:
        # modules also draw from the global generator when built (spectral norm's u and v):
        # seed it for the construction only, leaving the caller's global state untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self._build_model()
        model.reset_parameters(torch.Generator().manual_seed(seed))
        return model.to(device)

    def _iter_batches(
        self, X: Any, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        if isinstance(X, np.ndarray):
            X = torch.from_numpy(X)
        if isinstance(X, torch.Tensor):
            if X.dim() == 0 or X.shape[0] == 0:
                raise DataValidationError(
                    f"X must be a non-empty batch, got shape {tuple(X.shape)}"
                )
            for start in range(0, X.shape[0], batch_size):
                yield self._convert(X[start : start + batch_size])
            return
        items = _as_sequence(X)
        for start in range(0, len(items), batch_size):
            yield self._convert(items[start : start + batch_size])

    def _convert_all(self, X: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(X, np.ndarray):
            X = torch.from_numpy(X)
        if isinstance(X, torch.Tensor):
            if X.dim() == 0 or X.shape[0] == 0:
                raise DataValidationError(
                    f"X must be a non-empty batch, got shape {tuple(X.shape)}"
                )
            return self._convert(X)
        return self._convert(_as_sequence(X))

    # contrastive training shared by the video and audio encoders
    def _fit_model(
        self,
        model: nn.Module,
        x: torch.Tensor,
        lengths: torch.Tensor | None,
        seeds: list[int],
        device: torch.device,
    ) -> tuple[dict[str, list[float]], int | None]:
        optimizer = self._optimizer(model.parameters())
        augmenter = self._make_augmenter(seeds[2] + get_rank())  # own draws per process
        val_augmenter = self._make_augmenter(seeds[3])
        temperature = self.temperature
        step = DataParallelStep(model)  # DDP when in a process group

        def batch(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            lens = None if lengths is None else lengths[index].to(device)
            return x[index].to(device), lens

        def loss_of(index: torch.Tensor) -> torch.Tensor:
            z1, z2 = self._views(model, *batch(index), augmenter)
            # in a process group: the whole global batch's rows, so negatives span it
            return nt_xent_loss(all_gather_rows(z1), all_gather_rows(z2), temperature)

        def train_step(index: torch.Tensor) -> dict[str, float]:
            loss = step(loss_of, index)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return {"train_loss": float(loss.detach())}

        def val_loss(index: torch.Tensor) -> float:
            z1, z2 = self._views(model, *batch(index), val_augmenter)
            return float(nt_xent_loss(z1, z2, temperature))

        return self._run_epochs(
            n=x.shape[0],
            modules=model,
            train_step=train_step,
            val_loss=val_loss,
            schedulers=[self._scheduler(optimizer)],
            shuffle_seed=seeds[1],
            desc=type(self).__name__,
            before_validation=lambda: val_augmenter.generator.manual_seed(seeds[3]),
        )


def _as_sequence(X: Any) -> Sequence[Any]:
    """A non-empty sequence of items (any other iterable is listed; a lone path is refused)."""
    if isinstance(X, (str, bytes, os.PathLike)) or not hasattr(X, "__iter__"):
        raise DataValidationError(
            "X must be a sequence of clips, tensors or paths, or a batch tensor; "
            f"got {type(X).__name__}"
        )
    if not isinstance(X, Sequence):
        X = list(X)
    if len(X) == 0:
        raise DataValidationError("X is empty: at least one item is needed")
    return X


def _restore_tuples(klass: type, params: dict[str, Any]) -> dict[str, Any]:
    """JSON turns tuples into lists; give tuple-defaulted parameters their tuples back."""
    signature = inspect.signature(klass.__init__)
    out = dict(params)
    for key, value in params.items():
        default = signature.parameters.get(key)
        if default is None:
            raise PersistenceError(f"saved parameter {key!r} is not a {klass.__name__} parameter")
        if isinstance(default.default, tuple) and isinstance(value, list):
            out[key] = tuple(value)
    return out


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        if path.suffix in (".pt", ".pth", ".bin"):
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise PersistenceError(f"{path}: expected a state_dict, got {type(state).__name__}")
            return state
    except PersistenceError:
        raise
    except Exception as exc:  # safetensors and torch raise assorted errors on bad files
        raise PersistenceError(f"{path}: cannot read weights ({exc})") from exc
    raise PersistenceError(
        f"{path}: unknown weights format {path.suffix!r}; use .safetensors, .pt, .pth or .bin"
    )


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load ``state`` into the whole model or, failing that, into its backbone."""
    targets = [("the network", model)]
    backbones = model.pretrained_targets() if hasattr(model, "pretrained_targets") else []
    targets += [(f"its {name}", module) for name, module in backbones]
    for _, module in targets:
        expected = set(module.state_dict())
        if set(state) == expected:
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise PersistenceError(f"{path}: weights do not fit ({exc})") from exc
            return
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    raise PersistenceError(
        f"{path}: the weights' keys match neither the network nor "
        f"{', '.join(name for name, _ in targets[1:]) or 'a backbone'} of this "
        f"configuration; against the network: missing keys ({len(missing)}): {missing[:8]}, "
        f"unexpected keys ({len(unexpected)}): {unexpected[:8]}"
    )
