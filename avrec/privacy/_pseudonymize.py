"""Keyed pseudonyms (HMAC-SHA-256) for user and item ids."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avrec.data import Interactions, Vocabulary
from avrec.data._vocabulary import as_id_array
from avrec.exceptions import ConfigurationError, DataValidationError

if TYPE_CHECKING:  # pragma: no cover
    from avrec.privacy._audit_log import AuditLog

__all__ = ["Pseudonymizer"]

#: Shortest key accepted, in bytes (256 bits, the HMAC-SHA-256 output size).
MIN_KEY_BYTES = 32
_BLOCK = 64  # SHA-256 block size in bytes
_DOMAIN_TAG = b"avrec.privacy.pseudonym.v1\x00"
_FINGERPRINT_TAG = b"avrec.privacy.pseudonym-key-fingerprint.v1\x00"
_HEX = re.compile(r"[0-9a-fA-F]+")


def _check_key(key: Any, what: str = "key") -> bytes:
    if isinstance(key, str):
        raise ConfigurationError(
            f"{what} must be bytes, got str; decode a text key first (bytes.fromhex, "
            "base64.b64decode) or use Pseudonymizer.from_env / from_file"
        )
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise ConfigurationError(f"{what} must be bytes, got {type(key).__name__}")
    key = bytes(key)
    if len(key) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{what} must be at least {MIN_KEY_BYTES} bytes (256 bits), got {len(key)}; "
            "generate one with Pseudonymizer.generate_key()"
        )
    return key


def _decode_text_key(text: str, source: str) -> bytes:
    text = "".join(text.split())  # ignore whitespace and line breaks
    if not text:
        raise ConfigurationError(f"{source} holds no key")
    if _HEX.fullmatch(text) and len(text) % 2 == 0:
        return bytes.fromhex(text)
    try:
        padded = text + "=" * (-len(text) % 4)
        altchars = b"-_" if ("-" in text or "_" in text) else None
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(
            f"{source} is neither hex nor base64 text ({exc}); write a key with "
            "Pseudonymizer.generate_key().hex()"
        ) from None


class _KeyedHash:
    """HMAC-SHA-256 with the key's inner and outer states computed once.

    ``hmac.digest`` redoes the key schedule (two SHA-256 block compressions) on
    every call; copying precomputed states avoids that, which is faster for
    short messages. Output equals ``hmac.digest(key, msg, "sha256")``.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digests(self, messages: list[bytes]) -> bytes:
        """Concatenated 32-byte MACs of ``messages``."""
        inner_copy, outer_copy = self._inner.copy, self._outer.copy

        def one(msg: bytes) -> bytes:
            inner = inner_copy()
            inner.update(msg)
            outer = outer_copy()
            outer.update(inner.digest())
            return outer.digest()

        return b"".join([one(m) for m in messages])


