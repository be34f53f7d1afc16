"""Catalogues as :class:`~avrec.features.FeatureExtractor` reads them: ids, media paths, text.

A catalogue is a mapping of item id to media path, a sequence of paths (the
paths are the ids), or a table (a pandas DataFrame, or a mapping of column
name to a column) with a ``path`` column, an optional ``item_id`` column and
any text columns (titles, descriptions, tags ...). Text per item comes from
chosen columns of a table or from an explicit mapping of item id to text.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from avrec.exceptions import DataValidationError

__all__ = ["catalogue_rows", "join_text", "text_sha256"]

#: Columns of a table catalogue.
ID_COLUMN, PATH_COLUMN = "item_id", "path"


def text_sha256(text: str) -> str:
    """SHA-256 of a text's UTF-8 bytes (the feature cache's key for text)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, (float, np.floating)) and math.isnan(value):
        return True
    if not isinstance(value, str):
        try:  # pandas.NA and friends
            import pandas

            return bool(pandas.isna(value)) if np.ndim(value) == 0 else False
        except (ImportError, TypeError, ValueError):
            return False
    return not value.strip()


def join_text(values: Sequence[Any]) -> str | None:
    """One item's text from several fields; None when every field is missing.

    Missing fields (None, NaN, empty or blank strings) are skipped; the others
    are stripped and joined with ``". "`` (a space after a field that ends in
    ``.``, ``!`` or ``?``).

    Parameters
    ----------
    values : sequence
        The item's fields, in order (strings; other values are formatted with ``str``).

    Returns
    -------
    str or None

    Examples
    --------
    >>> join_text(["Calm River 42", None, "A short clip in the ambient style."])
    'Calm River 42. A short clip in the ambient style.'
    >>> join_text(["", float("nan")]) is None
    True
    """
    parts = [str(v).strip() for v in values if not _is_missing(v)]
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out += (" " if out[-1] in ".!?" else ". ") + part
    return out


def _table(catalogue: Any) -> dict[str, list[Any]] | None:
    """The columns of a table catalogue, or None if ``catalogue`` is not a table."""
    if hasattr(catalogue, "columns") and hasattr(catalogue, "to_dict"):  # a DataFrame
        return {str(c): list(catalogue[c]) for c in catalogue.columns}
    if isinstance(catalogue, Mapping) and catalogue:
        columns = list(catalogue.values())
        if all(
            hasattr(c, "__len__") and not isinstance(c, (str, bytes, os.PathLike)) for c in columns
        ):
            table = {str(k): list(v) for k, v in catalogue.items()}
            if len({len(c) for c in table.values()}) != 1:
                raise DataValidationError(
                    "catalogue columns must have equal lengths, got "
                    f"{ {k: len(v) for k, v in table.items()} }"
                )
            return table
    return None


