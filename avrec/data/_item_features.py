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
_PRESENT = "present:"


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
    present : mapping of str to array-like of bool, shape (n_items,), optional
        Which items *have* a modality (an audio-only item has no video, an
        item without a description no text). Modalities left out are present
        for every item. The rows of absent items are stored as zeros, whatever
        the values given, so that :meth:`concat` and models that ignore the
        mask see a neutral row; models with learned fusion mask them out
        exactly (:meth:`presence`).

    Attributes
    ----------
    items : Vocabulary
        Item ids of the rows.

    Raises
    ------
    DataValidationError
        If there is no modality, row counts differ, a matrix is not 2-d or
        holds NaN/inf, ``items`` has the wrong length, or ``present`` names an
        unknown modality or is not one bool per item.

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

    An item without a modality:

    >>> feats = ItemFeatures({"audio": np.ones((2, 2)), "video": np.ones((2, 3))},
    ...                      present={"video": [True, False]})
    >>> feats["video"].tolist()
    [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]
    >>> feats.presence().tolist()
    [[True, True], [True, False]]
    """

    __slots__ = ("_data", "_present", "items")

    def __init__(
        self,
        modalities: Mapping[str, Any],
        items: Any = None,
        present: Mapping[str, Any] | None = None,
    ) -> None:
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
        masks = _check_present(present, data, n_rows)
        for name, mask in masks.items():
            if not mask.all():
                arr = data[name].copy()
                arr[~mask] = 0.0
                arr.setflags(write=False)
                data[name] = arr
        self._data = data
        self._present = masks
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
            and all(np.array_equal(self.mask(k), other.mask(k)) for k in self)
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

    @property
    def has_missing(self) -> bool:
        """bool: whether some item lacks some modality (see ``present``)."""
        return bool(self._present)

    def mask(self, modality: str) -> np.ndarray:
        """Return which items have ``modality``.

        Parameters
        ----------
        modality : str

        Returns
        -------
        ndarray of shape (n_items,), dtype bool
            A fresh array; all True unless the features were built with
            ``present`` for this modality (or rows were added by
            ``align(missing="zero")``).

        Examples
        --------
        >>> ItemFeatures({"text": np.ones((3, 2))}, present={"text": [1, 0, 1]}).mask("text")
        array([ True, False,  True])
        """
        self[modality]  # raises KeyError naming the modalities
        if modality in self._present:
            return self._present[modality].copy()
        return np.ones(self.n_items, dtype=bool)

    def presence(self, modalities: Sequence[str] | None = None) -> np.ndarray:
        """Return the presence mask of several modalities as one matrix.

        Parameters
        ----------
        modalities : sequence of str, optional
            Which modalities, in which order (the columns). Default: all.

        Returns
        -------
        ndarray of shape (n_items, n_modalities), dtype bool
            ``out[i, m]`` is True when item ``i`` has modality ``m``.

        Examples
        --------
        >>> f = ItemFeatures({"a": np.ones((2, 1)), "b": np.ones((2, 1))},
        ...                  present={"b": [False, True]})
        >>> f.presence(["b", "a"]).tolist()
        [[False, True], [True, True]]
        """
        names = list(self._data) if modalities is None else list(modalities)
        if not names:
            return np.ones((self.n_items, 0), dtype=bool)
        return np.column_stack([self.mask(name) for name in names])

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
        return ItemFeatures(
            {m: self[m] for m in modalities},
            self.items,
            present={m: self._present[m] for m in modalities if m in self._present},
        )

    def with_modality(self, name: str, values: Any, present: Any = None) -> ItemFeatures:
        """Return a copy with modality ``name`` added or replaced.

        Parameters
        ----------
        name : str
        values : array-like of shape (n_items, d)
        present : array-like of bool, shape (n_items,), optional
            Which items have it. Default: all of them.

        Returns
        -------
        ItemFeatures
        """
        data = dict(self._data)
        data[name] = values
        masks = {k: v for k, v in self._present.items() if k != name}
        if present is not None:
            masks[name] = present
        return ItemFeatures(data, self.items, present=masks)

    def align(
        self, items: Vocabulary, *, missing: Literal["raise", "zero"] = "raise"
    ) -> ItemFeatures:
        """Reorder rows to follow another item vocabulary (e.g. ``Interactions.items``).

        Parameters
        ----------
        items : Vocabulary
            Target item order.
        missing : {"raise", "zero"}, default="raise"
            For target items without features: raise, or use a zero row
            (marked absent in every modality's :meth:`mask`).

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
        data, masks = {}, {}
        source = np.where(absent, 0, rows)
        for name, arr in self._data.items():
            out = arr[source]
            out[absent] = 0.0
            data[name] = out
            mask = self.mask(name)[source] & ~absent
            if not mask.all():
                masks[name] = mask
        return ItemFeatures(data, items, present=masks)

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
        arrays.update({f"{_PRESENT}{k}": v for k, v in self._present.items()})
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
            present = {n: arrays[f"{_PRESENT}{n}"] for n in order if f"{_PRESENT}{n}" in arrays}
            items = Vocabulary(arrays["item_ids"])
        except (KeyError, ValueError) as exc:
            raise PersistenceError(f"{path}: not saved ItemFeatures ({exc})") from exc
        return cls(data, items, present=present)


def _check_present(
    present: Mapping[str, Any] | None, data: Mapping[str, np.ndarray], n_rows: int | None
) -> dict[str, np.ndarray]:
    """Validate ``present``; return read-only bool masks of the modalities that miss items."""
    if present is None:
        return {}
    if not isinstance(present, Mapping):
        raise DataValidationError(
            "present must be a mapping of modality name -> bool array, got "
            f"{type(present).__name__}"
        )
    masks = {}
    for name, value in present.items():
        if name not in data:
            raise DataValidationError(
                f"present names modality {name!r}, but the modalities are {list(data)}"
            )
        arr = np.asarray(value)
        if arr.shape != (n_rows,) or not (
            arr.dtype == bool or (arr.dtype.kind in "iu" and np.isin(arr, (0, 1)).all())
        ):
            raise DataValidationError(
                f"present[{name!r}] must be {n_rows} bools (one per item), "
                f"got shape {arr.shape} dtype {arr.dtype}"
            )
        mask = arr.astype(bool)
        if not mask.all():
            mask.setflags(write=False)
            masks[name] = mask
    return masks
