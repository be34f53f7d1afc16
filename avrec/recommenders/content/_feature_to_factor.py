"""Cold-start items for a factor model: learn a map from content features to item factors."""

from __future__ import annotations

import copy
import logging
import math
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import clone

from avrec.exceptions import ConfigurationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders.cf import ALS
from avrec.recommenders.content._modalities import (
    modality_presence,
    require_modalities,
    standardize_present,
)
from avrec.utils import torch_seed

__all__ = ["FeatureToFactor"]

logger = logging.getLogger(__name__)


class FeatureToFactor(Recommender):
    """A factor model whose cold items get factors predicted from their content (CB2CF).

    The collaborative model ``base`` (ALS by default, or BPR, or any
    recommender with ``user_factors_`` and ``item_factors_``) is fitted on the
    interactions. A regression from the (standardised, concatenated) item
    features to the learned item factors is then fitted on the *warm* items,
    those with training interactions, and predicts the factors of the *cold*
    items, which have none. A BPR-like item bias (``item_bias_``) is
    regressed as one more target column. Scores are the base model's,
    computed with the patched item factors, so cold items compete with warm
    ones on the same scale.

    Parameters
    ----------
    base : Recommender, optional
        Unfitted factor model; it is cloned, never modified. Default:
        ``ALS(factors=32, regularization=5.0, iterations=15)`` seeded from
        ``random_state`` (a stronger penalty than ALS's default keeps the
        factors of sparsely observed items small and smooth, which suits the
        mapper and small catalogues).
        Its hyperparameters are reachable as ``base__<name>`` through
        ``get_params``/``set_params``.
    mapper : {"ridge", "mlp"}, default="ridge"
        Closed-form ridge regression with an unpenalised intercept, or a
        one-hidden-layer ReLU network trained full-batch with Adam on the
        mean squared error.
    alpha : float, default=1.0
        L2 penalty, >= 0: ridge minimises
        ``||Z W + b - T||^2 + alpha ||W||^2`` over the warm items; the MLP
        minimises the same objective divided by the number of warm items,
        with the penalty on both weight matrices.
    hidden_size : int, default=64
        Hidden units of the MLP.
    epochs : int, default=300
        Full-batch Adam steps of the MLP.
    learning_rate : float, default=0.01
        Adam step size of the MLP.
    blend_warm : float, default=0.0
        In ``[0, 1]``: warm items get ``(1 - blend_warm) * learned +
        blend_warm * mapped`` factors (0 keeps the collaborative factors).
    fusion : {"concat", "gated", "attention"}, default="concat"
        How the MLP's hidden layer combines the modalities. ``"concat"``: one
        linear layer over the concatenated features (a fixed, equal-footing
        sum of per-modality projections). ``"gated"``/``"attention"``: a
        :class:`~avrec.features.nn.GatedFusion` or
        :class:`~avrec.features.nn.AttentionFusion` of the standardised
        modalities into ``hidden_size`` units, trained jointly with the output
        layer, so each item's modalities are weighted by what they say and
        which of them it has. Needs ``mapper="mlp"``.
    modality_dropout : float, default=0.0
        In ``[0, 1)``: with a learned ``fusion``, each epoch drops each
        modality of each warm item with this probability, never all of them
        (DropoutNet [3]_), so that cold items missing a modality are mapped
        well.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the default ALS and the MLP's initialisation (a given ``base``
        keeps its own ``random_state``).

    Attributes
    ----------
    base_ : Recommender
        The fitted clone of ``base`` (its own factors, unpatched).
    item_factors_ : ndarray of shape (n_items_, factors)
        Item factors used for scoring: learned for warm items (blended with
        ``blend_warm``), mapped from features for cold items.
    item_bias_ : ndarray of shape (n_items_,) or None
        Patched the same way when the base model has an item bias.
    mapped_item_factors_ : ndarray of shape (n_items_, n_targets), dtype float32
        The mapper's prediction for every item: the factors, then the bias
        when the base model has one.
    cold_items_ : ndarray of shape (n_cold,), dtype int64
        Columns without training interactions.
    feature_mean_, feature_scale_ : ndarray of shape (n_features,), dtype float32
        Standardisation of the concatenated features.
    mapper_coef_ : ndarray of shape (n_features or hidden_size, n_targets), dtype float32
        Ridge coefficients, or the MLP's output layer.
    mapper_intercept_ : ndarray of shape (n_targets,), dtype float32
    mapper_hidden_coef_ : ndarray of shape (n_features, hidden_size) or None
        The MLP's hidden layer (None for ridge).
    mapper_hidden_intercept_ : ndarray of shape (hidden_size,) or None
    fusion_parameters_ : ndarray of shape (n_fusion_params,), dtype float32
        The fusion module's parameters flattened in ``named_parameters``
        order (the MLP's hidden layer with a learned ``fusion``; empty with
        ``"concat"``).
    item_presence_ : ndarray of shape (n_items_, n_modalities), dtype bool
        Which items have which modality. A modality is standardised over the
        items that have it; the others get zeros (its mean) with
        ``"concat"`` and are left out of a learned fusion.
    modality_dims_ : dict of str to int
        Width of each modality, in order.
    n_users_, n_items_, train_matrix_, users_, items_
        See :class:`~avrec.recommenders.Recommender`.

    See Also
    --------
    ContentKNN : content-only recommender.
    HybridBlend : blend of several recommenders' normalised scores.

    Notes
    -----
    *Users known by their history* (``recommend(X=...)``) are folded in by
    the base model's own procedure (ALS: exact least squares; BPR: mapped
    mean of the history's item factors) against the *patched* item factors,
    so a history that contains cold items uses their mapped factors.

    A cold item in ALS has a zero learned factor (nothing pulls it away
    from 0), so without the mapper every cold item scores 0. Warm-item
    factors learned from many interactions are usually better than mapped
    ones; ``blend_warm > 0`` helps items with very few interactions.

    ``partial_fit`` is not supported: refit to learn from new interactions.

    References
    ----------
    .. [1] A. van den Oord, S. Dieleman, B. Schrauwen, "Deep content-based
       music recommendation", NeurIPS 2013.
    .. [2] O. Barkan, N. Koenigstein, E. Yogev, O. Katz, "CB2CF: A Neural
       Multiview Content-to-Collaborative Filtering Model for Completely
       Cold Item Recommendations", RecSys 2019.
    .. [3] M. Volkovs, G. Yu, T. Poutanen, "DropoutNet: Addressing Cold Start
       in Recommender Systems", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.recommenders import ALS
    >>> X = np.kron(np.eye(2), np.ones((3, 3)))  # two groups of 3 users x 3 items
    >>> X[:, [2, 5]] = 0  # the last item of each group is cold
    >>> F = np.repeat(np.eye(2), 3, axis=0) + 0.01 * np.arange(6)[:, None]
    >>> model = FeatureToFactor(base=ALS(factors=2, iterations=10, random_state=0, verbose=False),
    ...                         alpha=0.1).fit(X, item_features=F)
    >>> model.cold_items_.tolist()
    [2, 5]
    >>> items, _ = model.recommend([0, 3], k=1)
    >>> items.tolist()
    [[2], [5]]
    >>> model.get_params()["base__factors"]
    2
    """

    _uses_item_features: ClassVar[bool] = True
    _test_params: ClassVar[dict[str, Any]] = {}
    _test_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "gated": {
            "mapper": "mlp",
            "fusion": "gated",
            "modality_dropout": 0.1,
            "epochs": 40,
            "hidden_size": 16,
            "learning_rate": 0.03,
        },
        "attention": {
            "mapper": "mlp",
            "fusion": "attention",
            "epochs": 40,
            "hidden_size": 16,
            "learning_rate": 0.03,
        },
    }

    def __init__(
        self,
        base: Recommender | None = None,
        mapper: Literal["ridge", "mlp"] = "ridge",
        alpha: float = 1.0,
        hidden_size: int = 64,
        epochs: int = 300,
        learning_rate: float = 0.01,
        blend_warm: float = 0.0,
        fusion: Literal["concat", "gated", "attention"] = "concat",
        modality_dropout: float = 0.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.base = base
        self.mapper = mapper
        self.alpha = alpha
        self.hidden_size = hidden_size
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.blend_warm = blend_warm
        self.fusion = fusion
        self.modality_dropout = modality_dropout
        self.random_state = random_state

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> None:
        if self.base is not None and not isinstance(self.base, Recommender):
            raise ConfigurationError(
                "base must be None or an avrec factor model such as ALS() or BPR(), "
                f"got {type(self.base).__name__}"
            )
        if self.mapper not in ("ridge", "mlp"):
            raise ConfigurationError(f"mapper must be 'ridge' or 'mlp', got {self.mapper!r}")
        if not (_is_real(self.alpha) and self.alpha >= 0):
            raise ConfigurationError(f"alpha must be a finite number >= 0, got {self.alpha!r}")
        for name in ("hidden_size", "epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
        if not (_is_real(self.learning_rate) and self.learning_rate > 0):
            raise ConfigurationError(
                f"learning_rate must be a positive number, got {self.learning_rate!r}"
            )
        if not (_is_real(self.blend_warm) and 0 <= self.blend_warm <= 1):
            raise ConfigurationError(f"blend_warm must be in [0, 1], got {self.blend_warm!r}")
        if self.fusion not in ("concat", "gated", "attention"):
            raise ConfigurationError(
                f"fusion must be 'concat', 'gated' or 'attention', got {self.fusion!r}"
            )
        if self.fusion != "concat" and self.mapper != "mlp":
            raise ConfigurationError(
                f"fusion={self.fusion!r} is learned with the MLP: set mapper='mlp' "
                f"(got mapper={self.mapper!r})"
            )
        if not (_is_real(self.modality_dropout) and 0 <= self.modality_dropout < 1):
            raise ConfigurationError(
                f"modality_dropout must be in [0, 1), got {self.modality_dropout!r}"
            )

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        self._validate()
        modalities = require_modalities(data.item_features, type(self).__name__)
        presence = modality_presence(data.item_features, len(modalities))
        parts = [standardize_present(F, presence[:, m]) for m, (_, F) in enumerate(modalities)]
        Z = np.hstack([z for z, _, _ in parts])
        mean = np.concatenate([mu for _, mu, _ in parts])
        scale = np.concatenate([sd for _, _, sd in parts])
        dims = {name: int(F.shape[1]) for name, F in modalities}
        if self.base is None:
            base = ALS(
                factors=32,
                regularization=5.0,
                iterations=15,
                random_state=int(data.rng.integers(2**31)),
                verbose=False,
            )
        else:
            base = clone(self.base)
        fit_kwargs = {}
        if getattr(base, "_uses_item_features", False):
            fit_kwargs["item_features"] = data.item_features
        base.fit(data.X if data.interactions is None else data.interactions, **fit_kwargs)
        missing = [a for a in ("user_factors_", "item_factors_") if not hasattr(base, a)]
        if missing:
            raise ConfigurationError(
                f"base must be a factor model with user_factors_ and item_factors_ (e.g. ALS, "
                f"BPR); the fitted {type(base).__name__} has no {', '.join(missing)}"
            )
        learned = np.asarray(base.item_factors_)
        bias = getattr(base, "item_bias_", None)
        targets = learned if bias is None else np.column_stack([learned, bias])
        warm = np.bincount(data.X.indices, minlength=data.X.shape[1]) > 0
        fusion_params = np.zeros(0, dtype=np.float32)
        if self.fusion == "concat":
            layers = self._fit_mapper(Z[warm], targets[warm].astype(np.float64), data.rng)
            mapped = _forward(Z, *layers).astype(np.float32)
        else:
            fusion_params, layers, mapped = _fit_fused_mlp(
                self, Z, dims, presence, warm, targets.astype(np.float64), data.rng
            )
        n_factors = learned.shape[1]
        b = float(self.blend_warm)
        item_factors = learned.copy()
        item_factors[~warm] = mapped[~warm, :n_factors]
        if b > 0:
            item_factors[warm] = (1 - b) * learned[warm] + b * mapped[warm, :n_factors]
        item_bias = None
        if bias is not None:
            item_bias = np.array(bias, copy=True)
            item_bias[~warm] = mapped[~warm, n_factors]
            if b > 0:
                item_bias[warm] = (1 - b) * bias[warm] + b * mapped[warm, n_factors]
        hidden_coef, hidden_intercept, coef, intercept = layers
        logger.debug("FeatureToFactor: %d cold of %d items", int((~warm).sum()), warm.size)
        return {
            "base_": base,
            "item_factors_": item_factors,
            "item_bias_": item_bias,
            "mapped_item_factors_": mapped,
            "cold_items_": np.flatnonzero(~warm).astype(np.int64),
            "feature_mean_": mean,
            "feature_scale_": scale,
            "mapper_coef_": coef.astype(np.float32),
            "mapper_intercept_": intercept.astype(np.float32),
            "mapper_hidden_coef_": None if hidden_coef is None else hidden_coef.astype(np.float32),
            "mapper_hidden_intercept_": (
                None if hidden_intercept is None else hidden_intercept.astype(np.float32)
            ),
            "fusion_parameters_": fusion_params,
            "item_presence_": presence,
            "modality_dims_": dims,
        }

    def _fit_mapper(
        self, Z: np.ndarray, T: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, np.ndarray]:
        """Return ``(hidden_coef, hidden_intercept, coef, intercept)`` (hidden None for ridge)."""
        if self.mapper == "ridge":
            coef, intercept = ridge_regression(Z, T, float(self.alpha))
            return None, None, coef, intercept
        return _fit_mlp(self, Z, T, rng)

    # ------------------------------------------------------------------ scoring
    def _score(self, users: np.ndarray | None, X_users: sp.csr_matrix) -> np.ndarray:
        # the base model's own scoring (and fold-in of X= histories) with patched item factors
        patched = copy.copy(self.base_)
        patched.item_factors_ = self.item_factors_
        if self.item_bias_ is not None:
            patched.item_bias_ = self.item_bias_
        return patched._score_block(users, X_users)


def ridge_regression(Z: np.ndarray, T: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression with an unpenalised intercept.

    Minimises ``||Z W + 1 b^T - T||_F^2 + alpha ||W||_F^2``; the solution is
    ``W = (Zc^T Zc + alpha I)^-1 Zc^T Tc`` on the centred ``Zc``, ``Tc`` and
    ``b = mean(T) - mean(Z) W`` (a least-squares solve when ``alpha`` is 0).

    Parameters
    ----------
    Z : ndarray of shape (n, d)
    T : ndarray of shape (n, t)
    alpha : float
        >= 0.

    Returns
    -------
    coef : ndarray of shape (d, t), dtype float64
    intercept : ndarray of shape (t,), dtype float64

    Examples
    --------
    >>> Z = np.array([[0.0], [1.0], [2.0]])
    >>> coef, intercept = ridge_regression(Z, 2 * Z + 1, 0.0)
    >>> np.round(coef, 6).tolist(), np.round(intercept, 6).tolist()
    ([[2.0]], [1.0])
    """
    Z = np.asarray(Z, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    z_mean, t_mean = Z.mean(axis=0), T.mean(axis=0)
    Zc, Tc = Z - z_mean, T - t_mean
    if alpha > 0:
        coef = np.linalg.solve(Zc.T @ Zc + alpha * np.eye(Z.shape[1]), Zc.T @ Tc)
    else:
        coef = np.linalg.lstsq(Zc, Tc, rcond=None)[0]
    return coef, t_mean - z_mean @ coef


def _fit_mlp(
    model: FeatureToFactor, Z: np.ndarray, T: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import torch

    gen = torch.Generator().manual_seed(torch_seed(rng))
    d, h, t = Z.shape[1], int(model.hidden_size), T.shape[1]

    def init(fan_in: int, shape: tuple[int, ...]) -> Any:
        bound = 1.0 / math.sqrt(fan_in)
        values = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        return values.requires_grad_(True)

    W1, b1, W2 = init(d, (d, h)), init(d, (h,)), init(h, (h, t))
    b2 = torch.tensor(T.mean(axis=0), dtype=torch.float64, requires_grad=True)
    z, target = torch.from_numpy(Z.astype(np.float64)), torch.from_numpy(T)
    penalty = float(model.alpha) / Z.shape[0]
    opt = torch.optim.Adam([W1, b1, W2, b2], lr=float(model.learning_rate))
    for _ in range(int(model.epochs)):
        opt.zero_grad()
        pred = torch.relu(z @ W1 + b1) @ W2 + b2
        loss = ((pred - target) ** 2).sum(dim=1).mean()
        loss = loss + penalty * ((W1 * W1).sum() + (W2 * W2).sum())
        loss.backward()
        opt.step()
    logger.debug("FeatureToFactor MLP: final loss %.6g", float(loss.detach()))
    return tuple(p.detach().numpy().copy() for p in (W1, b1, W2, b2))  # type: ignore[return-value]


def _fusion_module(model: FeatureToFactor, dims: dict[str, int]) -> Any:
    from avrec.features.nn import AttentionFusion, GatedFusion

    klass = GatedFusion if model.fusion == "gated" else AttentionFusion
    return klass(
        list(dims.values()),
        int(model.hidden_size),
        modality_dropout=float(model.modality_dropout),
    ).double()


def _fit_fused_mlp(
    model: FeatureToFactor,
    Z: np.ndarray,
    dims: dict[str, int],
    presence: np.ndarray,
    warm: np.ndarray,
    T: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, tuple[None, None, np.ndarray, np.ndarray], np.ndarray]:
    """Train fusion -> ReLU -> linear on the warm items; return its parameters and predictions."""
    import torch

    gen = torch.Generator().manual_seed(torch_seed(rng))
    fusion = _fusion_module(model, dims)
    fusion.reset_parameters(generator=gen)
    h, t = int(model.hidden_size), T.shape[1]
    bound = 1.0 / math.sqrt(h)
    W2 = ((torch.rand((h, t), generator=gen, dtype=torch.float64) * 2 - 1) * bound).requires_grad_()
    b2 = torch.tensor(T[warm].mean(axis=0), dtype=torch.float64, requires_grad=True)
    stops = np.cumsum(list(dims.values()))
    z = torch.from_numpy(Z.astype(np.float64))
    blocks = [z[:, a:b] for a, b in zip(stops - np.array(list(dims.values())), stops, strict=True)]
    present = torch.from_numpy(np.asarray(presence, dtype=bool))
    rows = torch.from_numpy(np.flatnonzero(warm))
    target = torch.from_numpy(T[warm])
    penalty = float(model.alpha) / max(int(warm.sum()), 1)
    weights = [p for p in fusion.parameters() if p.ndim >= 2] + [W2]
    opt = torch.optim.Adam([*fusion.parameters(), W2, b2], lr=float(model.learning_rate))
    warm_blocks = [b.index_select(0, rows) for b in blocks]
    fusion.train()
    for _ in range(int(model.epochs)):
        opt.zero_grad()
        hidden = torch.relu(fusion(warm_blocks, present.index_select(0, rows), gen))
        loss = ((hidden @ W2 + b2 - target) ** 2).sum(dim=1).mean()
        loss = loss + penalty * sum((w * w).sum() for w in weights)
        loss.backward()
        opt.step()
    logger.debug("FeatureToFactor fused MLP: final loss %.6g", float(loss.detach()))
    fusion.eval()
    with torch.no_grad():
        mapped = (torch.relu(fusion(blocks, present)) @ W2 + b2).numpy().astype(np.float32)
        vector = torch.nn.utils.parameters_to_vector(fusion.parameters()).numpy()
    coef, intercept = W2.detach().numpy().copy(), b2.detach().numpy().copy()
    return vector.astype(np.float32), (None, None, coef, intercept), mapped


def _forward(
    Z: np.ndarray,
    hidden_coef: np.ndarray | None,
    hidden_intercept: np.ndarray | None,
    coef: np.ndarray,
    intercept: np.ndarray,
) -> np.ndarray:
    H = np.asarray(Z, dtype=np.float64)
    if hidden_coef is not None:
        H = np.maximum(H @ hidden_coef + hidden_intercept, 0.0)
    return H @ coef + intercept


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
