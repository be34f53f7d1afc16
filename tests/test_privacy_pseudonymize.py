"""Keyed pseudonyms: determinism, key and domain separation, encoding, Interactions, audit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import id_lists, interactions

from avrec.data import Interactions
from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.privacy import AuditLog, Pseudonymizer

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def reference(key: bytes, domain: str, text: str) -> str:
    """The documented construction, with the standard library's hmac."""
    sub_key = hmac.new(key, b"avrec.privacy.pseudonym.v1\x00" + domain.encode(), "sha256")
    return hmac.new(sub_key.digest(), text.encode("utf-8"), "sha256").hexdigest()


def test_matches_the_documented_construction():
    p = Pseudonymizer(KEY)
    got = p.transform(["ann", "b\u00e9a", "", 42, -7])
    # a list mixing str and int is text, as NumPy converts it
    want = [reference(KEY, "user", t) for t in ["ann", "b\u00e9a", "", "42", "-7"]]
    assert got.tolist() == want
    assert got.dtype == np.dtype("<U64")


@settings(max_examples=40, deadline=None)
@given(ids=id_lists(min_size=0, max_size=30))
def test_same_key_same_pseudonyms_and_equal_ids_equal_pseudonyms(ids):
    a = Pseudonymizer(KEY, length=32).transform(ids)
    b = Pseudonymizer(bytes(KEY), length=32).transform(list(ids))
    assert a.tolist() == b.tolist()
    assert len(a) == len(ids)
    # equal inputs <-> equal outputs (injective on distinct ids)
    for i in range(len(ids)):
        for j in range(len(ids)):
            assert (a[i] == a[j]) == (str(ids[i]) == str(ids[j]))


def test_other_key_and_other_domain_are_unrelated():
    ids = np.arange(500)
    user = Pseudonymizer(KEY).transform(ids)
    other = Pseudonymizer(OTHER_KEY).transform(ids)
    item = Pseudonymizer(KEY).transform(ids, domain="item")
    assert not set(user) & set(other)
    assert not set(user) & set(item)
    # no positional correlation either: about half the hex digits' low bits differ
    bits = [int(u[0], 16) & 1 for u in user]
    assert 150 < sum(bits) < 350


def test_canonical_encoding():
    p = Pseudonymizer(KEY, length=16)
    seven = p.transform(["7"])[0]
    assert p.transform([7])[0] == seven
    assert p.transform(np.array([7.0]))[0] == seven
    assert p.transform(np.array([7], dtype=np.int32))[0] == seven
    assert p.transform(np.array([7], dtype=np.uint8))[0] == seven
    assert p.transform(["07"])[0] != seven  # text ids are not parsed
    for bad in ([1.5], [None], [True], [float("nan")], ["\ud800"]):
        with pytest.raises(DataValidationError):
            p.transform(bad)


def test_length_truncates_and_is_checked():
    full = Pseudonymizer(KEY).transform(["a", "b"])
    short = Pseudonymizer(KEY, length=16).transform(["a", "b"])
    assert [f[:16] for f in full] == short.tolist()
    assert short.dtype == np.dtype("<U16")
    for bad in (15, 65, 0, True, 16.0):
        with pytest.raises(ConfigurationError, match="length"):
            Pseudonymizer(KEY, length=bad)


def test_collision_of_truncated_pseudonyms_raises(monkeypatch):
    p = Pseudonymizer(KEY, length=16)
    # force a collision: every digest the same
    monkeypatch.setattr(
        type(p._hasher("user")), "digests", lambda self, msgs: b"\x00" * 32 * len(msgs)
    )
    with pytest.raises(DataValidationError, match="larger length"):
        p.transform(["a", "b"])


def test_empty_input():
    out = Pseudonymizer(KEY, length=20).transform([])
    assert out.shape == (0,) and out.dtype == np.dtype("<U20")


def test_pandas_series_in_series_out():
    pd = pytest.importorskip("pandas")
    s = pd.Series(["x", "y", "x"], index=[10, 20, 30], name="user")
    out = Pseudonymizer(KEY).transform(s)
    assert isinstance(out, pd.Series)
    assert out.index.tolist() == [10, 20, 30] and out.name == "user"
    assert out.tolist() == Pseudonymizer(KEY).transform(["x", "y", "x"]).tolist()


def test_key_validation():
    for bad in (b"short", bytes(31), "a" * 64, None, 12):
        with pytest.raises(ConfigurationError, match="key"):
            Pseudonymizer(bad)
    assert (
        Pseudonymizer(bytearray(KEY)).transform(["a"])[0] == Pseudonymizer(KEY).transform(["a"])[0]
    )
    assert len(Pseudonymizer(bytes(100)).transform(["a"])[0]) == 64  # long keys are fine


def test_generate_key_is_random():
    a, b = Pseudonymizer.generate_key(), Pseudonymizer.generate_key()
    assert len(a) == 32 and a != b


def test_from_env_and_from_file(tmp_path, monkeypatch):
    want = Pseudonymizer(KEY).transform(["a"])[0]
    encodings = [
        KEY.hex(),
        KEY.hex().upper(),
        base64.b64encode(KEY).decode(),
        base64.urlsafe_b64encode(KEY).decode().rstrip("="),
        "  " + KEY.hex()[:32] + "\n" + KEY.hex()[32:] + "\n",
    ]
    for text in encodings:
        monkeypatch.setenv("AVREC_PSEUDONYM_KEY", text)
        assert Pseudonymizer.from_env().transform(["a"])[0] == want
        path = tmp_path / "key.txt"
        path.write_text(text)
        assert Pseudonymizer.from_file(path, length=16).transform(["a"])[0] == want[:16]
    monkeypatch.setenv("MY_KEY", KEY.hex()[:40])  # 20 bytes: too short
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        Pseudonymizer.from_env("MY_KEY")
    monkeypatch.setenv("MY_KEY", "not a key!")
    with pytest.raises(ConfigurationError, match="neither hex nor base64"):
        Pseudonymizer.from_env("MY_KEY")
    monkeypatch.delenv("AVREC_PSEUDONYM_KEY")
    with pytest.raises(ConfigurationError, match="not set"):
        Pseudonymizer.from_env()
    with pytest.raises(ConfigurationError, match="cannot read"):
        Pseudonymizer.from_file(tmp_path / "missing")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigurationError, match="no key"):
        Pseudonymizer.from_file(tmp_path / "empty")


