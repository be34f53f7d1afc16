"""Encryption at rest: AES-256-GCM files, byte strings and saved avrec objects.

Format (version 1), all integers big-endian::

    magic      8 bytes   b"AVRECENC"
    version    1 byte    1
    kdf        1 byte    0 = raw 32-byte key, 1 = scrypt from a passphrase
    chunk      1 byte    log2 of the plaintext chunk size (6..30)
    [kdf = 1]  19 bytes  salt (16 random bytes), log2 N, r, p
    nonce      12 bytes  random per file
    chunks     each AES-256-GCM(chunk plaintext) + 16-byte tag

The header (everything before the first chunk, nonce included) is the
associated data of every chunk. Chunk ``i`` is sealed with the nonce
``nonce XOR (i as 11 bytes || last)``, where ``last`` is 1 only for the final
chunk: the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizar (2015).
Reordering, dropping, duplicating or truncating chunks, or appending data, all
fail authentication, and files of any size are processed in bounded memory.

Nonce budget: every chunk is one AES-GCM invocation with its own nonce, and
two files' chunk nonces can collide when their random 96-bit base nonces
happen to differ by the XOR of two chunk counters. The limit NIST SP 800-38D
sets for random nonces -- at most 2**32 invocations per key -- therefore
counts *chunks*, summed over every file, byte string and saved object
encrypted under one raw key (4 PiB of data at the default 1 MiB chunks, only
256 GiB at the smallest, 64-byte chunks). A passphrase derives a fresh key
per file (fresh salt), so there the budget applies to each file; one file is
refused beyond 2**32 chunks either way.
"""

from __future__ import annotations

import io
import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from typing import IO, Any

from avrec.exceptions import ConfigurationError, DecryptionError, PersistenceError
from avrec.utils import atomic_write

__all__ = [
    "decrypt_bytes",
    "decrypt_file",
    "encrypt_bytes",
    "encrypt_file",
    "generate_key",
]

KEY_BYTES = 32
MAGIC = b"AVRECENC"
FORMAT_VERSION = 1
_KDF_RAW, _KDF_SCRYPT = 0, 1
_NONCE_BYTES = 12
_TAG_BYTES = 16
_SALT_BYTES = 16
_PREFIX = struct.Struct(">8sBBB")  # magic, version, kdf, log2 chunk size
_SCRYPT = struct.Struct(f">{_SALT_BYTES}sBBB")  # salt, log2 N, r, p
_MIN_CHUNK_LOG2, _MAX_CHUNK_LOG2 = 6, 30
_DEFAULT_CHUNK = 1 << 20
#: GCM invocations (chunks) one file may use: NIST SP 800-38D's limit for random nonces
#: under one key. With a raw key it is shared by every file under that key.
_MAX_CHUNKS = 1 << 32
_SCRYPT_MAX_MEMORY = 1 << 30  # 128 * r * N bytes; refuse headers asking for more


def _aesgcm() -> Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise ImportError(
            "encryption needs the 'cryptography' package: pip install avrec[crypto]"
        ) from exc
    return AESGCM


def generate_key() -> bytes:
    """Return a new random 256-bit key for AES-256-GCM.

    Returns
    -------
    bytes of length 32
        From the operating system's CSPRNG. Store it apart from the data it
        protects (a secrets manager, a key file readable only by the service).

    Examples
    --------
    >>> len(generate_key())
    32
    """
    return secrets.token_bytes(KEY_BYTES)


# ---------------------------------------------------------------------- keys and header
def _check_raw_key(key: Any) -> bytes:
    if isinstance(key, str):
        raise ConfigurationError(
            "key must be 32 bytes, got str; pass a text secret as passphrase= instead"
        )
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ConfigurationError(f"key must be 32 bytes, got {type(key).__name__}")
    key = bytes(key)
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"key must be exactly {KEY_BYTES} bytes, got {len(key)}; use generate_key(), "
            "or passphrase= for a memorised secret"
        )
    return key


def _check_secret(key: Any, passphrase: Any) -> tuple[bytes | None, bytes | None]:
    if (key is None) == (passphrase is None):
        raise ConfigurationError("pass exactly one of key= and passphrase=")
    if key is not None:
        return _check_raw_key(key), None
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not isinstance(passphrase, (bytes, bytearray)) or not passphrase:
        raise ConfigurationError("passphrase must be a non-empty str or bytes")
    return None, bytes(passphrase)


def _scrypt(passphrase: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=KEY_BYTES, n=1 << log2_n, r=r, p=p).derive(passphrase)


