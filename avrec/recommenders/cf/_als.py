"""Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren, Volinsky)."""

from __future__ import annotations

import logging
import numbers
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.recommenders._base import Recommender
from avrec.recommenders._input import FitData, check_interactions
from avrec.utils import check_positive_int, progress, torch_seed

__all__ = ["ALS"]

logger = logging.getLogger(__name__)

#: Padded interactions per block: ``BLOCK_ENTRIES * factors * 4`` bytes of gathered factors
#: (8 MiB at 64 factors), reused by every CG step of the block from the L2/L3 cache. Smaller
#: blocks pay more Python/dispatch overhead per interaction, larger ones spill the cache.
BLOCK_ENTRIES = 32768
#: "workers": blocks spread over ``torch.get_num_threads()`` worker threads, one intra-op
#: thread each; "inline": one thread walks the blocks, each torch kernel using intra-op threads.
THREADING = "workers"
#: Rows per block: bounds the ``(rows, factors, factors)`` systems of the Cholesky solver.
BLOCK_ROWS = 2048


class ALS(Recommender):
    """Implicit-feedback matrix factorisation trained by alternating least squares.

    Minimises the weighted squared error of Hu, Koren and Volinsky (2008)

    .. math::

        \\sum_{u, i} c_{ui} (p_{ui} - x_u^\\top y_i)^2
        + \\lambda \\Big(\\sum_u \\lVert x_u \\rVert^2 + \\sum_i \\lVert y_i \\rVert^2\\Big)

    over all user-item pairs, with preference ``p = 1`` where the weight
    ``r > 0`` (else 0) and confidence ``c = 1 + alpha * r``. Each iteration
    solves for every item factor given the user factors, then for every user
    factor given the item factors (users last, so the user factors are the
    solution for the final item factors).

    With ``solver="cg"`` each row runs ``cg_steps`` conjugate-gradient steps
    warm-started from its previous factors (Takács, Pilászy, Tikk 2011, as in
    the ``implicit`` library), with :math:`Y^\\top Y + \\lambda I` computed once
    per half-iteration. Rows are processed in blocks of similar history
    length, padded to ``(rows, length, factors)``, so every CG step of all
    rows of a block is a few batched matrix products, with no Python loop per
    row. ``solver="cholesky"`` builds each row's normal equations and solves
    them exactly with batched :func:`torch.linalg.cholesky`.

    Parameters
    ----------
    factors : int, default=64
        Dimension of the latent factors.
    regularization : float, default=0.05
        L2 penalty ``lambda`` on every factor (not scaled by the number of
        interactions), > 0. It matters little until it is comparable to the
        Gram matrix of the factors: tune it with the data size (see Notes).
    alpha : float, default=2.0
        Confidence slope: ``c = 1 + alpha * r``, so by default an observed
        binary interaction weighs 3 unobserved entries. ``implicit`` (>= 0.5)
        uses ``c = alpha * r`` instead; its ``alpha=a`` on binary data equals
        ``alpha=a - 1`` here (its default, 1, gives positives no extra weight).
    iterations : int, default=15
        Alternating sweeps (each solves items, then users).
    solver : {"cg", "cholesky"}, default="cg"
        Conjugate gradient (fast, approximate per sweep) or an exact batched
        Cholesky solve (``O(factors**3)`` per row).
    cg_steps : int, default=3
        Conjugate-gradient steps per row and sweep (``solver="cg"``).
    dtype : {"float32", "float64"}, default="float32"
        Precision of the factors and of the solves.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the initial factors (drawn uniformly in ``[0, 0.01)``).
    verbose : bool, default=True
        Show a progress bar over the iterations.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users_, factors)
        One row per user, of ``dtype``.
    item_factors_ : ndarray of shape (n_items_, factors)
        One row per item, of ``dtype``.
    loss_history_ : ndarray of shape (iterations,), dtype float64
        The objective above after each iteration (non-increasing).
    n_users_, n_items_, train_matrix_, users_, items_
        See :class:`~avrec.recommenders.Recommender`.

    See Also
    --------
    BPR : pairwise ranking factorisation trained by stochastic gradients.

    Notes
    -----
    *New users.* ``recommend(X=...)`` and :meth:`fold_in_users` solve the
    least-squares problem of each history exactly against the fixed item
    factors (one Cholesky solve per user), so users unseen in training are
    scored without refitting. :meth:`partial_fit` does the same for the users
    with new interactions (their complete history is used) and leaves the item
    factors and every other user unchanged; refit from time to time to let the
    items learn from the new data. :meth:`fold_in_items` computes factors for
    new items from the users who interacted with them (the catalogue of a
    fitted model itself is fixed).

    *Threads.* The blocks of a half-iteration are shared out dynamically over
    :func:`torch.get_num_threads` worker threads, each running torch with
    one intra-op thread (coarse tasks, as ``implicit`` does with OpenMP over
    rows); every block is computed the same way whichever thread runs it, so
    results do not depend on the number of threads.

    *Defaults.* ``factors=64`` and ``iterations=15`` as in ``implicit``;
    ``alpha`` and ``regularization`` move the accuracy and are worth tuning
    per dataset (on a validation split carved from the training data; see
    ``benchmarks/RESULTS.md`` for measured figures and their commands).

    References
    ----------
    .. [1] Y. Hu, Y. Koren, C. Volinsky, "Collaborative Filtering for Implicit
       Feedback Datasets", ICDM 2008.
    .. [2] G. Takács, I. Pilászy, D. Tikk, "Applications of the conjugate
       gradient method for implicit feedback collaborative filtering",
       RecSys 2011.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]])
    >>> model = ALS(factors=2, iterations=10, random_state=0, verbose=False).fit(X)
    >>> model.user_factors_.shape, model.item_factors_.shape
    ((4, 2), (4, 2))
    >>> items, scores = model.recommend([3], k=1)
    >>> items.tolist()
    [[3]]
    >>> new_items, _ = model.recommend(k=1, X=np.array([[0, 1, 0, 0]]))
    >>> new_items.tolist()
    [[0]]
    """

    _supports_partial_fit: ClassVar[bool] = True
    _test_params: ClassVar[dict[str, Any]] = {"factors": 8, "iterations": 8}

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        solver: Literal["cg", "cholesky"] = "cg",
        cg_steps: int = 3,
        dtype: str = "float32",
        random_state: int | np.random.Generator | None = None,
        verbose: bool = True,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.solver = solver
        self.cg_steps = cg_steps
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ configuration
    def _validate(self) -> np.dtype:
        check_positive_int(self.factors, "factors")
        check_positive_int(self.iterations, "iterations")
        check_positive_int(self.cg_steps, "cg_steps")
        for name in ("regularization", "alpha"):
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if (
                not ok
                or not np.isfinite(value)
                or value < 0
                or (name == "regularization" and value == 0)
            ):
                need = "a positive" if name == "regularization" else "a non-negative"
                raise ConfigurationError(f"{name} must be {need} finite number, got {value!r}")
        if self.solver not in ("cg", "cholesky"):
            raise ConfigurationError(f"solver must be 'cg' or 'cholesky', got {self.solver!r}")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError as exc:
            raise ConfigurationError(
                f"dtype must be 'float32' or 'float64', got {self.dtype!r}"
            ) from exc
        if dtype not in (np.float32, np.float64):
            raise ConfigurationError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        return dtype

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: FitData) -> dict[str, Any]:
        import torch

        dtype = self._validate()
        tdtype = _torch_dtype(dtype)
        X = data.X
        n_users, n_items = X.shape
        f, reg = int(self.factors), float(self.regularization)
        gen = torch.Generator().manual_seed(torch_seed(data.rng))
        # one extra all-zero row at the end of each factor matrix: the target of padded entries
        U = torch.zeros(n_users + 1, f, dtype=tdtype)
        V = torch.zeros(n_items + 1, f, dtype=tdtype)
        U[:n_users] = torch.rand(n_users, f, generator=gen, dtype=tdtype) * 0.01
        V[:n_items] = torch.rand(n_items, f, generator=gen, dtype=tdtype) * 0.01
        steps = None if self.solver == "cholesky" else int(self.cg_steps)
        rows = BLOCK_ROWS if steps else _cholesky_rows(f)
        user_blocks = _row_blocks(X, self.alpha, tdtype, rows)
        item_blocks = _row_blocks(X.T.tocsr(), self.alpha, tdtype, rows)
        history: list[float] = []

        def sweeps(runner: TorchWorkers) -> None:
            for it in progress(range(self.iterations), verbose=self.verbose, desc="ALS"):
                runner.solve(item_blocks, V, U, reg, steps, loss=False)
                nnz_term = runner.solve(user_blocks, U, V, reg, steps)
                loss = nnz_term + float(torch.sum((U.T @ U) * (V.T @ V)))
                loss += reg * float(torch.sum(U * U) + torch.sum(V * V))
                history.append(loss)
                logger.debug("ALS iteration %d: loss %.6g", it + 1, loss)

        inline = TorchWorkers(0)
        if THREADING != "workers":
            with torch.inference_mode():
                sweeps(inline)
        elif torch.get_num_threads() > 1 and min(len(user_blocks), len(item_blocks)) > 1:
            with TorchWorkers(torch.get_num_threads()) as runner:
                sweeps(runner)
        else:  # nothing to share out: all sweeps as one task, sparing a hand-off per half-step
            with TorchWorkers(1) as single:
                single.map(lambda _: sweeps(inline), [None])
        return {
            "user_factors_": U[:n_users].numpy().copy(),
            "item_factors_": V[:n_items].numpy().copy(),
            "loss_history_": np.asarray(history, dtype=np.float64),
        }

    def _partial_fit(self, data: FitData, X_full: sp.csr_matrix) -> dict[str, Any]:
        self._validate()
        self._check_factors()
        changed = np.flatnonzero(np.diff(data.X.indptr) > 0)
        n_old = self.user_factors_.shape[0]
        U = np.zeros((X_full.shape[0], self.user_factors_.shape[1]), self.user_factors_.dtype)
        U[:n_old] = self.user_factors_
        U[changed] = self._fold_in(X_full[changed], self.item_factors_)
        return {"user_factors_": U}

    # ------------------------------------------------------------------ fold-in
    def fold_in_users(self, X: Any) -> np.ndarray:
        """Solve the factors of users from their histories, with the item factors fixed.

        Each row gets the exact least-squares solution ``(Y^T C_u Y + lambda
        I)^-1 Y^T C_u p_u``, the same system a training sweep solves. For a
        training user's own history this reproduces its trained factors (up
        to the convergence of the sweeps).

        Parameters
        ----------
        X : Interactions, scipy.sparse matrix or ndarray of shape (n_rows, n_items_)
            Histories; empty rows get zero factors.

        Returns
        -------
        ndarray of shape (n_rows, factors)
        """
        self._check_fitted()
        hist, _ = check_interactions(X, "X", n_items=self.n_items_, allow_empty=True)
        return self._fold_in(hist, self.item_factors_)

    def fold_in_items(self, X_items: Any) -> np.ndarray:
        """Solve factors for (new) items from the users who interacted with them.

        The symmetric counterpart of :meth:`fold_in_users`, against the fixed
        user factors. The fitted catalogue is not changed: use the result to
        score new items (``user_factors_ @ factors.T``) until the next fit.

        Parameters
        ----------
        X_items : scipy.sparse matrix or ndarray of shape (n_new_items, n_users_)
            Item-user interactions: row ``j`` holds the weights of the users
            who interacted with new item ``j``.

        Returns
        -------
        ndarray of shape (n_new_items, factors)
        """
        self._check_fitted()
        hist, _ = check_interactions(X_items, "X_items", allow_empty=True)
        if hist.shape[1] != self.n_users_:
            raise DataValidationError(
                f"X_items must have one column per user ({self.n_users_}), got {hist.shape[1]}"
            )
        return self._fold_in(hist, self.user_factors_)

    def _fold_in(self, hist: sp.csr_matrix, fixed: np.ndarray) -> np.ndarray:
        import torch

        self._check_factors()
        tdtype = _torch_dtype(fixed.dtype)
        Y = torch.zeros(fixed.shape[0] + 1, fixed.shape[1], dtype=tdtype)
        Y[:-1] = torch.from_numpy(fixed)
        out = torch.zeros(hist.shape[0] + 1, fixed.shape[1], dtype=tdtype)
        blocks = _row_blocks(hist, self.alpha, tdtype, _cholesky_rows(fixed.shape[1]))
        with TorchWorkers(1) as runner, torch.inference_mode():
            runner.solve(blocks, out, Y, float(self.regularization), None, loss=False)
        return out[:-1].numpy().copy()

    def _check_factors(self) -> None:
        if self.item_factors_.shape[1] != self.factors:
            raise ConfigurationError(
                f"factors was changed to {self.factors} after fit "
                f"({self.item_factors_.shape[1]}); refit the model"
            )

    # ------------------------------------------------------------------ scoring
    def _score(self, users: np.ndarray | None, X_users: sp.csr_matrix) -> np.ndarray:
        U = (
            self.user_factors_[users]
            if users is not None
            else self._fold_in(X_users, self.item_factors_)
        )
        return np.matmul(U, self.item_factors_.T).astype(np.float32, copy=False)


