"""A disk cache of item embeddings keyed by file content and encoder fingerprint.

Layout: ``<root>/<key[:16]>/<sha[:2]>/<sha>.npz``, where ``key`` identifies what
computes the embedding (encoder class, hyperparameters, weights, decoding
settings) and ``sha`` is the SHA-256 of the media file's bytes. Each file holds
one embedding and whether the stream was missing; files are written atomically
and unreadable ones count as misses, so an interrupted run never poisons it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from avrec.exceptions import PersistenceError
from avrec.utils import load_arrays, save_arrays

__all__ = ["FeatureCache", "file_sha256"]

_FORMAT = 1
_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (constant memory).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        64 hexadecimal digits.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(fingerprint: str, settings: dict[str, Any]) -> str:
    """Combine an encoder fingerprint and the decoding settings into one key."""
    text = json.dumps({"format": _FORMAT, "encoder": fingerprint, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class FeatureCache:
    """Embeddings on disk, one small ``.npz`` per (key, file content).

    Parameters
    ----------
    root : str or path-like
        Folder of the cache (created on the first write).

    Examples
    --------
    >>> import tempfile
    >>> cache = FeatureCache(tempfile.mkdtemp())
    >>> cache.put("k" * 64, "a" * 64, np.ones(3, np.float32), missing=False)
    >>> cache.get("k" * 64, "a" * 64)
    (array([1., 1., 1.], dtype=float32), False)
    >>> cache.get("k" * 64, "b" * 64) is None
    True
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str, content_hash: str) -> Path:
        """Where the entry for ``key`` and ``content_hash`` lives."""
        return self.root / key[:16] / content_hash[:2] / f"{content_hash}.npz"

    def get(self, key: str, content_hash: str) -> tuple[np.ndarray, bool] | None:
        """The cached ``(embedding, missing)``, or None on a miss (or an unreadable entry)."""
        path = self.path(key, content_hash)
        if not path.is_file():
            return None
        try:
            arrays = load_arrays(path)
            return arrays["embedding"].astype(np.float32, copy=False), bool(arrays["missing"])
        except (PersistenceError, KeyError):
            return None

    def put(self, key: str, content_hash: str, embedding: np.ndarray, *, missing: bool) -> None:
        """Store an embedding atomically (``missing``: the stream was absent, zeros stored)."""
        arrays = {
            "embedding": np.asarray(embedding, dtype=np.float32),
            "missing": np.array(bool(missing)),
        }
        save_arrays(self.path(key, content_hash), arrays)