def _check_chunk_size(chunk_size: Any) -> int:
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, int)
        or chunk_size < (1 << _MIN_CHUNK_LOG2)
        or chunk_size > (1 << _MAX_CHUNK_LOG2)
        or chunk_size & (chunk_size - 1)
    ):
        raise ConfigurationError(
            f"chunk_size must be a power of two in [2**{_MIN_CHUNK_LOG2}, "
            f"2**{_MAX_CHUNK_LOG2}], got {chunk_size!r}"
        )
    return chunk_size.bit_length() - 1


def _new_header(
    key: bytes | None, passphrase: bytes | None, chunk_size: int, scrypt_n: int
) -> tuple[bytes, bytes]:
    """Return ``(header, key)`` for a new file."""
    chunk_log2 = _check_chunk_size(chunk_size)
    if key is not None:
        head = _PREFIX.pack(MAGIC, FORMAT_VERSION, _KDF_RAW, chunk_log2)
    else:
        if (
            isinstance(scrypt_n, bool)
            or not isinstance(scrypt_n, int)
            or scrypt_n < 2**10
            or scrypt_n & (scrypt_n - 1)
            or 128 * 8 * scrypt_n > _SCRYPT_MAX_MEMORY
        ):
            raise ConfigurationError(
                f"scrypt_n must be a power of two in [2**10, 2**20], got {scrypt_n!r}"
            )
        salt = secrets.token_bytes(_SALT_BYTES)
        log2_n = scrypt_n.bit_length() - 1
        head = _PREFIX.pack(MAGIC, FORMAT_VERSION, _KDF_SCRYPT, chunk_log2)
        head += _SCRYPT.pack(salt, log2_n, 8, 1)
        assert passphrase is not None
        key = _scrypt(passphrase, salt, log2_n, 8, 1)
    return head + secrets.token_bytes(_NONCE_BYTES), key


def _read_header(
    fh: IO[bytes], key: bytes | None, passphrase: bytes | None, source: str
) -> tuple[bytes, bytes, int]:
    """Parse and check a header; return ``(header, key, chunk_size)``."""
    prefix = fh.read(_PREFIX.size)
    if len(prefix) < _PREFIX.size:
        raise DecryptionError(f"{source}: too short to be avrec encrypted data (truncated?)")
    magic, version, kdf, chunk_log2 = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise DecryptionError(f"{source}: not avrec encrypted data (bad magic bytes)")
    if version != FORMAT_VERSION:
        raise DecryptionError(
            f"{source}: format version {version}; this avrec reads version {FORMAT_VERSION}"
        )
    if not _MIN_CHUNK_LOG2 <= chunk_log2 <= _MAX_CHUNK_LOG2:
        raise DecryptionError(f"{source}: corrupt header (chunk size 2**{chunk_log2})")
    header = prefix
    if kdf == _KDF_RAW:
        if key is None:
            raise DecryptionError(f"{source} was encrypted with a raw key, not a passphrase")
    elif kdf == _KDF_SCRYPT:
        params = fh.read(_SCRYPT.size)
        if len(params) < _SCRYPT.size:
            raise DecryptionError(f"{source}: truncated header")
        salt, log2_n, r, p = _SCRYPT.unpack(params)
        if not (10 <= log2_n <= 30 and r >= 1 and 1 <= p <= 16) or (
            128 * r * (1 << log2_n) > _SCRYPT_MAX_MEMORY
        ):
            raise DecryptionError(
                f"{source}: corrupt header (scrypt N=2**{log2_n}, r={r}, p={p} out of range)"
            )
        if passphrase is None:
            raise DecryptionError(f"{source} was encrypted with a passphrase, not a raw key")
        header += params
        key = _scrypt(passphrase, salt, log2_n, r, p)
    else:
        raise DecryptionError(f"{source}: corrupt header (unknown key derivation {kdf})")
    nonce = fh.read(_NONCE_BYTES)
    if len(nonce) < _NONCE_BYTES:
        raise DecryptionError(f"{source}: truncated header")
    assert key is not None
    return header + nonce, key, 1 << chunk_log2


def _chunk_nonce(nonce: bytes, index: int, last: bool) -> bytes:
    counter = index.to_bytes(_NONCE_BYTES - 1, "big") + (b"\x01" if last else b"\x00")
    return (int.from_bytes(nonce, "big") ^ int.from_bytes(counter, "big")).to_bytes(
        _NONCE_BYTES, "big"
    )


