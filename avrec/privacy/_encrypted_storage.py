"""Encrypted storage of avrec objects: Interactions, ItemFeatures and fitted models.

An object's own ``save`` writes its files into a private temporary folder; the
files are packed into a small archive and encrypted as one stream in the format
of :mod:`avrec.privacy._encryption`. Archive (version 1)::

    magic      8 bytes   b"AVRECARC"
    version    1 byte    1
    length     4 bytes   length of the manifest, big-endian
    manifest   JSON      {"kind", "class", "avrec_version", "files": [[name, size], ...]}
    files      their bytes, in manifest order
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from avrec.exceptions import ConfigurationError, PersistenceError
from avrec.privacy._encryption import (
    _DEFAULT_CHUNK,
    _check_secret,
    _file_pieces,
    _new_header,
    _open,
    _read_header,
    _seal,
)
from avrec.utils import atomic_write

__all__ = ["load_encrypted", "save_encrypted"]

_ARCHIVE_MAGIC = b"AVRECARC"
_ARCHIVE_HEAD = struct.Struct(">8sBI")  # magic, version, manifest length
_KINDS = ("interactions", "item_features", "model")

Kind = Literal["interactions", "item_features", "model"]


def _kind_of(obj: Any) -> Kind:
    from avrec.data import Interactions, ItemFeatures

    if isinstance(obj, Interactions):
        return "interactions"
    if isinstance(obj, ItemFeatures):
        return "item_features"
    if callable(getattr(obj, "save", None)) and callable(getattr(obj, "recommend", None)):
        return "model"
    raise ConfigurationError(
        "obj must be an Interactions, an ItemFeatures or a fitted recommender, "
        f"got {type(obj).__name__}"
    )


def _archive_pieces(folder: Path, manifest: dict[str, Any], names: list[str]) -> Iterator[bytes]:
    text = json.dumps(manifest, sort_keys=True).encode("utf-8")
    yield _ARCHIVE_HEAD.pack(_ARCHIVE_MAGIC, 1, len(text)) + text
    for name in names:
        with open(folder / name, "rb") as fh:
            yield from _file_pieces(fh, _DEFAULT_CHUNK)


@contextlib.contextmanager
def _private_dir(tmp_dir: str | os.PathLike[str] | None) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="avrec-enc-", dir=tmp_dir))  # mode 0700
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_encrypted(
    obj: Any,
    path: str | os.PathLike[str],
    key: bytes | None = None,
    *,
    passphrase: str | bytes | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
    scrypt_n: int = 2**17,
) -> None:
    """Save an Interactions, ItemFeatures or fitted recommender as one encrypted file.

    The object's own ``save`` writes its files (``.npz`` and JSON, never
    pickle) into a private temporary folder; they are packed into a small
    archive (a JSON manifest, then the files' bytes) that is encrypted
    with :func:`encrypt_bytes`'s format and written atomically to ``path``.
    Each 1 MiB chunk of the archive is one AES-GCM invocation: they count
    against the key's budget of 2**32 invocations (see :func:`encrypt_bytes`).

    Parameters
    ----------
    obj : Interactions, ItemFeatures or Recommender
        A recommender must be fitted; its whole ``save`` directory is stored.
    path : str or path-like
        The encrypted file (replaced only once complete).
    key : bytes of length 32, optional
    passphrase : str or bytes, optional
        Exactly one of the two, as in :func:`encrypt_bytes`.
    tmp_dir : str or path-like, optional
        Where the short-lived plaintext files go (a fresh 0700 folder inside it,
        removed afterwards). Default: the system temporary folder. Point it at a
        memory file system (``/dev/shm``) so that no plaintext reaches a disk.
    scrypt_n : int, default=2**17
        scrypt cost with a passphrase.

    Raises
    ------
    ConfigurationError
        For an unsupported ``obj`` or bad key arguments.

    See Also
    --------
    load_encrypted : the inverse.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from avrec.data import Interactions
    >>> from avrec.privacy import generate_key
    >>> X = Interactions.from_arrays(["ann", "bob"], ["song1", "song2"])
    >>> key = generate_key()
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.avrenc"
    >>> save_encrypted(X, path, key)
    >>> load_encrypted(path, key, kind="interactions") == X
    True
    """
    from avrec import __version__

    kind = _kind_of(obj)
    secret, passphrase_bytes = _check_secret(key, passphrase)
    header, derived = _new_header(secret, passphrase_bytes, _DEFAULT_CHUNK, scrypt_n)
    with _private_dir(tmp_dir) as folder:
        if kind == "model":
            obj.save(folder / "model")
            names = sorted(
                p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
            )
        else:
            names = [f"{kind}.npz"]
            obj.save(folder / names[0])
        manifest = {
            "kind": kind,
            "class": f"{type(obj).__module__}.{type(obj).__qualname__}",
            "avrec_version": __version__,
            "files": [[name, (folder / name).stat().st_size] for name in names],
        }
        pieces = _archive_pieces(folder, manifest, names)
        with atomic_write(path, "wb") as out:
            out.write(header)
            for sealed in _seal(pieces, header, derived, _DEFAULT_CHUNK):
                out.write(sealed)


class _Reader:
    """Exact-size reads over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, n: int) -> bytes:
        parts, have = [self._buffer], len(self._buffer)
        while have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buffer = data[n:]
        return data[:n]


