"""Access control: who may read which logs, features, models and DP releases, and why.

A deny-by-default :class:`~avrec.privacy.AccessPolicy` (plain JSON) maps roles and
purposes to resources and fields; an :class:`~avrec.privacy.AccessGuard` reads through
it and appends every decision -- allowed or denied -- to a keyed, hash-chained
:class:`~avrec.privacy.AuditLog`. The script then rewrites a denial in the log as an
allowed read, and verification catches it.

Run: ``python examples/access_control.py`` (a few seconds on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
from pathlib import Path

import numpy as np

from avrec.data import ItemFeatures, make_interactions
from avrec.exceptions import AccessDenied
from avrec.privacy import AccessGuard, AccessPolicy, AuditLog, dp_item_popularity
from avrec.recommenders import ItemKNN
from avrec.utils import save_arrays

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
        "ml-engineer": [
            {"resource": "features", "purposes": ["training"], "fields": ["audio"]},
            {"resource": "model", "purposes": ["serving", "evaluation"]},
        ],
        "privacy-officer": [
            {"resource": "interactions", "purposes": ["audit"], "fields": "*"},
        ],
    },
    "principals": {
        "alice": ["analyst"],
        "recsys-api": ["ml-engineer"],
        "olga": ["privacy-officer"],
        "intern": ["summer-intern"],  # a role with no rules: denied everything
    },
}


def write_data(folder: Path, args: argparse.Namespace) -> None:
    """The protected files: a play log, item features, a fitted model and a DP release."""
    X = make_interactions(
        args.users, args.items, density=args.density, timestamps=True, random_state=args.seed
    )
    X.save(folder / "plays.npz")
    rng = np.random.default_rng(args.seed)
    ItemFeatures(
        {"audio": rng.normal(size=(X.n_items, 8)), "video": rng.normal(size=(X.n_items, 6))},
        items=X.items,
    ).save(folder / "features.npz")
    ItemKNN(k=20).fit(X).save(folder / "itemknn")
    counts = dp_item_popularity(X, 1.0, max_items_per_user=20, random_state=args.seed)
    save_arrays(folder / "popularity-release.npz", {"counts": counts, "epsilon": np.array(1.0)})
    (folder / "policy.json").write_text(json.dumps(POLICY, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--density", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_data(folder, args)
        audit_key = secrets.token_bytes(32)  # kept away from whoever writes the log
        log = AuditLog(folder / "reads.jsonl", key=audit_key)
        guard = AccessGuard(AccessPolicy.from_json(folder / "policy.json"), log)

        X = guard.load_interactions(folder / "plays.npz", principal="alice", purpose="evaluation")
        print(f"allowed: alice/evaluation gets {X}; user ids {X.users.ids[:3].tolist()}...")
        feats = guard.load_features(
            folder / "features.npz", principal="recsys-api", purpose="training"
        )
        print(f"allowed: recsys-api/training gets modalities {feats.modalities}")
        model = guard.load_model(folder / "itemknn", principal="recsys-api", purpose="serving")
        top, _ = model.recommend([0], k=5)
        print(f"allowed: recsys-api/serving loads {model!r}, top items {top[0].tolist()}")
        release = guard.load_release(
            folder / "popularity-release.npz", principal="alice", purpose="reporting"
        )
        print(f"allowed: alice/reporting gets arrays {sorted(release)}")

        attempts = [  # (what, call)
            (
                "alice asks for timestamps",
                lambda: guard.load_interactions(
                    folder / "plays.npz",
                    principal="alice",
                    purpose="evaluation",
                    fields=["items", "timestamps"],
                ),
            ),
            (
                "alice for marketing",
                lambda: guard.load_release(
                    folder / "popularity-release.npz", principal="alice", purpose="marketing"
                ),
            ),
            (
                "the intern",
                lambda: guard.load_model(
                    folder / "itemknn", principal="intern", purpose="evaluation"
                ),
            ),
        ]
        for what, attempt in attempts:
            try:
                attempt()
            except AccessDenied as exc:
                print(f"denied: {what}: {str(exc).split(': ', 1)[1]}")

        print(f"\n{'seq':>3}  {'principal':<11} {'resource':<13} {'purpose':<11} decision")
        for entry in log.entries():
            p = entry["payload"]
            decision = "allowed" if p["allowed"] else "DENIED"
            print(
                f"{entry['seq']:>3}  {p['principal']:<11} {p['resource']:<13} "
                f"{p['purpose']:<11} {decision}"
            )
        head, log_id = log.head(), log.log_id  # keep these outside the log's reach
        result = log.verify(expected_head=head, expected_log_id=log_id)
        print(f"\naudit log verified: {result.ok} ({result.n_entries} entries)")

        # someone rewrites a denied read as an allowed one (valid JSON, canonical form)
        entries = log.entries()
        denied = next(e for e in entries if not e["payload"]["allowed"])
        denied["payload"]["allowed"] = True
        log.path.write_bytes(
            b"".join(
                json.dumps(e, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
                + b"\n"
                for e in entries
            )
        )
        result = log.verify(expected_head=head, expected_log_id=log_id)
        print(f"tampering detected at entry {result.first_bad}: {result.reason}")


if __name__ == "__main__":
    main()