class Pseudonymizer:
    """Replace user and item ids by keyed pseudonyms: HMAC-SHA-256 under a secret key.

    The same key always maps an id to the same pseudonym, so logs pseudonymised
    on different days still join; without the key the mapping can neither be
    reversed nor recomputed. Each *domain* (``"user"``, ``"item"`` or any other
    string) gets its own sub-key, so one raw id has unrelated pseudonyms as a
    user and as an item, and pseudonyms from different domains cannot be linked.

    Parameters
    ----------
    key : bytes
        The secret, at least 32 random bytes. Create it with :meth:`generate_key`
        and keep it out of the data and of version control (load it with
        :meth:`from_env` or :meth:`from_file`). Unlike estimators, the key is
        validated here: an object holding a weak key is never created.
    length : int, default=64
        Hex characters kept from the 64 of the digest (4 bits each), between
        16 and 64. See Notes on collisions.

    Attributes
    ----------
    key_fingerprint : str
        16 hex characters identifying the key (see :attr:`key_fingerprint`).

    Raises
    ------
    ConfigurationError
        If ``key`` is not bytes or is shorter than 32 bytes, or ``length`` is
        outside [16, 64].

    See Also
    --------
    avrec.privacy.AuditLog : record each pseudonymisation run.
    avrec.privacy.check_k_anonymity : pseudonyms do not anonymise attribute tables.

    Notes
    -----
    **Canonical encoding.** Ids go through the same conversion as
    :class:`~avrec.data.Vocabulary`: integers (and integral floats) become
    decimal text without leading zeros or ``+`` (``7``, ``7.0`` and
    ``np.int32(7)`` all read ``"7"``), strings stay as they are (a list that
    mixes numbers and strings is text throughout, as NumPy converts it: there
    ``7.0`` reads ``"7.0"``), and the text
    is encoded as UTF-8 without Unicode normalisation. The MAC is taken over
    those bytes, so ``7`` and ``"7"`` are the same id, while ``"é"`` composed
    and decomposed are different ids (normalise first if that matters). NaN,
    None and boolean ids are refused.

    **Construction.** For domain ``d``, the sub-key is
    ``HMAC-SHA-256(key, "avrec.privacy.pseudonym.v1\\x00" + d)`` and a
    pseudonym is the first ``length`` hex characters of
    ``HMAC-SHA-256(sub-key, id bytes)``.

    **Collisions.** Truncating to ``length`` hex characters keeps ``4 * length``
    bits; by the birthday bound ``n`` distinct ids collide with probability
    about ``n**2 / 2**(4 * length + 1)``: for a million ids, ``4e-8`` at
    ``length=16`` and negligible from ``length=32``. Below 32 characters every
    call checks for collisions and raises :class:`~avrec.exceptions.DataValidationError`
    rather than silently merging two users.

    **Why a key.** An unkeyed hash (``sha256(user_id)``) is not a pseudonym:
    id spaces are small (sequential integers, e-mail addresses, phone numbers),
    so anyone can hash every candidate id and look the digests up -- all
    ids below ten million take seconds. A keyed MAC cannot be enumerated
    without the key.

    **Pseudonymous is not anonymous.** Replacing ids leaves every user's
    interaction history intact, and histories are identifying: Narayanan and
    Shmatikov [1]_ re-identified Netflix Prize subscribers, whose ids had been
    replaced by random numbers, from a handful of ratings and approximate dates
    matched against public IMDb reviews. A pseudonymised log is personal data;
    protect it as such (access control, :func:`~avrec.privacy.encrypt_file`),
    and use differential privacy for anything released.

    Instances refuse to be pickled or copied that way: the key would be
    written out with them.

    **Throughput.** Only distinct ids are hashed (``np.unique``, then the
    inverse index), and each domain's HMAC key schedule is computed once (the
    inner and outer SHA-256 states are copied per id), which is faster than
    ``hmac.digest`` per id; hashing dominates the run time, ``np.unique`` and
    string conversions take the rest. Repeated ids cost only their share of
    ``np.unique``.

    References
    ----------
    .. [1] A. Narayanan and V. Shmatikov, "Robust de-anonymization of large
       sparse datasets", IEEE Symposium on Security and Privacy, 2008.
       https://doi.org/10.1109/SP.2008.33

    Examples
    --------
    >>> key = bytes(range(32))  # use Pseudonymizer.generate_key() in practice
    >>> p = Pseudonymizer(key, length=16)
    >>> p.transform(["ann", "bob", "ann"]).tolist()
    ['812937bf779739b7', '240d9a819686ec7e', '812937bf779739b7']
    >>> p.transform(["ann"], domain="item").tolist()  # unrelated to the user pseudonym
    ['...']
    >>> p.key_fingerprint
    '...'
    """

    __slots__ = ("_hashers", "_key", "length")

    def __init__(self, key: bytes, *, length: int = 64) -> None:
        self._key = _check_key(key)
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
            raise ConfigurationError(f"length must be an int in [16, 64], got {length!r}")
        if not 16 <= int(length) <= 64:
            raise ConfigurationError(f"length must be in [16, 64], got {length}")
        self.length = int(length)
        self._hashers: dict[str, _KeyedHash] = {}

    # ------------------------------------------------------------------ keys
    @staticmethod
    def generate_key() -> bytes:
        """Return a new random 32-byte key from the operating system's CSPRNG.

        Returns
        -------
        bytes of length 32

        Examples
        --------
        >>> len(Pseudonymizer.generate_key())
        32
        """
        return secrets.token_bytes(MIN_KEY_BYTES)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> Pseudonymizer:
        """Read the key from a text file holding it as hex or base64.

        Parameters
        ----------
        path : str or path-like
            A file whose content (whitespace ignored) is the key as hexadecimal
            (e.g. ``key.hex()``, 64 characters for 32 bytes) or base64 (standard
            or URL-safe alphabet, padding optional). Text made only of hex
            digits is read as hex.
        **kwargs
            Passed to the constructor (``length``).

        Returns
        -------
        Pseudonymizer

        Raises
        ------
        ConfigurationError
            If the file is missing, unreadable or does not hold a valid key.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "pseudonym.key"
        >>> _ = path.write_text(Pseudonymizer.generate_key().hex())
        >>> Pseudonymizer.from_file(path).length
        64
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"cannot read a pseudonym key from {path}: {exc}") from None
        return cls(_decode_text_key(text, f"key file {path}"), **kwargs)

    @classmethod
    def from_env(cls, name: str = "AVREC_PSEUDONYM_KEY", **kwargs: Any) -> Pseudonymizer:
        """Read the key from an environment variable holding it as hex or base64.

        Parameters
        ----------
        name : str, default="AVREC_PSEUDONYM_KEY"
            The variable; its value is decoded as in :meth:`from_file`.
        **kwargs
            Passed to the constructor (``length``).

        Returns
        -------
        Pseudonymizer

        Raises
        ------
        ConfigurationError
            If the variable is unset or does not hold a valid key.
        """
        value = os.environ.get(name)
        if value is None:
            raise ConfigurationError(
                f"environment variable {name} is not set; export a key created with "
                "Pseudonymizer.generate_key().hex()"
            )
        return cls(_decode_text_key(value, f"environment variable {name}"), **kwargs)

    @property
    def key_fingerprint(self) -> str:
        """str: first 16 hex characters of SHA-256 over a domain-separated copy of the key.

        Identifies which key produced a set of pseudonyms (for audit logs and
        metadata) without revealing it: the fingerprint uses its own domain tag,
        so it is unrelated to any pseudonym.
        """
        return hashlib.sha256(_FINGERPRINT_TAG + self._key).hexdigest()[:16]

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(key_fingerprint={self.key_fingerprint!r}, length={self.length})"

    def __reduce__(self) -> Any:
        raise TypeError("Pseudonymizer holds a secret key and cannot be pickled")

    # ------------------------------------------------------------------ transforms
    def transform(
        self,
        ids: Any,
        *,
        domain: str = "user",
        audit_log: AuditLog | None = None,
    ) -> Any:
        """Map ids to pseudonyms.

        Parameters
        ----------
        ids : array-like of shape (n,) or pandas.Series
            Integer or string ids (see Notes of the class for the encoding).
        domain : str, default="user"
            Separates pseudonym spaces: ``"user"``, ``"item"``, or e.g.
            ``"user:partner-a"`` to give one partner pseudonyms that cannot be
            joined with another's.
        audit_log : AuditLog, optional
            Append a ``"pseudonymize"`` entry (key fingerprint, domain, length,
            number of ids -- never the key or the ids).

        Returns
        -------
        ndarray of shape (n,), dtype ``<U{length}``, or pandas.Series
            Lower-case hex pseudonyms; a Series (same index and name) for a
            Series input.

        Raises
        ------
        DataValidationError
            For missing, boolean or non-integral float ids, or a collision of
            truncated pseudonyms.

        Examples
        --------
        >>> p = Pseudonymizer(bytes(32), length=16)
        >>> p.transform([7, 7.0]).tolist()  # integral floats are integers
        ['6f23d341ba9fa183', '6f23d341ba9fa183']
        >>> p.transform(["7"]).tolist()  # ids are compared as text
        ['6f23d341ba9fa183']
        """
        out, n_unique = self._pseudonyms(ids, domain)
        if audit_log is not None:
            audit_log.append(
                "pseudonymize",
                key_fingerprint=self.key_fingerprint,
                domain=domain,
                length=self.length,
                n_ids=int(out.shape[0]),
                n_unique=n_unique,
            )
        if type(ids).__name__ == "Series" and hasattr(ids, "index"):
            import pandas as pd

            return pd.Series(out, index=ids.index, name=ids.name)
        return out

    def transform_interactions(
        self,
        X: Interactions,
        users: bool = True,
        items: bool = False,
        *,
        reorder: bool = True,
        audit_log: AuditLog | None = None,
    ) -> Interactions:
        """Return a copy of ``X`` whose user (and optionally item) ids are pseudonyms.

        Weights and timestamps are unchanged.

        Parameters
        ----------
        X : Interactions
        users : bool, default=True
            Pseudonymise user ids (domain ``"user"``).
        items : bool, default=False
            Pseudonymise item ids (domain ``"item"``). Item ids of a public
            catalogue usually need no protection.
        reorder : bool, default=True
            Sort rows (and columns) by pseudonym. Vocabularies built from a log
            are sorted by raw id, so keeping the row order would leak it: with
            sequential ids, row ``r`` *is* user ``r + 1``. With ``False``
            the matrix is shared unchanged and row ``r`` keeps its position.
        audit_log : AuditLog, optional
            Append one ``"pseudonymize_interactions"`` entry.

        Returns
        -------
        Interactions
            Same interactions; ``X.users.ids`` (and ``X.items.ids``) replaced by
            pseudonyms.

        Raises
        ------
        DataValidationError
            If ``X`` is not an :class:`~avrec.data.Interactions` or truncated
            pseudonyms collide.

        Examples
        --------
        >>> from avrec.data import Interactions
        >>> X = Interactions.from_arrays(["ann", "bob", "bob"], ["a", "a", "b"])
        >>> Y = Pseudonymizer(bytes(32), length=16).transform_interactions(X)
        >>> Y.users.ids.tolist(), Y.items.ids.tolist(), Y.nnz
        (['47df74bb17250ddc', 'aab5e7d7c143b594'], ['a', 'b'], 3)
        """
        if not isinstance(X, Interactions):
            raise DataValidationError(f"X must be an Interactions, got {type(X).__name__}")
        new_users, user_perm = X.users, None
        new_items, item_perm = X.items, None
        if users:
            new_users, user_perm = self._vocabulary(X.users, "user", reorder)
        if items:
            new_items, item_perm = self._vocabulary(X.items, "item", reorder)
        if user_perm is None and item_perm is None:
            out = Interactions(X.matrix, new_users, new_items, X.timestamps)
        else:
            rows, cols, weights, times = X.to_indices()
            if user_perm is not None:
                rows = user_perm[rows]
            if item_perm is not None:
                cols = item_perm[cols]
            out = Interactions.from_indices(
                rows, cols, weights, times, users=new_users, items=new_items
            )
        if audit_log is not None:
            audit_log.append(
                "pseudonymize_interactions",
                key_fingerprint=self.key_fingerprint,
                length=self.length,
                users=bool(users),
                items=bool(items),
                reorder=bool(reorder),
                n_users=X.n_users,
                n_items=X.n_items,
                nnz=X.nnz,
            )
        return out

    # ------------------------------------------------------------------ internals
    def _vocabulary(
        self, vocab: Vocabulary, domain: str, reorder: bool
    ) -> tuple[Vocabulary, np.ndarray | None]:
        pseudo, _ = self._pseudonyms(vocab.ids, domain)
        if not reorder:
            return Vocabulary(pseudo), None
        order = np.argsort(pseudo, kind="stable")
        new_position = np.empty_like(order)
        new_position[order] = np.arange(order.size)
        return Vocabulary(pseudo[order]), new_position

    def _hasher(self, domain: str) -> _KeyedHash:
        if not isinstance(domain, str) or not domain:
            raise ConfigurationError(f"domain must be a non-empty str, got {domain!r}")
        hasher = self._hashers.get(domain)
        if hasher is None:
            sub_key = hmac.digest(self._key, _DOMAIN_TAG + domain.encode("utf-8"), "sha256")
            hasher = self._hashers[domain] = _KeyedHash(sub_key)
        return hasher

    def _pseudonyms(self, ids: Any, domain: str) -> tuple[np.ndarray, int]:
        hasher = self._hasher(domain)
        values = ids.to_numpy() if type(ids).__name__ == "Series" else ids
        arr = as_id_array(values, "ids")
        length = self.length
        if arr.size == 0:
            return np.zeros(0, dtype=f"<U{length}"), 0
        uniq, inverse = np.unique(arr, return_inverse=True)
        if uniq.dtype.kind == "U":
            try:
                messages = [t.encode("utf-8") for t in uniq.tolist()]
            except UnicodeEncodeError as exc:
                raise DataValidationError(f"ids contains text that is not UTF-8: {exc}") from None
        else:  # int64: NumPy writes the decimal digits as ASCII bytes directly
            messages = uniq.astype("S20").tolist()
        hexed = hasher.digests(messages).hex().encode("ascii")
        pseudo = np.frombuffer(hexed, dtype="S64")
        if length < 64:
            pseudo = pseudo.astype(f"S{length}")
            if length < 32 and np.unique(pseudo).size != pseudo.size:
                raise DataValidationError(
                    f"two of the {pseudo.size} distinct ids got the same {length}-character "
                    "pseudonym; use a larger length"
                )
        pseudo = pseudo.astype(f"<U{length}")
        return pseudo[inverse.reshape(-1)], int(uniq.size)
