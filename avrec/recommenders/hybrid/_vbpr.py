"""Visual (content-aware) Bayesian personalised ranking (He & McAuley 2016)."""

from __future__ import annotations

import logging
import numbers
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders.cf._bpr import _coo, _fit_fold_in_map, resolve_device
from avrec.utils import check_positive_int, get_world_size, torch_seed

__all__ = ["VBPR"]

logger = logging.getLogger(__name__)

_STANDARDIZE = ("column", "modality", None)
_COLD_BIAS = ("mean", "min", "zero")
_FUSION = ("concat", "gated", "attention")


class VBPR(Recommender):
    """Pairwise ranking with latent factors plus a learned projection of item content.

    Scores ``x_ui = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i``
    where ``f_i`` are the item's (standardised) content features, ``E`` a
    ``content_factors x d`` projection shared by all items, ``theta_u`` the
    user's taste in that content space and ``beta'`` a content bias. Trained
    like :class:`~avrec.recommenders.BPR` on the loss
    ``-ln sigma(x_ui - x_uj)`` over triples of a user, an item in their
    history and a sampled item outside it, in minibatches, with
    :mod:`torch.optim` and autograd. Without ``item_features`` the content
    terms are absent and the model is BPR.

    Parameters
    ----------
    factors : int, default=64
        Dimension of the collaborative factors ``gamma``.
    content_factors : int, default=32
        Dimension of the content space (``theta_u`` and the rows of ``E``).
    learning_rate : float, default=0.005
        Step size of the optimiser.
    regularization : float, default=0.05
        L2 penalty per triple on the rows it touches (``gamma_u``,
        ``theta_u``, both items' ``gamma`` and bias).
    content_regularization : float, default=0.03
        L2 penalty per triple on the shared content parameters ``E`` and
        ``beta'``.
    iterations : int, default=20
        Epochs over the interactions.
    batch_size : int, default=1024
        Triples per minibatch (one optimiser step each). The loss of a batch
        is the sum over its triples, so plain SGD matches BPR's batched SGD.
    negative_sampling : {"uniform", "popularity"}, default="uniform"
        Draw negatives uniformly over the items with interactions, or
        proportionally to ``count ** popularity_alpha``.
    popularity_alpha : float, default=0.75
        Exponent of the popularity sampler.
    optimizer : {"adam", "sgd"}, default="adam"
        :class:`torch.optim.Adam` or :class:`torch.optim.SGD` (use a larger
        ``learning_rate`` with SGD, e.g. 0.05 as BPR).
    standardize : {"column", "modality"} or None, default="column"
        How features are scaled before training (the statistics are fitted
        state, reused for every item): ``"column"`` centres each column and
        divides it by its standard deviation; ``"modality"`` centres each
        column and scales each modality of an
        :class:`~avrec.data.ItemFeatures` (an array is one modality) to unit
        mean squared row norm, so modalities weigh the same whatever their
        width; None uses the features as they are.
    cold_item_bias : {"mean", "min", "zero"}, default="mean"
        Bias ``b_i`` given to items without training interactions: the mean
        or minimum of the trained biases, or zero.
    fusion : {"concat", "gated", "attention"}, default="concat"
        How the modalities of an :class:`~avrec.data.ItemFeatures` make the
        item's content vector: ``"concat"`` projects the concatenated
        features with ``E`` (the model of [1]_); ``"gated"`` and
        ``"attention"`` learn a :class:`~avrec.features.nn.GatedFusion` or
        :class:`~avrec.features.nn.AttentionFusion` (one head) of the
        standardised modalities into the ``content_factors`` space, which
        replaces ``E f_i``, with ``beta'`` applied to the fused vector. Both
        weigh each item's modalities by what it has (``ItemFeatures.presence``)
        instead of one fixed weighting.
    modality_dropout : float, default=0.0
        In ``[0, 1)``: during training, each modality an item has is dropped
        with this probability, never all of them (absent from the fusion;
        with ``"concat"`` its standardised columns are zeroed), so that items
        missing a modality are scored well. Needs two or more modalities to
        have an effect.
    device : None, str or torch.device, default=None
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; None picks CUDA when available.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the initial parameters (drawn on the CPU, so they do not depend
        on ``device``), the order of the triples and the negatives.
    verbose : bool, default=True
        Show a progress bar over the epochs.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users_, factors), dtype float32
        ``gamma_u``.
    item_factors_ : ndarray of shape (n_items_, factors), dtype float32
        ``gamma_i``; zero for cold items.
    item_bias_ : ndarray of shape (n_items_,), dtype float32
        ``b_i``; cold items get ``cold_item_bias``.
    user_content_factors_ : ndarray of shape (n_users_, c), dtype float32
        ``theta_u``; ``c = content_factors``, or 0 when fitted without features.
    projection_ : ndarray of shape (c, d), dtype float32
        ``E``; shape ``(0, d)`` with a learned ``fusion``.
    feature_bias_ : ndarray of shape (d,), dtype float32
        ``beta'``; shape ``(c,)`` with a learned ``fusion`` (it weighs the
        fused vector).
    fusion_parameters_ : ndarray of shape (n_fusion_params,), dtype float32
        The fusion module's parameters, flattened in ``named_parameters``
        order (empty with ``"concat"``).
    item_features_ : ndarray of shape (n_items_, d), dtype float32
        Standardised features ``f_i`` (``d = 0`` without features); rows of
        items without a modality are 0 in its columns.
    item_presence_ : ndarray of shape (n_items_, n_modalities), dtype bool
        Which items have which modality (all True unless the
        ``ItemFeatures`` say otherwise).
    modality_dims_ : dict of str to int
        Width of each modality in ``item_features_``, in column order.
    feature_mean_, feature_scale_ : ndarray of shape (d,), dtype float32
        ``f_i = (raw_i - feature_mean_) / feature_scale_``.
    item_content_factors_ : ndarray of shape (n_items_, c), dtype float32
        ``E f_i`` for every item (cached for scoring).
    item_content_bias_ : ndarray of shape (n_items_,), dtype float32
        ``beta' . f_i`` for every item.
    cold_items_ : ndarray of shape (n_cold,), dtype int64
        Items without training interactions.
    fold_in_map_ : ndarray of shape (factors + c, factors + c), dtype float32
        Ridge map from a history's mean item representation to a user's (Notes).
    loss_history_ : ndarray of shape (iterations,), dtype float64
        Mean ``-ln sigma(x_uij)`` of each epoch's triples.
    n_users_, n_items_, train_matrix_, users_, items_
        See :class:`~avrec.recommenders.Recommender`.

    See Also
    --------
    BPR : the same model without content.

    Notes
    -----
    *Cold items* (columns without training interactions, as made by
    :func:`~avrec.data.cold_item_split`) are never drawn as negatives, so
    nothing pushes them down; their ``gamma_i`` stay zero and their ``b_i``
    is set by ``cold_item_bias``, so they are ranked by their content terms
    ``theta_u . (E f_i) + beta' . f_i``. Features are needed for every item at
    ``fit``; they are stored standardised.

    *Missing modalities* (``ItemFeatures(..., present=...)``): the
    standardisation statistics are computed over the items that have the
    modality, and an item without it gets zeros there, i.e. the mean of the
    standardised column (``"concat"``), or is left out of the fusion exactly
    (``"gated"``, ``"attention"``). Train with ``modality_dropout > 0`` when
    such items are expected at scoring time.

    *Users known by their history* (``recommend(X=...)``): their
    ``[gamma_u, theta_u]`` is the mean of ``[gamma_i, E f_i]`` over the
    history times ``fold_in_map_``, the ridge regression of the trained users
    on their histories (as in BPR): deterministic, one matrix product, and
    informative also for histories of cold items. An empty history scores
    ``b_i + beta' . f_i``.

    *partial_fit* grows the user tables (new users start from the fold-in),
    then runs ``iterations`` epochs on the new interactions plus as many old
    ones drawn afresh each epoch (replay), with a fresh optimiser. Items stay
    fixed; items that were cold and got interactions start training then.

    The optimisers are dense (``torch.optim``): Adam's moments keep moving
    rows a batch does not touch, which works well here and keeps the model
    plain enough for ``DistributedDataParallel``. With SGD, the shared ``E``
    and ``beta'`` step on the batch mean gradient (``learning_rate /
    batch_size``), the rows on the sum; SGD without features is BPR.

    *Defaults* come from small sweeps on synthetic data whose item clusters
    show in noisy features (``benchmarks/bench_vbpr.py``).
    ``content_regularization`` trades warm for cold accuracy: lower values
    rank cold items better, higher ones warm items, as noisy features let
    ``E`` memorise items (figures and commands: ``benchmarks/RESULTS.md``).

    References
    ----------
    .. [1] R. He, J. McAuley, "VBPR: Visual Bayesian Personalized Ranking from
       Implicit Feedback", AAAI 2016.
    .. [2] S. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit
       Feedback", UAI 2009.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.kron(np.eye(2), np.ones((4, 4)))  # two groups of 4 users x 4 items
    >>> X[:, [3, 7]] = 0                         # items 3 and 7 are cold
    >>> features = np.repeat(np.eye(2), 4, axis=0)  # the item's group, one-hot
    >>> model = VBPR(factors=4, content_factors=2, iterations=30, batch_size=8,
    ...              learning_rate=0.05, device="cpu", random_state=0, verbose=False)
    >>> items, _ = model.fit(X, item_features=features).recommend([0, 4], k=1)
    >>> items.tolist()  # each group's cold item, from its content alone
    [[3], [7]]
    """

    _supports_partial_fit: ClassVar[bool] = True
    _uses_item_features: ClassVar[bool] = True
    _test_params: ClassVar[dict[str, Any]] = {
        "factors": 8,
        "content_factors": 4,
        "learning_rate": 0.02,
        "iterations": 20,
        "batch_size": 128,
        "device": "cpu",
    }
    _test_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "gated": {"fusion": "gated", "modality_dropout": 0.1},
        "attention": {"fusion": "attention", "modality_dropout": 0.1},
    }

    def __init__(
        self,
        factors: int = 64,
        content_factors: int = 32,
        learning_rate: float = 0.005,
        regularization: float = 0.05,
        content_regularization: float = 0.03,
        iterations: int = 20,
        batch_size: int = 1024,
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
        self.factors = factors
        self.content_factors = content_factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.content_regularization = content_regularization
        self.iterations = iterations
        self.batch_size = batch_size
        self.negative_sampling = negative_sampling
        self.popularity_alpha = popularity_alpha
        self.optimizer = optimizer
        self.standardize = standardize
        self.cold_item_bias = cold_item_bias
        self.fusion = fusion
        self.modality_dropout = modality_dropout
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> Any:
        for name in ("factors", "content_factors", "iterations", "batch_size"):
            check_positive_int(getattr(self, name), name)
        for name, positive in (
            ("learning_rate", True),
            ("regularization", False),
            ("content_regularization", False),
            ("popularity_alpha", False),
        ):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not ok or not np.isfinite(value) or value < 0 or (positive and value == 0):
                need = "a positive" if positive else "a non-negative"
                raise ConfigurationError(f"{name} must be {need} finite number, got {value!r}")
        for name, allowed in (
            ("negative_sampling", ("uniform", "popularity")),
            ("optimizer", ("adam", "sgd")),
            ("standardize", _STANDARDIZE),
            ("cold_item_bias", _COLD_BIAS),
            ("fusion", _FUSION),
        ):
            if getattr(self, name) not in allowed:
                raise ConfigurationError(
                    f"{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        p = self.modality_dropout
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ConfigurationError(f"modality_dropout must be a number in [0, 1), got {p!r}")
        return resolve_device(self.device)

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        import torch

        device = self._validate()
        X = data.X
        n_users, n_items = X.shape
        feats, mean, scale = _standardize(data.item_features, n_items, self.standardize)
        dims, presence = _modality_layout(data.item_features, n_items)
        d = feats.shape[1]
        f, c = int(self.factors), int(self.content_factors) if d else 0
        init = torch.Generator().manual_seed(torch_seed(data.rng))
        gen = torch.Generator(device=device).manual_seed(torch_seed(data.rng))
        cold = np.flatnonzero(np.diff(X.tocsc().indptr) == 0)
        item_factors = torch.randn(n_items, f, generator=init) * (0.1 / np.sqrt(f))
        item_factors[torch.from_numpy(cold)] = 0.0
        params = {
            "user_factors": torch.randn(n_users, f, generator=init) * (0.1 / np.sqrt(f)),
            "item_factors": item_factors,
            "item_bias": torch.zeros(n_items),
            "user_content": torch.randn(n_users, c, generator=init) * (0.1 / np.sqrt(max(c, 1))),
            "projection": torch.randn(c, d, generator=init) / np.sqrt(max(d, 1)),
            "feature_bias": torch.zeros(d),
        }
        fusion = None
        if self.fusion != "concat" and d:
            fusion = self._fusion_module(dims)
            fusion.reset_parameters(generator=init)
            params["projection"] = torch.zeros(0, d)
            params["feature_bias"] = torch.zeros(c)
        module = self._train(params, feats, X, X, None, gen, device, fusion, dims, presence)
        state = self._state(module, X)
        state.update(feature_mean_=mean, feature_scale_=scale)
        return state

    def _fusion_module(self, dims: dict[str, int]) -> Any:
        """A fresh (unfitted) fusion of modality blocks ``dims`` into ``content_factors`` dims."""
        from avrec.features.nn import AttentionFusion, GatedFusion

        klass = GatedFusion if self.fusion == "gated" else AttentionFusion
        return klass(
            list(dims.values()),
            int(self.content_factors),
            modality_dropout=float(self.modality_dropout),
        )

    def _partial_fit(self, data: FitData, X_full: sp.csr_matrix) -> dict[str, Any]:
        import torch

        device = self._validate()
        c = self.user_content_factors_.shape[1]
        if self.item_factors_.shape[1] != self.factors or (c and c != self.content_factors):
            raise ConfigurationError(
                "factors or content_factors was changed after fit "
                f"({self.item_factors_.shape[1]}, {c}); refit the model"
            )
        fitted_fusion = "concat" if self.fusion_parameters_.size == 0 else None
        if c and (fitted_fusion == "concat") != (self.fusion == "concat"):
            raise ConfigurationError(
                f"fusion was changed after fit (now {self.fusion!r}); refit the model"
            )
        gen = torch.Generator(device=device).manual_seed(torch_seed(data.rng))
        n_old, f = self.user_factors_.shape
        folded = self._fold_in(X_full[n_old:])
        params = {
            "user_factors": np.concatenate([self.user_factors_, folded[:, :f]]),
            "item_factors": self.item_factors_,
            "item_bias": self.item_bias_,
            "user_content": np.concatenate([self.user_content_factors_, folded[:, f:]]),
            "projection": self.projection_,
            "feature_bias": self.feature_bias_,
        }
        params = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in params.items()}
        fusion = None
        if self.fusion_parameters_.size:
            fusion = self._fusion_module(self.modality_dims_)
            if self.fusion_parameters_.size != sum(p.numel() for p in fusion.parameters()):
                raise ConfigurationError(
                    f"fusion={self.fusion!r} does not match the fitted fusion's parameters; "
                    "refit the model"
                )
            torch.nn.utils.vector_to_parameters(
                torch.from_numpy(np.array(self.fusion_parameters_)), fusion.parameters()
            )
        module = self._train(
            params,
            self.item_features_,
            data.X,
            X_full,
            self.train_matrix_,
            gen,
            device,
            fusion,
            self.modality_dims_,
            self.item_presence_,
        )
        return self._state(module, X_full)

    def _train(
        self,
        params: dict[str, Any],
        features: np.ndarray,
        X_new: sp.csr_matrix,
        X_full: sp.csr_matrix,
        X_replay: sp.csr_matrix | None,
        gen: Any,
        device: Any,
        fusion: Any,
        dims: dict[str, int],
        presence: np.ndarray,
    ) -> Any:
        """Build the module from ``params``, train it in place and return it."""
        import torch

        from avrec.recommenders.hybrid._vbpr_train import (
            TripleSampler,
            _VBPRModule,
            run_epochs,
            run_single_threaded,
        )

        module = _VBPRModule(
            **params,
            features=torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)),
            regularization=float(self.regularization),
            content_regularization=float(self.content_regularization),
            fusion=fusion,
            presence=torch.from_numpy(np.ascontiguousarray(presence, dtype=bool)),
            blocks=_blocks(dims),
            modality_dropout=float(self.modality_dropout),
        ).to(device)
        module.generator = gen
        replay = None if X_replay is None else _coo(X_replay, device)
        sampler = TripleSampler(
            *_coo(X_new, device),
            replay,
            X_full,
            self.negative_sampling,
            float(self.popularity_alpha),
            device,
        )
        lr = float(self.learning_rate)
        shared = [p for p in (module.projection, module.feature_bias) if p is not None]
        if module.fusion is not None:
            shared += list(module.fusion.parameters())
        rows = [module.user_factors, module.item_factors, module.item_bias]
        rows += [module.user_content] if module.user_content is not None else []
        if self.optimizer == "adam":
            groups = [{"params": rows + shared}]
            klass = torch.optim.Adam
        else:  # every triple adds to E's gradient: step on the batch mean, not the sum
            # the shared content parameters step on the mean over the global batch
            # (per-process batch x processes under torchrun)
            global_batch = int(self.batch_size) * get_world_size()
            groups = [{"params": rows}, {"params": shared, "lr": lr / global_batch}]
            klass = torch.optim.SGD
        # fused kernels: one pass over each table per step (faster than the loop on a CPU)
        optimizer = klass(groups, lr=lr, fused=True)

        def epochs() -> list[float]:
            return run_epochs(
                module,
                optimizer,
                sampler,
                iterations=int(self.iterations),
                batch_size=int(self.batch_size),
                gen=gen,
                verbose=bool(self.verbose),
                desc="VBPR",
            )

        history = run_single_threaded(epochs) if device.type == "cpu" else epochs()
        module.loss_history = history
        module.dims = dict(dims)
        return module

    def _state(self, module: Any, X: sp.csr_matrix) -> dict[str, Any]:
        import torch

        def numpy(t: Any, shape: tuple[int, ...]) -> np.ndarray:
            if t is None:
                return np.zeros(shape, dtype=np.float32)
            return t.detach().float().cpu().numpy().copy()

        n_users, n_items = X.shape
        feats = module.features.cpu().numpy().copy()
        U = numpy(module.user_factors, ())
        V = numpy(module.item_factors, ())
        bias = numpy(module.item_bias, ())
        theta = numpy(module.user_content, (n_users, 0))
        E = numpy(module.projection, (0, feats.shape[1]))
        beta = numpy(module.feature_bias, (feats.shape[1],))
        fusion_params = np.zeros(0, dtype=np.float32)
        if module.fusion is not None:
            module.eval()
            with torch.no_grad():
                content = module.fused().float().cpu().numpy()
            fusion_params = numpy(
                torch.nn.utils.parameters_to_vector(module.fusion.parameters()), ()
            )
        else:
            content = feats @ E.T
        cold = np.flatnonzero(np.diff(X.tocsc().indptr) == 0).astype(np.int64)
        warm = np.ones(n_items, dtype=bool)
        warm[cold] = False
        V[cold] = 0.0
        if cold.size:
            fill = {"mean": np.mean, "min": np.min}.get(self.cold_item_bias)
            bias[cold] = fill(bias[warm]) if fill is not None and warm.any() else 0.0
        content = np.ascontiguousarray(content, dtype=np.float32)
        user_side = np.concatenate([U, theta], axis=1)
        item_side = np.concatenate([V, content], axis=1)
        return {
            "user_factors_": U,
            "item_factors_": V,
            "item_bias_": bias,
            "user_content_factors_": theta,
            "projection_": E,
            "feature_bias_": beta,
            "item_features_": feats,
            "item_presence_": module.presence.cpu().numpy().copy(),
            "modality_dims_": _module_dims(module),
            "fusion_parameters_": fusion_params,
            "item_content_factors_": content,
            "item_content_bias_": ((content if module.fusion is not None else feats) @ beta).astype(
                np.float32
            ),
            "cold_items_": cold,
            "fold_in_map_": _fit_fold_in_map(X, user_side, item_side),
            "loss_history_": np.asarray(module.loss_history, dtype=np.float64),
        }

    # ------------------------------------------------------------------ scoring
    def _fold_in(self, hist: sp.csr_matrix) -> np.ndarray:
        """``[gamma_u, theta_u]`` of users known by their histories, shape (n, factors + c)."""
        lengths = np.maximum(np.diff(hist.indptr), 1).astype(np.float32)
        binary = sp.csr_matrix(
            (np.ones(hist.nnz, dtype=np.float32), hist.indices, hist.indptr), shape=hist.shape
        )
        item_side = np.concatenate([self.item_factors_, self.item_content_factors_], axis=1)
        mean = (binary @ item_side) / lengths[:, None]
        return np.asarray(mean @ self.fold_in_map_, dtype=np.float32)

    def _score(self, users: np.ndarray | None, X_users: sp.csr_matrix) -> np.ndarray:
        f = self.item_factors_.shape[1]
        if users is None:
            folded = self._fold_in(X_users)
            U, theta = folded[:, :f], folded[:, f:]
        else:
            U, theta = self.user_factors_[users], self.user_content_factors_[users]
        scores = np.matmul(U, self.item_factors_.T)
        if theta.shape[1]:
            scores += np.matmul(theta, self.item_content_factors_.T)
        scores += self.item_bias_ + self.item_content_bias_
        return scores


