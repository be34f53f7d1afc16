"""The hash-chained audit log: appends, verification, tamper detection, keyed chains."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avrec.exceptions import ConfigurationError, DataValidationError, PersistenceError
from avrec.privacy import AuditLog, AuditVerification, record_release

KEY = bytes(range(32))
GENESIS = "0" * 64

payload_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.integers(0, 9), max_size=3),
)
appends = st.lists(
    st.tuples(
        st.sampled_from(["dp_release", "pseudonymize", "note", "\u00e9v\u00e9nement"]),
        st.dictionaries(st.text(min_size=1, max_size=5), payload_values, max_size=3),
    ),
    min_size=1,
    max_size=6,
)


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def write_lines(path, lines):
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_entry_layout_and_chain(tmp_path):
    log = AuditLog(tmp_path / "sub" / "audit.jsonl")
    assert len(log) == 0 and log.entries() == [] and log.head() == GENESIS and log.verify()
    a = log.append("dp_release", mechanism="laplace", epsilon=np.float32(0.5), n=np.int64(3))
    b = log.append("note", text="hello")
    assert set(a) == {"seq", "time", "event", "payload", "log_id", "prev_hash", "hash", "alg"}
    assert re.fullmatch(r"[0-9a-f]{32}", a["log_id"]) and b["log_id"] == a["log_id"]
    assert (a["seq"], b["seq"]) == (0, 1)
    assert a["prev_hash"] == GENESIS and b["prev_hash"] == a["hash"]
    assert a["payload"] == {"mechanism": "laplace", "epsilon": 0.5, "n": 3}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", a["time"])
    body = {k: v for k, v in a.items() if k != "hash"}
    assert a["hash"] == hashlib.sha256(canonical(body)).hexdigest()  # documented hash
    assert log.entries() == [a, b] and list(log) == [a, b] and len(log) == 2
    assert log.head() == b["hash"]
    result = log.verify(expected_head=log.head())
    assert result == AuditVerification(True, 2, None, "ok", b["hash"], a["log_id"])
    assert log.log_id == a["log_id"]
    assert "keyed=False" in repr(log)


def test_reopening_continues_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path).append("a")
    AuditLog(path).append("b")
    entries = AuditLog(path).entries()
    assert [e["seq"] for e in entries] == [0, 1]
    assert entries[1]["prev_hash"] == entries[0]["hash"]


def test_append_refuses_a_broken_tail(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append("a", x=1)
    good = path.read_bytes()
    path.write_bytes(good.replace(b'"x":1', b'"x":2'))
    with pytest.raises(PersistenceError, match="does not verify"):
        log.append("b")
    path.write_bytes(good[:-5])  # a crash mid-write
    with pytest.raises(PersistenceError, match="incomplete"):
        log.append("b")
    path.write_bytes(good + b"garbage\n")
    with pytest.raises(PersistenceError, match="does not verify"):
        log.append("b")
    assert path.read_bytes() == good + b"garbage\n"  # nothing was appended


def test_payload_validation(tmp_path):
    log = AuditLog(tmp_path / "a.jsonl")
    with pytest.raises(DataValidationError, match="NaN"):
        log.append("x", epsilon=float("nan"))
    with pytest.raises(DataValidationError, match="JSON"):
        log.append("x", key=b"secret bytes")
    with pytest.raises(DataValidationError, match="event"):
        log.append("")
    assert not (tmp_path / "a.jsonl").exists()
    for bad in (b"short", "a" * 40, 5):
        with pytest.raises(ConfigurationError, match="key"):
            AuditLog(tmp_path / "b.jsonl", key=bad)


def build(tmp_path, ops, key=None) -> tuple[AuditLog, list[bytes]]:
    path = tmp_path / "audit.jsonl"
    if path.exists():
        path.unlink()
    log = AuditLog(path, key=key)
    for event, payload in ops:
        log.append(event, **payload)
    return log, path.read_bytes().splitlines()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=appends, data=st.data(), keyed=st.booleans())
def test_any_single_edit_removal_or_swap_is_detected(tmp_path, ops, data, keyed):
    log, lines = build(tmp_path, ops, KEY if keyed else None)
    head = log.head()
    n = len(lines)
    assert log.verify(expected_head=head)
    # a swap needs two entries: it is drawn only then (never skipped after being drawn)
    actions = ["edit", "remove", "insert", "duplicate"] + (["swap"] if n >= 2 else [])
    action = data.draw(st.sampled_from(actions))
    i = data.draw(st.integers(0, n - 1))
    if action == "edit":
        entry = json.loads(lines[i])
        field = data.draw(st.sampled_from(["seq", "time", "event", "payload", "prev_hash"]))
        entry[field] = {
            "seq": entry["seq"] + 1,
            "time": "1999-01-01T00:00:00.000000Z",
            "event": entry["event"] + "!",
            "payload": {**entry["payload"], "tampered": True},
            "prev_hash": "f" * 64,
        }[field]
        lines[i] = canonical(entry)
        first_bad = i
    elif action == "remove":
        del lines[i]
        first_bad = i
    elif action == "swap":
        j = data.draw(st.integers(0, n - 1).filter(lambda j: j != i))
        lines[i], lines[j] = lines[j], lines[i]
        first_bad = min(i, j)
    elif action == "insert":
        lines.insert(i, lines[i])  # a replayed copy of an entry
        first_bad = i + 1
    else:
        lines.append(lines[-1])
        first_bad = n
    write_lines(log.path, lines)
    result = log.verify(expected_head=head)
    assert not result.ok and not result
    if action == "remove" and i == n - 1:
        # removing the last entry leaves a valid chain: only the external head shows it
        assert log.verify().ok
        assert result.first_bad == n - 1 and "removed from the end" in result.reason
    else:
        assert result.first_bad == first_bad, result
        assert not log.verify().ok


@pytest.mark.parametrize("keyed", [False, True])
def test_every_swap_of_two_entries_is_detected(tmp_path, keyed):
    ops = [("note", {"i": i}) for i in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            log, lines = build(tmp_path, ops, KEY if keyed else None)
            head = log.head()
            lines[i], lines[j] = lines[j], lines[i]
            write_lines(log.path, lines)
            result = log.verify(expected_head=head)
            assert not result.ok and result.first_bad == i, (i, j, result)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=appends, data=st.data())
def test_keyed_chain_rejects_a_recomputed_forgery(tmp_path, ops, data):
    log, lines = build(tmp_path, ops, KEY)
    i = data.draw(st.integers(0, len(lines) - 1))
    entries = [json.loads(line) for line in lines]
    entries[i]["payload"] = {"epsilon": 0.0, "forged": True}
    # the forger recomputes the whole chain -- unkeyed, or under a key of their own
    forger_key = data.draw(st.sampled_from([None, bytes(32)]))
    forger = AuditLog(log.path.with_name("forged.jsonl"), key=forger_key)
    prev = GENESIS
    for entry in entries:
        entry["prev_hash"] = prev
        if forger_key is None:
            entry["alg"] = "sha256"
        body = {k: v for k, v in entry.items() if k != "hash"}
        entry["hash"] = prev = forger._digest(body)
    write_lines(log.path, [canonical(e) for e in entries])
    result = log.verify()
    assert not result.ok
    assert result.first_bad == 0
    # an unkeyed forgery of an unkeyed log would pass: that is what the key is for
    if forger_key is None:
        assert AuditLog(log.path).verify().ok


def test_keyed_log_needs_its_key(tmp_path):
    path = tmp_path / "audit.jsonl"
    AuditLog(path, key=KEY).append("a")
    assert AuditLog(path, key=KEY).verify()
    result = AuditLog(path).verify()
    assert not result and "open the log with its key" in result.reason
    result = AuditLog(path, key=bytes(32)).verify()
    assert not result and "another key" in result.reason
    with pytest.raises(PersistenceError, match="does not verify"):
        AuditLog(path, key=bytes(32)).append("b")
    assert "keyed=True" in repr(AuditLog(path, key=KEY)) and KEY.hex() not in repr(
        AuditLog(path, key=KEY)
    )


def test_verify_reports_garbage_and_incomplete_lines(tmp_path):
    log, lines = build(tmp_path, [("a", {}), ("b", {})])
    write_lines(log.path, [lines[0], b"{not json"])
    assert log.verify().first_bad == 1 and log.verify().reason == "not valid JSON"
    write_lines(log.path, [lines[0], b'{"seq": 1}'])
    assert "fields" in log.verify().reason
    log.path.write_bytes(lines[0] + b"\n" + lines[1][:10])
    result = log.verify()
    assert result.first_bad == 1 and "incomplete" in result.reason
    with pytest.raises(PersistenceError, match="line 2"):
        write_lines(log.path, [lines[0], b"{not json"])
        log.entries()


def test_expected_head_allows_later_appends(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append("a")
    head = log.head()
    log.append("b")
    assert log.verify(expected_head=head)
    assert log.verify(expected_head=GENESIS)
    assert not log.verify(expected_head="e" * 64)


def test_record_release(tmp_path):
    path = tmp_path / "audit.jsonl"
    entry = record_release(path, "gaussian", 0.5, 1e-6, note="top items", sigma=2.0)
    assert entry["event"] == "dp_release"
    assert entry["payload"] == {
        "mechanism": "gaussian",
        "epsilon": 0.5,
        "delta": 1e-6,
        "note": "top items",
        "sigma": 2.0,
    }
    assert record_release(None, "laplace", 1.0) is None
    log = AuditLog(path)
    record_release(log, "laplace", np.float64(1.0))
    assert len(log) == 2 and log.verify()
    for eps, delta in ((-1, 0), (float("inf"), 0), (1, 1.5), ("x", 0)):
        with pytest.raises(ConfigurationError):
            record_release(log, "laplace", eps, delta)
    with pytest.raises(ConfigurationError, match="mechanism"):
        record_release(log, "", 1.0)


def test_concurrent_writers_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    code = (
        "import os, sys; from avrec.privacy import AuditLog; log = AuditLog(sys.argv[1]); "
        "[log.append('worker', pid=os.getpid(), i=i) for i in range(15)]"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)]) for _ in range(2)]
    assert all(p.wait(120) == 0 for p in procs)
    log = AuditLog(path)
    assert len(log) == 30 and log.verify()
