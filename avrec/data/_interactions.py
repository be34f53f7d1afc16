"""The interaction matrix: who consumed what, how much, and when."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from avrec.data._checks import check_matrix_data, check_timestamps, check_weights
from avrec.data._tabular import column_values, read_delimited
from avrec.data._vocabulary import Vocabulary, as_id_array
from avrec.exceptions import DataValidationError, PersistenceError, UnknownIdError
from avrec.utils import load_arrays, save_arrays

__all__ = ["Interactions"]

_FORMAT_VERSION = 1


class Interactions:
    """A user x item interaction matrix with its id vocabularies and timestamps.

    The matrix is CSR of shape ``(n_users, n_items)`` with float32 weights
    (counts, ratings or ones); row ``u`` belongs to ``users.ids[u]`` and column
    ``i`` to ``items.ids[i]``. Each stored entry may carry a timestamp
    (seconds), aligned with ``matrix.data``. Instances are treated as
    immutable: every transformation returns a new object.

    Build one with :meth:`from_arrays`, :meth:`from_frame`, :meth:`from_csv`,
    :meth:`from_csr` or :meth:`from_indices` rather than the constructor.

    Parameters
    ----------
    matrix : scipy.sparse matrix of shape (n_users, n_items)
        Non-negative finite weights; converted to canonical float32 CSR.
    users : Vocabulary of length n_users
    items : Vocabulary of length n_items
    timestamps : ndarray of shape (nnz,), optional
        One timestamp per stored entry, in the canonical CSR order of ``matrix``.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of shape (n_users, n_items)
    users : Vocabulary
    items : Vocabulary
    timestamps : ndarray of shape (nnz,) or None
        float64 seconds, aligned with ``matrix.data``.

    Raises
    ------
    DataValidationError
        If the matrix is not sparse, has NaN or negative weights, disagrees
        with the vocabularies' lengths, or timestamps do not align.

    Examples
    --------
    >>> data = Interactions.from_arrays(
    ...     ["ann", "ann", "bob"], ["song1", "song2", "song1"], weights=[1, 3, 2]
    ... )
    >>> data
    Interactions(n_users=2, n_items=2, nnz=3, density=0.75, timestamps=False)
    >>> data.matrix.toarray().tolist()
    [[1.0, 3.0], [2.0, 0.0]]
    """

    __slots__ = ("items", "matrix", "timestamps", "users")

    def __init__(
        self,
        matrix: sp.spmatrix | sp.sparray,
        users: Vocabulary,
        items: Vocabulary,
        timestamps: np.ndarray | None = None,
    ) -> None:
        if not sp.issparse(matrix):
            raise DataValidationError(
                f"matrix must be a scipy sparse matrix, got {type(matrix).__name__}"
            )
        csr = sp.csr_matrix(matrix, dtype=np.float32)
        if not csr.has_canonical_format:
            if timestamps is not None:
                raise DataValidationError(
                    "matrix must be in canonical CSR form (sorted, no duplicates) when "
                    "timestamps are given; use Interactions.from_indices"
                )
            csr = csr.copy()  # sum_duplicates works in place: never touch the caller's matrix
            csr.sum_duplicates()
            csr.sort_indices()
        if not isinstance(users, Vocabulary) or not isinstance(items, Vocabulary):
            raise DataValidationError("users and items must be Vocabulary instances")
        if csr.shape != (len(users), len(items)):
            raise DataValidationError(
                f"matrix has shape {csr.shape} but the vocabularies have "
                f"{len(users)} users and {len(items)} items"
            )
        check_matrix_data(csr.data)
        if timestamps is not None:
            timestamps = check_timestamps(timestamps, csr.nnz)
        self.matrix = csr
        self.users = users
        self.items = items
        self.timestamps = timestamps

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_indices(
        cls,
        user_indices: Any,
        item_indices: Any,
        weights: Any = None,
        timestamps: Any = None,
        *,
        users: Vocabulary,
        items: Vocabulary,
        duplicates: Literal["sum", "last", "max"] = "sum",
    ) -> Interactions:
        """Build from integer row/column indices into existing vocabularies.

        Parameters
        ----------
        user_indices, item_indices : array-like of int, shape (n,)
            Row and column of each interaction.
        weights : array-like of shape (n,), optional
            Non-negative weights; ones when omitted.
        timestamps : array-like of shape (n,), optional
            Seconds (numeric) or ``datetime64``.
        users, items : Vocabulary
            Define the matrix shape.
        duplicates : {"sum", "last", "max"}, default="sum"
            How repeated (user, item) pairs combine: add their weights, keep the
            latest one (by timestamp, then by input order), or keep the largest.
            The kept timestamp is the latest of the pair's.

        Returns
        -------
        Interactions

        Raises
        ------
        DataValidationError
            On mismatched lengths, non-integer or out-of-range indices, NaN or
            negative weights.

        Examples
        --------
        >>> v = Vocabulary([0, 1])
        >>> Interactions.from_indices([0, 0], [1, 1], users=v, items=v).matrix.toarray().tolist()
        [[0.0, 2.0], [0.0, 0.0]]
        """
        n_users, n_items = len(users), len(items)
        rows = cls._check_indices(user_indices, n_users, "user_indices")
        cols = cls._check_indices(item_indices, n_items, "item_indices")
        if rows.shape[0] != cols.shape[0]:
            raise DataValidationError(
                f"user_indices has length {rows.shape[0]} "
                f"but item_indices has length {cols.shape[0]}"
            )
        n = rows.shape[0]
        w = check_weights(weights, n)
        t = check_timestamps(timestamps, n)
        if duplicates not in ("sum", "last", "max"):
            raise DataValidationError(
                f"duplicates must be 'sum', 'last' or 'max', got {duplicates!r}"
            )
        key = rows * np.int64(max(n_items, 1)) + cols
        del rows, cols
        if n and not np.all(key[1:] > key[:-1]):  # logs sorted by (user, item) skip the sort
            order = np.argsort(key, kind="stable")
            key = key[order]
            if duplicates == "last" and t is not None:
                # order each run of repeated pairs by time (input order on ties); sorting just
                # those entries is far cheaper than a lexsort of everything
                same = key[1:] == key[:-1]
                if same.any():
                    dup = np.flatnonzero(np.r_[same, False] | np.r_[False, same])
                    order[dup] = order[dup][np.lexsort((t[order[dup]], key[dup]))]
            w = w[order]
            t = t[order] if t is not None else None
            del order
        first = np.ones(n, dtype=bool)  # first entry of each distinct (user, item) pair
        np.not_equal(key[1:], key[:-1], out=first[1:])
        if first.all():  # no repeated pairs: nothing to combine
            wagg, tagg = w, t
        else:
            starts = np.flatnonzero(first)
            if duplicates == "sum":
                wagg = np.add.reduceat(w, starts)
            elif duplicates == "max":
                wagg = np.maximum.reduceat(w, starts)
            else:
                wagg = w[np.r_[starts[1:], n] - 1]
            tagg = None if t is None else np.maximum.reduceat(t, starts)
            key = key[starts]
            del starts
        del first
        n_cols = np.int64(max(n_items, 1))
        indptr = np.searchsorted(key, np.arange(n_users + 1, dtype=np.int64) * n_cols)
        matrix = sp.csr_matrix(
            (wagg.astype(np.float32), (key % n_cols).astype(np.int32), indptr),
            shape=(n_users, n_items),
        )
        return cls(matrix, users, items, tagg)

    @classmethod
    def from_arrays(
        cls,
        user_ids: Any,
        item_ids: Any,
        weights: Any = None,
        timestamps: Any = None,
        *,
        duplicates: Literal["sum", "last", "max"] = "sum",
        min_rating: float | None = None,
        users: Vocabulary | None = None,
        items: Vocabulary | None = None,
        unknown: Literal["raise", "drop", "extend"] = "raise",
    ) -> Interactions:
        """Build from parallel arrays of external user ids, item ids, weights and times.

        Parameters
        ----------
        user_ids, item_ids : array-like of shape (n,)
            External ids (ints or strings).
        weights : array-like of shape (n,), optional
            Ratings, counts or play times; ones when omitted.
        timestamps : array-like of shape (n,), optional
            Seconds since the epoch, or ``datetime64``.
        duplicates : {"sum", "last", "max"}, default="sum"
            How repeated (user, item) pairs combine (see :meth:`from_indices`).
        min_rating : float, optional
            Drop interactions whose weight is below this before combining
            duplicates (e.g. ``4`` to treat 4-5 star ratings as positives).
        users, items : Vocabulary, optional
            Map ids onto these vocabularies (to align a test log with a
            training log). By default vocabularies are built from the data,
            sorted by id.
        unknown : {"raise", "drop", "extend"}, default="raise"
            What to do with ids missing from a given vocabulary.

        Returns
        -------
        Interactions

        Raises
        ------
        DataValidationError
            On mismatched lengths, missing ids, NaN or negative weights,
            empty data, or nothing left after ``min_rating`` / dropping.
        UnknownIdError
            For ids missing from a given vocabulary with ``unknown="raise"``
            (a :class:`~avrec.exceptions.DataValidationError` too).

        Examples
        --------
        >>> X = Interactions.from_arrays([1, 1, 2], [7, 7, 8], [4, 5, 2], min_rating=3)
        >>> X.matrix.toarray().tolist()
        [[9.0]]
        """
        uids = as_id_array(user_ids, "user_ids")
        iids = as_id_array(item_ids, "item_ids")
        if uids.shape[0] != iids.shape[0]:
            raise DataValidationError(
                f"user_ids has length {uids.shape[0]} but item_ids has length {iids.shape[0]}"
            )
        n = uids.shape[0]
        if n == 0:
            raise DataValidationError("no interactions: user_ids and item_ids are empty")
        w = check_weights(weights, n)
        t = check_timestamps(timestamps, n)
        if min_rating is not None:
            keep = w >= float(min_rating)
            if not keep.any():
                raise DataValidationError(
                    f"no interactions left after min_rating={min_rating} "
                    f"(largest weight is {w.max()})"
                )
            uids, iids, w = uids[keep], iids[keep], w[keep]
            t = t[keep] if t is not None else None
        if unknown not in ("raise", "drop", "extend"):
            raise DataValidationError(
                f"unknown must be 'raise', 'drop' or 'extend', got {unknown!r}"
            )
        users = cls._vocab_for(uids, users, unknown)
        items = cls._vocab_for(iids, items, unknown)
        rows = users.index(uids)
        cols = items.index(iids)
        if unknown == "raise":
            for what, idx, ids in (("user_ids", rows, uids), ("item_ids", cols, iids)):
                if (idx < 0).any():
                    raise UnknownIdError(
                        f"{what}: id {ids[int(np.argmax(idx < 0))].item()!r} is not in the given "
                        "vocabulary (pass unknown='drop' or 'extend')"
                    )
        keep = (rows >= 0) & (cols >= 0)
        if not keep.all():
            rows, cols, w = rows[keep], cols[keep], w[keep]
            t = t[keep] if t is not None else None
            if rows.size == 0:
                raise DataValidationError("no interactions left after dropping unknown ids")
        return cls.from_indices(rows, cols, w, t, users=users, items=items, duplicates=duplicates)

    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        weight_col: str | None = None,
        timestamp_col: str | None = None,
        **kwargs: Any,
    ) -> Interactions:
        """Build from a pandas DataFrame (or any mapping of column name to array).

        Parameters
        ----------
        frame : pandas.DataFrame or mapping of str to array-like
            One row per interaction.
        user_col, item_col : str
            Columns with the external ids.
        weight_col : str, optional
            Column with weights (ratings, counts); ones when omitted.
        timestamp_col : str, optional
            Column with timestamps (seconds or datetimes).
        **kwargs
            Passed to :meth:`from_arrays` (``duplicates``, ``min_rating`` ...).

        Returns
        -------
        Interactions

        Raises
        ------
        DataValidationError
            If a named column is missing or has missing values, or for any
            reason listed in :meth:`from_arrays`.

        Examples
        --------
        >>> frame = {"user_id": ["a", "b"], "item_id": [1, 2], "rating": [5.0, 3.0]}
        >>> Interactions.from_frame(frame, weight_col="rating").nnz
        2
        """
        cols = {"user_col": user_col, "item_col": item_col}
        if weight_col is not None:
            cols["weight_col"] = weight_col
        if timestamp_col is not None:
            cols["timestamp_col"] = timestamp_col
        available = list(frame.columns) if hasattr(frame, "columns") else list(frame)
        for arg, col in cols.items():
            if col not in available:
                raise DataValidationError(
                    f"{arg}={col!r} is not a column of the frame (columns: {available})"
                )

        def column(name: str | None) -> Any:
            if name is None:
                return None
            return column_values(frame[name], name)

        return cls.from_arrays(
            column(user_col),
            column(item_col),
            column(weight_col),
            column(timestamp_col),
            **kwargs,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        weight_col: str | None = None,
        timestamp_col: str | None = None,
        sep: str = ",",
        **kwargs: Any,
    ) -> Interactions:
        """Read a delimited text file with a header row.

        Uses pandas when it is installed and the standard :mod:`csv` module
        otherwise. Id columns are read as integers when every value is one,
        else as strings.

        Parameters
        ----------
        path : str or path-like
            The file.
        user_col, item_col, weight_col, timestamp_col : str
            Header names of the columns (see :meth:`from_frame`).
        sep : str, default=","
            Field separator.
        **kwargs
            Passed to :meth:`from_arrays`.

        Returns
        -------
        Interactions

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        DataValidationError
            If a column is missing or a value cannot be parsed.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.csv"
        >>> _ = p.write_text("user_id,item_id\\nu1,v1\\nu2,v1\\n")
        >>> Interactions.from_csv(p).shape
        (2, 1)
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"interaction file not found: {path}")
        wanted = [c for c in (user_col, item_col, weight_col, timestamp_col) if c is not None]
        columns = read_delimited(path, sep, wanted)
        return cls.from_frame(
            columns,
            user_col=user_col,
            item_col=item_col,
            weight_col=weight_col,
            timestamp_col=timestamp_col,
            **kwargs,
        )

    @classmethod
    def from_csr(
        cls,
        matrix: Any,
        *,
        user_ids: Any = None,
        item_ids: Any = None,
        timestamps: Any = None,
    ) -> Interactions:
        """Wrap a sparse (or dense) matrix, with ids ``0..n-1`` unless given.

        Parameters
        ----------
        matrix : scipy.sparse matrix or ndarray of shape (n_users, n_items)
            Non-negative finite weights. Explicit zeros are dropped.
        user_ids, item_ids : array-like, optional
            External ids of the rows and columns.
        timestamps : array-like of shape (nnz,), optional
            Aligned with the canonical CSR order of ``matrix``.

        Returns
        -------
        Interactions

        Raises
        ------
        DataValidationError
            If the matrix is not 2-d numeric, holds NaN or negative values, or
            the ids or timestamps have the wrong length.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> Interactions.from_csr(sp.eye(3, format="csr")).nnz
        3
        """
        if sp.issparse(matrix):
            csr = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
        else:
            arr = np.asarray(matrix)
            if arr.ndim != 2 or arr.dtype.kind not in "biuf":
                raise DataValidationError(
                    "matrix must be a 2-d numeric array or sparse matrix, "
                    f"got {type(matrix).__name__}"
                )
            csr = sp.csr_matrix(arr.astype(np.float64))
        if timestamps is None:
            csr.sum_duplicates()
            csr.eliminate_zeros()
        elif not csr.has_canonical_format:
            raise DataValidationError("timestamps need a matrix in canonical CSR form")
        check_weights(csr.data, csr.nnz, "matrix data")
        n_users, n_items = csr.shape
        users = Vocabulary(
            np.arange(n_users) if user_ids is None else as_id_array(user_ids, "user_ids")
        )
        items = Vocabulary(
            np.arange(n_items) if item_ids is None else as_id_array(item_ids, "item_ids")
        )
        for name, vocab, n in (("user_ids", users, n_users), ("item_ids", items, n_items)):
            if len(vocab) != n:
                raise DataValidationError(f"{name} has length {len(vocab)}, expected {n}")
        return cls(csr, users, items, timestamps)

    # ------------------------------------------------------------------ stats
    @property
    def shape(self) -> tuple[int, int]:
        """tuple of int: ``(n_users, n_items)``."""
        return self.matrix.shape

    @property
    def n_users(self) -> int:
        """int: number of rows (users in the vocabulary)."""
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        """int: number of columns (items in the vocabulary)."""
        return self.matrix.shape[1]

    @property
    def nnz(self) -> int:
        """int: number of stored (user, item) pairs."""
        return int(self.matrix.nnz)

    @property
    def density(self) -> float:
        """float: ``nnz / (n_users * n_items)``."""
        cells = self.n_users * self.n_items
        return self.nnz / cells if cells else 0.0

    def user_counts(self) -> np.ndarray:
        """Return the number of stored items of each user.

        Returns
        -------
        ndarray of shape (n_users,), dtype int64

        Examples
        --------
        >>> Interactions.from_arrays([1, 1, 2], [1, 2, 2]).user_counts().tolist()
        [2, 1]
        """
        return np.diff(self.matrix.indptr).astype(np.int64)

    def item_counts(self) -> np.ndarray:
        """Return the number of stored users of each item.

        Returns
        -------
        ndarray of shape (n_items,), dtype int64

        Examples
        --------
        >>> Interactions.from_arrays([1, 1, 2], [1, 2, 2]).item_counts().tolist()
        [1, 2]
        """
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    def stats(self) -> dict[str, float]:
        """Summarise the data.

        Returns
        -------
        dict
            ``n_users``, ``n_items``, ``nnz``, ``density``, mean/min/max
            interactions per user and per item, and ``has_timestamps``.

        Examples
        --------
        >>> Interactions.from_arrays([1, 2], [3, 3]).stats()["nnz"]
        2
        """
        uc, ic = self.user_counts(), self.item_counts()
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "nnz": self.nnz,
            "density": self.density,
            "user_interactions_mean": float(uc.mean()) if uc.size else 0.0,
            "user_interactions_min": int(uc.min()) if uc.size else 0,
            "user_interactions_max": int(uc.max()) if uc.size else 0,
            "item_interactions_mean": float(ic.mean()) if ic.size else 0.0,
            "item_interactions_min": int(ic.min()) if ic.size else 0,
            "item_interactions_max": int(ic.max()) if ic.size else 0,
            "has_timestamps": self.timestamps is not None,
        }

    def __repr__(self) -> str:
        return (
            f"Interactions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz}, "
            f"density={self.density:.4g}, timestamps={self.timestamps is not None})"
        )

    def __len__(self) -> int:
        return self.nnz

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interactions):
            return NotImplemented
        if self.users != other.users or self.items != other.items or self.shape != other.shape:
            return False
        a, b = self.matrix, other.matrix
        if not (
            np.array_equal(a.indptr, b.indptr)
            and np.array_equal(a.indices, b.indices)
            and np.array_equal(a.data, b.data)
        ):
            return False
        if (self.timestamps is None) != (other.timestamps is None):
            return False
        return self.timestamps is None or bool(np.array_equal(self.timestamps, other.timestamps))

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ views
    def to_csr(self) -> sp.csr_matrix:
        """Return the matrix itself (not a copy; do not modify it).

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_users, n_items), float32

        Examples
        --------
        >>> Interactions.from_arrays([1], [2]).to_csr().shape
        (1, 1)
        """
        return self.matrix

    def to_indices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Return ``(user_indices, item_indices, weights, timestamps)``, one entry per pair.

        Returns
        -------
        tuple of ndarray
            Rows, columns (int64), weights (float32) and timestamps (float64
            or None), each of shape (nnz,), in CSR order.

        Examples
        --------
        >>> rows, cols, w, t = Interactions.from_arrays([5, 5], ["x", "y"]).to_indices()
        >>> rows.tolist(), cols.tolist(), t is None
        ([0, 0], [0, 1], True)
        """
        m = self.matrix
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        return (
            rows,
            m.indices.astype(np.int64),
            m.data.copy(),
            (None if self.timestamps is None else self.timestamps.copy()),
        )

    def to_frame(self) -> Any:
        """Return a pandas DataFrame with ``user_id, item_id, weight[, timestamp]``.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            If pandas is not installed.

        Examples
        --------
        >>> Interactions.from_arrays(["a"], ["x"], [2.0]).to_frame().columns.tolist()
        ['user_id', 'item_id', 'weight']
        """
        import pandas as pd

        rows, cols, w, t = self.to_indices()
        out = {"user_id": self.users.ids[rows], "item_id": self.items.ids[cols], "weight": w}
        if t is not None:
            out["timestamp"] = t
        return pd.DataFrame(out)

    def select_entries(self, mask: Any) -> Interactions:
        """Keep the stored entries where ``mask`` is True, with the same vocabularies.

        Parameters
        ----------
        mask : array-like of bool, shape (nnz,)
            Aligned with the CSR order of :attr:`matrix` (and :meth:`to_indices`).

        Returns
        -------
        Interactions
            Same shape and vocabularies, fewer entries. Used by the splitters.

        Raises
        ------
        DataValidationError
            If ``mask`` is not a boolean array of length ``nnz``.

        Examples
        --------
        >>> X = Interactions.from_arrays(["a", "a", "b"], [1, 2, 1])
        >>> X.select_entries([True, False, True]).matrix.toarray().tolist()
        [[1.0, 0.0], [1.0, 0.0]]
        """
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.nnz,):
            raise DataValidationError(
                f"mask must be a boolean array of shape ({self.nnz},), "
                f"got {mask.dtype} {mask.shape}"
            )
        m = self.matrix
        # kept entries before each CSR offset; indexing it by indptr gives the new indptr
        # (np.add.reduceat per row fails on trailing empty rows and miscounts empty ones)
        kept_before = np.zeros(self.nnz + 1, dtype=np.int64)
        np.cumsum(mask, out=kept_before[1:])
        indptr = kept_before[m.indptr]
        sub = sp.csr_matrix(
            (m.data[mask], m.indices[mask], indptr), shape=m.shape, dtype=np.float32
        )
        t = None if self.timestamps is None else self.timestamps[mask]
        return Interactions(sub, self.users, self.items, t)

    def subset(self, users: Any = None, items: Any = None) -> Interactions:
        """Keep some users and/or items (row/column indices), re-indexing both vocabularies.

        Parameters
        ----------
        users : array-like of int or bool, optional
            Rows to keep (indices or a boolean mask of length ``n_users``).
        items : array-like of int or bool, optional
            Columns to keep.

        Returns
        -------
        Interactions
            A smaller matrix whose vocabularies hold only the kept ids, in the
            order given.

        Raises
        ------
        DataValidationError
            If an index is out of range or repeated, or a mask has the wrong length.

        Examples
        --------
        >>> X = Interactions.from_arrays(["a", "b", "c"], [1, 2, 2])
        >>> X.subset(users=[2, 0]).users.ids.tolist()
        ['c', 'a']
        """
        rows_u, cols_i, w, t = self.to_indices()
        user_sel = self._selection(users, self.n_users, "users")
        item_sel = self._selection(items, self.n_items, "items")
        umap = np.full(self.n_users, -1, dtype=np.int64)
        umap[user_sel] = np.arange(user_sel.size)
        imap = np.full(self.n_items, -1, dtype=np.int64)
        imap[item_sel] = np.arange(item_sel.size)
        r, c = umap[rows_u], imap[cols_i]
        keep = (r >= 0) & (c >= 0)
        return Interactions.from_indices(
            r[keep],
            c[keep],
            w[keep],
            None if t is None else t[keep],
            users=Vocabulary(self.users.ids[user_sel]),
            items=Vocabulary(self.items.ids[item_sel]),
        )

    def k_core(
        self, min_user_interactions: int = 5, min_item_interactions: int = 5
    ) -> Interactions:
        """Iteratively drop users and items with too few interactions.

        Repeats until every remaining user has at least
        ``min_user_interactions`` items and every remaining item at least
        ``min_item_interactions`` users (the classic k-core). Empty users and
        items are removed from the vocabularies.

        Parameters
        ----------
        min_user_interactions : int, default=5
        min_item_interactions : int, default=5

        Returns
        -------
        Interactions

        Raises
        ------
        DataValidationError
            If nothing survives the filter, or a threshold is not a
            non-negative int.

        Examples
        --------
        >>> X = Interactions.from_arrays([1, 1, 2, 3], [1, 2, 1, 1])
        >>> X.k_core(1, 2).shape
        (3, 1)
        """
        for name, value in (
            ("min_user_interactions", min_user_interactions),
            ("min_item_interactions", min_item_interactions),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise DataValidationError(f"{name} must be a non-negative int, got {value}")
        m = self.matrix
        user_keep = np.ones(self.n_users, dtype=bool)
        item_keep = np.ones(self.n_items, dtype=bool)
        rows = np.repeat(np.arange(self.n_users), np.diff(m.indptr))
        cols = m.indices
        while True:
            alive = user_keep[rows] & item_keep[cols]
            uc = np.bincount(rows[alive], minlength=self.n_users)
            ic = np.bincount(cols[alive], minlength=self.n_items)
            new_user = user_keep & (uc >= min_user_interactions)
            new_item = item_keep & (ic >= min_item_interactions)
            if np.array_equal(new_user, user_keep) and np.array_equal(new_item, item_keep):
                break
            user_keep, item_keep = new_user, new_item
        if not user_keep.any() or not item_keep.any():
            raise DataValidationError(
                f"k-core filter (users >= {min_user_interactions}, items >= "
                f"{min_item_interactions}) removed every interaction"
            )
        return self.subset(users=user_keep, items=item_keep)

    def binarize(self, threshold: float = 0.0) -> Interactions:
        """Return a copy whose weights are 1 where ``weight > threshold`` (others dropped).

        Parameters
        ----------
        threshold : float, default=0.0

        Returns
        -------
        Interactions
            Same vocabularies; timestamps of the kept entries.

        Examples
        --------
        >>> X = Interactions.from_arrays([1, 1], [1, 2], [4.0, 2.0])
        >>> X.binarize(3).matrix.toarray().tolist()
        [[1.0, 0.0]]
        """
        keep = self.matrix.data > threshold
        out = self.select_entries(keep)
        out.matrix.data[:] = 1.0
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write matrix, vocabularies and timestamps to one ``.npz`` file, atomically.

        Parameters
        ----------
        path : str or path-like

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "log.npz"
        >>> X = Interactions.from_arrays(["a"], ["x"], timestamps=[5.0])
        >>> X.save(p)
        >>> Interactions.load(p) == X
        True
        """
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(_FORMAT_VERSION),
            "indptr": self.matrix.indptr,
            "indices": self.matrix.indices,
            "data": self.matrix.data,
            "shape": np.array(self.shape, dtype=np.int64),
            "user_ids": self.users.ids,
            "item_ids": self.items.ids,
        }
        if self.timestamps is not None:
            arrays["timestamps"] = self.timestamps
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Interactions:
        """Read a file written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        Interactions

        Raises
        ------
        PersistenceError
            If the file is missing or not a saved Interactions.
        """
        arrays = load_arrays(path)
        try:
            version = int(arrays["format_version"])
            if version > _FORMAT_VERSION:
                raise PersistenceError(
                    f"{path}: saved with format version {version}; this avrec reads up to "
                    f"{_FORMAT_VERSION} (upgrade avrec)"
                )
            shape = tuple(int(x) for x in arrays["shape"])
            matrix = sp.csr_matrix(
                (arrays["data"], arrays["indices"], arrays["indptr"]), shape=shape
            )
            users, items = Vocabulary(arrays["user_ids"]), Vocabulary(arrays["item_ids"])
            return cls(matrix, users, items, arrays.get("timestamps"))
        except KeyError as exc:
            raise PersistenceError(f"{path}: not a saved Interactions (missing {exc})") from exc
        except (ValueError, TypeError) as exc:  # DataValidationError included
            raise PersistenceError(f"{path}: corrupt saved Interactions ({exc})") from exc

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _check_indices(indices: Any, n: int, name: str) -> np.ndarray:
        arr = np.asarray(indices)
        if arr.ndim != 1:
            raise DataValidationError(f"{name} must be 1-d, got shape {arr.shape}")
        if arr.size and arr.dtype.kind == "f":
            if not (np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))):
                raise DataValidationError(f"{name} must hold integers, got non-integer floats")
            arr = arr.astype(np.int64)
        elif arr.size and arr.dtype.kind not in "iu":
            raise DataValidationError(f"{name} must hold integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            bad = arr[(arr < 0) | (arr >= n)][0]
            raise DataValidationError(f"{name}: index {bad} is out of range [0, {n})")
        return arr

    @staticmethod
    def _vocab_for(ids: np.ndarray, vocab: Vocabulary | None, unknown: str) -> Vocabulary:
        if vocab is None:
            return Vocabulary.from_ids(ids)
        if not isinstance(vocab, Vocabulary):
            raise DataValidationError(f"expected a Vocabulary, got {type(vocab).__name__}")
        return vocab.extend(ids) if unknown == "extend" else vocab

    @staticmethod
    def _selection(sel: Any, n: int, name: str) -> np.ndarray:
        if sel is None:
            return np.arange(n, dtype=np.int64)
        arr = np.asarray(sel)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise DataValidationError(f"{name} mask must have shape ({n},), got {arr.shape}")
            return np.flatnonzero(arr)
        idx = Interactions._check_indices(arr.reshape(-1) if arr.ndim == 0 else arr, n, name)
        if np.unique(idx).size != idx.size:
            raise DataValidationError(f"{name} must not repeat an index")
        return idx