def catalogue_rows(
    catalogue: Any,
    *,
    text: Mapping[Any, Any] | Sequence[Any] | None = None,
    text_columns: Sequence[str] | None = None,
    need_paths: bool = True,
) -> tuple[list[Any], list[Any], list[str | None] | None]:
    """Item ids, media paths and texts of a catalogue, validated.

    Parameters
    ----------
    catalogue : mapping of item id to path, sequence of paths, or table
        A table is a pandas DataFrame or a mapping of column name to column:
        ``path`` (required when ``need_paths``), ``item_id`` (default: the
        paths) and the ``text_columns``.
    text : mapping of item id to str, or sequence of str, optional
        Each item's text (a sequence follows the catalogue order); an item
        left out, None or blank has no text.
    text_columns : sequence of str, optional
        Columns of a table catalogue joined into each item's text (see
        :func:`join_text`).
    need_paths : bool, default=True
        False when only text is embedded: a table may then lack ``path``.

    Returns
    -------
    ids : list
    paths : list of path-like (None where a text-only table has no path)
    texts : list of str or None, or None
        None when neither ``text`` nor ``text_columns`` was given.

    Raises
    ------
    DataValidationError
        If the catalogue is empty, malformed or has duplicate ids, a text
        column is absent, ``text`` does not fit the catalogue, or both
        ``text`` and ``text_columns`` are given.

    Examples
    --------
    >>> table = {"item_id": ["a", "b"], "path": ["a.mp4", "b.mp4"],
    ...          "title": ["Calm River", None], "tags": ["calm|ambient", ""]}
    >>> catalogue_rows(table, text_columns=["title", "tags"])
    (['a', 'b'], ['a.mp4', 'b.mp4'], ['Calm River. calm|ambient', None])
    """
    table = _table(catalogue)
    if text is not None and text_columns:
        raise DataValidationError("give the items' text either as text= or as text_columns")
    if table is not None:
        ids, paths = _table_ids_paths(table, need_paths)
    elif isinstance(catalogue, Mapping):
        ids, paths = list(catalogue.keys()), list(catalogue.values())
    elif isinstance(catalogue, Sequence) and not isinstance(catalogue, (str, bytes)):
        paths = list(catalogue)
        ids = [os.fspath(p) if isinstance(p, (str, os.PathLike)) else p for p in paths]
    else:
        raise DataValidationError(
            "catalogue must be a mapping of item id -> path, a sequence of paths or a table "
            f"(DataFrame or mapping of column -> values), got {type(catalogue).__name__}"
        )
    if not ids:
        raise DataValidationError("catalogue is empty")
    if len(set(ids)) != len(ids):
        raise DataValidationError("catalogue has duplicate item ids")
    for p in paths:
        if not isinstance(p, (str, os.PathLike)) and (need_paths or p is not None):
            raise DataValidationError(f"catalogue paths must be str or path-like, got {p!r}")
    texts = None
    if text_columns:
        texts = _column_texts(table, list(text_columns))
    elif text is not None:
        texts = _given_texts(text, ids)
    return ids, paths, texts


def _table_ids_paths(table: dict[str, list[Any]], need_paths: bool) -> tuple[list, list]:
    if PATH_COLUMN in table:
        paths = table[PATH_COLUMN]
    elif need_paths:
        raise DataValidationError(
            f"a table catalogue needs a {PATH_COLUMN!r} column of media files, got columns "
            f"{sorted(table)}"
        )
    else:
        paths = [None] * len(next(iter(table.values())))
    if ID_COLUMN in table:
        ids = table[ID_COLUMN]
        ids = [i.item() if isinstance(i, np.generic) else i for i in ids]
    elif PATH_COLUMN in table:
        ids = [os.fspath(p) if isinstance(p, (str, os.PathLike)) else p for p in paths]
    else:
        raise DataValidationError(
            f"a table catalogue needs an {ID_COLUMN!r} or a {PATH_COLUMN!r} column, got "
            f"columns {sorted(table)}"
        )
    return list(ids), list(paths)


def _column_texts(table: dict[str, list[Any]] | None, columns: list[str]) -> list[str | None]:
    if table is None:
        raise DataValidationError(
            "text_columns needs a table catalogue (a DataFrame or a mapping of column -> "
            "values); with a mapping of id -> path, pass text= instead"
        )
    absent = [c for c in columns if c not in table]
    if absent:
        raise DataValidationError(
            f"text_columns {absent} are not columns of the catalogue ({sorted(table)})"
        )
    return [join_text(row) for row in zip(*(table[c] for c in columns), strict=True)]


def _given_texts(text: Any, ids: list[Any]) -> list[str | None]:
    if isinstance(text, Mapping):
        known = set(ids)
        if text and not known.intersection(text):
            shown = list(text)[:3]
            raise DataValidationError(
                f"text has no entry for any catalogue item (e.g. keys {shown}, ids {ids[:3]})"
            )
        values = [text.get(i) for i in ids]
    elif isinstance(text, (str, bytes)) or not isinstance(text, Sequence | np.ndarray):
        raise DataValidationError(
            "text must be a mapping of item id -> str or a sequence of str in catalogue "
            f"order, got {type(text).__name__}"
        )
    else:
        values = list(text)
        if len(values) != len(ids):
            raise DataValidationError(
                f"text has {len(values)} entries but the catalogue {len(ids)} items"
            )
    for item_id, value in zip(ids, values, strict=True):
        if not (_is_missing(value) or isinstance(value, str)):
            raise DataValidationError(
                f"text for item {item_id!r} must be a str or None, got {type(value).__name__}"
            )
    return [join_text([v]) for v in values]
