"""The Notification a subscription sends (GS CIM 009 5.3.1, 5.8.6), built from changes.

Entities are rendered like a query answer — the API's :class:`Compactor` with the
subscription's @context (or ``jsonldContext``), ``notification.format``, ``sysAttrs``,
``pick``/``omit`` and ``lang`` — after three notification-only steps on the expanded form:
keeping only ``notification.attributes``, showing deleted attributes as NGSI-LD Null
(``attributeDeleted``, and a deleted entity as ``id``/``type``/``deletedAt``), and, with
``showChanges``, adding the previous value of what changed (``previousValue``,
``previousObject``, ``previousLanguageMap``…).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cityos_interoperability.ngsild.jsonld.expansion import MAIN_MEMBER, NGSI_LD_NULL
from cityos_interoperability.ngsild.negotiation import GEO_JSON, JSON_LD, link_header
from cityos_interoperability.ngsild.representation import Compactor, Representation
from cityos_interoperability.ngsild.responses import context_link_url, response_context
from cityos_interoperability.ngsild.tenant import TENANT_HEADER
from cityos_interoperability.subscriptions.matcher import ENTITY_MEMBERS, Fired
from cityos_interoperability.subscriptions.model import Endpoint
from cityos_interoperability.subscriptions.registry import CompiledSubscription

#: Attribute type → the member carrying its previous main value (showChanges).
PREVIOUS_MEMBER = {
    kind: "previous" + member[0].upper() + member[1:] for kind, member in MAIN_MEMBER.items()
}

_NULL_VALUES: dict[str, Any] = {
    "LanguageProperty": {"@none": NGSI_LD_NULL},
    "ListProperty": [NGSI_LD_NULL],
    "ListRelationship": [NGSI_LD_NULL],
}


def format_instant(instant: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Notification:
    """One notification ready for a transport: the body and the binding's headers."""

    tenant: str | None
    subscription_id: str
    endpoint: Endpoint
    body: dict[str, Any]
    headers: dict[str, str]
    notified_at: datetime


def null_attribute(attribute: Any, deleted_at: str | None = None) -> Any:
    """An attribute (or its instances) with the main member set to NGSI-LD Null.

    With ``deleted_at`` (sysAttrs asked for) it keeps the instance's createdAt and
    modifiedAt, when the change event knew them, and says when it was deleted.
    """
    if isinstance(attribute, list):
        return [null_attribute(item, deleted_at) for item in attribute]
    kind = str(attribute.get("type", "Property")) if isinstance(attribute, Mapping) else "Property"
    nulled: dict[str, Any] = {
        "type": kind,
        MAIN_MEMBER.get(kind, "value"): _NULL_VALUES.get(kind, NGSI_LD_NULL),
    }
    if isinstance(attribute, Mapping) and "datasetId" in attribute:
        nulled["datasetId"] = attribute["datasetId"]
    if deleted_at is not None:
        if isinstance(attribute, Mapping):
            for member in ("createdAt", "modifiedAt"):
                if member in attribute:
                    nulled[member] = attribute[member]
        nulled["deletedAt"] = deleted_at
    return nulled


def deleted_instances(current: Any, previous: Any, deleted_at: str | None) -> Any:
    """An attribute after a deletion: what is left, plus the deleted instances as Null.

    When no instance is left the attribute is one Null, whatever datasetIds it had.
    """
    before = [p for p in _as_list(previous) if isinstance(p, Mapping)]
    after = _as_list(current)
    if not after:
        first = dict(before[0]) if before else {}
        first.pop("datasetId", None)
        return null_attribute(first, deleted_at)
    remaining = {item.get("datasetId") for item in after if isinstance(item, Mapping)}
    gone = [null_attribute(p, deleted_at) for p in before if p.get("datasetId") not in remaining]
    return [*after, *gone] if gone else current


