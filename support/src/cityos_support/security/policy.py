"""Authorization policies: the three levels of U4SSC §6.3.8.2.4, evaluated for a subject.

A :class:`PolicyDocument` (kept in the configuration repository under
``security.policies``) grants each role, and optionally each subject or client id:

1. **functionality** — the operations it may perform (``permissions``: ``devices:provision``,
   ``rules:write``, ``datasets:publish``; ``devices:*`` and ``*`` are wildcards);
2. **platform elements** — which dashboards, subscriptions, rules and datasets it may see
   (``elements``: kind → id patterns);
3. **data access** — which entity types it may read and write and, per type, which
   attributes it may see (tenants come from the token, see :mod:`.tokens`).

:func:`evaluate` folds the grants of a subject's roles into one :class:`Grants`; its
:class:`DataScope` is the typed object other layers translate into SQL filters (``WHERE``
clauses on entity types and attribute names, in ``cityos_knowledge.query.authorization``),
so that filtering happens in the query, never after it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: The roles the platform knows (realm roles in Keycloak).
ROLES: tuple[str, ...] = ("platform-admin", "operator", "manager", "data-officer", "app", "citizen")

ElementKind = Literal["dashboards", "subscriptions", "rules", "datasets"]
ELEMENT_KINDS: tuple[ElementKind, ...] = ("dashboards", "subscriptions", "rules", "datasets")

#: The configuration-repository key holding the policy document.
POLICY_KEY = "security.policies"


class Grant(BaseModel):
    """What one role (or one subject) is granted, at the three levels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    permissions: list[str] = Field(default_factory=list, description="functionality level")
    read_types: list[str] = Field(
        default_factory=list, description="entity types readable ('*' = all)"
    )
    write_types: list[str] = Field(default_factory=list, description="entity types writable")
    attributes: dict[str, list[str]] = Field(
        default_factory=dict,
        description="entity type -> the only attributes visible on it (absent: all)",
    )
    elements: dict[ElementKind, list[str]] = Field(
        default_factory=dict, description="platform element kind -> visible id patterns"
    )


