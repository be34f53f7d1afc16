"""Mapping between external ids (user or item ids as they appear in logs) and row indices."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np

from avrec.exceptions import DataValidationError, PersistenceError, UnknownIdError
from avrec.utils import read_json, write_json

__all__ = ["Vocabulary"]


def as_id_array(ids: Any, name: str = "ids") -> np.ndarray:
    """Convert external ids to a 1-d int64 or unicode array.

    Integers stay integers, integral floats become int64, everything else
    (strings, mixed objects) becomes strings. ``None``/NaN ids are refused.
    """
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataValidationError(f"{name} must be 1-d, got shape {arr.shape}")
    kind = arr.dtype.kind
    if kind in "iu":
        return arr.astype(np.int64, copy=False)
    if kind == "b":
        raise DataValidationError(f"{name} must be integers or strings, got booleans")
    if kind == "f":
        if not np.all(np.isfinite(arr)):
            raise DataValidationError(f"{name} contains NaN or infinite ids")
        if not np.all(arr == np.round(arr)):
            raise DataValidationError(f"{name} contains non-integer float ids")
        return arr.astype(np.int64)
    if kind == "U":
        return arr
    if kind in "OS":
        if kind == "O":
            missing = np.array([x is None or (isinstance(x, float) and x != x) for x in arr])
            if missing.any():
                raise DataValidationError(
                    f"{name} contains missing ids (None/NaN) at position {int(np.argmax(missing))}"
                )
            if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in arr):
                return arr.astype(np.int64)
        return arr.astype(str)
    raise DataValidationError(f"{name} must be integers or strings, got dtype {arr.dtype}")


# A dense id -> index table is used when the id range spans at most this many slots per id
# (plus the slack): 8 bytes per slot, so at worst ~16x the memory of the ids themselves.
_DENSE_FACTOR = 16
_DENSE_SLACK = 1 << 16


def _dense_presence(arr: np.ndarray) -> np.ndarray | None:
    """Boolean presence over ``[min, max]`` of integer ids when that range is compact."""
    if arr.dtype.kind != "i" or arr.size == 0:
        return None
    low, high = int(arr.min()), int(arr.max())
    span = high - low + 1
    if span > _DENSE_FACTOR * arr.size + _DENSE_SLACK or span > 1 << 26:
        return None
    present = np.zeros(span, dtype=bool)
    present[arr - low] = True
    return present


class Vocabulary:
    """An ordered set of external ids, each mapped to a row index in ``[0, n)``.

    Lookups are vectorised (binary search over a sorted copy), so mapping a
    million ids costs a few milliseconds. Ids are integers or strings; a
    vocabulary holds one kind. The order is stable: index ``i`` is always
    ``ids[i]``, and :meth:`extend` appends.

    Parameters
    ----------
    ids : array-like of shape (n,)
        Distinct external ids, in index order.

    Attributes
    ----------
    ids : ndarray of shape (n,)
        The ids in index order (int64 or unicode).

    Raises
    ------
    DataValidationError
        If ``ids`` has duplicates or missing values.

    See Also
    --------
    Vocabulary.from_ids : build a vocabulary from ids with repeats.

    Notes
    -----
    String ids are stored as a NumPy unicode array, which cannot represent
    trailing NUL characters: ``"a\\x00"`` and ``"a"`` are the same id. Integral
    floats (``1.0``) become integers; other mixed-type ids become strings, so
    ``1`` and ``"1"`` collide.

    Examples
    --------
    >>> vocab = Vocabulary.from_ids(["b", "a", "b", "c"])
    >>> vocab.ids.tolist()
    ['a', 'b', 'c']
    >>> vocab.index(["c", "zzz", "a"]).tolist()
    [2, -1, 0]
    >>> vocab.to_ids([1, 0]).tolist()
    ['b', 'a']
    """

    __slots__ = ("_ids", "_sorted", "_sorter", "_table")

    def __init__(self, ids: Any) -> None:
        # Copy: the stored ids are made read-only, which must not leak to the caller's array.
        arr = np.array(as_id_array(ids), copy=True)
        sorter = np.argsort(arr, kind="stable")
        sorted_ids = arr[sorter]
        if sorted_ids.size > 1:
            dup = sorted_ids[1:] == sorted_ids[:-1]
            if dup.any():
                first = sorted_ids[1:][dup][0].item()
                raise DataValidationError(f"ids must be distinct; {first!r} appears more than once")
        self._ids = arr
        self._ids.setflags(write=False)
        self._sorter = sorter
        self._sorted = sorted_ids
        self._table: np.ndarray | None = None  # dense id -> index table, built on demand

    @classmethod
    def from_ids(cls, ids: Any, *, sort: bool = True) -> Vocabulary:
        """Build a vocabulary from ids that may repeat.

        Parameters
        ----------
        ids : array-like of shape (n,)
            External ids, repeats allowed.
        sort : bool, default=True
            Order the vocabulary by id (so it does not depend on row order in
            the log). With ``False`` ids keep the order of first appearance.

        Returns
        -------
        Vocabulary

        Raises
        ------
        DataValidationError
            If an id is missing (None/NaN) or of an unsupported type.

        Examples
        --------
        >>> Vocabulary.from_ids([3, 1, 3], sort=False).ids.tolist()
        [3, 1]
        """
        arr = as_id_array(ids)
        if sort:
            present = _dense_presence(arr)
            if present is not None:  # compact integer ids: O(n), no sort or hash
                return cls(np.flatnonzero(present) + arr.min())
            return cls(np.unique(arr))
        _, first = np.unique(arr, return_index=True)
        return cls(arr[np.sort(first)])

    @property
    def ids(self) -> np.ndarray:
        """ndarray of shape (n,): the ids in index order (read-only)."""
        return self._ids

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __iter__(self) -> Iterator[Any]:
        return iter(self._ids.tolist())

    def __contains__(self, item: Any) -> bool:
        try:
            return bool(self.index([item])[0] >= 0)
        except DataValidationError:
            return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (
            len(self) == len(other)
            and self._ids.dtype.kind == other._ids.dtype.kind
            and bool(np.array_equal(self._ids, other._ids))
        )

    def __hash__(self) -> int:  # pragma: no cover - vocabularies are not dict keys
        raise TypeError("Vocabulary is not hashable")

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3].tolist())
        more = ", ..." if len(self) > 3 else ""
        return f"Vocabulary(n={len(self)}, ids=[{head}{more}])"

    def index(self, ids: Any, *, unknown: Literal["ignore", "raise"] = "ignore") -> np.ndarray:
        """Map external ids to row indices.

        Parameters
        ----------
        ids : array-like of shape (n,)
            External ids to look up.
        unknown : {"ignore", "raise"}, default="ignore"
            ``"ignore"`` maps an unknown id to ``-1``; ``"raise"`` raises
            :class:`~avrec.exceptions.UnknownIdError` naming the first one.

        Returns
        -------
        ndarray of shape (n,), dtype int64

        Raises
        ------
        UnknownIdError
            With ``unknown="raise"``, if an id is not in the vocabulary.
        DataValidationError
            If ``ids`` is not 1-d or holds missing ids, or ``unknown`` is invalid.

        Examples
        --------
        >>> Vocabulary([10, 20]).index([20, 30]).tolist()
        [1, -1]
        """
        if unknown not in ("ignore", "raise"):
            raise DataValidationError(f"unknown must be 'ignore' or 'raise', got {unknown!r}")
        query = as_id_array(ids)
        kinds_differ = (query.dtype.kind == "U") != (self._ids.dtype.kind == "U")
        if len(self) == 0 or query.size == 0 or kinds_differ:
            out = np.full(query.shape[0], -1, dtype=np.int64)
        elif query.dtype.kind != "U" and self._dense_table() is not None:
            # compact integer ids (MovieLens-like): one gather per query instead of a search
            table, low, high = self._dense_table(), int(self._sorted[0]), int(self._sorted[-1])
            inside = (query >= low) & (query <= high)  # compare first: no overflow in query - low
            out = np.full(query.shape[0], -1, dtype=np.int64)
            out[inside] = table[query[inside] - low]
        else:
            pos = np.searchsorted(self._sorted, query)
            pos_clipped = np.minimum(pos, len(self) - 1)
            found = self._sorted[pos_clipped] == query
            out = np.where(found, self._sorter[pos_clipped], -1).astype(np.int64)
        if unknown == "raise" and (out < 0).any():
            first = query[int(np.argmax(out < 0))].item()
            raise UnknownIdError(f"id {first!r} is not in the vocabulary ({len(self)} ids)")
        return out

    def _dense_table(self) -> np.ndarray | None:
        """``table[id - min_id] = index`` (-1 for gaps) when integer ids are compact."""
        if self._table is None and self._ids.dtype.kind == "i" and len(self):
            span = int(self._sorted[-1]) - int(self._sorted[0]) + 1
            if span <= _DENSE_FACTOR * len(self) + _DENSE_SLACK:
                table = np.full(span, -1, dtype=np.int64)
                table[self._sorted - self._sorted[0]] = self._sorter
                self._table = table
        return self._table

    def to_ids(self, indices: Any) -> np.ndarray:
        """Map row indices back to external ids.

        Parameters
        ----------
        indices : array-like of int, shape (n,)

        Returns
        -------
        ndarray of shape (n,)

        Raises
        ------
        DataValidationError
            If an index is outside ``[0, n)`` (``-1`` padding included).

        Examples
        --------
        >>> Vocabulary(["a", "b"]).to_ids([1, 1, 0]).tolist()
        ['b', 'b', 'a']
        """
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise DataValidationError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise DataValidationError(
                f"indices must lie in [0, {len(self)}), got values in [{idx.min()}, {idx.max()}]"
            )
        return self._ids[idx]

    def extend(self, ids: Any) -> Vocabulary:
        """Return a new vocabulary with the unseen ``ids`` appended (first-appearance order).

        Existing ids keep their indices, so matrices built on ``self`` stay valid.

        Parameters
        ----------
        ids : array-like of shape (n,)

        Returns
        -------
        Vocabulary
            ``self`` when every id is already known.

        Raises
        ------
        DataValidationError
            If the new ids are of another kind (strings vs integers).

        Examples
        --------
        >>> Vocabulary(["a"]).extend(["c", "a", "b"]).ids.tolist()
        ['a', 'c', 'b']
        """
        arr = as_id_array(ids)
        if len(self) and arr.size and (arr.dtype.kind == "U") != (self._ids.dtype.kind == "U"):
            raise DataValidationError(
                f"cannot extend a vocabulary of {self._ids.dtype} ids with {arr.dtype} ids"
            )
        new = arr[self.index(arr) < 0]
        if new.size == 0:
            return self
        new = Vocabulary.from_ids(new, sort=False).ids
        return Vocabulary(np.concatenate([self._ids, new]) if len(self) else new)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serialisable description.

        Returns
        -------
        dict
            ``{"kind": "int" | "str", "ids": [...]}``.

        Examples
        --------
        >>> Vocabulary([3, 1]).to_json()
        {'kind': 'int', 'ids': [3, 1]}
        """
        kind = "str" if self._ids.dtype.kind == "U" else "int"
        return {"kind": kind, "ids": self._ids.tolist()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_json`.

        Parameters
        ----------
        obj : dict
            As written by :meth:`to_json`.

        Returns
        -------
        Vocabulary

        Raises
        ------
        PersistenceError
            If ``obj`` is not a saved vocabulary.

        Examples
        --------
        >>> Vocabulary.from_json({"kind": "str", "ids": ["x", "y"]}).index(["y"]).tolist()
        [1]
        """
        try:
            kind, ids = obj["kind"], obj["ids"]
        except (KeyError, TypeError) as exc:
            raise PersistenceError(f"not a saved Vocabulary: missing {exc}") from exc
        if kind not in ("int", "str"):
            raise PersistenceError(
                f"not a saved Vocabulary: kind must be 'int' or 'str', got {kind!r}"
            )
        dtype = np.int64 if kind == "int" else str
        try:
            arr = np.asarray(ids, dtype=dtype) if len(ids) else np.zeros(0, dtype=dtype)
            return cls(arr)
        except (TypeError, ValueError, OverflowError) as exc:
            raise PersistenceError(f"not a saved Vocabulary: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary to a JSON file atomically.

        Parameters
        ----------
        path : str or path-like

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "users.json"
        >>> Vocabulary(["u1", "u2"]).save(p)
        >>> Vocabulary.load(p) == Vocabulary(["u1", "u2"])
        True
        """
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        Vocabulary

        Raises
        ------
        PersistenceError
            If the file is missing or does not hold a saved vocabulary.
        """
        return cls.from_json(read_json(path))

    def to_arrays(self) -> np.ndarray:
        """Return a writable copy of the ids (for ``.npz`` storage).

        Returns
        -------
        ndarray of shape (n,)

        Examples
        --------
        >>> Vocabulary(["a"]).to_arrays().tolist()
        ['a']
        """
        return self._ids.copy()