def only_datasets(entity: Mapping[str, Any], dataset_ids: frozenset[str] | None) -> dict[str, Any]:
    """The entity with only the attribute instances of ``dataset_ids`` (``@none``: default)."""
    if dataset_ids is None:
        return dict(entity)
    kept: dict[str, Any] = {}
    for name, value in entity.items():
        if name in ENTITY_MEMBERS:
            kept[name] = value
            continue
        instances = [
            item
            for item in _as_list(value)
            if isinstance(item, Mapping) and item.get("datasetId", "@none") in dataset_ids
        ]
        if instances:
            kept[name] = instances[0] if len(instances) == 1 else instances
    return kept


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def changed_entity(
    fired: Fired, compiled: CompiledSubscription, current: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The expanded entity a notification shows for one fired change."""
    change = fired.change
    params = compiled.subscription.notification
    previous = change.previous or {}
    deleted_at = format_instant(now) if params.sys_attrs else None
    if change.kind == "deleted":
        entity: dict[str, Any] = {
            "id": change.entity_id,
            "type": sorted(change.types),
            "deletedAt": format_instant(now),
        }
        if params.sys_attrs:
            for member in ("createdAt", "modifiedAt"):
                if member in previous:
                    entity[member] = previous[member]
            entity["modifiedAt"] = entity["deletedAt"]
        nulled = set(fired.attributes) if "attributeDeleted" in fired.triggers else set()
        if params.show_changes:
            nulled |= change.deleted
        for name in sorted(nulled & set(previous)):
            entity[name] = null_attribute(previous[name], deleted_at)
    else:
        source = current if current is not None else change.entity
        entity = dict(source) if source else {"id": change.entity_id, "type": sorted(change.types)}
        if "attributeDeleted" in fired.triggers:
            for name in fired.attributes & change.deleted:
                entity[name] = deleted_instances(entity.get(name), previous.get(name), deleted_at)
    entity = only_datasets(entity, compiled.subscription.dataset_ids)
    return keep_attributes(entity, compiled.attributes)


def keep_attributes(entity: Mapping[str, Any], attributes: frozenset[str] | None) -> dict[str, Any]:
    """The entity with only ``notification.attributes`` (expanded names) left."""
    if attributes is None:
        return dict(entity)
    return {
        name: value
        for name, value in entity.items()
        if name in ENTITY_MEMBERS or name in attributes
    }


class NotificationBuilder:
    """Renders the entities of one subscription's notification."""

    def __init__(self, compiled: CompiledSubscription) -> None:
        self.compiled = compiled
        params = compiled.subscription.notification
        self.compactor = Compactor(
            compiled.render_terms,
            Representation(
                format=params.format,
                sys_attrs=params.sys_attrs,
                pick=frozenset(params.pick) if params.pick else None,
                omit=frozenset(params.omit) if params.omit else None,
                lang=compiled.subscription.lang,
            ),
        )

    def render(self, entity: Mapping[str, Any], fired: Fired | None = None) -> dict[str, Any]:
        """One expanded entity as the subscriber wants it, with previous values if asked."""
        rendered = self.compactor.entity(entity)
        if "deletedAt" in entity and "deletedAt" not in rendered:
            rendered["deletedAt"] = entity["deletedAt"]
        if fired is not None and self.compiled.subscription.notification.show_changes:
            self._show_changes(rendered, fired)
        return rendered

    def _show_changes(self, rendered: dict[str, Any], fired: Fired) -> None:
        change = fired.change
        previous = change.previous or {}
        names = fired.attributes - change.created
        if change.kind == "deleted":
            names = names | change.deleted
        for name in names:
            if name not in previous:
                continue
            compact = self.compactor.terms.compact(name)
            if compact not in rendered:
                continue
            rendered[compact] = with_previous(rendered[compact], previous[name], self.compactor)

    def notification(self, entities: Sequence[dict[str, Any]], now: datetime) -> Notification:
        """The Notification with ``entities`` (already rendered) as its data."""
        subscription = self.compiled.subscription
        endpoint = subscription.notification.endpoint
        terms = self.compiled.render_terms
        data: Any = list(entities)
        headers = {"Content-Type": endpoint.accept}
        if endpoint.accept == JSON_LD:
            context = response_context(terms)
            data = [{**item, "@context": context} for item in data]
        else:
            headers["Link"] = link_header(context_link_url(terms))
        if endpoint.accept == GEO_JSON:
            data = {
                "type": "FeatureCollection",
                "features": [_feature(item) for item in entities],
            }
        if subscription.tenant is not None:
            headers[TENANT_HEADER] = subscription.tenant
        for key, value in endpoint.receiver_info:
            headers[key] = value
        body = {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": subscription.id,
            "notifiedAt": format_instant(now),
            "data": data,
        }
        return Notification(subscription.tenant, subscription.id, endpoint, body, headers, now)


def with_previous(rendered: Any, previous: Any, compactor: Compactor) -> Any:
    """A rendered attribute with its previous main value (matched by datasetId)."""
    if isinstance(rendered, list):
        by_dataset = {
            item.get("datasetId"): item
            for item in (previous if isinstance(previous, list) else [previous])
            if isinstance(item, Mapping)
        }
        return [
            with_previous(item, by_dataset.get(item.get("datasetId")), compactor)
            if isinstance(item, dict)
            else item
            for item in rendered
        ]
    if isinstance(previous, list):
        previous = next((p for p in previous if "datasetId" not in p), None)
    if not isinstance(previous, Mapping):
        return rendered
    kind = str(previous.get("type", "Property"))
    main = MAIN_MEMBER.get(kind, "value")
    if main not in previous:
        return rendered
    value = previous[main]
    if kind == "VocabProperty":
        value = (
            [compactor.terms.compact(v) for v in value]
            if isinstance(value, list)
            else compactor.terms.compact(value)
        )
    if not isinstance(rendered, dict):
        rendered = {"value": rendered}  # concise: a bare value becomes {"value": …}
    return {**rendered, PREVIOUS_MEMBER.get(kind, "previousValue"): value}


def _feature(entity: Mapping[str, Any]) -> dict[str, Any]:
    location = entity.get("location")
    geometry = location.get("value") if isinstance(location, Mapping) else None
    return {
        "id": entity["id"],
        "type": "Feature",
        "geometry": geometry,
        "properties": {k: v for k, v in entity.items() if k != "id"},
    }
