"""Deny-by-default access policies: roles and purposes -> resources and fields."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from avrec.exceptions import ConfigurationError, DataValidationError
from avrec.utils import read_json

__all__ = ["AccessDecision", "AccessPolicy"]

#: What a policy can grant, and the fields of the resources whose fields are fixed.
RESOURCES = ("features", "interactions", "model", "release")
INTERACTION_FIELDS = ("items", "timestamps", "users", "weights")
_ALL = "*"
_RULE_KEYS = frozenset({"fields", "purposes", "resource"})


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be a non-empty str, got {value!r}")
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ConfigurationError(f"{where} must be a non-empty list of str, got {value!r}")
    return tuple(_name(v, f"{where}[{i}]") for i, v in enumerate(value))


@dataclass(frozen=True)
class _Rule:
    resource: str
    purposes: frozenset[str]
    fields: frozenset[str] | None  # None: every field


def _parse_rule(doc: Any, where: str) -> _Rule:
    if not isinstance(doc, Mapping):
        raise ConfigurationError(f"{where} must be an object, got {doc!r}")
    unknown = sorted(set(doc) - _RULE_KEYS)
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {unknown}; allowed {sorted(_RULE_KEYS)}")
    for key in ("resource", "purposes"):
        if key not in doc:
            raise ConfigurationError(f"{where}: {key!r} is missing")
    resource = doc["resource"]
    if resource not in RESOURCES:
        raise ConfigurationError(f"{where}.resource must be one of {RESOURCES}, got {resource!r}")
    purposes = frozenset(_names(doc["purposes"], f"{where}.purposes"))
    fields = doc.get("fields", _ALL if resource == "model" else None)
    if fields is None:
        raise ConfigurationError(
            f"{where}.fields is missing: list the fields (or '*' for all) a {resource} "
            "read may return"
        )
    if fields == _ALL:
        return _Rule(resource, purposes, None)
    if resource == "model":
        raise ConfigurationError(f"{where}.fields: a model has no fields; omit it or use '*'")
    names = frozenset(_names(fields, f"{where}.fields"))
    if resource == "interactions" and not names <= set(INTERACTION_FIELDS):
        raise ConfigurationError(
            f"{where}.fields: interactions have the fields {INTERACTION_FIELDS}, "
            f"got {sorted(names - set(INTERACTION_FIELDS))}"
        )
    return _Rule(resource, purposes, names)


@dataclass(frozen=True)
class AccessDecision:
    """One decision of an :class:`AccessPolicy`. True in a boolean context when allowed.

    Attributes
    ----------
    allowed : bool
    principal : str
        Who asked.
    resource : str
        What kind of thing: ``"interactions"``, ``"features"``, ``"model"`` or ``"release"``.
    purpose : str
        What for.
    roles : tuple of str
        The principal's roles in the policy (empty for an unknown principal).
    requested : tuple of str or None
        The fields asked for (None: whatever is allowed).
    fields : tuple of str or None
        The fields granted, sorted; None when every field is (or nothing, if denied).
    reason : str
        Which rule allowed it, or why it was denied.
    """

    allowed: bool
    principal: str
    resource: str
    purpose: str
    roles: tuple[str, ...]
    requested: tuple[str, ...] | None
    fields: tuple[str, ...] | None
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


class AccessPolicy:
    """A deny-by-default access policy: roles and purposes -> resources and fields.

    Everything not granted by a rule is denied: an unknown principal, a role
    without rules, a purpose no rule names, a resource or a field no rule
    lists. A policy is plain data (a dict, or a JSON file): it names no code
    and loading it runs none.

    Parameters
    ----------
    roles : mapping of str to list of dict
        For each role, its rules. A rule is ``{"resource": ..., "purposes":
        [...], "fields": [...]}``: it lets the role read ``resource`` (one of
        ``"interactions"``, ``"features"``, ``"model"``, ``"release"``) for any
        of the ``purposes``, returning only ``fields`` (``"*"`` for all).
        Fields are ``"users"``, ``"items"``, ``"weights"`` and ``"timestamps"``
        for interaction logs (the user-item matrix itself comes with every
        read), modality names for features, array names for DP releases;
        models have none (omit ``fields``).
    principals : mapping of str to list of str
        Who has which roles.

    Raises
    ------
    ConfigurationError
        If the policy is malformed: unknown keys, an unknown resource, an
        interaction field that does not exist, empty names or lists. The
        message gives the place, e.g. ``roles['analyst'][0].resource``.

    See Also
    --------
    AccessGuard : reads files through a policy and audits every decision.

    Examples
    --------
    >>> policy = AccessPolicy.from_dict({
    ...     "roles": {"analyst": [{"resource": "interactions", "purposes": ["evaluation"],
    ...                            "fields": ["items", "weights"]}]},
    ...     "principals": {"alice": ["analyst"]},
    ... })
    >>> policy.decide("alice", "interactions", "evaluation").fields
    ('items', 'weights')
    >>> policy.decide("alice", "interactions", "marketing").reason
    "no rule lets roles ['analyst'] read interactions for purpose 'marketing'"
    >>> bool(policy.decide("mallory", "model", "evaluation"))
    False
    """

    def __init__(
        self,
        roles: Mapping[str, Sequence[Mapping[str, Any]]],
        principals: Mapping[str, Sequence[str]],
    ) -> None:
        if not isinstance(roles, Mapping):
            raise ConfigurationError(f"roles must be a mapping role -> rules, got {roles!r}")
        if not isinstance(principals, Mapping):
            raise ConfigurationError(
                f"principals must be a mapping principal -> roles, got {principals!r}"
            )
        self._rules: dict[str, tuple[_Rule, ...]] = {}
        self._docs: dict[str, list[dict[str, Any]]] = {}
        for role, rules in roles.items():
            where = f"roles[{_name(role, 'a role name')!r}]"
            if isinstance(rules, (str, Mapping)) or not isinstance(rules, Sequence):
                raise ConfigurationError(f"{where} must be a list of rules, got {rules!r}")
            self._rules[role] = tuple(_parse_rule(r, f"{where}[{i}]") for i, r in enumerate(rules))
            self._docs[role] = [copy.deepcopy(dict(r)) for r in rules]
        self._principals: dict[str, tuple[str, ...]] = {
            _name(p, "a principal name"): _names(r, f"principals[{p!r}]")
            for p, r in principals.items()
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AccessPolicy:
        """Build a policy from ``{"roles": {...}, "principals": {...}, "version": 1}``.

        Parameters
        ----------
        doc : mapping

        Returns
        -------
        AccessPolicy

        Raises
        ------
        ConfigurationError
            If ``doc`` has other keys, a version other than 1, or a malformed part.

        Examples
        --------
        >>> AccessPolicy.from_dict({"roles": {}, "principals": {}}).roles_of("anyone")
        ()
        """
        if not isinstance(doc, Mapping):
            raise ConfigurationError(f"policy must be a JSON object, got {doc!r}")
        unknown = sorted(set(doc) - {"principals", "roles", "version"})
        if unknown:
            raise ConfigurationError(f"policy: unknown key(s) {unknown}")
        if doc.get("version", 1) != 1:
            raise ConfigurationError(f"policy: unsupported version {doc['version']!r}")
        if "roles" not in doc or "principals" not in doc:
            raise ConfigurationError("policy needs both 'roles' and 'principals'")
        return cls(doc["roles"], doc["principals"])

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> AccessPolicy:
        """Read a policy from a JSON file (see :meth:`from_dict`); nothing in it is executed.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        AccessPolicy

        Raises
        ------
        PersistenceError
            If the file is missing or not JSON.
        ConfigurationError
            If the policy is malformed.

        Examples
        --------
        >>> import json, pathlib, tempfile
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.json"
        >>> _ = path.write_text(json.dumps({"roles": {}, "principals": {"bob": ["guest"]}}))
        >>> AccessPolicy.from_json(path).roles_of("bob")
        ('guest',)
        """
        return cls.from_dict(read_json(path))

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data (``from_dict`` of it is an equal policy).

        Returns
        -------
        dict

        Examples
        --------
        >>> doc = {"roles": {"r": [{"resource": "model", "purposes": ["serving"]}]},
        ...        "principals": {"svc": ["r"]}}
        >>> AccessPolicy.from_dict(doc).to_dict() == {"version": 1, **doc}
        True
        """
        return {
            "version": 1,
            "roles": copy.deepcopy(self._docs),
            "principals": {p: list(r) for p, r in self._principals.items()},
        }

    def __repr__(self) -> str:
        return f"AccessPolicy(roles={sorted(self._rules)}, principals={len(self._principals)})"

    def roles_of(self, principal: str) -> tuple[str, ...]:
        """Return the roles of ``principal`` (empty when the policy does not know it).

        Parameters
        ----------
        principal : str

        Returns
        -------
        tuple of str

        Examples
        --------
        >>> AccessPolicy({}, {"ann": ["analyst"]}).roles_of("ann")
        ('analyst',)
        """
        return self._principals.get(principal, ())

    def decide(
        self,
        principal: str,
        resource: str,
        purpose: str,
        fields: Sequence[str] | None = None,
    ) -> AccessDecision:
        """Decide whether ``principal`` may read ``resource`` for ``purpose``, and which fields.

        Parameters
        ----------
        principal : str
        resource : {"interactions", "features", "model", "release"}
        purpose : str
        fields : sequence of str, optional
            The fields wanted. Default: every field the matching rules allow.
            Asking for one they do not allow denies the whole read (nothing is
            silently dropped). Models take none.

        Returns
        -------
        AccessDecision

        Raises
        ------
        DataValidationError
            If an argument has the wrong type, ``resource`` is unknown or
            fields are asked of a model.

        Examples
        --------
        >>> policy = AccessPolicy({"r": [{"resource": "features", "purposes": ["train"],
        ...                              "fields": ["audio"]}]}, {"eve": ["r"]})
        >>> policy.decide("eve", "features", "train", fields=["video"]).reason
        "fields ['video'] are not granted to roles ['r'] on features for purpose 'train'"
        """
        for value, arg in ((principal, "principal"), (purpose, "purpose")):
            if not isinstance(value, str) or not value:
                raise DataValidationError(f"{arg} must be a non-empty str, got {value!r}")
        if resource not in RESOURCES:
            raise DataValidationError(f"resource must be one of {RESOURCES}, got {resource!r}")
        requested = requested_fields(fields, resource)
        roles = self.roles_of(principal)

        def decision(allowed: bool, granted: tuple[str, ...] | None, reason: str) -> Any:
            return AccessDecision(
                allowed, principal, resource, purpose, roles, requested, granted, reason
            )

        if not roles:
            return decision(False, None, f"unknown principal {principal!r}")
        matching = [
            (role, rule)
            for role in roles
            for rule in self._rules.get(role, ())
            if rule.resource == resource and purpose in rule.purposes
        ]
        if not matching:
            return decision(
                False,
                None,
                f"no rule lets roles {list(roles)} read {resource} for purpose {purpose!r}",
            )
        grantors = sorted({role for role, _ in matching})
        if any(rule.fields is None for _, rule in matching):
            allowed_fields = None
        else:
            allowed_fields = frozenset().union(*(rule.fields for _, rule in matching))
        if requested is None:
            granted = None if allowed_fields is None else tuple(sorted(allowed_fields))
        else:
            refused = [] if allowed_fields is None else sorted(set(requested) - allowed_fields)
            if refused:
                return decision(
                    False,
                    None,
                    f"fields {refused} are not granted to roles {list(roles)} on {resource} "
                    f"for purpose {purpose!r}",
                )
            granted = tuple(sorted(set(requested)))
        return decision(True, granted, f"allowed by roles {grantors}")


def requested_fields(fields: Any, resource: str) -> tuple[str, ...] | None:
    if fields is None:
        return None
    if resource == "model":
        raise DataValidationError("fields must be None for a model: models have no fields")
    if isinstance(fields, str) or not isinstance(fields, Sequence) or not fields:
        raise DataValidationError(f"fields must be None or a non-empty list of str, got {fields!r}")
    if not all(isinstance(f, str) and f for f in fields):
        raise DataValidationError(f"fields must be non-empty str, got {fields!r}")
    return tuple(fields)