def _safe_member(name: Any, source: str) -> PurePosixPath:
    member = PurePosixPath(name) if isinstance(name, str) else None
    if member is None or member.is_absolute() or not member.parts or ".." in member.parts:
        raise PersistenceError(f"{source}: archive holds an unsafe file name {name!r}")
    return member


def load_encrypted(
    path: str | os.PathLike[str],
    key: bytes | None = None,
    *,
    passphrase: str | bytes | None = None,
    kind: Kind | None = None,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Load an object written by :func:`save_encrypted`.

    Everything is decrypted and authenticated into a private temporary folder
    (removed afterwards) before the object's ``load`` reads it.

    Parameters
    ----------
    path : str or path-like
    key : bytes of length 32, optional
    passphrase : str or bytes, optional
        Whichever was used to save.
    kind : {"interactions", "item_features", "model"}, optional
        What you expect; a file holding something else is refused. Default:
        whatever the file holds.
    tmp_dir : str or path-like, optional
        As in :func:`save_encrypted`.

    Returns
    -------
    Interactions, ItemFeatures or Recommender

    Raises
    ------
    DecryptionError
        For a wrong key or passphrase, or a modified or truncated file.
    PersistenceError
        If the file is missing, holds another kind than ``kind``, or its
        content cannot be loaded.
    """
    if kind is not None and kind not in _KINDS:
        raise ConfigurationError(f"kind must be one of {_KINDS} or None, got {kind!r}")
    secret, passphrase_bytes = _check_secret(key, passphrase)
    source = str(path)
    try:
        fin = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise PersistenceError(f"{path}: file not found") from None
    with fin, _private_dir(tmp_dir) as folder:
        header, derived, chunk_size = _read_header(fin, secret, passphrase_bytes, source)
        reader = _Reader(_open(fin, header, derived, chunk_size, source))
        head = reader.read(_ARCHIVE_HEAD.size)
        if len(head) < _ARCHIVE_HEAD.size:
            raise PersistenceError(f"{source}: not an encrypted avrec object (no archive)")
        magic, version, size = _ARCHIVE_HEAD.unpack(head)
        if magic != _ARCHIVE_MAGIC or version != 1:
            raise PersistenceError(f"{source}: not an encrypted avrec object (an encrypted file?)")
        try:
            manifest = json.loads(reader.read(size))
            stored_kind, files = manifest["kind"], manifest["files"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PersistenceError(f"{source}: corrupt archive manifest ({exc})") from None
        if not (
            isinstance(files, list)
            and all(
                isinstance(f, list) and len(f) == 2 and isinstance(f[1], int) and f[1] >= 0
                for f in files
            )
        ):
            raise PersistenceError(f"{source}: corrupt archive manifest (files)")
        if stored_kind not in _KINDS:
            raise PersistenceError(f"{source}: unknown object kind {stored_kind!r}")
        if kind is not None and stored_kind != kind:
            raise PersistenceError(f"{source} holds {stored_kind!r}, not {kind!r}")
        for name, n_bytes in files:
            target = folder.joinpath(*_safe_member(name, source).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                remaining = int(n_bytes)
                while remaining > 0:
                    piece = reader.read(min(remaining, _DEFAULT_CHUNK))
                    if not piece:
                        raise PersistenceError(f"{source}: archive ends inside {name!r}")
                    out.write(piece)
                    remaining -= len(piece)
        if reader.read(1):  # also drives authentication of the final chunk
            raise PersistenceError(f"{source}: unexpected data after the archive")
        return _load_kind(stored_kind, folder)


def _load_kind(kind: str, folder: Path) -> Any:
    if kind == "interactions":
        from avrec.data import Interactions

        return Interactions.load(folder / "interactions.npz")
    if kind == "item_features":
        from avrec.data import ItemFeatures

        return ItemFeatures.load(folder / "item_features.npz")
    from avrec.recommenders import Recommender

    return Recommender.load(folder / "model")