# ---------------------------------------------------------------------- helpers
def _standardize(
    item_features: Any, n_items: int, mode: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return standardised features ``(n_items, d)`` and their ``mean`` and ``scale`` ``(d,)``."""
    if item_features is None:
        empty = np.zeros(0, dtype=np.float32)
        return np.zeros((n_items, 0), dtype=np.float32), empty, empty
    if hasattr(item_features, "concat"):
        raw = item_features.concat().astype(np.float64)
        widths = list(item_features.dims.values())
    else:
        raw = np.asarray(item_features, dtype=np.float64)
        widths = [raw.shape[1]]
    dims, presence = _modality_layout(item_features, n_items)
    if not presence.all():  # statistics over the items that have each modality
        return _standardize_present(raw, dims, presence, mode)
    mean = raw.mean(axis=0) if mode is not None else np.zeros(raw.shape[1])
    centred = raw - mean
    scale = np.ones(raw.shape[1])
    if mode == "column":
        scale = centred.std(axis=0)
    elif mode == "modality":
        for start, width in zip(np.cumsum([0, *widths[:-1]]), widths, strict=True):
            block = slice(int(start), int(start + width))
            scale[block] = np.sqrt(np.mean(np.sum(centred[:, block] ** 2, axis=1)))
    scale = np.where(scale > 1e-12, scale, 1.0)
    feats = (centred / scale).astype(np.float32)
    return feats, mean.astype(np.float32), scale.astype(np.float32)


def _standardize_present(
    raw: np.ndarray, dims: dict[str, int], presence: np.ndarray, mode: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_standardize` with statistics over present rows; absent rows become 0."""
    mean, scale = np.zeros(raw.shape[1]), np.ones(raw.shape[1])
    feats = np.zeros_like(raw)
    for m, (start, stop) in enumerate(_blocks(dims)):
        rows = presence[:, m]
        block = raw[rows, start:stop]
        if not rows.any():
            continue
        if mode is not None:
            mean[start:stop] = block.mean(axis=0)
        centred = block - mean[start:stop]
        if mode == "column":
            scale[start:stop] = centred.std(axis=0)
        elif mode == "modality":
            scale[start:stop] = np.sqrt(np.mean(np.sum(centred**2, axis=1)))
        scale[start:stop] = np.where(scale[start:stop] > 1e-12, scale[start:stop], 1.0)
        feats[rows, start:stop] = centred / scale[start:stop]
    return feats.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32)


def _modality_layout(item_features: Any, n_items: int) -> tuple[dict[str, int], np.ndarray]:
    """``(name -> width, presence (n_items, n_modalities) bool)`` of what ``fit`` received."""
    if item_features is None:
        return {}, np.ones((n_items, 0), dtype=bool)
    if hasattr(item_features, "presence"):
        return dict(item_features.dims), item_features.presence()
    width = int(np.asarray(item_features).shape[1])
    return {"features": width}, np.ones((n_items, 1), dtype=bool)


def _module_dims(module: Any) -> dict[str, int]:
    """The modality widths the module was trained on (one block ``"features"`` by default)."""
    dims = getattr(module, "dims", None)
    if dims is not None:
        return dict(dims)
    width = sum(int(b - a) for a, b in module.blocks)
    return {"features": width} if width > 0 else {}


def _blocks(dims: dict[str, int]) -> list[tuple[int, int]]:
    """Column range ``(start, stop)`` of each modality, in order."""
    stops = np.cumsum(list(dims.values()), dtype=np.int64)
    starts = stops - np.asarray(list(dims.values()), dtype=np.int64)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]
