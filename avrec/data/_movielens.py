"""Readers for the public MovieLens rating files (local copies only; nothing is downloaded)."""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from avrec.data._interactions import Interactions
from avrec.exceptions import DataValidationError

__all__ = ["MOVIELENS_URL", "load_movielens"]

logger = logging.getLogger(__name__)

MOVIELENS_URL = "https://grouplens.org/datasets/movielens/"
"""str: where the MovieLens datasets can be obtained (GroupLens Research)."""

_ZIP_URL = "https://files.grouplens.org/datasets/movielens/{}.zip"

# variant -> (ratings file name, layout, folder names the zip archives unpack to)
_VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "100k": ("u.data", "tab", ("ml-100k",)),
    "1m": ("ratings.dat", "colons", ("ml-1m",)),
    "10m": ("ratings.dat", "colons", ("ml-10M100K", "ml-10m")),
    "20m": ("ratings.csv", "csv", ("ml-20m",)),
    "25m": ("ratings.csv", "csv", ("ml-25m",)),
    "32m": ("ratings.csv", "csv", ("ml-32m",)),
    "latest": ("ratings.csv", "csv", ("ml-latest", "ml-latest-small")),
}
_LAYOUT_BY_NAME = {"u.data": "tab", "ratings.dat": "colons", "ratings.csv": "csv"}
_LAYOUT_BY_SUFFIX = {".data": "tab", ".tsv": "tab", ".dat": "colons", ".csv": "csv"}
_CSV_COLUMNS = ("userId", "movieId", "rating", "timestamp")

MovieLensVariant = Literal["100k", "1m", "10m", "20m", "25m", "32m", "latest"]


def load_movielens(
    path: str | os.PathLike[str],
    variant: MovieLensVariant | None = None,
    *,
    min_rating: float | None = None,
    binary: bool = False,
) -> Interactions:
    """Read a MovieLens ratings file into :class:`~avrec.data.Interactions`.

    Reads the local, unzipped files published by GroupLens; nothing is
    downloaded. Three layouts exist and are recognised by file name:

    * ``u.data`` (ml-100k): tab-separated ``user item rating timestamp``, no header;
    * ``ratings.dat`` (ml-1m, ml-10m): ``user::item::rating::timestamp``, no header;
    * ``ratings.csv`` (ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small): header
      ``userId,movieId,rating,timestamp``.

    Parsing is vectorised (pandas' C parser when pandas is installed, else
    :func:`numpy.loadtxt`); the ``::`` separator is read as ``:`` with the empty
    fields in between skipped, so no row-by-row Python parsing happens.

    Parameters
    ----------
    path : str or path-like
        The ratings file itself, the dataset folder holding it (``ml-1m/``),
        or a folder holding the dataset folder.
    variant : {"100k", "1m", "10m", "20m", "25m", "32m", "latest"}, optional
        Which dataset to look for in a folder, or how to parse a file whose
        name is not one of the three above. Detected from the file name when
        omitted.
    min_rating : float, optional
        Keep only ratings ``>= min_rating`` (e.g. ``4`` for "liked").
    binary : bool, default=False
        Set every kept weight to 1 instead of the rating.

    Returns
    -------
    Interactions
        Shape ``(n_users, n_items)``: users and movies that have at least one
        kept rating, vocabularies sorted by MovieLens id, ratings (or ones) as
        float32 weights, and the Unix timestamps of the ratings.

    Raises
    ------
    FileNotFoundError
        If ``path`` or the ratings file in it does not exist; the message says
        where to obtain the data (https://grouplens.org/datasets/movielens/).
    DataValidationError
        If ``variant`` is unknown, the file cannot be parsed in its layout, is
        empty, or ``min_rating`` leaves nothing.

    See Also
    --------
    Interactions.from_csv : any other delimited log with a header row.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "ml-1m"
    >>> folder.mkdir()
    >>> _ = (folder / "ratings.dat").write_text("1::1193::5::978300760\\n2::661::3::978302109\\n")
    >>> X = load_movielens(folder)
    >>> X.shape, X.matrix.data.tolist(), X.timestamps.tolist()
    ((2, 2), [5.0, 3.0], [978300760.0, 978302109.0])
    """
    if variant is not None and variant not in _VARIANTS:
        raise DataValidationError(
            f"variant must be one of {sorted(_VARIANTS)} or None, got {variant!r}"
        )
    file, layout = _resolve(Path(path), variant)
    start = time.perf_counter()
    users, items, ratings, timestamps = _parse(file, layout)
    if users.size == 0:
        raise DataValidationError(f"{file}: the file holds no ratings")
    X = Interactions.from_arrays(
        users, items, ratings, timestamps, min_rating=min_rating, duplicates="last"
    )
    if binary:
        X.matrix.data[:] = 1.0  # X is ours alone: nothing else holds its matrix yet
    logger.info(
        "read %d ratings (%d users, %d items) from %s in %.2f s",
        X.nnz,
        X.n_users,
        X.n_items,
        file,
        time.perf_counter() - start,
    )
    return X


