"""Item side information: named modalities aligned to the item vocabulary."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from avrec.data._vocabulary import Vocabulary
from avrec.exceptions import DataValidationError, PersistenceError
from avrec.utils import load_arrays, save_arrays

__all__ = ["ItemFeatures"]

_PREFIX = "modality:"


class ItemFeatures(Mapping[str, np.ndarray]):
    """Ordered modality name -> float32 matrix ``(n_items, d)``, rows aligned to item ids.

    The shared currency between feature extraction and content-aware models:
    ``avrec.features`` produces it, recommenders take it as ``item_features=``.
    Behaves as a read-only mapping from modality name to array.

    Parameters
    ----------
    modalities : mapping of str to array-like of shape (n_items, d_m)
        One matrix per modality (``"audio"``, ``"video"``, ``"text"`` ...), in
        the order given. All must have the same number of rows and finite values.
    items : Vocabulary or array-like of shape (n_items,), optional
        The item id of each row. Without it, rows are items ``0..n_items-1``.

    Attributes
    ----------
    items : Vocabulary
        Item ids of the rows.

    Raises
    ------
    DataValidationError
        If there is no modality, row counts differ, a matrix is not 2-d or
        holds NaN/inf, or ``items`` has the wrong length.

    Examples
    --------
    >>> feats = ItemFeatures({"audio": np.ones((3, 2)), "video": np.zeros((3, 4))},
    ...                      items=["a", "b", "c"])
    >>> feats
    ItemFeatures(n_items=3, audio=2, video=4)
    >>> feats.concat().shape
    (3, 6)
    >>> feats.align(Vocabulary(["c", "a"]))["audio"].shape
    (2, 2)
    """

    __slots__ = ("_data", "items")

    def __init__(self, modalities: Mapping[str, Any], items: Any = None) -> None:
        if not isinstance(modalities, Mapping) or not modalities:
            raise DataValidationError("modalities must be a non-empty mapping of name -> array")
        data: dict[str, np.ndarray] = {}
        n_rows = None
        for name, value in modalities.items():
            if not isinstance(name, str) or not name or ":" in name:
                raise DataValidationError(
                    f"modality names must be non-empty strings without ':', got {name!r}"
                )
            arr = np.asarray(value)
            if arr.ndim != 2:
                raise DataValidationError(
                    f"modality {name!r} must be 2-d (n_items, d), got shape {arr.shape}"
                )
            if arr.dtype.kind not in "biuf" or not np.all(np.isfinite(arr)):
                raise DataValidationError(f"modality {name!r} must hold finite numbers")
            if n_rows is not None and arr.shape[0] != n_rows:
                raise DataValidationError(
                    f"modality {name!r} has {arr.shape[0]} rows, expected {n_rows}"
                )
            n_rows = arr.shape[0]
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            arr.setflags(write=False)
            data[name] = arr
        if items is None:
            items = Vocabulary(np.arange(n_rows))
        elif not isinstance(items, Vocabulary):
            items = Vocabulary(items)
        if len(items) != n_rows:
            raise DataValidationError(
                f"items has {len(items)} ids but the features have {n_rows} rows"
            )
        self._data = data
        self.items = items

    # mapping protocol
    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._data[name]
        except KeyError:
            raise KeyError(f"no modality {name!r}; modalities are {list(self._data)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        dims = ", ".join(f"{k}={v.shape[1]}" for k, v in self._data.items())
        return f"ItemFeatures(n_items={self.n_items}, {dims})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ItemFeatures):
            return NotImplemented
        return (
            list(self) == list(other)
            and self.items == other.items
            and all(np.array_equal(self[k], other[k]) for k in self)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def n_items(self) -> int:
        """int: number of rows."""
        return len(self.items)

    @property
    def modalities(self) -> list[str]:
        """list of str: modality names in order."""
        return list(self._data)

    @property
    def dims(self) -> dict[str, int]:
        """dict of str to int: the width of each modality."""
        return {k: v.shape[1] for k, v in self._data.items()}

    def concat(
        self,
        modalities: Sequence[str] | None = None,
        *,
        normalize: Literal["l2"] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> np.ndarray:
        """Concatenate modalities column-wise into one ``(n_items, sum d)`` matrix.

        Parameters
        ----------
        modalities : sequence of str, optional
            Which modalities, in which order. Default: all.
        normalize : {"l2"}, optional
            L2-normalise each modality's rows before concatenating, so that
            wide modalities do not dominate cosine similarities.
        weights : mapping of str to float, optional
            Multiply each modality block by a weight (after normalising).

        Returns
        -------
        ndarray of shape (n_items, sum of d), dtype float32
        """
        names = list(self._data) if modalities is None else list(modalities)
        blocks = []
        for name in names:
            block = self[name]
            if normalize == "l2":
                norms = np.linalg.norm(block, axis=1, keepdims=True)
                block = block / np.where(norms > 0, norms, 1.0)
            elif normalize is not None:
                raise DataValidationError(f"normalize must be None or 'l2', got {normalize!r}")
            if weights is not None:
                block = block * np.float32(weights.get(name, 1.0))
            blocks.append(block)
        return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32)

    def select(self, modalities: Sequence[str]) -> ItemFeatures:
        """Return the features restricted to some modalities.

        Parameters
        ----------
        modalities : sequence of str

        Returns
        -------
        ItemFeatures
        """
        return ItemFeatures({m: self[m] for m in modalities}, self.items)

    def with_modality(self, name: str, values: Any) -> ItemFeatures:
        """Return a copy with modality ``name`` added or replaced.

        Parameters
        ----------
        name : str
        values : array-like of shape (n_items, d)

        Returns
        -------
        ItemFeatures
        """
        data = dict(self._data)
        data[name] = values
        return ItemFeatures(data, self.items)

    def align(
        self, items: Vocabulary, *, missing: Literal["raise", "zero"] = "raise"
    ) -> ItemFeatures:
        """Reorder rows to follow another item vocabulary (e.g. ``Interactions.items``).

        Parameters
        ----------
        items : Vocabulary
            Target item order.
        missing : {"raise", "zero"}, default="raise"
            For target items without features: raise, or use a zero row.

        Returns
        -------
        ItemFeatures
            With ``len(items)`` rows, row ``i`` describing ``items.ids[i]``.

        Raises
        ------
        DataValidationError
            If an item has no features and ``missing="raise"``.
        """
        rows = self.items.index(items.ids)
        absent = rows < 0
        if absent.any() and missing == "raise":
            example = items.ids[absent].tolist()[0]
            raise DataValidationError(
                f"{int(absent.sum())} items have no features, e.g. {example!r}; "
                "pass missing='zero' to use zero rows"
            )
        data = {}
        for name, arr in self._data.items():
            out = arr[np.where(absent, 0, rows)]
            out[absent] = 0.0
            data[name] = out
        return ItemFeatures(data, items)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write all modalities and item ids to one ``.npz`` file atomically (no pickle).

        Parameters
        ----------
        path : str or path-like

        Examples
        --------
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "features.npz"
        >>> f = ItemFeatures({"audio": np.eye(2)})
        >>> f.save(p)
        >>> ItemFeatures.load(p) == f
        True
        """
        arrays = {f"{_PREFIX}{k}": v for k, v in self._data.items()}
        arrays["item_ids"] = self.items.ids
        arrays["order"] = np.array(json.dumps(list(self._data)))
        save_arrays(path, arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ItemFeatures:
        """Read features written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        ItemFeatures

        Raises
        ------
        PersistenceError
            If the file is missing or not saved ItemFeatures.
        """
        arrays = load_arrays(path)
        try:
            order = json.loads(str(arrays["order"]))
            data = {name: arrays[f"{_PREFIX}{name}"] for name in order}
            items = Vocabulary(arrays["item_ids"])
        except (KeyError, ValueError) as exc:
            raise PersistenceError(f"{path}: not saved ItemFeatures ({exc})") from exc
        return cls(data, items)
