"""Atomic, pickle-free persistence: JSON for parameters, ``.npz`` for arrays.

Every writer goes through :func:`atomic_write`: data is written to a temporary
file in the destination folder, flushed, fsynced and renamed over the target,
so a failure part-way leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from avrec.exceptions import PersistenceError

__all__ = [
    "atomic_directory",
    "atomic_write",
    "load_arrays",
    "read_json",
    "save_arrays",
    "write_json",
]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or path-like
        Final destination. Its parent folder is created if needed.
    mode : {"wb", "w"}, default="wb"
        Binary or text mode.

    Yields
    ------
    file object
        Write to it inside the ``with`` block.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
    >>> with atomic_write(target, "w") as fh:
    ...     _ = fh.write("hello")
    >>> target.read_text()
    'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; give the result the permissions open() would
        os.fchmod(fd, 0o666 & ~_UMASK)
        kwargs = {"encoding": "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it into place on success.

    If ``path`` already exists it is replaced only after the new content is
    complete; on failure the old directory is left untouched and the
    temporary one removed.

    Parameters
    ----------
    path : str or path-like
        Final directory.

    Yields
    ------
    pathlib.Path
        The temporary directory to fill.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "a.txt").write_text("x")
    >>> sorted(p.name for p in target.iterdir())
    ['a.txt']
    """
    import shutil

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PersistenceError(f"{path} exists and is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes 0700 folders; match mkdir
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "content")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
    obj : JSON-serialisable object

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "params.json"
    >>> write_json(p, {"a": 1})
    >>> read_json(p)
    {'a': 1}
    """
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON written by :func:`write_json`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    object

    Raises
    ------
    PersistenceError
        If the file is missing or not valid JSON.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError as exc:
        raise PersistenceError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise PersistenceError(f"{path}: not valid JSON ({exc})") from exc


def save_arrays(path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray]) -> None:
    """Save named arrays to an uncompressed ``.npz`` file atomically (no pickle).

    Parameters
    ----------
    path : str or path-like
    arrays : mapping of str to numpy.ndarray
        Object arrays are refused: they would need pickle to load.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.npz"
    >>> save_arrays(p, {"x": np.arange(3)})
    >>> load_arrays(p)["x"].tolist()
    [0, 1, 2]
    """
    clean = {}
    for key, value in arrays.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise PersistenceError(
                f"array {key!r} has dtype object and cannot be saved without pickle"
            )
        clean[key] = arr
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **clean)


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` file with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    dict of str to numpy.ndarray

    Raises
    ------
    PersistenceError
        If the file is missing or unreadable.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError as exc:
        raise PersistenceError(f"{path}: file not found") from exc
    except (ValueError, OSError) as exc:
        raise PersistenceError(f"{path}: cannot read arrays ({exc})") from exc


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# read once at import: os.umask can only be read by setting it, which races with threads
_UMASK = _current_umask()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
