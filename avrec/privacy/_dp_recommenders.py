"""Item-item recommenders from a differentially private Gram matrix (McSherry & Mironov 2009)."""

from __future__ import annotations

import logging
import math
import numbers
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError
from avrec.privacy._contribution import check_max_items
from avrec.privacy._released import AccountedFit
from avrec.privacy._releases import (
    check_delta,
    check_epsilon,
    check_mechanism,
    cooccurrence_sensitivity,
    dp_item_cooccurrence,
    noise_std,
)
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData
from avrec.recommenders.cf._itemknn import SIMILARITY_BLOCK_BYTES

__all__ = ["DPEASE", "DPItemKNN"]

logger = logging.getLogger(__name__)


class _DPGramRecommender(AccountedFit, Recommender):
    """Shared parameters and the private aggregation step of DPItemKNN and DPEASE."""

    def _validate_privacy(self) -> tuple[float, float, int, str]:
        epsilon = check_epsilon(self.epsilon)
        delta = check_delta(self.delta)
        m = check_max_items(self.max_items_per_user)
        mechanism = check_mechanism(self.mechanism, delta, epsilon)
        _check_nonnegative(self.threshold, "threshold")
        return epsilon, delta, m, mechanism

    def _private_gram(self, data: FitData) -> tuple[np.ndarray, float, float, float]:
        epsilon, delta, m, mechanism = self._validate_privacy()
        gram = dp_item_cooccurrence(
            data.X,
            epsilon,
            delta,
            max_items_per_user=m,
            mechanism=mechanism,
            accountant=self._current_accountant(),
            # None: the noise comes from os.urandom; a seed gives this release its own stream
            random_state=None if self.random_state is None else data.rng,
            note=f"{type(self).__name__}.fit",
        )
        # the Laplace mechanisms are pure epsilon-DP: they spend no delta
        spent_delta = 0.0 if math.isinf(epsilon) or "laplace" in mechanism else delta
        std = noise_std(mechanism, cooccurrence_sensitivity(m, gram.shape[0]), epsilon, delta)
        if self.threshold and std > 0:  # post-processing: drop counts the noise could explain
            gram = np.where(gram >= float(self.threshold) * std, gram, 0)
        return gram, epsilon, spent_delta, std

    def _score(self, users: np.ndarray | None, X_users: sp.csr_matrix) -> np.ndarray:
        weights = self._scoring_matrix()
        out = X_users @ weights
        if sp.issparse(out):
            out = out.toarray()
        return np.asarray(out, dtype=np.float32)

    def _scoring_matrix(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class DPItemKNN(_DPGramRecommender):
    """Item-based kNN whose item-item similarities come from a DP co-occurrence matrix.

    Following McSherry & Mironov (2009), the only step that looks at all
    users is the aggregation, and it is made differentially private (at the
    user level): :func:`~avrec.privacy.dp_item_cooccurrence` releases the
    item-item Gram matrix ``X^T X`` of the contribution-bounded data with
    calibrated noise. Everything after it is post-processing and costs no
    privacy: negative noisy counts are set to 0, the cosine similarity
    ``G_ij / (sqrt(G_ii G_jj) + shrinkage)`` is computed from the noisy Gram
    matrix (its diagonal holds the item counts), and each item keeps its ``k``
    most similar items, exactly as :class:`~avrec.recommenders.ItemKNN`. A
    user is scored from their own history (``x_u @ similarity_``) at scoring
    time: personalisation uses only that user's data and the DP similarities
    (joint differential privacy).

    Parameters
    ----------
    k : int, default=100
        Neighbours kept per item.
    shrinkage : float, default=10.0
        Added to the cosine denominator, as in ItemKNN.
    noise_shrinkage : float, default=30.0
        More shrinkage per unit of noise: the denominator gets
        ``shrinkage + noise_shrinkage * s`` with ``s`` the (public) noise
        standard deviation of each count (0 at ``epsilon=inf``). Otherwise the
        noise on the small counts of rare items passes for strong cosine
        similarity (measured effect: ``benchmarks/RESULTS.md``).
    epsilon : float, default=1.0
        Privacy budget of the release; ``float("inf")`` adds no noise (a
        non-private baseline on the bounded data).
    delta : float, default=1e-6
        ``delta`` of ``(epsilon, delta)``-DP; needed (> 0) by the Gaussian
        mechanisms, ignored (spent as 0) by the Laplace ones.
    max_items_per_user : int, default=50
        Contribution bound ``m``: each user keeps at most ``m`` interactions,
        sampled uniformly, binarised (see :func:`~avrec.privacy.bound_contributions`).
    mechanism : {"gaussian", "laplace", "discrete_laplace", "discrete_gaussian"}, default="gaussian"
        Noise of the Gram matrix; see :func:`~avrec.privacy.dp_item_cooccurrence`.
        The Gaussian ones scale with the L2 sensitivity ``sqrt(m(m+1)/2)``, the
        Laplace ones with the L1 sensitivity ``m(m+1)/2``, so Gaussian noise is
        far smaller for the same budget unless ``m`` is tiny.
    threshold : float, default=0.0
        Post-processing of the noisy counts: entries below ``threshold`` times
        the noise standard deviation (:func:`~avrec.privacy.noise_std`, public)
        are set to 0, so that pure noise on the many never co-consumed pairs
        does not pass for similarity. 0 keeps every count (negative ones are
        still clipped to 0 by DPItemKNN).
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the contribution bounding and the noise (use
        :class:`~avrec.privacy.SecureRandom` in the release functions for
        production releases; seeded noise is for research).

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32
        Top-``k`` similarities per item (row), diagonal empty.
    shrinkage_ : float
        The shrinkage used: ``shrinkage + noise_shrinkage * noise std``.
    epsilon_spent_, delta_spent_ : float
        The privacy cost of the fit (``inf`` and 0 for ``epsilon=inf``).

    See Also
    --------
    avrec.recommenders.ItemKNN : the non-private model (equal at ``epsilon=inf``
        on the bounded data).
    DPEASE : EASE from the same private Gram matrix.

    Notes
    -----
    ``partial_fit`` is not supported: every update would be a new release.

    References
    ----------
    .. [1] F. McSherry and I. Mironov, "Differentially Private Recommender
       Systems: Building Privacy into the Netflix Prize Contenders", KDD 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.privacy import DPItemKNN
    >>> X = np.kron(np.eye(2), np.ones((30, 4)))  # two groups of 30 users x 4 items
    >>> X[0, 0] = 0
    >>> model = DPItemKNN(k=3, epsilon=8.0, max_items_per_user=4, random_state=0).fit(X)
    >>> model.recommend([0], k=1)[0].tolist(), model.epsilon_spent_
    ([[0]], 8.0)
    """

    _released_attributes: ClassVar[tuple[str, ...]] = (
        "similarity_",
        "shrinkage_",
        "epsilon_spent_",
        "delta_spent_",
    )
    _test_params: ClassVar[dict[str, Any]] = {
        "k": 20,
        "epsilon": 200.0,
        "delta": 1e-5,
        "max_items_per_user": 20,
    }

    def __init__(
        self,
        k: int = 100,
        shrinkage: float = 10.0,
        noise_shrinkage: float = 30.0,
        epsilon: float = 1.0,
        delta: float = 1e-6,
        max_items_per_user: int = 50,
        mechanism: str = "gaussian",
        threshold: float = 0.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.k = k
        self.shrinkage = shrinkage
        self.noise_shrinkage = noise_shrinkage
        self.epsilon = epsilon
        self.delta = delta
        self.max_items_per_user = max_items_per_user
        self.mechanism = mechanism
        self.threshold = threshold
        self.random_state = random_state

    def _fit(self, data: FitData) -> dict[str, Any]:
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) or self.k < 1:
            raise ConfigurationError(f"k must be a positive int, got {self.k!r}")
        _check_nonnegative(self.shrinkage, "shrinkage")
        _check_nonnegative(self.noise_shrinkage, "noise_shrinkage")
        self._validate_privacy()
        gram, eps, delta, std = self._private_gram(data)
        shrinkage = float(self.shrinkage) + float(self.noise_shrinkage) * std
        similarity = similarity_from_gram(gram, int(self.k), shrinkage=shrinkage)
        return {
            "similarity_": similarity,
            "shrinkage_": shrinkage,
            "epsilon_spent_": eps,
            "delta_spent_": delta,
        }

    def _scoring_matrix(self) -> Any:
        return self.similarity_


class DPEASE(_DPGramRecommender):
    """EASE solved from a differentially private Gram matrix.

    :func:`~avrec.privacy.dp_item_cooccurrence` releases the Gram matrix
    ``X^T X`` of the contribution-bounded data with calibrated noise; the
    closed-form EASE solution (:class:`~avrec.recommenders.EASE`) is then
    post-processing: the noisy matrix is projected onto the positive
    semi-definite cone (negative eigenvalues set to 0, the nearest PSD matrix
    in Frobenius norm; skipped without noise), ``l2`` is added to its
    diagonal and the item-item weights ``B = -P / diag(P)`` with
    ``P = (G + l2 I)^{-1}`` are computed as EASE does. A user is scored from
    their own history (``x_u @ B``) at scoring time, which uses no privacy
    budget (McSherry & Mironov 2009; joint DP).

    Parameters
    ----------
    l2 : float, default=500.0
        L2 regularisation added to the diagonal. Noise calls for more of it:
        a noisy Gram matrix of ``n`` items with noise ``s`` per entry has a
        spectral norm of about ``2 s sqrt(n)``.
    epsilon : float, default=1.0
        Privacy budget of the release; ``float("inf")`` adds no noise (a
        non-private baseline on the bounded data).
    delta : float, default=1e-6
        ``delta`` of ``(epsilon, delta)``-DP; needed (> 0) by the Gaussian
        mechanisms, ignored (spent as 0) by the Laplace ones.
    max_items_per_user : int, default=50
        Contribution bound ``m``: each user keeps at most ``m`` interactions,
        sampled uniformly, binarised (see :func:`~avrec.privacy.bound_contributions`).
    mechanism : {"gaussian", "laplace", "discrete_laplace", "discrete_gaussian"}, default="gaussian"
        Noise of the Gram matrix; see :func:`~avrec.privacy.dp_item_cooccurrence`.
        The Gaussian ones scale with the L2 sensitivity ``sqrt(m(m+1)/2)``, the
        Laplace ones with the L1 sensitivity ``m(m+1)/2``, so Gaussian noise is
        far smaller for the same budget unless ``m`` is tiny.
    threshold : float, default=0.0
        Post-processing of the noisy counts: entries below ``threshold`` times
        the noise standard deviation (:func:`~avrec.privacy.noise_std`, public)
        are set to 0, so that pure noise on the many never co-consumed pairs
        does not pass for similarity. 0 keeps every count (negative ones are
        still clipped to 0 by DPItemKNN).
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the contribution bounding and the noise.

    Attributes
    ----------
    weights_ : ndarray of shape (n_items, n_items), dtype float32
        The item-item matrix ``B`` (zero diagonal).
    epsilon_spent_, delta_spent_ : float
        The privacy cost of the fit.

    See Also
    --------
    avrec.recommenders.EASE : the non-private model (equal at ``epsilon=inf``
        on the bounded data).
    DPItemKNN : a sparse neighbourhood model from the same private Gram matrix.

    Notes
    -----
    Time is cubic and memory quadratic in the number of items, as for EASE,
    plus a symmetric eigendecomposition when noise was added.

    References
    ----------
    .. [1] H. Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019.
    .. [2] F. McSherry and I. Mironov, "Differentially Private Recommender
       Systems", KDD 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from avrec.privacy import DPEASE
    >>> X = np.kron(np.eye(2), np.ones((30, 4)))
    >>> X[0, 0] = 0
    >>> model = DPEASE(l2=5.0, epsilon=8.0, max_items_per_user=4, random_state=0).fit(X)
    >>> model.recommend([0], k=1)[0].tolist()
    [[0]]
    """

    _released_attributes: ClassVar[tuple[str, ...]] = (
        "weights_",
        "epsilon_spent_",
        "delta_spent_",
    )
    _test_params: ClassVar[dict[str, Any]] = {
        "l2": 10.0,
        "epsilon": 50.0,
        "delta": 1e-5,
        "max_items_per_user": 20,
    }

    def __init__(
        self,
        l2: float = 500.0,
        epsilon: float = 1.0,
        delta: float = 1e-6,
        max_items_per_user: int = 50,
        mechanism: str = "gaussian",
        threshold: float = 0.0,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.l2 = l2
        self.epsilon = epsilon
        self.delta = delta
        self.max_items_per_user = max_items_per_user
        self.mechanism = mechanism
        self.threshold = threshold
        self.random_state = random_state

    def _fit(self, data: FitData) -> dict[str, Any]:
        _check_nonnegative(self.l2, "l2", positive=True)
        self._validate_privacy()
        gram, eps, delta, _ = self._private_gram(data)
        weights = ease_from_gram(gram, float(self.l2), project=not math.isinf(eps))
        return {"weights_": weights, "epsilon_spent_": eps, "delta_spent_": delta}

    def _scoring_matrix(self) -> Any:
        return self.weights_


def similarity_from_gram(
    gram: np.ndarray, k: int, *, shrinkage: float = 0.0, block_bytes: int = SIMILARITY_BLOCK_BYTES
) -> sp.csr_matrix:
    """Top-``k`` cosine similarities from a (noisy) Gram matrix, as ItemKNN computes them.

    Negative entries are set to 0 first (post-processing of a noisy
    release); then ``s_ij = G_ij / (sqrt(G_ii) sqrt(G_jj) + shrinkage)``,
    zeros and the diagonal are dropped and each row keeps its ``k`` largest
    values, in the same order of operations as
    :func:`avrec.recommenders.cf._itemknn.item_similarity`, so an exact Gram
    matrix gives exactly ItemKNN's similarities.

    Parameters
    ----------
    gram : ndarray of shape (n_items, n_items)
        Symmetric (noisy) item co-occurrence counts.
    k : int
        Neighbours kept per item.
    shrinkage : float, default=0.0
    block_bytes : int, optional
        Bound on the float64 block processed at a time.

    Returns
    -------
    scipy.sparse.csr_matrix of shape (n_items, n_items), dtype float32

    Examples
    --------
    >>> import numpy as np
    >>> G = np.array([[2, 1, 0], [1, 1, 0], [0, 0, 3]])
    >>> similarity_from_gram(G, 1).toarray().astype(float).round(3).tolist()
    [[0.0, 0.707, 0.0], [0.707, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    n_items = gram.shape[0]
    norms = np.sqrt(np.clip(np.diagonal(gram).astype(np.float64), 0, None))
    kk = min(k, n_items - 1)
    block = max(1, block_bytes // (8 * max(n_items, 1)))
    rows_out, cols_out, vals_out = [], [], []
    for start in range(0, n_items if kk > 0 else 0, block):
        stop = min(start + block, n_items)
        sims = np.clip(gram[start:stop].astype(np.float64), 0, None)
        denom = norms[start:stop, None] * norms[None, :] + shrinkage
        np.divide(sims, denom, out=sims, where=denom > 0)
        sims[denom <= 0] = 0.0
        local = np.arange(stop - start)
        sims[sims == 0] = -np.inf
        sims[local, local + start] = -np.inf
        top = np.argpartition(sims, n_items - kk, axis=1)[:, n_items - kk :]
        vals = np.take_along_axis(sims, top, axis=1)
        keep = np.isfinite(vals)
        rows_out.append(np.broadcast_to(local[:, None] + start, top.shape)[keep])
        cols_out.append(top[keep])
        vals_out.append(vals[keep])
    if rows_out:
        rows, cols, vals = (np.concatenate(p) for p in (rows_out, cols_out, vals_out))
    else:
        rows = cols = np.empty(0, dtype=np.int64)
        vals = np.empty(0)
    S = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_items, n_items))
    S.sort_indices()
    return S


def ease_from_gram(gram: np.ndarray, l2: float, *, project: bool = True) -> np.ndarray:
    """EASE weights ``B`` from a (noisy) Gram matrix, solved as :class:`EASE` solves them.

    Parameters
    ----------
    gram : ndarray of shape (n_items, n_items)
        Symmetric item co-occurrence counts.
    l2 : float
        Added to the diagonal (> 0).
    project : bool, default=True
        First replace ``gram`` by its nearest positive semi-definite matrix
        (eigenvalues clipped at 0), so that ``gram + l2 I`` is positive
        definite whatever the noise.

    Returns
    -------
    ndarray of shape (n_items, n_items), dtype float32
        Zero diagonal.

    Raises
    ------
    ConfigurationError
        If ``gram + l2 I`` is not numerically positive definite.

    Examples
    --------
    >>> import numpy as np
    >>> B = ease_from_gram(np.array([[2.0, 1.0], [1.0, 2.0]]), 1.0)
    >>> B.astype(float).round(3).tolist()
    [[0.0, 0.333], [0.333, 0.0]]
    """
    import torch

    n_items = gram.shape[0]
    G = np.array(gram, dtype=np.float32)
    if project:
        evals, evecs = torch.linalg.eigh(torch.from_numpy(G))
        G = ((evecs * evals.clamp(min=0)) @ evecs.T).numpy()
        G = (G + G.T) / 2
    G[np.diag_indices(n_items)] += np.float32(l2)
    Gt = torch.from_numpy(G)
    L, info = torch.linalg.cholesky_ex(Gt)
    if int(info) != 0:
        raise ConfigurationError(
            f"the Gram matrix + l2*I is not numerically positive definite (l2={l2}); increase l2"
        )
    P = torch.cholesky_inverse(L)
    P /= -torch.diagonal(P).clone()
    P.fill_diagonal_(0.0)
    return P.numpy()


def _check_nonnegative(value: Any, name: str, *, positive: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise ConfigurationError(f"{name} must be a finite number {need}, got {value!r}")