def test_fingerprint_and_repr_never_reveal_the_key():
    p = Pseudonymizer(KEY)
    fp = p.key_fingerprint
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert fp == Pseudonymizer(KEY).key_fingerprint != Pseudonymizer(OTHER_KEY).key_fingerprint
    assert fp not in KEY.hex() and fp not in hashlib.sha256(KEY).hexdigest()
    assert KEY.hex() not in repr(p) and fp in repr(p)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(p)


def test_unkeyed_hashes_are_reversed_by_enumeration():
    """Why a key: sha256(id) of sequential ids is undone by hashing every candidate."""
    raw = np.array([3, 1_234, 48_213, 99_999])
    leaked = {hashlib.sha256(str(u).encode()).hexdigest() for u in raw}
    table = {hashlib.sha256(str(u).encode()).hexdigest(): u for u in range(100_000)}
    assert sorted(table[h] for h in leaked) == raw.tolist()
    # the same enumeration finds nothing against keyed pseudonyms
    keyed = set(Pseudonymizer(KEY).transform(raw))
    assert not keyed & set(table)


@settings(max_examples=25, deadline=None)
@given(X=interactions(), reorder=st.booleans(), items=st.booleans())
def test_transform_interactions_keeps_every_interaction(X, reorder, items):
    p = Pseudonymizer(KEY, length=32)
    Y = p.transform_interactions(X, users=True, items=items, reorder=reorder)
    assert Y.shape == X.shape and Y.nnz == X.nnz
    user_map = dict(zip(X.users.ids.tolist(), p.transform(X.users.ids).tolist(), strict=True))
    item_map = dict(
        zip(X.items.ids.tolist(), p.transform(X.items.ids, domain="item").tolist(), strict=True)
    )
    if not items:
        item_map = {i: i for i in X.items.ids.tolist()}
        assert Y.items == X.items
    rows, cols, w, t = X.to_indices()
    want = {
        (user_map[u], item_map[i]): (wt, None if t is None else t[n])
        for n, (u, i, wt) in enumerate(
            zip(X.users.to_ids(rows).tolist(), X.items.to_ids(cols).tolist(), w, strict=True)
        )
    }
    rows, cols, w, t = Y.to_indices()
    got = {
        (u, i): (wt, None if t is None else t[n])
        for n, (u, i, wt) in enumerate(
            zip(Y.users.to_ids(rows).tolist(), Y.items.to_ids(cols).tolist(), w, strict=True)
        )
    }
    assert got == want
    if reorder:
        assert Y.users.ids.tolist() == sorted(Y.users.ids.tolist())
    else:
        assert Y.users.ids.tolist() == [user_map[u] for u in X.users.ids.tolist()]
        assert Y.matrix is X.matrix or (Y.matrix != X.matrix).nnz == 0


def test_transform_interactions_hides_row_order():
    X = Interactions.from_arrays(np.arange(1, 201), np.zeros(200, dtype=int))
    Y = Pseudonymizer(KEY).transform_interactions(X)  # reorder=True by default
    position = {u: r for r, u in enumerate(Y.users.ids.tolist())}
    order = [position[u] for u in Pseudonymizer(KEY).transform(np.arange(1, 201)).tolist()]
    assert order != sorted(order)  # row r is no longer user r + 1
    kept = Pseudonymizer(KEY).transform_interactions(X, reorder=False)
    assert kept.users.ids.tolist() == Pseudonymizer(KEY).transform(np.arange(1, 201)).tolist()


def test_transform_interactions_items_only_and_errors():
    X = Interactions.from_arrays(["u"], ["song"])
    Y = Pseudonymizer(KEY).transform_interactions(X, users=False, items=True)
    assert Y.users == X.users
    assert Y.items.ids[0] == reference(KEY, "item", "song")
    assert Pseudonymizer(KEY).transform_interactions(X, users=False) == X
    with pytest.raises(DataValidationError, match="Interactions"):
        Pseudonymizer(KEY).transform_interactions(X.matrix)
    with pytest.raises(ConfigurationError, match="domain"):
        Pseudonymizer(KEY).transform(["a"], domain="")


def test_runs_are_recorded_in_an_audit_log(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    p = Pseudonymizer(KEY, length=16)
    p.transform(["a", "b", "a"], domain="item", audit_log=log)
    p.transform_interactions(Interactions.from_arrays(["u", "v"], ["i", "i"]), audit_log=log)
    first, second = log.entries()
    assert first["event"] == "pseudonymize"
    assert first["payload"] == {
        "key_fingerprint": p.key_fingerprint,
        "domain": "item",
        "length": 16,
        "n_ids": 3,
        "n_unique": 2,
    }
    assert second["event"] == "pseudonymize_interactions"
    assert second["payload"]["n_users"] == 2 and second["payload"]["users"] is True
    text = (tmp_path / "audit.jsonl").read_text()
    assert KEY.hex() not in text and "a" not in first["payload"].values()
    assert log.verify()
