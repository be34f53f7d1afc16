"""The audit log's line format: canonical JSON only, no duplicate keys, a log id per log."""

from __future__ import annotations

import json

import pytest

from avrec.exceptions import PersistenceError
from avrec.privacy import AuditLog

KEY = bytes(range(32))


def make_log(path, key=KEY, n=3):
    log = AuditLog(path, key=key)
    for i in range(n):
        log.append("dp_release", mechanism="laplace", epsilon=0.5, i=i)
    return log


def lines_of(log):
    return log.path.read_bytes().splitlines()


def write(log, lines):
    log.path.write_bytes(b"".join(line + b"\n" for line in lines))


@pytest.mark.parametrize(
    "reformat",
    [
        lambda e: json.dumps(e, sort_keys=True),  # spaces after separators
        lambda e: json.dumps(e, sort_keys=True, separators=(",", ":")) + " ",  # trailing space
        lambda e: json.dumps(dict(reversed(list(e.items()))), separators=(",", ":")),  # order
        lambda e: json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=True),
    ],
    ids=["spaces", "trailing", "key-order", "escapes"],
)
def test_non_canonical_line_is_rejected(tmp_path, reformat):
    log = make_log(tmp_path / "a.jsonl")
    log.append("note", text="caf\u00e9")  # a non-ASCII payload, so that escaping differs
    lines = lines_of(log)
    assert log.verify()
    i = 3
    entry = json.loads(lines[i])
    changed = reformat(entry).encode()
    assert json.loads(changed) == entry and changed != lines[i]  # same entry, other bytes
    write(log, [*lines[:i], changed])
    result = log.verify()
    assert not result and result.first_bad == i and "canonical" in result.reason
    with pytest.raises(PersistenceError, match="canonical"):
        log.append("next")  # the tail is checked the same way


def test_duplicate_keys_are_rejected(tmp_path):
    log = make_log(tmp_path / "a.jsonl")
    lines = lines_of(log)
    # a second "payload" before the real one: a first-wins reader sees epsilon 0.0, while
    # the hash (and a last-wins reader) covers the real one
    forged = lines[1].replace(b'{"alg"', b'{"payload":{"epsilon":0.0},"alg"', 1)
    assert forged != lines[1] and json.loads(forged) == json.loads(lines[1])
    write(log, [lines[0], forged, lines[2]])
    result = log.verify()
    assert not result and result.first_bad == 1 and "duplicate key 'payload'" in result.reason
    with pytest.raises(PersistenceError, match="line 2: duplicate key"):
        log.entries()
    write(log, [*lines[:2], lines[2].replace(b'{"alg"', b'{"seq":0,"alg"', 1)])
    with pytest.raises(PersistenceError, match="duplicate key 'seq'"):
        log.append("next")


def test_log_id_is_random_bound_and_checked(tmp_path):
    a = make_log(tmp_path / "a.jsonl")
    b = make_log(tmp_path / "b.jsonl")  # another valid log under the same key
    assert a.log_id != b.log_id and len(a.log_id) == 32
    assert {e["log_id"] for e in a.entries()} == {a.log_id}
    assert a.verify(expected_log_id=a.log_id).log_id == a.log_id
    a_id = a.log_id
    a.path.write_bytes(b.path.read_bytes())  # swap the whole log
    assert a.verify()  # a valid chain under the key ...
    result = a.verify(expected_log_id=a_id)  # ... but not this log
    assert not result and result.first_bad == 0 and "another log" in result.reason
    empty = AuditLog(tmp_path / "none.jsonl", key=KEY)
    assert empty.log_id is None and empty.verify()
    result = empty.verify(expected_log_id=a_id)
    assert not result and "empty" in result.reason


def test_entry_from_another_log_is_detected_even_with_a_recomputed_chain(tmp_path):
    log = make_log(tmp_path / "a.jsonl", key=None)
    entries = log.entries()
    entries[1]["log_id"] = "f" * 32  # a forger recomputes every later hash (unkeyed)
    prev = entries[0]["hash"]
    for entry in entries[1:]:
        entry["prev_hash"] = prev
        body = {k: v for k, v in entry.items() if k != "hash"}
        entry["hash"] = prev = log._digest(body)
    canonical = [
        json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        for e in entries
    ]
    write(log, canonical)
    result = log.verify()
    assert not result and result.first_bad == 1 and "another log" in result.reason
    entries[0]["log_id"] = "not-hex"
    write(log, [json.dumps(entries[0], sort_keys=True, separators=(",", ":")).encode()])
    assert "32 lowercase hex" in log.verify().reason


def test_old_format_log_is_refused_with_a_clear_reason(tmp_path):
    log = make_log(tmp_path / "a.jsonl", key=None, n=1)
    entry = log.entries()[0]
    del entry["log_id"]
    body = {k: v for k, v in entry.items() if k != "hash"}
    entry["hash"] = log._digest(body)  # a valid entry of the format before log ids
    write(log, [json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()])
    result = log.verify()
    assert not result and "older avrec" in result.reason
    with pytest.raises(PersistenceError, match="older avrec"):
        log.append("next")
