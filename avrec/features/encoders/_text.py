"""The text encoder: a pretrained sentence-embedding transformer from a local directory."""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avrec.exceptions import ConfigurationError, DataValidationError, PersistenceError
from avrec.features.encoders._pretrained import (
    PretrainedEncoder,
    check_model_dir,
    load_state_dict_strict,
    read_model_config,
    read_state_dict,
)
from avrec.utils import read_json

__all__ = ["TextEncoder"]

#: Pooling of the token states into one vector (the modes of sentence-transformers).
TEXT_POOLING = ("mean", "cls", "max", "mean_sqrt_len")
#: Transformer families a text checkpoint may hold (``config.model_type`` -> class).
_MODEL_TYPES = {
    "bert": "BertModel",
    "distilbert": "DistilBertModel",
    "roberta": "RobertaModel",
    "xlm-roberta": "XLMRobertaModel",
    "mpnet": "MPNetModel",
    "electra": "ElectraModel",
    "deberta-v2": "DebertaV2Model",
}
_TOKENIZER = "tokenizer"
#: Tokenizer folder of an encoder being loaded by ``from_pretrained`` (else None).
_LOADING_TOKENIZER: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "avrec_loading_tokenizer", default=None
)


class TextEmbedder(nn.Module):
    """A transformer followed by masked pooling and optional L2 normalisation.

    Parameters
    ----------
    transformer : torch.nn.Module
        A transformers encoder model returning ``last_hidden_state``; kept as
        the plain submodule ``transformer`` (fine-tuning wraps it).
    pooling : {"mean", "cls", "max", "mean_sqrt_len"}
    normalize : bool
    """

    def __init__(self, transformer: nn.Module, pooling: str, normalize: bool) -> None:
        super().__init__()
        self.transformer = transformer
        self.pooling = pooling
        self.normalize = normalize
        self.embedding_dim = int(transformer.config.hidden_size)

    def pretrained_targets(self) -> list[tuple[str, nn.Module]]:
        """A bare weights file may hold the transformer alone."""
        return [("transformer", self.transformer)]

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids ``(B, L)``, right-padded, with ``lengths`` valid tokens -> ``(B, d)``."""
        if lengths is None:
            mask = torch.ones_like(x, dtype=torch.bool)
        else:
            mask = torch.arange(x.shape[1], device=x.device) < lengths[:, None]
        hidden = self.transformer(input_ids=x, attention_mask=mask.long()).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.pooling == "max":
            pooled = hidden.masked_fill(~mask.unsqueeze(-1), -1e9).max(dim=1).values
        else:  # as sentence-transformers: sums over the mask, counts clamped at 1e-9
            total = (hidden * weights).sum(dim=1)
            count = weights.sum(dim=1).clamp(min=1e-9)
            pooled = total / (count if self.pooling == "mean" else count.sqrt())
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled

    forward = embed


class TextEncoder(PretrainedEncoder):
    """Sentence embeddings from a pretrained transformer in a local directory.

    The ``text`` modality: a transformers encoder (BERT, MiniLM, MPNet,
    RoBERTa ...) read from a local sentence-transformers or transformers
    folder, its token states pooled over the attention mask and L2-normalised
    as the folder's ``1_Pooling/config.json`` and ``modules.json`` say, so
    that the embeddings equal those of ``sentence_transformers`` on the same
    folder. Nothing is downloaded and no code from the folder runs
    (``local_files_only``, no ``trust_remote_code``, weights through
    safetensors or ``torch.load(weights_only=True)``). ``fit`` only loads the
    weights; the network is frozen unless ``freeze=False``.

    Parameters
    ----------
    model_dir : str or path-like, optional
        Local folder with ``config.json``, ``model.safetensors`` (or
        ``pytorch_model.bin``) and the tokenizer files, e.g.
        ``pretrained_weights("all-minilm-l6-v2")``. Needed by ``fit`` and
        ``init``, not to load a saved encoder.
    max_length : int, optional
        Tokens kept per text (longer texts are truncated). None: the folder's
        ``sentence_bert_config.json`` ``max_seq_length`` (256 for
        all-MiniLM-L6-v2), else the model's position limit.
    pooling : {"mean", "cls", "max", "mean_sqrt_len"}, optional
        None: as ``1_Pooling/config.json`` says (mean without one).
    normalize : bool, optional
        L2-normalise the embeddings. None: when ``modules.json`` lists a
        ``Normalize`` module.
    freeze : bool, default=True
        Set ``requires_grad=False`` on every parameter of ``model_``.
    batch_size : int, default=32
        Texts per forward pass in :meth:`transform` (the result does not depend on it).
    device : str or torch.device, optional
        None or "cpu", or "cuda[:N]".
    random_state : None, int or numpy.random.Generator, optional
        Seed of the random weights of :meth:`init`.
    verbose : bool, default=False

    Attributes
    ----------
    model_ : TextEmbedder
        ``transformer`` (the transformers model) + pooling, in eval mode.
    tokenizer_ : transformers tokenizer
    architecture_ : dict
        ``transformer`` (its ``config.json``), ``pooling``, ``normalize`` and
        ``max_length`` as resolved.
    n_features_out_ : int

    Notes
    -----
    Inputs are sequences of ``str``; ``""`` embeds like sentence-transformers
    does (the special tokens alone), ``None`` raises: leave items without text
    to :class:`~avrec.features.FeatureExtractor`, which flags them in
    ``missing_``. A batch may also be a ``(B, L)`` int tensor of token ids
    without padding. ``_convert`` gives right-padded token ids and the
    number of valid tokens per text.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from transformers import BertConfig, BertModel, BertTokenizerFast
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "vocab.txt").write_text("\\n".join(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "calm", "river", "loud", "engine"]))
    >>> BertTokenizerFast(str(d / "vocab.txt")).save_pretrained(d)  # doctest: +ELLIPSIS
    (...)
    >>> BertModel(BertConfig(vocab_size=9, hidden_size=8, num_hidden_layers=1,
    ...                      num_attention_heads=2, intermediate_size=16)).save_pretrained(d)
    >>> encoder = TextEncoder(model_dir=d).fit()
    >>> encoder.transform(["calm river", "loud engine", ""]).shape
    (3, 8)
    """

    modality: ClassVar[str] = "text"
    _source_params: ClassVar[tuple[str, ...]] = ("model_dir",)

    def __init__(
        self,
        model_dir: str | os.PathLike[str] | None = None,
        max_length: int | None = None,
        pooling: str | None = None,
        normalize: bool | None = None,
        freeze: bool = True,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = False,
    ) -> None:
        self.model_dir = model_dir
        self.max_length = max_length
        self.pooling = pooling
        self.normalize = normalize
        self.freeze = freeze
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ hooks
    def _check_own_params(self) -> None:
        if self.model_dir is not None and not isinstance(self.model_dir, (str, os.PathLike)):
            raise ConfigurationError(
                f"model_dir must be a local folder path or None, got {self.model_dir!r}"
            )
        if self.max_length is not None and (
            isinstance(self.max_length, bool)
            or not isinstance(self.max_length, (int, np.integer))
            or self.max_length < 2
        ):
            raise ConfigurationError(
                f"max_length must be None or an int >= 2, got {self.max_length!r}"
            )
        if self.pooling is not None and self.pooling not in TEXT_POOLING:
            raise ConfigurationError(
                f"pooling must be None or one of {TEXT_POOLING}, got {self.pooling!r}"
            )
        if self.normalize is not None and not isinstance(self.normalize, (bool, np.bool_)):
            raise ConfigurationError(f"normalize must be None or a bool, got {self.normalize!r}")

    def _source(self) -> Path:
        if self.model_dir is None:
            raise ConfigurationError(
                "model_dir is required to fit or init a TextEncoder: a local folder such as "
                "pretrained_weights('all-minilm-l6-v2') (nothing is downloaded)"
            )
        return check_model_dir(self.model_dir)

    def _read_architecture(self) -> dict[str, Any]:
        path = self._source()
        config = read_model_config(path, _MODEL_TYPES, accepts="a TextEncoder takes")
        pooling, normalize, max_length = _sentence_transformers_settings(path, config)
        return {
            "transformer": config,
            "pooling": self.pooling or pooling,
            "normalize": bool(normalize if self.normalize is None else self.normalize),
            "max_length": int(self.max_length or max_length),
        }

    def _build_model(self) -> TextEmbedder:
        import transformers

        architecture = self.architecture()
        config = dict(architecture["transformer"])
        model_type = config.get("model_type")
        if model_type not in _MODEL_TYPES:
            raise PersistenceError(f"unsupported transformer model_type {model_type!r}")
        config = transformers.AutoConfig.for_model(**config)
        klass = getattr(transformers, _MODEL_TYPES[model_type])
        try:  # the pooling is ours: no task pooler where the class has one
            transformer = klass(config, add_pooling_layer=False)
        except TypeError:
            transformer = klass(config)
        return TextEmbedder(transformer, architecture["pooling"], architecture["normalize"])

    def _load_pretrained(self, model: TextEmbedder) -> None:
        path = self._source()
        weights = path / "model.safetensors"
        if not weights.is_file():
            weights = path / "pytorch_model.bin"
        if not weights.is_file():
            raise PersistenceError(
                f"model_dir={os.fspath(path)!r} has no model.safetensors or pytorch_model.bin"
            )
        state = read_state_dict(weights, name="model_dir")
        state = _checkpoint_keys(model.transformer, state)
        load_state_dict_strict(model.transformer, state, weights)

    def _convert(self, items: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(items, torch.Tensor):
            if items.dim() != 2 or items.dtype.is_floating_point:
                raise DataValidationError(
                    f"a text batch tensor must be (B, L) integer token ids, got "
                    f"{tuple(items.shape)} {items.dtype}"
                )
            return items.long(), None
        texts = list(items)
        _check_texts(texts)
        batch = self.tokenizer_(
            texts,
            padding=True,
            truncation=True,
            max_length=self.architecture_["max_length"],
            return_tensors="pt",
            return_token_type_ids=False,
        )
        return batch["input_ids"], batch["attention_mask"].sum(dim=1)

    # ------------------------------------------------------------------ public API
    def fit(self, X: Any = None, y: Any = None) -> TextEncoder:
        """Load and validate the pretrained weights and the tokenizer; nothing is trained.

        Parameters
        ----------
        X : sequence of str, optional
            Ignored apart from a check that it is not empty.
        y : None
            Ignored.

        Returns
        -------
        self

        Raises
        ------
        ConfigurationError
            If a hyperparameter is invalid, ``model_dir`` is missing or holds
            an unsupported model type.
        PersistenceError
            If the folder, its weights or its tokenizer are missing, or the
            checkpoint does not fit (missing, unexpected or mis-shaped keys
            are named).
        """
        super().fit(_as_texts(X), y)
        return self

    def transform(self, X: Any, *, batch_size: int | None = None) -> np.ndarray:
        """Embed texts (sorted by length into batches, to pad little; rows in input order).

        Parameters
        ----------
        X : sequence of str (or an array of str), or a (B, L) tensor of token ids
        batch_size : int, optional
            Texts per forward pass (default ``self.batch_size``); the result
            does not depend on it beyond float rounding.

        Returns
        -------
        numpy.ndarray of shape (n, n_features_out_), dtype float32

        Raises
        ------
        NotFittedError
            If the encoder was neither fitted, initialised nor loaded.
        DataValidationError
            If an item is not a str (None included) or ``X`` is empty.
        """
        X = _as_texts(X)
        if isinstance(X, (torch.Tensor, str, bytes)) or not hasattr(X, "__len__") or not len(X):
            return super().transform(X, batch_size=batch_size)  # the base checks these
        texts = list(X)
        _check_texts(texts)  # before sorting, so that an error names the input position
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = super().transform([texts[i] for i in order], batch_size=batch_size)
        result = np.empty_like(out)
        result[order] = out
        return result

    def fingerprint(self) -> str:
        """sha256 of the class, semantic hyperparameters, architecture, weights and tokenizer.

        Returns
        -------
        str
            64 hexadecimal digits; the same weights and tokenizer read from
            another folder give the same fingerprint.
        """
        digest = hashlib.sha256(super().fingerprint().encode())
        digest.update(_tokenizer_digest(self.tokenizer_).encode())
        return digest.hexdigest()

    # ------------------------------------------------------------------ fitting and persistence
    def _set_fitted(
        self,
        model: nn.Module,
        device: torch.device,
        history: dict[str, list[float]],
        best_epoch: int | None,
        *,
        trained: bool,
    ) -> None:
        folder = _LOADING_TOKENIZER.get() or self._source()
        tokenizer = _load_tokenizer(folder)
        super()._set_fitted(model, device, history, best_epoch, trained=trained)
        self.tokenizer_ = tokenizer

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``config.json``, ``model.safetensors`` and the tokenizer, atomically.

        Parameters
        ----------
        path : str or path-like
            Directory to create or replace; :meth:`from_pretrained` loads it
            back without ``model_dir``.
        """
        super().save(path)

    def _write_files(self, folder: Path, **extra: Any) -> None:
        super()._write_files(folder, **extra)
        self.tokenizer_.save_pretrained(str(folder / _TOKENIZER))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], **params: Any) -> TextEncoder:
        """Load a saved TextEncoder, or a sentence-transformers / transformers folder.

        Parameters
        ----------
        path : str or path-like
            A directory written by :meth:`save`, or a local model folder
            (its ``config.json`` is a transformers one): the same as
            ``TextEncoder(model_dir=path, **params).fit()``.
        **params
            Hyperparameters overriding the saved ones (e.g. ``device="cpu"``).

        Returns
        -------
        TextEncoder

        Raises
        ------
        PersistenceError
            If the folder is missing or incomplete, or its weights do not fit.
        """
        path = Path(path)
        config = read_json(path / "config.json") if path.is_dir() else None
        if isinstance(config, dict) and "class" not in config and "model_type" in config:
            return cls(**{**params, "model_dir": path}).fit()
        if path.is_dir() and not (path / _TOKENIZER).is_dir():
            raise PersistenceError(f"{path}: no {_TOKENIZER}/ folder: not a saved TextEncoder")
        token = _LOADING_TOKENIZER.set(path / _TOKENIZER if path.is_dir() else None)
        try:
            return super().from_pretrained(path, **params)  # type: ignore[return-value]
        finally:
            _LOADING_TOKENIZER.reset(token)