def _not_found(what: str, variant: str | None) -> FileNotFoundError:
    folders = _VARIANTS[variant][2] if variant else ("ml-1m",)
    return FileNotFoundError(
        f"{what}. MovieLens is not bundled with avrec and is never downloaded: obtain it from "
        f"{MOVIELENS_URL} (e.g. {_ZIP_URL.format(folders[0])}), unzip it and pass the folder "
        "or its ratings file."
    )


def _resolve(path: Path, variant: str | None) -> tuple[Path, str]:
    """Find the ratings file under ``path`` and the layout it is written in."""
    if path.is_file():
        layout = _LAYOUT_BY_NAME.get(path.name)
        if layout is None and variant is not None:
            layout = _VARIANTS[variant][1]
        if layout is None:
            layout = _LAYOUT_BY_SUFFIX.get(path.suffix.lower())
        if layout is None:
            raise DataValidationError(
                f"cannot tell the MovieLens layout of {path.name!r} from its name; pass "
                f"variant= (one of {sorted(_VARIANTS)})"
            )
        return path, layout
    if not path.is_dir():
        raise _not_found(f"MovieLens data not found: {path} does not exist", variant)
    variants = [variant] if variant else list(_VARIANTS)
    names = list(dict.fromkeys(_VARIANTS[v][0] for v in variants))
    subfolders = list(dict.fromkeys(f for v in variants for f in _VARIANTS[v][2]))
    for folder in (path, *(path / sub for sub in subfolders)):
        for name in names:
            if (folder / name).is_file():
                return folder / name, _LAYOUT_BY_NAME[name]
    raise _not_found(f"no MovieLens ratings file ({', '.join(names)}) in {path}", variant)


def _parse(file: Path, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(users, items, ratings, timestamps)`` arrays of one ratings file."""
    if file.stat().st_size == 0:
        raise DataValidationError(f"{file}: the file is empty")
    if layout == "csv":
        with open(file, encoding="utf-8") as fh:
            header = [c.strip() for c in fh.readline().split(",")]
        missing = [c for c in _CSV_COLUMNS if c not in header]
        if missing:
            raise DataValidationError(
                f"{file}: column(s) {missing} not found in the header {header}; a MovieLens "
                f"ratings.csv starts with {','.join(_CSV_COLUMNS)}"
            )
        positions = [header.index(c) for c in _CSV_COLUMNS]
    else:
        positions = [0, 2, 4, 6] if layout == "colons" else [0, 1, 2, 3]
    sep = {"tab": "\t", "colons": ":", "csv": ","}[layout]
    skip = 1 if layout == "csv" else 0
    try:
        import pandas as pd
    except ImportError:
        pd = None
    try:
        if pd is not None:
            try:
                frame = pd.read_csv(
                    file,
                    sep=sep,
                    header=None,
                    skiprows=skip,
                    usecols=positions,
                    engine="c",
                    dtype={
                        positions[0]: np.int64,
                        positions[1]: np.int64,
                        positions[2]: np.float64,
                    },
                )
            except pd.errors.EmptyDataError:  # a header and no rows
                return tuple(np.zeros(0) for _ in range(4))  # type: ignore[return-value]
            cols = [frame[p].to_numpy() for p in positions]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data"
                table = np.loadtxt(
                    file,
                    delimiter=sep,
                    skiprows=skip,
                    usecols=positions,
                    dtype=[("u", np.int64), ("i", np.int64), ("r", np.float64), ("t", np.float64)],
                    ndmin=1,
                )
            cols = [table["u"], table["i"], table["r"], table["t"]]
    except (ValueError, IndexError) as exc:  # pandas' ParserError is a ValueError
        raise DataValidationError(
            f"{file}: cannot parse it as a MovieLens {_describe(layout)} file ({exc})"
        ) from exc
    users, items, ratings, times = cols
    if np.isnan(times.astype(np.float64)).any() or np.isnan(ratings).any():
        raise DataValidationError(
            f"{file}: some rows lack a rating or a timestamp (expected a MovieLens "
            f"{_describe(layout)} file)"
        )
    return users, items, ratings, times


def _describe(layout: str) -> str:
    return {
        "tab": "u.data (tab-separated user item rating timestamp)",
        "colons": "ratings.dat (user::item::rating::timestamp)",
        "csv": "ratings.csv (userId,movieId,rating,timestamp)",
    }[layout]
