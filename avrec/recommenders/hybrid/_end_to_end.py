"""VBPR with the item encoder (frozen, its last blocks, or LoRA adapters) trained in the loop."""

from __future__ import annotations

import dataclasses
import logging
import numbers
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders._input import FitData
from avrec.recommenders.cf._bpr import _coo
from avrec.recommenders.hybrid._vbpr import VBPR, _standardize
from avrec.utils import check_positive_int, get_world_size, progress, torch_seed

__all__ = ["EndToEndVBPR"]

logger = logging.getLogger(__name__)

_ENCODER_DIR = "encoder"


class EndToEndVBPR(VBPR):
    """VBPR whose item content comes from an encoder fine-tuned on the ranking loss.

    :class:`VBPR` scores ``x_ui = b_i + gamma_u . gamma_i + theta_u . (E f_i)
    + beta' . f_i`` with fixed content features ``f_i``. Here ``f_i`` is the
    (standardised) embedding of item ``i``'s raw input (a title, a frame
    tensor ...) by ``encoder``, and the encoder's trainable parameters
    (``finetune``: its last blocks or LoRA adapters, see
    :class:`~avrec.features.finetune.FineTuning`) are trained with the model
    on the BPR loss: each minibatch of triples embeds its distinct items with
    gradients. With ``finetune="frozen"`` the embeddings are computed once
    and this is VBPR on them.

    Parameters
    ----------
    encoder : encoder, optional
        A fitted encoder (e.g. a :class:`~avrec.features.encoders.VideoEncoder`,
        or a pretrained frame or text backbone). It is not modified (a copy
        is fine-tuned) and :func:`sklearn.base.clone` keeps it as it is.
        None: no encoder, ``fit`` takes ``item_features`` and the model is
        :class:`VBPR`.
    finetune : str or FineTuning, default="lora"
        ``"frozen"``, ``"last_k"``, ``"lora"`` or a
        :class:`~avrec.features.finetune.FineTuning` with options.
    encoder_learning_rate : float, default=1e-4
        Learning rate of the encoder's trainable parameters.
    encoder_batch_size : int, default=32
        Items per forward pass when embedding the whole catalogue.
    mixed_precision : {None, "bf16", "fp16"}, default=None
        Autocast of the encoder (GradScaler with fp16) on CUDA; ignored on the CPU.
    gradient_checkpointing : bool, default=False
        Checkpoint the encoder's HF/timm backbone on CUDA; ignored on the CPU.
    factors, content_factors, learning_rate, regularization, content_regularization
        As in :class:`VBPR`.
    iterations : int, default=10
        Epochs over the interactions (CPU-sized default).
    batch_size : int, default=256
        Triples per step; the encoder embeds up to ``2 * batch_size`` items per step.
    negative_sampling, popularity_alpha, optimizer, cold_item_bias
        As in :class:`VBPR`.
    standardize : {"column", "modality"} or None, default="column"
        As in :class:`VBPR`, with the statistics of the embeddings before
        fine-tuning, kept fixed while the encoder trains.
    fusion, modality_dropout
        As in :class:`VBPR` without an encoder; an encoder gives one
        modality, so ``fusion`` must be ``"concat"`` then.
    device, random_state, verbose
        As in :class:`VBPR`.

    Attributes
    ----------
    encoder_ : FineTunedEncoder or None
        The fine-tuned encoder (None without ``encoder``). Not restored by
        :meth:`load`: :meth:`save` writes it into the ``encoder``
        subdirectory as its trainable tensors and the base's fingerprint; read
        it back with :meth:`load_encoder` and the base encoder.
    item_features_ : ndarray of shape (n_items_, d), dtype float32
        Standardised embeddings of the items by the fine-tuned encoder.
    Other attributes
        As in :class:`VBPR`.

    Notes
    -----
    The encoder is not regularised: on small catalogues it can learn to fit
    the warm items' scores at the expense of cold ones. On the synthetic
    corpus (``benchmarks/bench_end_to_end.py``, figures in
    ``benchmarks/RESULTS.md``) LoRA and last-block fine-tuning helped in some
    settings and fell towards random order in others: compare with
    ``finetune="frozen"`` on held-out data before relying on it.

    Scoring, ``recommend(X=...)``, cold items and ``partial_fit`` (which
    keeps the encoder fixed) work as in :class:`VBPR` from the stored
    embeddings; a saved model scores without the encoder.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from avrec.features import VideoEncoder
    >>> X = np.kron(np.eye(2), np.ones((4, 4)))  # two groups of 4 users x 4 items
    >>> frames = torch.zeros(8, 2, 3, 16, 16, dtype=torch.uint8)
    >>> frames[4:, :, 0] = 255                     # group 2's items are red
    >>> encoder = VideoEncoder(frame_size=16, widths=(4,), embedding_dim=8).init()
    >>> model = EndToEndVBPR(encoder=encoder, finetune="lora", factors=4, content_factors=2,
    ...                      iterations=3, batch_size=8, device="cpu", random_state=0,
    ...                      verbose=False).fit(X, item_inputs=frames)
    >>> model.recommend([0], k=2)[0].shape, model.encoder_.finetuning.mode
    ((1, 2), 'lora')
    """

    #: The contract suite runs without an encoder (then the model is VBPR, whose learned
    #: fusions VBPR's own variants cover); the encoder path is tested on its own.
    _test_variants: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(
        self,
        encoder: Any = None,
        finetune: Any = "lora",
        encoder_learning_rate: float = 1e-4,
        encoder_batch_size: int = 32,
        mixed_precision: Literal["bf16", "fp16"] | None = None,
        gradient_checkpointing: bool = False,
        factors: int = 64,
        content_factors: int = 32,
        learning_rate: float = 0.005,
        regularization: float = 0.05,
        content_regularization: float = 0.03,
        iterations: int = 10,
        batch_size: int = 256,
        negative_sampling: Literal["uniform", "popularity"] = "uniform",
        popularity_alpha: float = 0.75,
        optimizer: Literal["adam", "sgd"] = "adam",
        standardize: Literal["column", "modality"] | None = "column",
        cold_item_bias: Literal["mean", "min", "zero"] = "mean",
        fusion: Literal["concat", "gated", "attention"] = "concat",
        modality_dropout: float = 0.0,
        device: Any = None,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__(
            factors=factors,
            content_factors=content_factors,
            learning_rate=learning_rate,
            regularization=regularization,
            content_regularization=content_regularization,
            iterations=iterations,
            batch_size=batch_size,
            negative_sampling=negative_sampling,
            popularity_alpha=popularity_alpha,
            optimizer=optimizer,
            standardize=standardize,
            cold_item_bias=cold_item_bias,
            fusion=fusion,
            modality_dropout=modality_dropout,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.encoder = encoder
        self.finetune = finetune
        self.encoder_learning_rate = encoder_learning_rate
        self.encoder_batch_size = encoder_batch_size
        self.mixed_precision = mixed_precision
        self.gradient_checkpointing = gradient_checkpointing

    def __sklearn_clone__(self) -> EndToEndVBPR:
        params = self.get_params(deep=False)
        return type(self)(
            **{k: v if k == "encoder" else clone(v, safe=False) for k, v in params.items()}
        )

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, item_features: Any = None, item_inputs: Any = None) -> EndToEndVBPR:
        """Fit from scratch, fine-tuning a copy of ``encoder`` on the ranking loss.

        Parameters
        ----------
        X : Interactions, scipy.sparse matrix or ndarray of shape (n_users, n_items)
        item_features : ItemFeatures or ndarray of shape (n_items, d), optional
            Only without an ``encoder`` (the model is then :class:`VBPR`).
        item_inputs : sequence or batch tensor of length n_items, optional
            One raw input per item, as ``encoder`` takes them (texts,
            frame tensors ...); required with an ``encoder``.

        Returns
        -------
        self

        Raises
        ------
        DataValidationError
            If ``item_inputs`` are missing or do not have one entry per item.
        ConfigurationError
            On an invalid hyperparameter, or ``item_inputs`` without encoder.
        """
        self._item_inputs = item_inputs
        try:
            super().fit(X, item_features=item_features)
        finally:
            del self._item_inputs
        return self

    def _fit(self, data: FitData) -> dict[str, Any]:
        inputs = getattr(self, "_item_inputs", None)
        if self.encoder is None:
            if inputs is not None:
                raise ConfigurationError(
                    "item_inputs need an encoder: set encoder= or pass item_features instead"
                )
            return {**super()._fit(data), "encoder_": None}
        return self._fit_encoder(data, inputs)

    def _check_encoder_params(self) -> str | None:
        from avrec.features.finetune._finetuned import as_finetuning
        from avrec.features.finetune._precision import check_mixed_precision

        lr = self.encoder_learning_rate
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ConfigurationError(f"encoder_learning_rate must be a number > 0, got {lr!r}")
        check_positive_int(self.encoder_batch_size, "encoder_batch_size")
        if not isinstance(self.gradient_checkpointing, (bool, np.bool_)):
            raise ConfigurationError(
                f"gradient_checkpointing must be a bool, got {self.gradient_checkpointing!r}"
            )
        if self.fusion != "concat":
            raise ConfigurationError(
                f"fusion={self.fusion!r} needs several modalities; an encoder gives one: "
                "use fusion='concat'"
            )
        as_finetuning(self.finetune).check()
        return check_mixed_precision(self.mixed_precision)

    def _fit_encoder(self, data: FitData, inputs: Any) -> dict[str, Any]:
        import torch

        from avrec.features.finetune._finetuned import (
            FineTunedEncoder,
            as_finetuning,
            as_inputs,
        )
        from avrec.features.finetune._precision import enable_gradient_checkpointing

        device = self._validate()
        precision = self._check_encoder_params()
        if get_world_size() > 1:
            raise ConfigurationError(
                "EndToEndVBPR fine-tunes its encoder in one process; it was called in a process "
                f"group of {get_world_size()} (torchrun): run it without torchrun"
            )
        if data.item_features is not None:
            raise DataValidationError(
                "item_features: with an encoder the item content comes from item_inputs; "
                "pass one or the other"
            )
        if inputs is None:
            raise DataValidationError("item_inputs are required with an encoder: one per item")
        items = as_inputs(inputs, "item_inputs")
        n_items = data.X.shape[1]
        if len(items) != n_items:
            raise DataValidationError(
                f"item_inputs must have one entry per item: {len(items)} != {n_items} items"
            )
        tuned = FineTunedEncoder(
            self.encoder, as_finetuning(self.finetune), random_state=torch_seed(data.rng)
        ).to(device)
        raw = tuned.transform(items, batch_size=int(self.encoder_batch_size))
        if tuned.n_trainable_parameters() == 0:  # frozen: VBPR on the embeddings
            state = super()._fit(dataclasses.replace(data, item_features=raw))
            return {**state, "encoder_": tuned}
        if self.gradient_checkpointing:
            enable_gradient_checkpointing(tuned.model_.network, device)
        feats, mean, scale = _standardize(raw, n_items, self.standardize)
        module = self._module(data, feats, device)
        gen = torch.Generator(device=device).manual_seed(torch_seed(data.rng))
        history = self._train_end_to_end(module, tuned, items, data.X, mean, scale, precision, gen)
        tuned.model_.eval()
        final = tuned.transform(items, batch_size=int(self.encoder_batch_size))
        final = ((final - mean) / scale).astype(np.float32)
        module.features = torch.from_numpy(final).to(device)
        module.loss_history = history
        module.dims = {tuned.modality or "content": int(final.shape[1])}
        tuned.history_ = {"train_loss": list(history)}
        state = self._state(module, data.X)
        state.update(feature_mean_=mean, feature_scale_=scale, encoder_=tuned)
        return state

    def _module(self, data: FitData, feats: np.ndarray, device: Any) -> Any:
        """VBPR's parameters, initialised as :class:`VBPR` does, around ``feats``."""
        import torch

        from avrec.recommenders.hybrid._vbpr_train import _VBPRModule

        X = data.X
        n_users, n_items = X.shape
        d, f, c = feats.shape[1], int(self.factors), int(self.content_factors)
        init = torch.Generator().manual_seed(torch_seed(data.rng))
        cold = np.flatnonzero(np.diff(X.tocsc().indptr) == 0)
        item_factors = torch.randn(n_items, f, generator=init) * (0.1 / np.sqrt(f))
        item_factors[torch.from_numpy(cold)] = 0.0
        return _VBPRModule(
            user_factors=torch.randn(n_users, f, generator=init) * (0.1 / np.sqrt(f)),
            item_factors=item_factors,
            item_bias=torch.zeros(n_items),
            user_content=torch.randn(n_users, c, generator=init) * (0.1 / np.sqrt(c)),
            projection=torch.randn(c, d, generator=init) / np.sqrt(d),
            feature_bias=torch.zeros(d),
            features=torch.from_numpy(feats),
            regularization=float(self.regularization),
            content_regularization=float(self.content_regularization),
        ).to(device)

    def _train_end_to_end(
        self,
        module: Any,
        tuned: Any,
        items: Any,
        X: sp.csr_matrix,
        mean: np.ndarray,
        scale: np.ndarray,
        precision: str | None,
        gen: Any,
    ) -> list[float]:
        """BPR epochs that embed each minibatch's items with gradients; return epoch losses."""
        import torch

        from avrec.features.finetune._finetuned import convert_items, to_device
        from avrec.features.finetune._precision import autocast, grad_scaler
        from avrec.recommenders.hybrid._vbpr_train import TripleSampler

        device = module.user_factors.device
        sampler = TripleSampler(
            *_coo(X, device),
            None,
            X,
            self.negative_sampling,
            float(self.popularity_alpha),
            device,
        )
        groups = [
            {"params": [p for p in module.parameters() if p.requires_grad]},
            {"params": tuned.trainable_parameters(), "lr": float(self.encoder_learning_rate)},
        ]
        lr = float(self.learning_rate)
        opt = (
            torch.optim.Adam(groups, lr=lr)
            if self.optimizer == "adam"
            else torch.optim.SGD(groups, lr=lr)
        )
        scaler = grad_scaler(device, precision)
        mean_t = torch.from_numpy(mean).to(device)
        scale_t = torch.from_numpy(scale).to(device)
        latest = module.features.detach().clone()  # newest embedding of every item
        history = []
        epochs = progress(
            range(int(self.iterations)), verbose=bool(self.verbose), desc="EndToEndVBPR"
        )
        for epoch in epochs:
            module.train()
            tuned.model_.train()
            total, count = 0.0, 0
            for u, i, j, keep in sampler.batches(int(self.batch_size), gen):
                batch_items = torch.unique(torch.cat([i, j]))
                x_in, lengths = convert_items(tuned.base_encoder, items, batch_items)
                with autocast(device, precision):
                    emb = tuned.model_.embed(to_device(x_in, device), to_device(lengths, device))
                f = (emb.float() - mean_t) / scale_t
                module.features = latest.index_put((batch_items,), f)
                x, penalty = module(u, i, j)
                w = keep.to(x.dtype)
                ranking = torch.nn.functional.softplus(-x)
                loss = torch.sum((ranking + penalty) * w)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                latest[batch_items] = f.detach()
                total += float(torch.sum(ranking.detach() * w))
                count += int(keep.sum())
            history.append(total / max(count, 1))
            logger.debug("EndToEndVBPR epoch %d: loss %.6g", epoch + 1, history[-1])
        module.eval()
        return history

    # ------------------------------------------------------------------ persistence
    def load_encoder(self, path: str | Path, base_encoder: Any) -> Any:
        """Read the fine-tuned encoder of a model saved with :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The directory the model was saved to.
        base_encoder : encoder
            The base encoder, loaded from its local weights; its fingerprint
            must be the one the model was fine-tuned from.

        Returns
        -------
        FineTunedEncoder
            Also set as ``encoder_``.

        Raises
        ------
        PersistenceError
            If no encoder was saved there or the base differs.
        """
        from avrec.features.finetune import FineTunedEncoder

        self._check_fitted()
        self.encoder_ = FineTunedEncoder.load(Path(path) / _ENCODER_DIR, base_encoder)
        return self.encoder_

    def _fitted_state(self) -> dict[str, Any]:
        return {k: v for k, v in super()._fitted_state().items() if k != "encoder_"}

    def _set_state(self, state: dict[str, Any], *, replace: bool) -> None:
        if replace:
            self.__dict__.pop("encoder_", None)
        super()._set_state(state, replace=replace)

    def _write(self, directory: Path) -> None:
        super()._write(directory)
        if getattr(self, "encoder_", None) is not None:
            self.encoder_.save(directory / _ENCODER_DIR)
