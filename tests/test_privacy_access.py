"""Deny-by-default access control: the allow/deny matrix, field filtering, audited decisions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avrec.data import Interactions, ItemFeatures
from avrec.exceptions import (
    AccessDenied,
    AvrecError,
    ConfigurationError,
    DataValidationError,
    PersistenceError,
)
from avrec.privacy import AccessGuard, AccessPolicy, AuditLog
from avrec.recommenders import Popularity, Recommender
from avrec.utils import save_arrays

KEY = bytes(range(32))

POLICY = {
    "version": 1,
    "roles": {
        "analyst": [
            {
                "resource": "interactions",
                "purposes": ["evaluation"],
                "fields": ["items", "weights"],
            },
            {"resource": "release", "purposes": ["reporting"], "fields": ["counts"]},
        ],
        "engineer": [
            {"resource": "features", "purposes": ["training"], "fields": ["audio"]},
            {"resource": "model", "purposes": ["serving", "evaluation"]},
        ],
        "auditor": [
            {"resource": "interactions", "purposes": ["audit"], "fields": "*"},
            {"resource": "release", "purposes": ["audit"], "fields": "*"},
            {"resource": "features", "purposes": ["audit"], "fields": "*"},
        ],
    },
    "principals": {
        "alice": ["analyst"],
        "bob": ["engineer"],
        "carol": ["auditor", "analyst"],
        "dave": ["ghost"],  # a role the policy does not define
    },
}


@pytest.fixture
def files(tmp_path):
    X = Interactions.from_arrays(
        ["ann", "ann", "bob", "cid"],
        ["s1", "s2", "s1", "s3"],
        weights=[3.0, 1.0, 2.0, 5.0],
        timestamps=[10.0, 20.0, 30.0, 40.0],
    )
    X.save(tmp_path / "log.npz")
    feats = ItemFeatures(
        {"audio": np.arange(6.0).reshape(3, 2), "video": np.ones((3, 4))}, items=["s1", "s2", "s3"]
    )
    feats.save(tmp_path / "features.npz")
    Popularity().fit(X).save(tmp_path / "model")
    save_arrays(tmp_path / "release.npz", {"counts": np.array([3.1, 0.9]), "sigma": np.array(2.0)})
    return {
        "X": X,
        "features": feats,
        "interactions": tmp_path / "log.npz",
        "features_path": tmp_path / "features.npz",
        "model": tmp_path / "model",
        "release": tmp_path / "release.npz",
    }


@pytest.fixture
def guard(tmp_path):
    return AccessGuard(AccessPolicy.from_dict(POLICY), AuditLog(tmp_path / "reads.jsonl", key=KEY))


def read(guard, files, resource, principal, purpose, fields=None):
    if resource == "interactions":
        return guard.load_interactions(
            files["interactions"], principal=principal, purpose=purpose, fields=fields
        )
    if resource == "features":
        return guard.load_features(
            files["features_path"], principal=principal, purpose=purpose, fields=fields
        )
    if resource == "model":
        return guard.load_model(files["model"], principal=principal, purpose=purpose)
    return guard.load_release(files["release"], principal=principal, purpose=purpose, fields=fields)


MATRIX = [
    # principal, resource, purpose, allowed
    ("alice", "interactions", "evaluation", True),
    ("alice", "interactions", "audit", False),  # purpose of another role
    ("alice", "interactions", "marketing", False),  # a purpose no rule names
    ("alice", "features", "training", False),  # resource not granted to the role
    ("alice", "model", "serving", False),
    ("alice", "release", "reporting", True),
    ("bob", "features", "training", True),
    ("bob", "features", "evaluation", False),
    ("bob", "model", "serving", True),
    ("bob", "model", "evaluation", True),
    ("bob", "interactions", "evaluation", False),
    ("bob", "release", "reporting", False),
    ("carol", "interactions", "audit", True),
    ("carol", "interactions", "evaluation", True),  # via her second role
    ("carol", "model", "serving", False),
    ("carol", "release", "audit", True),
    ("dave", "interactions", "evaluation", False),  # unknown role
    ("dave", "model", "serving", False),
    ("mallory", "release", "reporting", False),  # unknown principal
    ("mallory", "model", "serving", False),
]


@pytest.mark.parametrize(("principal", "resource", "purpose", "allowed"), MATRIX)
def test_allow_deny_matrix_and_every_decision_is_audited(
    guard, files, principal, resource, purpose, allowed
):
    if allowed:
        assert read(guard, files, resource, principal, purpose) is not None
    else:
        with pytest.raises(AccessDenied, match=f"{principal} may not read {resource}") as info:
            read(guard, files, resource, principal, purpose)
        assert isinstance(info.value, PermissionError) and isinstance(info.value, AvrecError)
    entries = guard.audit_log.entries()
    assert len(entries) == 1  # one entry per decision, allowed or not
    payload = entries[0]["payload"]
    assert entries[0]["event"] == "access"
    assert (payload["principal"], payload["resource"], payload["purpose"]) == (
        principal,
        resource,
        purpose,
    )
    assert payload["allowed"] is allowed
    names = {"interactions": "log.npz", "features": "features.npz", "model": "model"}
    assert payload["target"].endswith(names.get(resource, "release.npz"))
    if not allowed:
        assert payload["fields"] is None
        reason = payload["reason"]
        assert ("unknown principal" in reason) if principal == "mallory" else ("no rule" in reason)
    assert guard.audit_log.verify()


def test_decisions_match_the_matrix_without_reading():
    policy = AccessPolicy.from_dict(POLICY)
    for principal, resource, purpose, allowed in MATRIX:
        assert bool(policy.decide(principal, resource, purpose)) is allowed
    assert policy.roles_of("dave") == ("ghost",) and policy.roles_of("mallory") == ()


def test_interaction_fields_are_filtered(guard, files):
    X = files["X"]
    partial = read(guard, files, "interactions", "alice", "evaluation")
    assert partial.users.ids.tolist() == [0, 1, 2]  # no user ids granted: positions
    assert partial.items == X.items
    np.testing.assert_array_equal(partial.matrix.toarray(), X.matrix.toarray())
    assert partial.timestamps is None
    items_only = read(guard, files, "interactions", "alice", "evaluation", fields=["items"])
    np.testing.assert_array_equal(items_only.matrix.toarray(), X.matrix.toarray() > 0)
    full = read(guard, files, "interactions", "carol", "audit")
    assert full == X and full.timestamps is not None
    with pytest.raises(AccessDenied, match=r"fields \['timestamps', 'users'\] are not granted"):
        read(guard, files, "interactions", "alice", "evaluation", ["users", "timestamps", "items"])
    with pytest.raises(DataValidationError, match="not interaction fields"):
        read(guard, files, "interactions", "carol", "audit", fields=["ratings"])
    payloads = [e["payload"] for e in guard.audit_log.entries()]
    assert [p["allowed"] for p in payloads] == [True, True, True, False]
    assert payloads[0]["fields"] == ["items", "weights"] and payloads[0]["requested"] is None
    assert payloads[1]["fields"] == ["items"] and payloads[1]["requested"] == ["items"]
    assert payloads[2]["fields"] is None  # "*"
    assert payloads[3]["requested"] == ["users", "timestamps", "items"]


def test_feature_and_release_fields_are_filtered(guard, files):
    feats = read(guard, files, "features", "bob", "training")
    assert feats.modalities == ["audio"]
    np.testing.assert_array_equal(feats["audio"], files["features"]["audio"])
    with pytest.raises(AccessDenied, match=r"fields \['video'\]"):
        read(guard, files, "features", "bob", "training", fields=["audio", "video"])
    assert read(guard, files, "features", "carol", "audit").modalities == ["audio", "video"]
    with pytest.raises(DataValidationError, match=r"has no modality \['text'\]"):
        read(guard, files, "features", "carol", "audit", fields=["text"])
    release = read(guard, files, "release", "alice", "reporting")
    assert list(release) == ["counts"]
    assert sorted(read(guard, files, "release", "carol", "audit")) == ["counts", "sigma"]
    assert sorted(read(guard, files, "release", "carol", "audit", fields=["sigma"])) == ["sigma"]
    with pytest.raises(DataValidationError, match="models have no fields"):
        guard.policy.decide("bob", "model", "serving", fields=["item_scores_"])
    model = read(guard, files, "model", "bob", "serving")
    assert isinstance(model, Recommender)


def test_denied_read_never_opens_the_file(guard, tmp_path):
    missing = tmp_path / "does-not-exist.npz"
    with pytest.raises(AccessDenied):  # not PersistenceError: decided before any read
        guard.load_interactions(missing, principal="mallory", purpose="evaluation")
    with pytest.raises(PersistenceError, match="not found"):  # allowed, then read
        guard.load_interactions(missing, principal="alice", purpose="evaluation")
    assert [e["payload"]["allowed"] for e in guard.audit_log.entries()] == [False, True]


def _rewrite(log, edit):
    entries = log.entries()
    edit(entries)
    log.path.write_bytes(
        b"".join(
            json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
            + b"\n"
            for e in entries
        )
    )


def test_tampering_with_the_log_of_reads_is_detected(guard, files):
    read(guard, files, "model", "bob", "serving")
    with pytest.raises(AccessDenied):
        read(guard, files, "interactions", "mallory", "evaluation")
    read(guard, files, "release", "alice", "reporting")
    log = guard.audit_log
    head, log_id, original = log.head(), log.log_id, log.path.read_bytes()
    assert log.verify(expected_head=head, expected_log_id=log_id)

    def whitewash(entries):  # turn the denied attempt into an allowed read by someone else
        entries[1]["payload"].update(allowed=True, principal="bob")

    _rewrite(log, whitewash)
    result = log.verify()
    assert not result and result.first_bad == 1 and "hash mismatch" in result.reason

    log.path.write_bytes(original)
    _rewrite(log, lambda entries: entries.pop(1))  # hide the denied attempt
    assert log.verify().first_bad == 1

    log.path.write_bytes(original)
    _rewrite(log, lambda entries: entries.pop())  # drop the last read
    assert log.verify()  # a shorter valid chain ...
    assert not log.verify(expected_head=head)  # ... that the recorded head exposes

    log.path.write_bytes(original)
    _rewrite(log, lambda entries: entries[-1]["payload"].update(purpose="audit"))
    with pytest.raises(PersistenceError, match="does not verify"):  # no read is unlogged
        read(guard, files, "model", "bob", "serving")
    assert len(log) == 3


BAD_POLICIES = [
    ({"roles": {}}, "needs both"),
    ({"roles": {}, "principals": {}, "extra": 1}, r"unknown key\(s\) \['extra'\]"),
    ({"roles": {}, "principals": {}, "version": 2}, "unsupported version"),
    ({"roles": {"r": {"resource": "model"}}, "principals": {}}, r"roles\['r'\] must be a list"),
    ({"roles": {"r": [{"resource": "db", "purposes": ["x"]}]}, "principals": {}}, "resource"),
    ({"roles": {"r": [{"resource": "model"}]}, "principals": {}}, "'purposes' is missing"),
    (
        {"roles": {"r": [{"resource": "model", "purposes": "serving"}]}, "principals": {}},
        "purposes must be a non-empty list",
    ),
    (
        {"roles": {"r": [{"resource": "features", "purposes": ["t"]}]}, "principals": {}},
        "fields is missing",
    ),
    (
        {
            "roles": {"r": [{"resource": "interactions", "purposes": ["t"], "fields": ["age"]}]},
            "principals": {},
        },
        r"got \['age'\]",
    ),
    (
        {"roles": {"r": [{"resource": "model", "purposes": ["t"], "fields": ["w"]}]}},
        "needs both",
    ),
    (
        {
            "roles": {"r": [{"resource": "model", "purposes": ["t"], "fields": ["w"]}]},
            "principals": {},
        },
        "a model has no fields",
    ),
    (
        {
            "roles": {"r": [{"resource": "model", "purposes": ["t"], "class": "subprocess.Popen"}]},
            "principals": {},
        },
        r"roles\['r'\]\[0\]: unknown key\(s\) \['class'\]",
    ),
    ({"roles": {}, "principals": {"p": "admin"}}, r"principals\['p'\] must be a non-empty list"),
    ({"roles": {}, "principals": {"": ["r"]}}, "principal name"),
    ([], "must be a JSON object"),
]


@pytest.mark.parametrize(("doc", "message"), BAD_POLICIES)
def test_malformed_policies_are_refused(doc, message):
    with pytest.raises(ConfigurationError, match=message):
        AccessPolicy.from_dict(doc)


def test_policy_json_round_trip_and_argument_checks(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    policy = AccessPolicy.from_json(path)
    assert policy.to_dict() == POLICY
    assert AccessPolicy.from_dict(policy.to_dict()).to_dict() == POLICY
    assert "analyst" in repr(policy)
    with pytest.raises(DataValidationError, match="resource must be one of"):
        policy.decide("alice", "database", "evaluation")
    with pytest.raises(DataValidationError, match="purpose must be a non-empty str"):
        policy.decide("alice", "interactions", "")
    with pytest.raises(DataValidationError, match="fields must be None or a non-empty list"):
        policy.decide("alice", "interactions", "evaluation", fields="items")
    with pytest.raises(ConfigurationError, match="policy must be an AccessPolicy"):
        AccessGuard(POLICY, tmp_path / "log.jsonl")
