"""Guarded reads of logs, features, models and DP releases, each decision audited."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avrec.exceptions import AccessDenied, ConfigurationError, DataValidationError
from avrec.privacy._access_policy import (
    INTERACTION_FIELDS,
    AccessDecision,
    AccessPolicy,
    requested_fields,
)
from avrec.privacy._audit_log import AuditLog
from avrec.utils import load_arrays

__all__ = ["AccessGuard"]


class AccessGuard:
    """Read interaction logs, features, models and DP releases only as a policy allows.

    Every call asks the :class:`AccessPolicy`, appends the decision (who,
    what, which file, purpose, fields asked and granted, allowed or denied,
    why) to the hash-chained :class:`AuditLog`, and only then reads -- and
    returns only the granted fields. A denied read raises
    :class:`~avrec.exceptions.AccessDenied` after its entry is written. If
    the decision cannot be logged (say, the log was tampered with), nothing is
    read.

    Parameters
    ----------
    policy : AccessPolicy
    audit_log : AuditLog, str or path-like
        Where decisions go (a path opens an unkeyed log; give a keyed
        :class:`AuditLog` so that the record of reads cannot be rewritten).

    Attributes
    ----------
    policy : AccessPolicy
    audit_log : AuditLog

    Raises
    ------
    ConfigurationError
        If ``policy`` is not an AccessPolicy.

    Notes
    -----
    Field filtering: an interaction log read without ``"users"`` (or
    ``"items"``) gets positions ``0 .. n - 1`` as ids, without ``"weights"``
    ones for every interaction, without ``"timestamps"`` none. Positions still
    follow the stored order; combine with :class:`Pseudonymizer` for ids that
    cannot be linked. The guard protects reads made through it; it is no
    substitute for file permissions.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from avrec.data import Interactions
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> Interactions.from_arrays(["ann", "bob"], ["s1", "s2"], [2.0, 5.0]).save(folder / "log.npz")
    >>> policy = AccessPolicy.from_dict({
    ...     "roles": {"analyst": [{"resource": "interactions", "purposes": ["evaluation"],
    ...                            "fields": ["items", "weights"]}]},
    ...     "principals": {"alice": ["analyst"]}})
    >>> guard = AccessGuard(policy, AuditLog(folder / "reads.jsonl"))
    >>> X = guard.load_interactions(folder / "log.npz", principal="alice", purpose="evaluation")
    >>> X.users.ids.tolist(), X.items.ids.tolist()  # no user ids granted: positions
    ([0, 1], ['s1', 's2'])
    >>> guard.load_interactions(folder / "log.npz", principal="alice", purpose="ads")
    Traceback (most recent call last):
    ...
    avrec.exceptions.AccessDenied: alice may not read interactions ...
    >>> [e["payload"]["allowed"] for e in guard.audit_log.entries()]
    [True, False]
    """

    def __init__(self, policy: AccessPolicy, audit_log: AuditLog | str | os.PathLike[str]) -> None:
        if not isinstance(policy, AccessPolicy):
            raise ConfigurationError(f"policy must be an AccessPolicy, got {type(policy).__name__}")
        self.policy = policy
        self.audit_log = audit_log if isinstance(audit_log, AuditLog) else AuditLog(audit_log)

    def __repr__(self) -> str:
        return f"AccessGuard({self.policy!r}, {self.audit_log!r})"

    def check(
        self,
        resource: str,
        target: str | os.PathLike[str],
        *,
        principal: str,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> AccessDecision:
        """Decide, append the decision to the audit log, and raise if denied.

        Parameters
        ----------
        resource : {"interactions", "features", "model", "release"}
        target : str or path-like
            What is read (recorded in the log).
        principal, purpose : str
        fields : sequence of str, optional
            As in :meth:`AccessPolicy.decide`.

        Returns
        -------
        AccessDecision
            An allowed one.

        Raises
        ------
        AccessDenied
            If the policy denies the read (the entry is written first).
        PersistenceError
            If the audit log cannot be extended (nothing may then be read).

        Examples
        --------
        >>> import pathlib, tempfile
        >>> policy = AccessPolicy({"svc": [{"resource": "model", "purposes": ["serving"]}]},
        ...                       {"api": ["svc"]})
        >>> guard = AccessGuard(policy, pathlib.Path(tempfile.mkdtemp()) / "reads.jsonl")
        >>> guard.check("model", "models/ease", principal="api", purpose="serving").reason
        "allowed by roles ['svc']"
        """
        decision = self.policy.decide(principal, resource, purpose, fields)
        self.audit_log.append(
            "access",
            principal=principal,
            roles=list(decision.roles),
            resource=resource,
            target=os.fspath(target),
            purpose=purpose,
            requested=None if decision.requested is None else list(decision.requested),
            fields=None if decision.fields is None else list(decision.fields),
            allowed=decision.allowed,
            reason=decision.reason,
        )
        if not decision.allowed:
            raise AccessDenied(
                f"{principal} may not read {resource} {os.fspath(target)!r} for purpose "
                f"{purpose!r}: {decision.reason}"
            )
        return decision

    def load_interactions(
        self,
        path: str | os.PathLike[str],
        *,
        principal: str,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> Any:
        """Load an :class:`~avrec.data.Interactions` file (``save``'s ``.npz``) as allowed.

        Parameters
        ----------
        path : str or path-like
        principal, purpose : str
        fields : sequence of {"users", "items", "weights", "timestamps"}, optional
            Default: every field granted.

        Returns
        -------
        Interactions
            With only the granted fields (see the class Notes).

        Raises
        ------
        AccessDenied
            If the policy denies the read.
        DataValidationError
            For a field that interaction logs do not have.

        Examples
        --------
        See :class:`AccessGuard`.
        """
        if fields is not None:
            unknown = sorted(
                set(requested_fields(fields, "interactions")) - set(INTERACTION_FIELDS)
            )
            if unknown:
                raise DataValidationError(
                    f"fields {unknown} are not interaction fields {INTERACTION_FIELDS}"
                )
        decision = self.check(
            "interactions", path, principal=principal, purpose=purpose, fields=fields
        )
        from avrec.data import Interactions, Vocabulary

        data = Interactions.load(path)
        keep = set(INTERACTION_FIELDS if decision.fields is None else decision.fields)
        matrix = data.matrix.copy()
        if "weights" not in keep:
            matrix.data[:] = 1.0
        users = data.users if "users" in keep else Vocabulary(np.arange(data.n_users))
        items = data.items if "items" in keep else Vocabulary(np.arange(data.n_items))
        timestamps = data.timestamps if "timestamps" in keep else None
        return Interactions(matrix, users, items, timestamps)

    def load_features(
        self,
        path: str | os.PathLike[str],
        *,
        principal: str,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> Any:
        """Load an :class:`~avrec.data.ItemFeatures` file with the granted modalities only.

        Parameters
        ----------
        path : str or path-like
        principal, purpose : str
        fields : sequence of str, optional
            Modality names. Default: every granted modality the file has.

        Returns
        -------
        ItemFeatures

        Raises
        ------
        AccessDenied
            If the policy denies the read.
        DataValidationError
            If a requested modality is not in the file, or none granted is.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> from avrec.data import ItemFeatures
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> feats = ItemFeatures({"audio": np.ones((2, 3)), "video": np.zeros((2, 4))},
        ...                      items=["a", "b"])
        >>> feats.save(folder / "f.npz")
        >>> policy = AccessPolicy({"ml": [{"resource": "features", "purposes": ["training"],
        ...                               "fields": ["audio"]}]}, {"bob": ["ml"]})
        >>> guard = AccessGuard(policy, folder / "reads.jsonl")
        >>> guard.load_features(folder / "f.npz", principal="bob", purpose="training").modalities
        ['audio']
        """
        decision = self.check("features", path, principal=principal, purpose=purpose, fields=fields)
        from avrec.data import ItemFeatures

        features = ItemFeatures.load(path)
        wanted = _select(features.modalities, decision, fields, "modality", path)
        return features.select(wanted)

    def load_model(self, path: str | os.PathLike[str], *, principal: str, purpose: str) -> Any:
        """Load a saved recommender, as :meth:`avrec.recommenders.Recommender.load` does.

        Parameters
        ----------
        path : str or path-like
            A directory written by ``save``.
        principal, purpose : str

        Returns
        -------
        Recommender

        Raises
        ------
        AccessDenied
            If the policy denies the read.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> from avrec.data import make_interactions
        >>> from avrec.recommenders import Popularity
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> Popularity().fit(make_interactions(20, 10, random_state=0)).save(folder / "pop")
        >>> policy = AccessPolicy({"svc": [{"resource": "model", "purposes": ["serving"]}]},
        ...                       {"api": ["svc"]})
        >>> AccessGuard(policy, folder / "reads.jsonl").load_model(
        ...     folder / "pop", principal="api", purpose="serving")
        Popularity()
        """
        self.check("model", path, principal=principal, purpose=purpose)
        from avrec.recommenders import Recommender

        return Recommender.load(path)

    def load_release(
        self,
        path: str | os.PathLike[str],
        *,
        principal: str,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Load a DP release saved as named arrays (``.npz``), with the granted arrays only.

        Parameters
        ----------
        path : str or path-like
            An ``.npz`` file (e.g. written by :func:`avrec.utils.save_arrays`).
        principal, purpose : str
        fields : sequence of str, optional
            Array names. Default: every granted array the file has.

        Returns
        -------
        dict of str to ndarray

        Raises
        ------
        AccessDenied
            If the policy denies the read.
        DataValidationError
            If a requested array is not in the file, or none granted is.

        Examples
        --------
        >>> import pathlib, tempfile
        >>> import numpy as np
        >>> from avrec.utils import save_arrays
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> save_arrays(folder / "r.npz", {"counts": np.arange(3.0), "sigma": np.array(2.0)})
        >>> policy = AccessPolicy({"bi": [{"resource": "release", "purposes": ["report"],
        ...                               "fields": "*"}]}, {"carol": ["bi"]})
        >>> sorted(AccessGuard(policy, folder / "reads.jsonl").load_release(
        ...     folder / "r.npz", principal="carol", purpose="report"))
        ['counts', 'sigma']
        """
        decision = self.check("release", path, principal=principal, purpose=purpose, fields=fields)
        arrays = load_arrays(path)
        wanted = _select(list(arrays), decision, fields, "array", path)
        return {name: arrays[name] for name in wanted}


def _select(
    available: list[str],
    decision: AccessDecision,
    fields: Sequence[str] | None,
    kind: str,
    path: str | os.PathLike[str],
) -> list[str]:
    """The granted names that ``path`` has, in its order; an error for a requested one it lacks."""
    if fields is not None:
        missing = sorted(set(decision.fields or ()) - set(available))
        if missing:
            raise DataValidationError(f"{Path(path).name} has no {kind} {missing}")
    granted = None if decision.fields is None else set(decision.fields)
    wanted = [name for name in available if granted is None or name in granted]
    if not wanted:
        raise DataValidationError(
            f"{Path(path).name} has none of the granted {kind} names {sorted(granted or ())}"
        )
    return wanted