def _tokenizer_digest(tokenizer: Any) -> str:
    """What makes a tokenizer split text as it does (vocabulary, normaliser, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # a fast tokenizer: its whole definition, less call-time state
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
    else:
        kwargs = {k: v for k, v in tokenizer.init_kwargs.items() if k != "name_or_path"}
        state = {"vocab": sorted(tokenizer.get_vocab().items()), "kwargs": kwargs}
    text = json.dumps(state, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_texts(texts: list[Any]) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataValidationError(
                f"X[{i}] must be a str, got {type(text).__name__}; items without text "
                "are for FeatureExtractor, which flags them in missing_"
            )


def _as_texts(X: Any) -> Any:
    """An array of strings as a list of str (other inputs unchanged)."""
    if isinstance(X, np.ndarray) and X.dtype.kind in "UO":
        return X.tolist()
    return X


def _sentence_transformers_settings(path: Path, config: dict[str, Any]) -> tuple[str, bool, int]:
    """Pooling, normalisation and length limit of a sentence-transformers folder."""
    pooling, normalize = "mean", False
    max_length = int(config.get("max_position_embeddings", 512))
    modules = read_json(path / "modules.json") if (path / "modules.json").is_file() else []
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", "")) if isinstance(module, dict) else ""
        if kind.endswith(".Normalize"):
            normalize = True
        if kind.endswith(".Pooling"):
            pool_config = path / str(module.get("path", "")) / "config.json"
            if pool_config.is_file():
                pooling = _pooling_mode(read_json(pool_config), pool_config)
    bert_config = path / "sentence_bert_config.json"
    if bert_config.is_file():
        limit = read_json(bert_config).get("max_seq_length")
        if isinstance(limit, int) and limit >= 2:
            max_length = min(max_length, limit)
    return pooling, normalize, max_length


def _pooling_mode(config: dict[str, Any], source: Path) -> str:
    modes = {
        "mean": "pooling_mode_mean_tokens",
        "cls": "pooling_mode_cls_token",
        "max": "pooling_mode_max_tokens",
        "mean_sqrt_len": "pooling_mode_mean_sqrt_len_tokens",
    }
    chosen = [mode for mode, key in modes.items() if config.get(key)]
    if len(chosen) != 1:
        raise ConfigurationError(
            f"{source}: exactly one of {sorted(modes.values())} must be true for a "
            f"TextEncoder (concatenated poolings are not supported), got {chosen}"
        )
    return chosen[0]


def _checkpoint_keys(module: nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """Drop the keys transformers itself ignores; strip a task model's prefix (``bert.``)."""
    import re

    prefix = f"{getattr(module, 'base_model_prefix', '')}."
    expected = set(module.state_dict())
    if prefix != "." and not expected & set(state) and any(k.startswith(prefix) for k in state):
        state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    ignore = list(getattr(module, "_keys_to_ignore_on_load_unexpected", None) or [])
    ignore.append(r"position_ids$")  # a buffer older checkpoints saved
    unused = [k for k in state if k not in expected and any(re.search(p, k) for p in ignore)]
    if not any(k.startswith("pooler.") for k in expected):
        unused += [k for k in state if k.startswith("pooler.")]  # the pooling is ours
    return {k: v for k, v in state.items() if k not in set(unused)}


def _load_tokenizer(folder: Path) -> Any:
    import transformers

    try:
        return transformers.AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise PersistenceError(f"{folder}: cannot load the tokenizer ({exc})") from exc
