"""An append-only, hash-chained audit log of privacy-relevant events (JSON lines)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np

from avrec.exceptions import ConfigurationError, DataValidationError, PersistenceError

try:  # POSIX advisory locks serialise concurrent writers; elsewhere writers must not overlap
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["AuditLog", "AuditVerification", "record_release"]

#: ``prev_hash`` of the first entry.
GENESIS_HASH = "0" * 64
_FIELDS = frozenset({"alg", "event", "hash", "log_id", "payload", "prev_hash", "seq", "time"})
_OLD_FIELDS = _FIELDS - {"log_id"}  # entries written before logs had an id
_MIN_KEY_BYTES = 32
_LOG_ID = re.compile(r"[0-9a-f]{32}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, no NaN."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_line(line: bytes) -> tuple[Any, str | None]:
    """``(entry, None)`` for a JSON line without duplicate keys, else ``(None, reason)``."""
    try:
        return json.loads(line, object_pairs_hook=_no_duplicates), None
    except _DuplicateKey as exc:
        return None, f"{exc} in the entry (a reader could see either value)"
    except ValueError:
        return None, "not valid JSON"


@dataclass(frozen=True)
class AuditVerification:
    """What :meth:`AuditLog.verify` found. True in a boolean context when the log is intact.

    Attributes
    ----------
    ok : bool
        Every entry is intact and chained, and the expected head (if given) is in the chain.
    n_entries : int
        Number of lines in the log.
    first_bad : int or None
        Index of the first entry that fails (``n_entries`` when entries are missing at
        the end), None when ``ok``.
    reason : str
        Why it failed, or ``"ok"``.
    head : str
        Hash of the last entry that verified (64 zeros for none).
    log_id : str or None
        The id the first entry binds the log to (None for an empty log or an
        unreadable first entry).
    """

    ok: bool
    n_entries: int
    first_bad: int | None
    reason: str
    head: str
    log_id: str | None = None

    def __bool__(self) -> bool:
        return self.ok


class AuditLog:
    """An append-only, hash-chained log of privacy-relevant events, one JSON object per line.

    Each entry holds a sequence number ``seq``, a UTC ``time``, an ``event``
    name, a JSON ``payload``, the log's random ``log_id`` (drawn when the first
    entry is written, the same in every entry), the previous entry's hash
    ``prev_hash`` and its own ``hash``: SHA-256 (or HMAC-SHA-256 with ``key``)
    over the canonical JSON (sorted keys, no whitespace, UTF-8) of every other
    field. Each line must be exactly that canonical JSON (no other spacing, no
    duplicate keys). Changing, inserting, removing or reordering an entry breaks
    the chain at that point, which :meth:`verify` reports; replacing the whole
    file by another log written under the same key shows as another
    :attr:`log_id` (``verify(expected_log_id=...)``).

    Parameters
    ----------
    path : str or path-like
        The log file (created on the first :meth:`append`).
    key : bytes, optional
        At least 32 secret bytes for a keyed chain (HMAC-SHA-256). Without a
        key, anyone who can write the file can also recompute every hash after
        an edit; with one, they cannot forge a chain that verifies.

    Raises
    ------
    ConfigurationError
        If ``key`` is not bytes of at least 32 bytes.

    See Also
    --------
    record_release : the entry a differentially private release writes.

    Notes
    -----
    **What the chain cannot show.** Removing the *last* entries leaves a
    shorter chain that is perfectly valid: no log can tell that it was
    truncated from its own content. Keep the :meth:`head` (the last hash; it
    commits to the sequence number, hence to the entry count) somewhere the
    log's writer cannot change -- a separate system, a signed report, a
    ticket -- and pass it to ``verify(expected_head=...)``; keep the
    :attr:`log_id` with it and pass ``expected_log_id=`` so that another
    valid log under the same key cannot stand in for this one. Likewise, an
    unkeyed chain only detects *accidental* or careless changes: someone
    rewriting the file can recompute all later hashes, so either use ``key``
    (kept away from the log) or an external head.

    **Format.** Every entry carries ``log_id``; a log written by an earlier
    development version (entries without it) does not verify and cannot be
    extended: start a new log.

    **Durability and concurrency.** :meth:`append` writes one line, flushes and
    fsyncs it before returning. Every append takes an exclusive ``flock`` on the
    file and re-reads and checks the last entry, so several processes can append
    to one log on a local POSIX file system; the chain continues after that
    entry, or the append is refused if it does not verify (including a last
    line cut short by a crash: repair or move the file, after :meth:`verify`).

    Payloads are stored as given: never put secrets (keys, raw ids) in them.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl")
    >>> entry = log.append("dp_release", mechanism="laplace", epsilon=0.5, delta=0.0)
    >>> entry["seq"], entry["prev_hash"] == "0" * 64
    (0, True)
    >>> _ = log.append("note", text="model retrained")
    >>> [e["event"] for e in log.entries()]
    ['dp_release', 'note']
    >>> bool(log.verify(expected_head=log.head(), expected_log_id=log.log_id))
    True
    """

    __slots__ = ("_key", "path")

    def __init__(self, path: str | os.PathLike[str], *, key: bytes | None = None) -> None:
        if key is not None:
            if not isinstance(key, (bytes, bytearray, memoryview)):
                raise ConfigurationError(f"key must be bytes or None, got {type(key).__name__}")
            key = bytes(key)
            if len(key) < _MIN_KEY_BYTES:
                raise ConfigurationError(
                    f"key must be at least {_MIN_KEY_BYTES} bytes, got {len(key)}"
                )
        self.path = Path(path)
        self._key = key

    def __repr__(self) -> str:
        return f"AuditLog(path={str(self.path)!r}, keyed={self._key is not None})"

    @property
    def keyed(self) -> bool:
        """bool: whether the chain is an HMAC under a key."""
        return self._key is not None

    @property
    def log_id(self) -> str | None:
        """str or None: the random id in the first entry (None while the log is empty).

        Read without verifying; record it next to the :meth:`head` and check it
        with ``verify(expected_log_id=...)``.
        """
        lines = self._lines()[0]
        if not lines:
            return None
        entry, _ = _parse_line(lines[0])
        log_id = entry.get("log_id") if isinstance(entry, dict) else None
        return log_id if isinstance(log_id, str) else None

    # ------------------------------------------------------------------ hashing
    @property
    def _alg(self) -> str:
        return "sha256" if self._key is None else "hmac-sha256"

    def _digest(self, body: dict[str, Any]) -> str:
        data = _canonical(body)
        if self._key is None:
            return hashlib.sha256(data).hexdigest()
        return hmac.new(self._key, data, "sha256").hexdigest()

    def _check_entry(
        self, entry: Any, index: int, prev: str, log_id: str | None, line: bytes | None = None
    ) -> str | None:
        """Reason why ``entry`` is not the valid ``index``-th entry after ``prev``, or None.

        ``log_id`` is the first entry's id (None when ``entry`` is the first);
        ``line``, when given, must be the entry's canonical JSON.
        """
        if isinstance(entry, dict) and set(entry) == _OLD_FIELDS:
            return "entry has no log_id: written by an older avrec; start a new log"
        if not isinstance(entry, dict) or set(entry) != _FIELDS:
            return "not an audit entry (fields missing or added)"
        if line is not None:
            try:
                canonical = _canonical(entry)
            except (TypeError, ValueError):
                return "entry cannot be canonicalised"
            if canonical != line:
                return "line is not the entry's canonical JSON (spacing, key order or escapes)"
        if not isinstance(entry["log_id"], str) or not _LOG_ID.fullmatch(entry["log_id"]):
            return f"log_id {entry['log_id']!r} is not 32 lowercase hex digits"
        if log_id is not None and entry["log_id"] != log_id:
            return "log_id differs from the first entry's: entries from another log"
        if entry["alg"] != self._alg:
            if self._key is None:
                return f"entry is keyed ({entry['alg']}): open the log with its key to verify"
            return f"entry uses {entry['alg']!r}, not the keyed chain (forged or downgraded)"
        body = {k: v for k, v in entry.items() if k != "hash"}
        try:
            expected = self._digest(body)
        except (TypeError, ValueError):
            return "entry cannot be canonicalised"
        if not isinstance(entry["hash"], str) or not hmac.compare_digest(expected, entry["hash"]):
            return "hash mismatch: the entry was edited" + (
                " (or written under another key)" if self._key is not None else ""
            )
        if entry["seq"] != index:
            return (
                f"sequence number {entry['seq']!r} where {index} was expected: an entry was "
                "removed, inserted or moved"
            )
        if entry["prev_hash"] != prev:
            return "prev_hash does not match the previous entry: entries removed or reordered"
        return None

    # ------------------------------------------------------------------ writing
    def append(self, event: str, /, **payload: Any) -> dict[str, Any]:
        """Append an entry and return it (with its ``hash``).

        Parameters
        ----------
        event : str
            What happened, e.g. ``"dp_release"``, ``"pseudonymize"``.
        **payload
            JSON-serialisable details (numbers, strings, lists, dicts; NumPy
            scalars are converted). NaN and infinity are refused.

        Returns
        -------
        dict
            The entry as written: ``seq``, ``time``, ``event``, ``payload``,
            ``prev_hash``, ``hash``, ``alg``.

        Raises
        ------
        DataValidationError
            If ``event`` is not a non-empty str or the payload is not JSON.
        PersistenceError
            If the last entry of the existing log does not verify.
        """
        if not isinstance(event, str) or not event:
            raise DataValidationError(f"event must be a non-empty str, got {event!r}")
        try:
            payload = json.loads(
                json.dumps(payload, default=_jsonable, allow_nan=False, sort_keys=True)
            )
        except (TypeError, ValueError) as exc:
            raise DataValidationError(f"payload must be JSON without NaN/inf: {exc}") from None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+b") as fh, _locked(fh):
            last = self._read_tail(fh)
            body = {
                "seq": 0 if last is None else last["seq"] + 1,
                "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "event": event,
                "payload": payload,
                "log_id": secrets.token_hex(16) if last is None else last["log_id"],
                "prev_hash": GENESIS_HASH if last is None else last["hash"],
                "alg": self._alg,
            }
            entry = {**body, "hash": self._digest(body)}
            fh.seek(0, os.SEEK_END)
            fh.write(_canonical(entry) + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        if created:
            _fsync_dir(self.path.parent)
        return entry

    def _read_tail(self, fh: IO[bytes]) -> dict[str, Any] | None:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return None
        block, data = 4096, b""
        pos = size
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
            if data.count(b"\n") >= 2 or pos == 0:
                break
        if not data.endswith(b"\n"):
            raise PersistenceError(
                f"{self.path}: the last line is incomplete (interrupted write?); "
                "refusing to extend the chain -- check it with verify()"
            )
        line = data[:-1].rsplit(b"\n", 1)[-1]
        entry, reason = _parse_line(line)
        seq = entry.get("seq") if isinstance(entry, dict) else None
        prev = entry.get("prev_hash") if isinstance(entry, dict) else None
        if reason is None and (not isinstance(seq, int) or isinstance(seq, bool) or seq < 0):
            reason = "not an audit entry"
        if reason is None:
            fh.seek(0)
            first, _ = _parse_line(fh.readline().rstrip(b"\n"))
            log_id = first.get("log_id") if isinstance(first, dict) else None
            reason = self._check_entry(entry, seq, prev, None if seq == 0 else log_id, line)
        if reason is not None:
            raise PersistenceError(
                f"{self.path}: the last entry does not verify ({reason}); refusing to extend "
                "the chain -- check it with verify()"
            )
        return entry

    # ------------------------------------------------------------------ reading
    def _lines(self) -> tuple[list[bytes], bool]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], True
        if not data:
            return [], True
        complete = data.endswith(b"\n")
        lines = data.split(b"\n")
        if complete:
            lines.pop()
        return lines, complete

    def entries(self) -> list[dict[str, Any]]:
        """Return every entry, oldest first, without verifying them.

        Returns
        -------
        list of dict

        Raises
        ------
        PersistenceError
            If a line is not JSON or repeats a key.
        """
        out = []
        for i, line in enumerate(self._lines()[0]):
            entry, reason = _parse_line(line)
            if reason is not None:
                raise PersistenceError(f"{self.path}: line {i + 1}: {reason}")
            out.append(entry)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries())

    def __len__(self) -> int:
        return len(self._lines()[0])

    def head(self) -> str:
        """Return the hash of the last entry (64 zeros for an empty log).

        Store it outside the log; ``verify(expected_head=...)`` then detects
        entries removed from the end.

        Returns
        -------
        str
            64 hex characters.
        """
        entries = self.entries()
        return entries[-1]["hash"] if entries else GENESIS_HASH

    def verify(
        self, *, expected_head: str | None = None, expected_log_id: str | None = None
    ) -> AuditVerification:
        """Check every entry's form, hash, sequence number, log id and link to its predecessor.

        A line must be its entry's canonical JSON, with no duplicate keys:
        anything else (extra spaces, another key order, a key given twice) is
        refused, so the bytes that were hashed are the bytes that are read.

        Parameters
        ----------
        expected_head : str, optional
            A :meth:`head` recorded earlier, outside the log. The log must still
            contain that entry (entries appended since are fine); otherwise
            entries were removed from the end, or the log was rewritten.
        expected_log_id : str, optional
            The :attr:`log_id` recorded when the log was created. Another log
            -- even one valid under the same key -- has another id.

        Returns
        -------
        AuditVerification
            True in a boolean context when intact; ``first_bad`` and ``reason``
            say where and why not.
        """
        lines, complete = self._lines()
        prev = GENESIS_HASH
        seen_head = expected_head is None or expected_head == GENESIS_HASH
        n = len(lines)
        log_id: str | None = None
        for i, line in enumerate(lines):
            if i == n - 1 and not complete:
                return AuditVerification(False, n, i, "last line is incomplete", prev, log_id)
            entry, reason = _parse_line(line)
            if reason is None:
                reason = self._check_entry(entry, i, prev, log_id, line)
            if reason is None and i == 0:
                log_id = entry["log_id"]
                if expected_log_id is not None and log_id != expected_log_id:
                    reason = f"log_id {log_id} is not the expected one: this is another log"
            if reason is not None:
                return AuditVerification(False, n, i, reason, prev, log_id)
            prev = entry["hash"]
            seen_head = seen_head or hmac.compare_digest(prev, str(expected_head))
        if expected_log_id is not None and n == 0:
            return AuditVerification(
                False, 0, 0, "the log is empty but a log_id was expected (replaced?)", prev
            )
        if not seen_head:
            return AuditVerification(
                False,
                n,
                n,
                "the expected head is not in the log: entries were removed from the end "
                "(or the log was rewritten)",
                prev,
                log_id,
            )
        return AuditVerification(True, n, None, "ok", prev, log_id)


def record_release(
    audit_log: AuditLog | str | os.PathLike[str] | None,
    mechanism: str,
    epsilon: float,
    delta: float = 0.0,
    note: str = "",
    **details: Any,
) -> dict[str, Any] | None:
    """Record a differentially private release in an audit log.

    The one call DP code makes (``PrivacyAccountant``, mechanisms, DP
    training) so that every release leaves the same kind of entry.

    Parameters
    ----------
    audit_log : AuditLog, str, path-like or None
        The log (a path opens an unkeyed :class:`AuditLog`). None records
        nothing, so callers can pass an optional log straight through.
    mechanism : str
        E.g. ``"laplace"``, ``"gaussian"``, ``"dp-sgd"``.
    epsilon : float
        Privacy loss of this release, finite and >= 0.
    delta : float, default=0.0
        In [0, 1].
    note : str, default=""
        Free text: what was released, for whom.
    **details
        More JSON fields (sensitivity, noise scale, number of steps ...).

    Returns
    -------
    dict or None
        The entry written, or None without a log.

    Raises
    ------
    ConfigurationError
        If ``epsilon`` or ``delta`` is out of range or ``mechanism`` is empty.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> log = AuditLog(pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl")
    >>> record_release(log, "laplace", 1.0, note="item counts")["payload"]
    {'delta': 0.0, 'epsilon': 1.0, 'mechanism': 'laplace', 'note': 'item counts'}
    >>> record_release(None, "laplace", 1.0) is None
    True
    """
    if not isinstance(mechanism, str) or not mechanism:
        raise ConfigurationError(f"mechanism must be a non-empty str, got {mechanism!r}")
    try:
        eps, dlt = float(epsilon), float(delta)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"epsilon and delta must be numbers, got {epsilon!r}, {delta!r}"
        ) from None
    if not (math.isfinite(eps) and eps >= 0):
        raise ConfigurationError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    if not 0.0 <= dlt <= 1.0:
        raise ConfigurationError(f"delta must be in [0, 1], got {delta!r}")
    if audit_log is None:
        return None
    if not isinstance(audit_log, AuditLog):
        audit_log = AuditLog(audit_log)
    return audit_log.append(
        "dp_release", mechanism=mechanism, epsilon=eps, delta=dlt, note=str(note), **details
    )


@contextlib.contextmanager
def _locked(fh: IO[bytes]) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    """Make a newly created file's directory entry durable (best effort, POSIX)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
