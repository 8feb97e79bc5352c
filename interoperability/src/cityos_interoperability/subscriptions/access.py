"""Level-1 authorization of notifications: what a subscriber may read (ADR 0039).

A subscription keeps the data scope of the subject who created or last updated it — the
entity types it may read and, per type, the only attributes it may see — as JSON in the
``data_scope`` column; NULL means unrestricted (development mode, platform administrators,
and every subscription stored before scopes were kept). The notifier applies it before
matching triggers: a change to an entity none of whose types are readable is dropped, and
the attributes the scope hides are removed from the entity, its previous state and the
names the change touched, so a change of hidden attributes only notifies nothing, and
neither a notification's content nor the fact that one is sent tells anything hidden.
Subscriptions whose notifications come from the knowledge facade (``q``/``scopeQ``/``geoQ``,
``sysAttrs``, ``timeInterval``) pass the scope to it, which applies it in SQL.

Names in a scope are expanded by the knowledge facade (:meth:`KnowledgeService.data_access`),
exactly as its SQL filters expand them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from cityos_interoperability.ngsild.errors import ForbiddenError
from cityos_interoperability.subscriptions.matcher import ENTITY_MEMBERS, Change
from cityos_knowledge.service import DataAccess
from cityos_support.security.policy import DataScope

#: A data scope in the store's terms (the knowledge facade's ``data_access``).
ReadAccess = Callable[[DataScope], DataAccess | None]


def scope_document(scope: DataScope) -> dict[str, Any] | None:
    """What a subscription keeps of its subject's scope; None when it restricts no read."""
    if scope.readable_types is None and not scope.attributes:
        return None
    readable = scope.readable_types
    return {
        "readableTypes": None if readable is None else sorted(readable),
        "attributes": {name: sorted(names) for name, names in sorted(scope.attributes.items())},
    }


def scope_of(document: Mapping[str, Any] | None) -> DataScope | None:
    """The read scope :func:`scope_document` stored (None: unrestricted)."""
    if document is None:
        return None
    readable = document.get("readableTypes")
    return DataScope(
        tenants=None,  # the subscription's tenant was authorized when it was written
        readable_types=None if readable is None else frozenset(readable),
        writable_types=frozenset(),
        attributes={t: frozenset(names) for t, names in document.get("attributes", {}).items()},
    )


def may_read(access: DataAccess, types: Collection[str]) -> bool:
    """An entity is readable when one of its types is (as in the facade's SQL)."""
    return access.readable is None or not access.readable.isdisjoint(types)


def _visible(entity: dict[str, Any] | None, allowed: frozenset[str]) -> dict[str, Any] | None:
    if entity is None:
        return None
    return {k: v for k, v in entity.items() if k in ENTITY_MEMBERS or k in allowed}


def visible_change(change: Change, access: DataAccess | None) -> Change | None:
    """``change`` as the subscriber may see it; None when it may see nothing of it."""
    if access is None:
        return change
    if not may_read(access, change.types):
        return None
    names = access.visible_names(sorted(change.types), None)
    if names is None:
        return change
    allowed = frozenset(names)
    visible = Change(
        tenant=change.tenant,
        entity_id=change.entity_id,
        types=change.types,
        kind=change.kind,
        attributes=change.attributes & allowed,
        entity=_visible(change.entity, allowed),
        previous=_visible(change.previous, allowed),
    )
    touched = change.created | change.updated | change.deleted
    if (
        change.kind not in ("created", "deleted")
        and touched
        and not (visible.created | visible.updated | visible.deleted)
    ):
        return None  # only hidden attributes changed
    return visible


def require_readable_selection(type_names: Collection[str], access: DataAccess | None) -> None:
    """Refuse (403) a subscription whose entity selectors name only unreadable types."""
    if access is None or access.readable is None or not type_names:
        return
    if access.readable.isdisjoint(type_names):
        raise ForbiddenError(
            "the subscription selects only entity types this subject may not read: "
            + ", ".join(sorted(type_names))
        )