# ---------------------------------------------------------------------- streaming core
def _seal(pieces: Iterable[bytes], header: bytes, key: bytes, chunk_size: int) -> Iterator[bytes]:
    """Yield the sealed chunks of the concatenation of ``pieces``."""
    aead = _aesgcm()(key)
    nonce = header[-_NONCE_BYTES:]
    buffer = bytearray()
    index = 0
    for piece in pieces:
        buffer += piece
        # a full chunk is sealed only once more data follows: the last flag must be known
        while len(buffer) > chunk_size:
            if index >= _MAX_CHUNKS - 1:
                raise ConfigurationError(
                    "data too large for the chunk size: more than 2**32 chunks (AES-GCM "
                    "invocations) in one file; use a larger chunk_size"
                )
            yield aead.encrypt(
                _chunk_nonce(nonce, index, False), bytes(buffer[:chunk_size]), header
            )
            del buffer[:chunk_size]
            index += 1
    yield aead.encrypt(_chunk_nonce(nonce, index, True), bytes(buffer), header)


def _open(
    fh: IO[bytes], header: bytes, key: bytes, chunk_size: int, source: str
) -> Iterator[bytes]:
    """Yield authenticated plaintext chunks; raise DecryptionError on any failure."""
    from cryptography.exceptions import InvalidTag

    aead = _aesgcm()(key)
    nonce = header[-_NONCE_BYTES:]
    sealed = chunk_size + _TAG_BYTES
    segment = fh.read(sealed)
    index, offset = 0, len(header)
    while True:
        if len(segment) < _TAG_BYTES:
            raise DecryptionError(
                f"{source}: truncated at byte {offset + len(segment)} (incomplete chunk)"
            )
        following = fh.read(sealed) if len(segment) == sealed else b""
        last = not following
        try:
            plain = aead.decrypt(_chunk_nonce(nonce, index, last), segment, header)
        except InvalidTag:
            if index == 0:
                raise DecryptionError(
                    f"{source}: authentication failed -- wrong key or passphrase, or the "
                    "data were modified (header or first chunk) or truncated"
                ) from None
            raise DecryptionError(
                f"{source}: authentication failed at chunk {index} (byte {offset}); the key "
                "is right (earlier chunks verified), so the data were modified or truncated"
            ) from None
        yield plain
        if last:
            return
        offset += len(segment)
        segment = following
        index += 1


def _file_pieces(fh: IO[bytes], size: int) -> Iterator[bytes]:
    while piece := fh.read(size):
        yield piece


# ---------------------------------------------------------------------- bytes and files
def encrypt_bytes(
    data: bytes,
    key: bytes | None = None,
    *,
    passphrase: str | bytes | None = None,
    chunk_size: int = _DEFAULT_CHUNK,
    scrypt_n: int = 2**17,
) -> bytes:
    """Encrypt and authenticate a byte string with AES-256-GCM.

    Parameters
    ----------
    data : bytes-like
        The plaintext.
    key : bytes of length 32, optional
        A key from :func:`generate_key`. Give exactly one of ``key`` and ``passphrase``.
    passphrase : str or bytes, optional
        A memorised secret; the key is derived with scrypt (see Notes) under a
        random salt stored in the header.
    chunk_size : int, default=2**20
        Plaintext bytes per authenticated chunk, a power of two in
        [2**6, 2**30]; stored in the header. Bounds the memory of streaming
        (each chunk costs 16 bytes of tag).
    scrypt_n : int, default=2**17
        scrypt's CPU/memory cost ``N`` (a power of two, at most 2**20) when a
        passphrase is used; ``r=8``, ``p=1``.

    Returns
    -------
    bytes
        Header + sealed chunks, ``len(data) + 16 * n_chunks`` bytes plus a
        23-byte header (42 with a passphrase).

    Raises
    ------
    ConfigurationError
        For a key that is not 32 bytes, both or neither of key and passphrase,
        or invalid ``chunk_size``/``scrypt_n``.

    Notes
    -----
    AES-256-GCM with a fresh random 96-bit base nonce per call; each chunk's
    nonce is derived from it (see the module documentation), and each chunk
    is one GCM invocation. NIST SP 800-38D allows at most 2**32 invocations
    per key with random nonces, so the budget of a raw key is 2**32 *chunks*
    in total over everything it encrypts (not 2**32 files): about
    ``2**32 * chunk_size`` bytes, 4 PiB at the default chunk size and 256 GiB
    at 64-byte chunks. A passphrase gets a fresh salt, hence a fresh key, per
    call, so the budget then applies per file.

    Passphrases go through scrypt with ``N=2**17``, ``r=8``, ``p=1`` (128
    MiB, about a second here; OWASP's recommended minimum) and a 16-byte
    random salt; all four are stored in the header, so files remain readable
    if the defaults change.

    Examples
    --------
    >>> key = generate_key()
    >>> blob = encrypt_bytes(b"ratings", key)
    >>> decrypt_bytes(blob, key)
    b'ratings'
    """
    secret, passphrase_bytes = _check_secret(key, passphrase)
    header, derived = _new_header(secret, passphrase_bytes, chunk_size, scrypt_n)
    return header + b"".join(_seal([bytes(data)], header, derived, chunk_size))