class PolicyDocument(BaseModel):
    """The whole authorization policy: grants per role, and extra grants per subject."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: dict[str, Grant] = Field(default_factory=dict)
    subjects: dict[str, Grant] = Field(
        default_factory=dict, description="extra grants by token subject or client id (azp)"
    )


ALL = frozenset({"*"})


def _patterns(values: Iterable[str]) -> frozenset[str] | None:
    found = frozenset(values)
    return None if "*" in found else found


@dataclass(frozen=True)
class DataScope:
    """Which tenants, entity types and attributes a subject may touch (``None`` = all).

    The knowledge layer turns it into SQL (``cityos_knowledge.query.authorization``, through
    the facade's ``scope`` argument): a tenant outside it is refused, only readable types are
    selected, hidden attributes are projected out, and writes need writable types.
    """

    tenants: frozenset[str] | None = frozenset()
    readable_types: frozenset[str] | None = frozenset()
    writable_types: frozenset[str] | None = frozenset()
    attributes: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows_tenant(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def may_read(self, entity_type: str) -> bool:
        return self.readable_types is None or entity_type in self.readable_types

    def may_write(self, entity_type: str) -> bool:
        return self.writable_types is None or entity_type in self.writable_types

    def visible_attributes(self, entity_type: str) -> frozenset[str] | None:
        """The only attributes visible on ``entity_type``, or ``None`` when all are."""
        return self.attributes.get(entity_type)


@dataclass(frozen=True)
class Grants:
    """Everything a subject may do, folded from its roles' and its own grants."""

    permissions: frozenset[str] = frozenset()
    scope: DataScope = field(default_factory=DataScope)
    elements: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def allows(self, permission: str) -> bool:
        """Functionality level: may the subject perform ``permission``?"""
        return any(fnmatch.fnmatchcase(permission, granted) for granted in self.permissions)

    def may_see(self, kind: ElementKind, element_id: str) -> bool:
        """Platform-element level: may the subject see this dashboard/rule/dataset/...?"""
        patterns = self.elements.get(kind, frozenset())
        return any(fnmatch.fnmatchcase(element_id, pattern) for pattern in patterns)


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


def evaluate(
    policy: PolicyDocument,
    *,
    roles: Iterable[str],
    subjects: Iterable[str] = (),
    tenants: frozenset[str] | None,
) -> Grants:
    """Fold the grants of ``roles`` and of the subject's ids into one :class:`Grants`."""
    chosen = [policy.roles[role] for role in sorted(set(roles)) if role in policy.roles]
    chosen += [policy.subjects[name] for name in subjects if name in policy.subjects]
    permissions: set[str] = set()
    readable: frozenset[str] | None = frozenset()
    writable: frozenset[str] | None = frozenset()
    elements: dict[str, set[str]] = {}
    restricted: dict[str, set[str]] = {}
    unrestricted: set[str] = set()
    for grant in chosen:
        permissions.update(grant.permissions)
        readable = _union(readable, _patterns(grant.read_types))
        writable = _union(writable, _patterns(grant.write_types))
        for kind, patterns in grant.elements.items():
            elements.setdefault(kind, set()).update(patterns)
        for entity_type in set(grant.read_types) - {"*"} - set(grant.attributes):
            unrestricted.add(entity_type)
        if "*" in grant.read_types:
            unrestricted.add("*")
        for entity_type, names in grant.attributes.items():
            restricted.setdefault(entity_type, set()).update(names)
    # An attribute restriction holds only if no other grant shows the whole type.
    attributes = {
        entity_type: frozenset(names)
        for entity_type, names in restricted.items()
        if entity_type not in unrestricted and "*" not in unrestricted
    }
    scope = DataScope(
        tenants=tenants,
        readable_types=readable,
        writable_types=writable,
        attributes=attributes,
    )
    return Grants(
        permissions=frozenset(permissions),
        scope=scope,
        elements={kind: frozenset(patterns) for kind, patterns in elements.items()},
    )


def _grant(**values: Any) -> Grant:
    return Grant.model_validate(values)


#: The policies a fresh platform starts with (also in ``deploy/keycloak/policies.json``).
DEFAULT_POLICY = PolicyDocument(
    roles={
        "platform-admin": _grant(
            permissions=["*"],
            read_types=["*"],
            write_types=["*"],
            elements={kind: ["*"] for kind in ELEMENT_KINDS},
        ),
        "operator": _grant(
            permissions=[
                "devices:*",
                "contexts:*",
                "entities:read",
                "entities:write",
                "temporal:read",
                "subscriptions:*",
                "rules:read",
                "monitoring:*",
                "config:read",
            ],
            read_types=["*"],
            write_types=["*"],
            elements={"dashboards": ["*"], "subscriptions": ["*"], "rules": ["*"]},
        ),
        "manager": _grant(
            permissions=[
                "entities:read",
                "contexts:read",
                "temporal:read",
                "subscriptions:read",
                "rules:read",
                "rules:write",
                "datasets:read",
            ],
            read_types=["*"],
            elements={"dashboards": ["*"], "rules": ["*"], "datasets": ["*"]},
        ),
        "data-officer": _grant(
            permissions=[
                "entities:read",
                "contexts:read",
                "temporal:read",
                "datasets:*",
                "publication:*",
                "audit:read",
                "config:read",
                "policies:write",
                "data:purge",
            ],
            read_types=["*"],
            elements={"datasets": ["*"], "dashboards": ["*"]},
        ),
        "app": _grant(
            permissions=[
                "entities:read",
                "entities:write",
                "contexts:read",
                "temporal:read",
                "subscriptions:read",
                "subscriptions:write",
            ],
            read_types=["*"],
            write_types=["*"],
            elements={"subscriptions": ["*"]},
        ),
        "citizen": _grant(permissions=["opendata:read"], elements={"datasets": ["*"]}),
    }
)