# ---------------------------------------------------------------------- solver kernels
def _cholesky_rows(factors: int) -> int:
    """Rows per block for the exact solver: ``(rows, f, f)`` systems of at most 32 MiB (float32)."""
    return max(1, min(BLOCK_ROWS, (8 * 2**20) // (factors * factors)))


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch

    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def _row_blocks(
    X: sp.csr_matrix, alpha: float, tdtype: Any, max_rows: int = BLOCK_ROWS
) -> list[tuple[Any, Any, Any]]:
    """Group the rows of ``X`` by history length into padded blocks.

    Returns a list of ``(rows, cols, conf)``: ``rows`` (b,) int64 row indices,
    ``cols`` (b, L) int32 column indices padded with ``X.shape[1]`` (the zero
    row appended to the factor matrices), ``conf`` (b, L) confidences
    ``1 + alpha * r`` padded with 0. At most ``max_rows`` rows per block.
    """
    import torch

    n_rows, n_cols = X.shape
    lengths = np.diff(X.indptr)
    order = np.argsort(lengths, kind="stable")
    sorted_len = np.maximum(lengths[order], 1)
    blocks = []
    start = 0
    while start < n_rows:
        # largest end with (end - start) * longest <= BLOCK_ENTRIES (lengths ascend)
        lo, hi = start + 1, min(n_rows, start + max_rows)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid - start) * sorted_len[mid - 1] <= BLOCK_ENTRIES:
                lo = mid
            else:
                hi = mid - 1
        rows = order[start:lo]
        start = lo
        lens = lengths[rows]
        width = max(int(lens.max()), 1)
        total = int(lens.sum())
        row_of = np.repeat(np.arange(rows.size), lens)
        pos = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
        src = np.repeat(X.indptr[rows], lens) + pos
        cols = np.full((rows.size, width), n_cols, dtype=np.int32)
        conf = np.zeros((rows.size, width), dtype=np.float64)
        cols[row_of, pos] = X.indices[src]
        conf[row_of, pos] = 1.0 + alpha * X.data[src].astype(np.float64)
        blocks.append(
            (
                torch.from_numpy(rows.astype(np.int64)),
                torch.from_numpy(cols),
                torch.from_numpy(conf).to(tdtype),
            )
        )
    return blocks


class TorchWorkers:
    """Run independent torch tasks on ``n_threads`` threads that each use one intra-op thread.

    Tasks are handed out dynamically (torch releases the GIL inside its
    kernels), the way ``implicit`` spreads rows over OpenMP threads. A few
    coarse tasks per thread are far more robust than torch's intra-op
    parallelism over many small kernels, whose OpenMP barriers stall (and
    whose idle threads spin) whenever a core is busy with another process.
    The workers set torch's thread count to 1 for themselves; the caller's
    setting is restored on exit. Tasks run under :func:`torch.inference_mode`.

    Parameters
    ----------
    n_threads : int
        Worker threads; 0 runs the tasks inline in the caller's thread, with
        torch's intra-op threads.
    """

    def __init__(self, n_threads: int) -> None:
        self.n_threads = int(n_threads)
        self._pool: Any = None

    def __enter__(self) -> TorchWorkers:
        from concurrent.futures import ThreadPoolExecutor

        import torch

        self._main_threads = torch.get_num_threads()
        if self.n_threads < 1:  # inline: the caller's thread, with torch's intra-op threads
            return self
        self._pool = ThreadPoolExecutor(
            self.n_threads,
            thread_name_prefix="avrec-torch",
            initializer=torch.set_num_threads,
            initargs=(1,),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
            torch.set_num_threads(self._main_threads)

    def map(self, fn: Any, items: list) -> list:
        """Return ``[fn(item) for item in items]``, computed on the workers."""
        import torch

        def run(item: Any) -> Any:
            with torch.inference_mode():
                return fn(item)

        if self._pool is None:
            return [run(item) for item in items]
        return list(self._pool.map(run, items))

    def solve(
        self, blocks: list, X: Any, Y: Any, reg: float, cg_steps: int | None, loss: bool = True
    ) -> float:
        """Update the rows of ``X`` in place given the fixed factors ``Y`` (one ALS half-step).

        ``X`` and ``Y`` carry a trailing all-zero row. With ``cg_steps=None``
        the normal equations are solved exactly; otherwise ``cg_steps`` CG
        steps run from the current ``X``. Returns ``sum_nnz c (1 - s)^2 - s^2``
        with ``s = x_u . y_i`` after the update: the loss on observed entries
        minus what the all-pairs term ``tr(X^T X Y^T Y)`` counts there (0 with
        ``loss=False``).
        """
        import torch

        f = Y.shape[1]
        YtY = Y.T @ Y + reg * torch.eye(f, dtype=Y.dtype)
        # the longest rows come last in ``blocks``: start them first
        terms = self.map(lambda block: _solve_block(block, X, Y, YtY, cg_steps, loss), blocks[::-1])
        return float(sum(terms[::-1]))


def _solve_block(block: tuple, X: Any, Y: Any, YtY: Any, cg_steps: int | None, loss: bool) -> float:
    import torch

    rows, cols, conf = block
    b, width = cols.shape
    f = Y.shape[1]
    Yg = Y.index_select(0, cols.view(-1)).view(b, width, f)
    YgT = Yg.transpose(1, 2)
    w = conf - 1.0  # padded entries have conf 0 but gather the zero row: no effect
    if cg_steps is None:
        A = torch.baddbmm(YtY.expand(b, f, f), YgT, Yg * w.unsqueeze(-1))
        rhs = torch.bmm(conf.unsqueeze(1), Yg).transpose(1, 2)
        x = torch.cholesky_solve(rhs, torch.linalg.cholesky(A)).squeeze(-1)
        s = torch.bmm(x.unsqueeze(1), YgT).squeeze(1) if loss else None
    else:
        x, s = _cg(Yg, YgT, conf, w, X.index_select(0, rows), YtY, cg_steps)
    X.index_copy_(0, rows, x)
    return float(torch.sum(conf * (1.0 - s) ** 2 - s * s)) if loss else 0.0


def _cg(Yg: Any, YgT: Any, conf: Any, w: Any, x: Any, YtY: Any, steps: int) -> tuple[Any, Any]:
    """Batched conjugate gradient on ``(YtY + Yg^T diag(w) Yg) x = Yg^T conf`` for a block."""
    import torch

    s = torch.bmm(x.unsqueeze(1), YgT).squeeze(1)  # (b, L): x_u . y_i on the history
    r = torch.addmm(
        torch.bmm(torch.addcmul(conf, w, s, value=-1.0).unsqueeze(1), Yg).squeeze(1),
        x,
        YtY,
        alpha=-1.0,
    )
    p = r
    rs = torch.linalg.vecdot(r, r)
    for _ in range(steps):
        sp_ = torch.bmm(p.unsqueeze(1), YgT).squeeze(1)
        Ap = torch.addmm(torch.bmm((w * sp_).unsqueeze(1), Yg).squeeze(1), p, YtY)
        step = (rs / torch.linalg.vecdot(p, Ap).clamp_min(1e-30)).unsqueeze(1)  # r = 0: no move
        x = torch.addcmul(x, step, p)
        s = torch.addcmul(s, step, sp_)
        r = torch.addcmul(r, step, Ap, value=-1.0)
        rs_new = torch.linalg.vecdot(r, r)
        p = torch.addcmul(r, (rs_new / rs.clamp_min(1e-30)).unsqueeze(1), p)
        rs = rs_new
    return x, s
