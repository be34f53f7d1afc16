"""Encryption at rest: round trips, the file format, and tampering anywhere is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avrec.data import Interactions, ItemFeatures
from avrec.exceptions import (
    ConfigurationError,
    DecryptionError,
    PersistenceError,
)
from avrec.privacy import (
    decrypt_bytes,
    decrypt_file,
    encrypt_bytes,
    encrypt_file,
    generate_key,
    load_encrypted,
    save_encrypted,
)

pytest.importorskip("cryptography")

KEY = bytes(range(32))
FAST = {"scrypt_n": 2**10}  # keeps passphrase tests quick; the default is 2**17
HEADER = 8 + 3 + 12  # magic, version, kdf, chunk size, nonce (raw key)


def test_round_trip_and_layout():
    blob = encrypt_bytes(b"hello", KEY)
    assert blob[:8] == b"AVRECENC" and blob[8] == 1 and blob[9] == 0 and blob[10] == 20
    assert len(blob) == 8 + 3 + 12 + 5 + 16
    assert decrypt_bytes(blob, KEY) == b"hello"
    assert encrypt_bytes(b"hello", KEY) != blob  # fresh nonce every time
    assert decrypt_bytes(encrypt_bytes(b"", KEY), KEY) == b""


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=700), chunk_log2=st.integers(6, 8))
def test_round_trip_any_data_and_chunk_size(data, chunk_log2):
    chunk = 1 << chunk_log2
    blob = encrypt_bytes(data, KEY, chunk_size=chunk)
    n_chunks = max(1, -(-len(data) // chunk))
    assert len(blob) == 8 + 3 + 12 + len(data) + 16 * n_chunks
    assert decrypt_bytes(blob, KEY) == data


# one fixed multi-chunk blob: 3 chunks of 64 bytes (the last one full, so the last flag matters)
PLAIN = bytes(range(192))
BLOB = encrypt_bytes(PLAIN, KEY, chunk_size=64)


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, len(BLOB) - 1), mask=st.integers(1, 255))
def test_flipping_any_bit_of_any_byte_is_refused(position, mask):
    tampered = bytearray(BLOB)
    tampered[position] ^= mask
    with pytest.raises(DecryptionError):
        decrypt_bytes(bytes(tampered), KEY)


@settings(max_examples=80, deadline=None)
@given(length=st.integers(0, len(BLOB) - 1))
def test_truncation_anywhere_is_refused(length):
    with pytest.raises(DecryptionError):
        decrypt_bytes(BLOB[:length], KEY)


@settings(max_examples=30, deadline=None)
@given(extra=st.binary(min_size=1, max_size=100))
def test_appended_data_is_refused(extra):
    with pytest.raises(DecryptionError):
        decrypt_bytes(BLOB + extra, KEY)


def test_chunk_level_attacks_are_refused():
    header, body = BLOB[:HEADER], BLOB[HEADER:]
    c0, c1, c2 = body[:80], body[80:160], body[160:]
    for attack in (c1 + c0 + c2, c0 + c2, c0 + c1, c0 + c1 + c1 + c2, c0 + c1 + c2 + c2):
        with pytest.raises(DecryptionError):
            decrypt_bytes(header + attack, KEY)
    # splicing chunks of another file under the same key
    other = encrypt_bytes(PLAIN, KEY, chunk_size=64)
    with pytest.raises(DecryptionError):
        decrypt_bytes(header + other[HEADER:], KEY)


def test_messages_tell_wrong_key_from_later_tampering():
    with pytest.raises(DecryptionError, match="wrong key"):
        decrypt_bytes(BLOB, bytes(32))
    tampered = bytearray(BLOB)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError, match="key is right"):
        decrypt_bytes(bytes(tampered), KEY)
    with pytest.raises(DecryptionError, match="bad magic"):
        decrypt_bytes(b"PK\x03\x04" + BLOB[4:], KEY)
    with pytest.raises(DecryptionError, match="format version"):
        decrypt_bytes(BLOB[:8] + b"\x02" + BLOB[9:], KEY)
    with pytest.raises(DecryptionError, match="too short"):
        decrypt_bytes(b"AVREC", KEY)


def test_passphrase(tmp_path):
    blob = encrypt_bytes(b"secret", passphrase="correct horse", **FAST)
    assert blob[9] == 1 and len(blob) == 8 + 3 + 19 + 12 + 6 + 16
    assert blob[27] == 10 and blob[28] == 8 and blob[29] == 1  # log2 N, r, p in the header
    assert decrypt_bytes(blob, passphrase="correct horse") == b"secret"
    assert decrypt_bytes(blob, passphrase=b"correct horse") == b"secret"
    with pytest.raises(DecryptionError, match="wrong key or passphrase"):
        decrypt_bytes(blob, passphrase="wrong horse")
    with pytest.raises(DecryptionError, match="passphrase, not a raw key"):
        decrypt_bytes(blob, KEY)
    with pytest.raises(DecryptionError, match="raw key, not a passphrase"):
        decrypt_bytes(BLOB, passphrase="x")
    salted = encrypt_bytes(b"secret", passphrase="correct horse", **FAST)
    assert salted[11:27] != blob[11:27]  # a fresh salt each time
    tampered = bytearray(blob)
    tampered[27] = 40  # absurd scrypt cost: refused before deriving
    with pytest.raises(DecryptionError, match="scrypt"):
        decrypt_bytes(bytes(tampered), passphrase="correct horse")
    tampered[27] = 11  # plausible but different cost: another key, authentication fails
    with pytest.raises(DecryptionError):
        decrypt_bytes(bytes(tampered), passphrase="correct horse")


def test_argument_validation():
    for bad in (b"short", bytes(33), "k" * 32, 7):
        with pytest.raises(ConfigurationError, match="key"):
            encrypt_bytes(b"x", bad)
        with pytest.raises(ConfigurationError, match="key"):
            decrypt_bytes(BLOB, bad)
    with pytest.raises(ConfigurationError, match="exactly one"):
        encrypt_bytes(b"x")
    with pytest.raises(ConfigurationError, match="exactly one"):
        encrypt_bytes(b"x", KEY, passphrase="p")
    with pytest.raises(ConfigurationError, match="passphrase"):
        encrypt_bytes(b"x", passphrase="")
    for chunk in (63, 100, 2**31, True):
        with pytest.raises(ConfigurationError, match="chunk_size"):
            encrypt_bytes(b"x", KEY, chunk_size=chunk)
    for n in (2**9, 3000, 2**21):
        with pytest.raises(ConfigurationError, match="scrypt_n"):
            encrypt_bytes(b"x", passphrase="p", scrypt_n=n)
    key = generate_key()
    assert len(key) == 32 and key != generate_key()


def test_files_round_trip_and_failures_leave_output_alone(tmp_path):
    src, enc, out = tmp_path / "plays.csv", tmp_path / "plays.enc", tmp_path / "out.csv"
    payload = np.random.default_rng(0).bytes(5000)
    src.write_bytes(payload)
    encrypt_file(src, enc, KEY, chunk_size=1024)
    assert payload not in enc.read_bytes()
    decrypt_file(enc, out, KEY)
    assert out.read_bytes() == payload
    # a tampered file: the previous output stays, and no temporary file is left
    data = bytearray(enc.read_bytes())
    data[3000] ^= 0x80
    enc.write_bytes(bytes(data))
    out.write_bytes(b"previous")
    with pytest.raises(DecryptionError, match="chunk 2"):
        decrypt_file(enc, out, KEY)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "plays.csv", "plays.enc"]
    with pytest.raises(PersistenceError, match="not found"):
        encrypt_file(tmp_path / "missing", enc, KEY)
    with pytest.raises(PersistenceError, match="not found"):
        decrypt_file(tmp_path / "missing", out, KEY)
    # in place, with a passphrase
    encrypt_file(src, src, passphrase="pw", **FAST)
    decrypt_file(src, src, passphrase="pw")
    assert src.read_bytes() == payload


@pytest.fixture
def log() -> Interactions:
    return Interactions.from_arrays(
        ["ann", "ann", "bob"], ["s1", "s2", "s1"], [1, 3, 2], timestamps=[5.0, 6.0, 7.0]
    )


def test_save_and_load_interactions_and_item_features(tmp_path, log):
    path = tmp_path / "log.avrenc"
    save_encrypted(log, path, KEY)
    raw = path.read_bytes()
    assert raw.startswith(b"AVRECENC") and b"ann" not in raw
    assert load_encrypted(path, KEY) == log
    assert load_encrypted(path, KEY, kind="interactions") == log
    with pytest.raises(PersistenceError, match="holds 'interactions', not 'item_features'"):
        load_encrypted(path, KEY, kind="item_features")
    with pytest.raises(ConfigurationError, match="kind"):
        load_encrypted(path, KEY, kind="pickle")
    features = ItemFeatures({"audio": np.eye(2), "video": np.ones((2, 3))}, items=["s1", "s2"])
    save_encrypted(features, tmp_path / "f.avrenc", passphrase="pw", **FAST)
    assert load_encrypted(tmp_path / "f.avrenc", passphrase="pw") == features
    with pytest.raises(ConfigurationError, match="Interactions"):
        save_encrypted({"not": "supported"}, path, KEY)


def test_plaintext_stays_in_a_private_folder_that_is_removed(tmp_path, log):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    save_encrypted(log, tmp_path / "log.avrenc", KEY, tmp_dir=scratch)
    load_encrypted(tmp_path / "log.avrenc", KEY, tmp_dir=scratch)
    assert list(scratch.iterdir()) == []


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_tampered_saved_object_is_refused(tmp_path, log, data):
    path = tmp_path / "log.avrenc"
    if not path.exists():
        save_encrypted(log, path, KEY)
    good = path.read_bytes()
    position = data.draw(st.integers(0, len(good) - 1))
    bad = tmp_path / "bad.avrenc"
    if data.draw(st.booleans()):
        tampered = bytearray(good)
        tampered[position] ^= data.draw(st.integers(1, 255))
        bad.write_bytes(bytes(tampered))
    else:
        bad.write_bytes(good[:position])
    with pytest.raises(DecryptionError):
        load_encrypted(bad, KEY)


def test_save_and_load_a_fitted_model(tmp_path, blocks):
    from avrec.recommenders import Popularity

    model = Popularity().fit(blocks)
    path = tmp_path / "model.avrenc"
    save_encrypted(model, path, KEY)
    loaded = load_encrypted(path, KEY, kind="model")
    assert type(loaded) is Popularity
    users = np.arange(5)
    for got, want in zip(loaded.recommend(users, k=5), model.recommend(users, k=5), strict=True):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(DecryptionError):
        load_encrypted(path, bytes(32))


def test_an_encrypted_plain_file_is_not_an_object(tmp_path):
    path = tmp_path / "x.enc"
    path.write_bytes(encrypt_bytes(b"just bytes", KEY))
    with pytest.raises(PersistenceError, match="not an encrypted avrec object"):
        load_encrypted(path, KEY)
    with pytest.raises(PersistenceError, match="not found"):
        load_encrypted(tmp_path / "missing", KEY)


def test_one_file_is_capped_at_the_gcm_invocation_budget(monkeypatch):
    # every chunk is one AES-GCM invocation; one file may use at most _MAX_CHUNKS of them
    from avrec.privacy import _encryption

    monkeypatch.setattr(_encryption, "_MAX_CHUNKS", 4)
    data = bytes(range(256))  # exactly 4 chunks of 64 bytes
    blob = encrypt_bytes(data, KEY, chunk_size=64)
    assert len(blob) == HEADER + len(data) + 4 * 16  # 4 invocations, 4 tags
    assert decrypt_bytes(blob, KEY) == data
    with pytest.raises(ConfigurationError, match="more than 2\\*\\*32 chunks"):
        encrypt_bytes(data + b"x", KEY, chunk_size=64)