def decrypt_bytes(
    blob: bytes, key: bytes | None = None, *, passphrase: str | bytes | None = None
) -> bytes:
    """Decrypt and verify data written by :func:`encrypt_bytes`.

    Parameters
    ----------
    blob : bytes-like
    key : bytes of length 32, optional
    passphrase : str or bytes, optional
        Whichever was used to encrypt.

    Returns
    -------
    bytes
        The plaintext, only once every chunk has authenticated.

    Raises
    ------
    DecryptionError
        For a wrong key or passphrase, or data that were modified, truncated
        or extended anywhere -- never partial or wrong plaintext.
    ConfigurationError
        For a key that is not 32 bytes, or both or neither of key and passphrase.
    """
    secret, passphrase_bytes = _check_secret(key, passphrase)
    fh = io.BytesIO(bytes(blob))
    header, derived, chunk_size = _read_header(fh, secret, passphrase_bytes, "data")
    return b"".join(_open(fh, header, derived, chunk_size, "data"))


def encrypt_file(
    path_in: str | os.PathLike[str],
    path_out: str | os.PathLike[str],
    key: bytes | None = None,
    *,
    passphrase: str | bytes | None = None,
    chunk_size: int = _DEFAULT_CHUNK,
    scrypt_n: int = 2**17,
) -> None:
    """Encrypt a file with AES-256-GCM, streaming, and write the result atomically.

    Parameters
    ----------
    path_in : str or path-like
        The plaintext file.
    path_out : str or path-like
        Where to write; replaced only once complete. May equal ``path_in``.
    key, passphrase, chunk_size, scrypt_n
        As in :func:`encrypt_bytes`.

    Raises
    ------
    PersistenceError
        If ``path_in`` is missing.
    ConfigurationError
        As in :func:`encrypt_bytes`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "log.csv").write_text("user,item\\n1,2\\n")
    >>> key = generate_key()
    >>> encrypt_file(folder / "log.csv", folder / "log.csv.enc", key)
    >>> decrypt_file(folder / "log.csv.enc", folder / "copy.csv", key)
    >>> (folder / "copy.csv").read_text()
    'user,item\\n1,2\\n'
    """
    secret, passphrase_bytes = _check_secret(key, passphrase)
    header, derived = _new_header(secret, passphrase_bytes, chunk_size, scrypt_n)
    try:
        fin = open(path_in, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise PersistenceError(f"{path_in}: file not found") from None
    with fin, atomic_write(path_out, "wb") as out:
        out.write(header)
        for sealed in _seal(_file_pieces(fin, chunk_size), header, derived, chunk_size):
            out.write(sealed)


def decrypt_file(
    path_in: str | os.PathLike[str],
    path_out: str | os.PathLike[str],
    key: bytes | None = None,
    *,
    passphrase: str | bytes | None = None,
) -> None:
    """Decrypt a file written by :func:`encrypt_file`, streaming, atomically.

    The output is written to a temporary file that replaces ``path_out`` only
    after the last chunk has authenticated; on any failure ``path_out`` is left
    as it was.

    Parameters
    ----------
    path_in : str or path-like
    path_out : str or path-like
    key, passphrase
        Whichever was used to encrypt.

    Raises
    ------
    DecryptionError
        As in :func:`decrypt_bytes`.
    PersistenceError
        If ``path_in`` is missing.
    """
    secret, passphrase_bytes = _check_secret(key, passphrase)
    try:
        fin = open(path_in, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise PersistenceError(f"{path_in}: file not found") from None
    with fin:
        source = str(path_in)
        header, derived, chunk_size = _read_header(fin, secret, passphrase_bytes, source)
        with atomic_write(path_out, "wb") as out:
            for plain in _open(fin, header, derived, chunk_size, source):
                out.write(plain)
