"""DPVBPR: VBPR whose item-side parameters are trained with user-level DP-SGD."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.privacy._contribution import bound_contributions
from avrec.privacy._dpbpr import DPBPR
from avrec.privacy._dpsgd import (
    DenseAdam,
    check_real,
    clipped_gradient_sum,
    fold_in_users,
    noisy_gradient,
    padded_rows,
    sample_distinct_negatives,
)
from avrec.privacy._dpvbpr_grads import clipped_content_gradient_sum
from avrec.recommenders._input import FitData
from avrec.utils import check_positive_int, progress, torch_seed

__all__ = ["DPVBPR"]

_STANDARDIZE = ("column", "modality", None)


class DPVBPR(DPBPR):
    """VBPR whose item-side parameters (item factors and biases, content projection) are DP.

    Scores ``x_ui = b_i + gamma_u . gamma_i + theta_u . (E f_i) + beta' . f_i``
    as :class:`~avrec.recommenders.VBPR`. The item content features ``f_i``
    are public (they come from the media, not from users); the interactions
    are private. Everything released (``gamma_i``, ``b_i``, ``E``,
    ``beta'``) is trained with user-level DP-SGD, exactly as the item table of
    :class:`DPBPR`:

    1. each user keeps at most ``max_items_per_user`` interactions;
    2. every step samples users independently with probability
       ``q = sample_rate`` (Poisson sampling);
    3. each sampled user's loss is the sum of ``-ln sigma(x_ui - x_uj)`` over
       their positives, each paired with a distinct negative drawn uniformly
       outside their history; its gradient with respect to all released
       parameters together is computed per user with
       ``torch.func.vmap(grad(...))`` and clipped to L2 norm
       ``C = max_grad_norm``;
    4. the clipped gradients are summed, Gaussian noise ``N(0, sigma^2 C^2)``
       is added to every coordinate of every released parameter, the sum is
       divided by ``q * n_users``, and Adam takes a step.

    Without ``item_features`` the content terms are absent and the model is
    :class:`DPBPR` (same seed, same numbers).

    Parameters
    ----------
    factors : int, default=32
        Dimension of the collaborative factors ``gamma``.
    content_factors : int, default=8
        Dimension of the content space (``theta_u`` and the rows of ``E``).
    epsilon : float or None, default=4.0
        Target privacy budget; ``float("inf")`` trains without noise. Exactly
        one of ``epsilon`` and ``noise_multiplier`` is given.
    delta : float, default=1e-6
        Target ``delta``; should be well below ``1 / n_users``.
    noise_multiplier : float, optional
        ``sigma``; the noise standard deviation is ``sigma * max_grad_norm``.
    max_grad_norm : float, default=1.0
        Per-user clipping bound ``C`` of the gradient of all released
        parameters together.
    sample_rate : float, default=0.1
        Poisson sampling rate ``q`` of users per step, in (0, 1].
    epochs : float, default=40
        Expected passes over the users; ``steps = ceil(epochs / sample_rate)``.
    max_items_per_user : int, default=50
        Triples per sampled user.
    learning_rate : float, default=0.005
        Adam step size of the released parameters.
    user_learning_rate : float, default=0.2
        SGD step size of the local update of a sampled user's ``gamma_u`` and
        ``theta_u``, and of the fold-in of users known by their history.
    regularization : float, default=0.0
        L2 weight decay of ``gamma_i``, ``b_i``, ``gamma_u`` and ``theta_u``.
    content_regularization : float, default=0.1
        L2 weight decay of ``E`` and ``beta'``.
    standardize : {"column", "modality"} or None, default="column"
        Scaling of the (public) features before training, as in
        :class:`~avrec.recommenders.VBPR`.
    content_clip_share : float in (0, 1) or None, default=0.1
        Share ``s`` of the squared clipping bound given to the shared content
        parameters: each user's gradient of the item table is clipped to
        ``C sqrt(1 - s)`` and that of ``(E, beta')`` to ``C sqrt(s)``
        (per-layer clipping, McMahan et al. 2018), so the whole stays within
        ``C``. None clips everything as one vector to ``C``.
    fold_in_steps : int, default=10
        Gradient steps of the fold-in of users known by their history.
    public_n_users : int or None, default=None
        Public bound or estimate of the user count for the normaliser of the
        noisy sum; None treats the training set's count as public (as :class:`DPBPR`).
    device : None, str or torch.device, default=None
        ``"cpu"`` or ``"cuda"``; None picks CUDA when available.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the initialisation, contribution bounding, sampling, negatives
        and noise.
    verbose : bool, default=True
        Show a progress bar over the steps.

    Attributes
    ----------
    item_factors_ : ndarray of shape (n_items_, factors), dtype float32
        DP ``gamma_i``.
    item_bias_ : ndarray of shape (n_items_,), dtype float32
        DP ``b_i``.
    projection_ : ndarray of shape (c, d), dtype float32
        DP ``E`` (``c = content_factors``; ``c = d = 0`` without features).
    feature_bias_ : ndarray of shape (d,), dtype float32
        DP ``beta'``.
    user_factors_ : ndarray of shape (n_users_, factors), dtype float32
        Each training user's ``gamma_u`` (local, not part of the DP release).
    user_content_factors_ : ndarray of shape (n_users_, c), dtype float32
        Each training user's ``theta_u`` (local, not part of the DP release).
    item_features_ : ndarray of shape (n_items_, d), dtype float32
        Standardised (public) features ``f_i``.
    feature_mean_, feature_scale_ : ndarray of shape (d,), dtype float32
        ``f_i = (raw_i - feature_mean_) / feature_scale_``.
    item_content_factors_ : ndarray of shape (n_items_, c), dtype float32
        ``E f_i`` (post-processing of the release).
    item_content_bias_ : ndarray of shape (n_items_,), dtype float32
        ``beta' . f_i``.
    noise_multiplier_ : float
        ``sigma`` used (0 for ``epsilon=inf``).
    sample_rate_, steps_ : float, int
        ``q`` and the number of noisy steps.
    epsilon_, delta_ : float
        Privacy guarantee of the released parameters.
    epsilon_spent_, delta_spent_ : float
        The same numbers, named as in the other DP models.
    loss_history_ : ndarray of shape (steps_,), dtype float64
        Mean per-triple loss of each step's sampled users (diagnostic, not DP).

    See Also
    --------
    DPBPR : the same training without content.
    avrec.recommenders.VBPR : the non-private model.

    Notes
    -----
    *What is released.* ``item_factors_``, ``item_bias_``, ``projection_`` and
    ``feature_bias_`` are ``(epsilon_, delta_)``-DP with respect to adding or
    removing one user with all their interactions. The features are public
    inputs, so ``item_content_factors_`` and ``item_content_bias_`` are
    post-processing. The privacy cost is the RDP bound of the
    Poisson-subsampled Gaussian mechanism over ``steps_`` steps
    (:func:`~avrec.privacy.dpsgd_epsilon`); the accountant given to ``fit`` is
    charged before any noise is drawn.

    *Sensitivity.* Positives are distinct, negatives are distinct items
    outside the history and padding triples have zero gradient, so a user's
    gradient rows belong to distinct items; with the gradients of the shared
    ``E`` and ``beta'`` they form the user's whole contribution to the summed
    gradient, whose norm is clipped to ``C`` (in two parts of norm at most
    ``C sqrt(1 - s)`` and ``C sqrt(s)`` with ``content_clip_share=s``).

    *No special case for items without interactions.* Which items have
    interactions is private, so unlike VBPR no item is excluded from the
    negatives or has its factors zeroed on that basis: every item gets noisy
    updates. Items nobody chose are ranked mostly by their content term,
    learned through the shared ``E`` and ``beta'`` from the items that were
    chosen; that is what makes cold start work under DP.

    *User-side parameters.* ``gamma_u`` and ``theta_u`` are updated, when the
    user is sampled, from the user's own triples and the current (DP)
    released parameters; users known by their history (``recommend(X=...)``)
    are folded in from their own history alone (``fold_in_steps`` gradient
    steps on their loss, every non-history item a negative). Each user's
    recommendations are thus jointly DP (the billboard lemma, as for
    :class:`DPBPR`); ``user_factors_`` and ``user_content_factors_`` should
    stay with their users. :meth:`save` writes only the released and public
    attributes (no user factors, training matrix, user ids, user count or
    ``loss_history_``); a loaded model folds users in from ``X=``.

    *Defaults* come from a sweep on synthetic ML-1M-shaped data at a quarter
    of its size (1,510 users x 926 items, 20 clusters; features: the item's
    cluster one-hot plus noise of std 0.5; ``benchmarks/bench_privacy.py``).
    The shared ``E`` and ``beta'`` collect one gradient from every sampled
    user, so without a separate clip (``content_clip_share=None``) they took
    most of each user's norm and warm accuracy fell far below DPBPR's. With
    ``s = 0.1``, ``content_factors=8`` and ``content_regularization=0.1``
    DPVBPR was on a par with DPBPR on warm items in that sweep and adds
    cold-start ranking from content, which DPBPR lacks (figures and commands:
    ``benchmarks/RESULTS.md``).

    The per-user gradient of ``E`` has ``content_factors x d`` entries; users
    are processed in chunks so that at most ``2**24`` of them are held at once.

    ``partial_fit`` is not supported: it would spend more budget; refit.

    References
    ----------
    .. [1] R. He, J. McAuley, "VBPR: Visual Bayesian Personalized Ranking from
       Implicit Feedback", AAAI 2016.
    .. [2] M. Abadi et al., "Deep Learning with Differential Privacy", CCS 2016.
    .. [3] H. B. McMahan, D. Ramage, K. Talwar, L. Zhang, "Learning
       Differentially Private Recurrent Language Models", ICLR 2018.
    .. [4] I. Mironov, K. Talwar, L. Zhang, "Renyi Differential Privacy of the
       Sampled Gaussian Mechanism", 2019.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.kron(np.eye(2), np.ones((20, 6)))  # two groups of 20 users x 6 items
    >>> X[:, [5, 11]] = 0                          # items 5 and 11: nobody chose them
    >>> features = np.repeat(np.eye(2), 6, axis=0)  # public content: the item's group
    >>> model = DPVBPR(factors=4, content_factors=2, epsilon=None, noise_multiplier=2.0,
    ...                sample_rate=0.5, epochs=20, learning_rate=0.05, device="cpu",
    ...                random_state=0, verbose=False).fit(X, item_features=features)
    >>> items, _ = model.recommend([0, 20], k=1, items=[5, 11])
    >>> items.tolist()  # each group's unchosen item, from its content
    [[5], [11]]
    >>> round(model.epsilon_, 1)  # 40 users are too few for a small epsilon
    10.0
    """

    _uses_item_features: ClassVar[bool] = True
    _released_attributes: ClassVar[tuple[str, ...]] = (
        *DPBPR._released_attributes,
        "projection_",
        "feature_bias_",
        "item_features_",
        "feature_mean_",
        "feature_scale_",
        "item_content_factors_",
        "item_content_bias_",
    )
    _test_params: ClassVar[dict[str, Any]] = {
        "factors": 8,
        "content_factors": 4,
        "epsilon": None,
        "noise_multiplier": 0.2,
        "sample_rate": 0.25,
        "epochs": 30,
        "max_items_per_user": 20,
        "learning_rate": 0.05,
        "device": "cpu",
    }

    def __init__(
        self,
        factors: int = 32,
        content_factors: int = 8,
        epsilon: float | None = 4.0,
        delta: float = 1e-6,
        noise_multiplier: float | None = None,
        max_grad_norm: float = 1.0,
        sample_rate: float = 0.1,
        epochs: float = 40,
        max_items_per_user: int = 50,
        learning_rate: float = 0.005,
        user_learning_rate: float = 0.2,
        regularization: float = 0.0,
        content_regularization: float = 0.1,
        standardize: Literal["column", "modality"] | None = "column",
        content_clip_share: float | None = 0.1,
        fold_in_steps: int = 10,
        public_n_users: int | None = None,
        device: Any = None,
        random_state: int | np.random.Generator | None = None,
        verbose: bool = True,
    ) -> None:
        super().__init__(
            factors=factors,
            epsilon=epsilon,
            delta=delta,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            sample_rate=sample_rate,
            epochs=epochs,
            max_items_per_user=max_items_per_user,
            learning_rate=learning_rate,
            user_learning_rate=user_learning_rate,
            regularization=regularization,
            fold_in_steps=fold_in_steps,
            public_n_users=public_n_users,
            device=device,
            random_state=random_state,
            verbose=verbose,
        )
        self.content_factors = content_factors
        self.content_regularization = content_regularization
        self.standardize = standardize
        self.content_clip_share = content_clip_share

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> Any:
        device = super()._validate()
        check_positive_int(self.content_factors, "content_factors")
        check_real(self.content_regularization, "content_regularization", allow_zero=True)
        if self.standardize not in _STANDARDIZE:
            raise ConfigurationError(
                f"standardize must be one of {_STANDARDIZE}, got {self.standardize!r}"
            )
        share = self.content_clip_share
        if share is not None:
            check_real(share, "content_clip_share", allow_zero=False)
            if not share < 1:
                raise ConfigurationError(
                    f"content_clip_share must be None or in (0, 1), got {share!r}"
                )
        return device

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        import torch

        from avrec.recommenders.hybrid._vbpr import _standardize

        device = self._validate()
        sigma, steps, eps = self._calibrate()
        X = data.X
        n_users, n_items = X.shape
        feats, mean, scale = _standardize(data.item_features, n_items, self.standardize)
        d = feats.shape[1]
        f, c = int(self.factors), (int(self.content_factors) if d else 0)
        m = min(int(self.max_items_per_user), n_items)
        bounded = bound_contributions(X, m, random_state=data.rng)
        gen = torch.Generator(device=device).manual_seed(torch_seed(data.rng))
        init = 0.1 / math.sqrt(f)
        # the same draws, in the same order, as DPBPR; the content parameters come after
        table = torch.cat(
            [
                torch.randn(n_items, f, generator=gen, device=device) * init,
                torch.zeros(n_items, 1, device=device),
            ],
            dim=1,
        )
        U = torch.randn(n_users, f, generator=gen, device=device) * init
        content = None
        if d:
            content = {
                "theta": torch.randn(n_users, c, generator=gen, device=device) * (0.1 / c**0.5),
                "E": torch.randn(c, d, generator=gen, device=device) * (0.1 / math.sqrt(d)),
                "beta": torch.zeros(d, device=device),
                "features": torch.from_numpy(feats).to(device),
            }
        positives, pos_mask = padded_rows(bounded, m, device)
        context = self._release_context(X, sigma, steps)
        if d:  # without features this is DPBPR's release, and draws DPBPR's noise
            extra = ("content_factors", "content_regularization", "standardize")
            content_params = [(name, getattr(self, name)) for name in extra]
            context += (content_params, self.content_clip_share, feats)
        noise_rng = self._release_generator(data.rng, *context)
        self._spend_gaussian(sigma, float(self.sample_rate), steps)
        history = self._train_content(
            table, U, content, X, positives, pos_mask, sigma, steps, gen, noise_rng
        )
        theta = content["theta"] if content else torch.zeros(n_users, 0)
        E = content["E"] if content else torch.zeros(0, 0)
        beta = content["beta"] if content else torch.zeros(0)
        E_np, beta_np = E.cpu().numpy().copy(), beta.cpu().numpy().copy()
        delta = float(self.delta) if sigma > 0 else 0.0
        return {
            "item_factors_": table[:, :f].cpu().numpy().copy(),
            "item_bias_": table[:, f].cpu().numpy().copy(),
            "projection_": E_np,
            "feature_bias_": beta_np,
            "user_factors_": U.cpu().numpy().copy(),
            "user_content_factors_": theta.cpu().numpy().copy(),
            "item_features_": feats,
            "feature_mean_": mean,
            "feature_scale_": scale,
            "item_content_factors_": np.ascontiguousarray(feats @ E_np.T, dtype=np.float32),
            "item_content_bias_": (feats @ beta_np).astype(np.float32),
            "noise_multiplier_": sigma,
            "sample_rate_": float(self.sample_rate),
            "steps_": steps,
            "epsilon_": eps,
            "delta_": delta,
            "epsilon_spent_": eps,
            "delta_spent_": delta,
            "loss_history_": np.asarray(history, dtype=np.float64),
        }

    def _spend_gaussian(self, sigma: float, q: float, steps: int) -> None:
        accountant = self._current_accountant()
        if accountant is None:
            return
        name = type(self).__name__
        if sigma == 0:
            accountant.spend(math.inf, 0.0, mechanism=f"{name} (no noise)", note=f"{name}.fit")
            return
        accountant.spend_gaussian(
            sigma,
            sample_rate=q,
            steps=steps,
            delta=float(self.delta),
            mechanism=f"DP-SGD ({name})",
            note=f"{name}.fit: {steps} steps, q={q:g}",
        )

    def _train_content(
        self,
        table: Any,
        U: Any,
        content: dict[str, Any] | None,
        X: sp.csr_matrix,
        positives: Any,
        pos_mask: Any,
        sigma: float,
        steps: int,
        gen: Any,
        noise_rng: np.random.Generator,
    ) -> list[float]:
        import torch

        device = table.device
        n_users = X.shape[0]
        q, C = float(self.sample_rate), float(self.max_grad_norm)
        reg, creg = float(self.regularization), float(self.content_regularization)
        lr_user = float(self.user_learning_rate)
        T = positives.shape[1]
        adam = DenseAdam(table, float(self.learning_rate))
        if content is not None:
            adam_E = DenseAdam(content["E"], float(self.learning_rate))
            adam_beta = DenseAdam(content["beta"], float(self.learning_rate))
        expected = self._normaliser(n_users)
        history = []
        for _ in progress(range(steps), verbose=self.verbose, desc=type(self).__name__):
            sampled = torch.from_numpy(noise_rng.random(n_users) < q).to(device)
            users = torch.nonzero(sampled).squeeze(1)
            summed = torch.zeros_like(table)
            sum_E = sum_beta = None
            loss = float("nan")
            if users.numel():
                hist = torch.from_numpy(X[users.cpu().numpy()].toarray() > 0).to(device)
                negatives, neg_ok = sample_distinct_negatives(hist, T, gen)
                pos = positives.index_select(0, users)
                mask = (pos_mask.index_select(0, users) & neg_ok).to(table.dtype)
                u_rows = U.index_select(0, users)
                if content is None:
                    summed, g_user, loss = clipped_gradient_sum(
                        table, u_rows, pos, negatives, mask, C
                    )
                else:
                    theta = content["theta"].index_select(0, users)
                    summed, sum_E, sum_beta, g_user, g_theta, loss = clipped_content_gradient_sum(
                        table,
                        content["E"],
                        content["beta"],
                        content["features"],
                        u_rows,
                        theta,
                        pos,
                        negatives,
                        mask,
                        C,
                        self.content_clip_share,
                    )
                    content["theta"].index_add_(0, users, g_theta + reg * theta, alpha=-lr_user)
                # the user's own factors: a local step on their own triples (never released)
                U.index_add_(0, users, g_user + reg * u_rows, alpha=-lr_user)
            grad = noisy_gradient(summed, sigma, C, expected, noise_rng)
            if reg:
                grad += reg * table
            adam.step(grad)
            if content is not None:
                for adam_p, name, s in ((adam_E, "E", sum_E), (adam_beta, "beta", sum_beta)):
                    p = content[name]
                    s = torch.zeros_like(p) if s is None else s
                    g = noisy_gradient(s, sigma, C, expected, noise_rng)
                    if creg:
                        g = g + creg * p
                    adam_p.step(g)
            history.append(loss)
        return history

    # ------------------------------------------------------------------ scoring
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

    def _fold_in(self, hist: sp.csr_matrix) -> np.ndarray:
        """``[gamma_u, theta_u]`` from each history alone, shape (n, factors + c)."""
        V = np.concatenate([self.item_factors_, self.item_content_factors_], axis=1)
        bias = self.item_bias_ + self.item_content_bias_
        return fold_in_users(
            hist,
            V,
            bias,
            steps=int(self.fold_in_steps),
            learning_rate=float(self.user_learning_rate),
            regularization=float(self.regularization),
        )
