"""Subscription documents (GS CIM 009 5.2.12-5.2.14, 5.2.22): checked, canonical, typed.

A subscription is kept as the client wrote it — names as written, with the @context it came
with — after :func:`check_subscription` has validated every member and dropped the
read-only ones (``status``, the notification's counters and timestamps), which the broker
keeps in columns of its own. :class:`Subscription` is the typed view the notifier works
with. The query members (``q``, ``scopeQ``, ``geoQ``, ``csf`` and an entity selector's type
selection) are checked with the knowledge layer's query parser, the one that later runs
them as SQL.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote

import orjson

from cityos_interoperability.ngsild.errors import BadRequestDataError
from cityos_interoperability.ngsild.facade import parse_query
from cityos_interoperability.ngsild.jsonld.context import ContextValue
from cityos_interoperability.ngsild.jsonld.expansion import check_name, is_uri
from cityos_interoperability.ngsild.negotiation import GEO_JSON, JSON, JSON_LD
from cityos_support.security.policy import DataScope

TRIGGERS = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)
DEFAULT_TRIGGERS = ("attributeCreated", "attributeUpdated")
ENDPOINT_MEDIA_TYPES = (JSON, JSON_LD, GEO_JSON)
ENDPOINT_SCHEMES = ("http", "https", "mqtt", "mqtts")
FORMATS = ("normalized", "concise", "keyValues", "simplified")

#: Any page size the query parser accepts: only the syntax of the filters is checked here.
VALIDATION_LIMIT = 1_000_000

Format = Literal["normalized", "concise", "keyValues"]
Status = Literal["active", "paused", "expired"]

#: Members of a Subscription a client may set (anything else is dropped).
MEMBERS = frozenset(
    {
        "id",
        "type",
        "subscriptionName",
        "description",
        "entities",
        "watchedAttributes",
        "notificationTrigger",
        "timeInterval",
        "q",
        "geoQ",
        "csf",
        "scopeQ",
        "lang",
        "isActive",
        "notification",
        "expiresAt",
        "throttling",
        "temporalQ",
        "jsonldContext",
        "datasetId",
    }
)
NOTIFICATION_MEMBERS = frozenset(
    {"attributes", "sysAttrs", "format", "showChanges", "pick", "omit", "endpoint"}
)
ENDPOINT_MEMBERS = frozenset(
    {"uri", "accept", "timeout", "cooldown", "receiverInfo", "notifierInfo"}
)


def new_subscription_id() -> str:
    return f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"


def parse_instant(value: object, where: str) -> datetime:
    """An ISO 8601 date-time with a time zone (BadRequestData otherwise)."""
    if not isinstance(value, str):
        raise BadRequestDataError(f"{where} must be an ISO 8601 date-time string")
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequestDataError(f"{where}: {value!r} is not an ISO 8601 date-time") from exc
    if instant.tzinfo is None:
        raise BadRequestDataError(f"{where}: {value!r} needs a time zone (e.g. Z)")
    return instant


# -- checking a document --------------------------------------------------------------------


def check_subscription(body: object, *, now: datetime) -> dict[str, Any]:
    """The canonical document of a Subscription a client sent (BadRequestData when invalid).

    ``id`` is generated when absent; ``@context`` is left to the caller.
    """
    if not isinstance(body, Mapping):
        raise BadRequestDataError("a subscription must be a JSON object")
    if body.get("type") != "Subscription":
        raise BadRequestDataError('a subscription needs "type": "Subscription"')
    document = {name: value for name, value in body.items() if name in MEMBERS}
    if document.get("id") is None:
        document["id"] = new_subscription_id()
    if not is_uri(document["id"]):
        raise BadRequestDataError(f"subscription id {document['id']!r} is not a URI")
    _check_document(document, now=now, creating=True)
    return document


def merge_subscription(
    document: Mapping[str, Any], fragment: object, *, now: datetime
) -> dict[str, Any]:
    """Apply an Update Subscription fragment (5.8.2): members replace, ``null`` removes.

    Members are replaced whole, ``notification`` included: a fragment that changes the
    format repeats the endpoint.
    """
    if not isinstance(fragment, Mapping) or not fragment:
        raise BadRequestDataError("the subscription fragment must be a non-empty JSON object")
    if "id" in fragment and fragment["id"] != document["id"]:
        raise BadRequestDataError("the fragment's id differs from the subscription's")
    if "type" in fragment and fragment["type"] != "Subscription":
        raise BadRequestDataError('a subscription fragment may only say "type": "Subscription"')
    merged = dict(document)
    for name, value in fragment.items():
        if name not in MEMBERS or name in {"id", "type"}:
            continue
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    _check_document(merged, now=now, creating="expiresAt" in fragment)
    return merged


def _check_document(document: dict[str, Any], *, now: datetime, creating: bool) -> None:
    for member in ("subscriptionName", "description", "lang"):
        if member in document and not isinstance(document[member], str):
            raise BadRequestDataError(f"{member} must be a string")
    if "entities" in document:
        document["entities"] = [
            _entity_selector(item, f"entities[{index}]")
            for index, item in enumerate(_non_empty_list(document["entities"], "entities"))
        ]
    if "watchedAttributes" in document:
        document["watchedAttributes"] = _names(document["watchedAttributes"], "watchedAttributes")
    if "entities" not in document and "watchedAttributes" not in document:
        raise BadRequestDataError("a subscription needs entities or watchedAttributes")
    if "notificationTrigger" in document:
        triggers = _non_empty_list(document["notificationTrigger"], "notificationTrigger")
        unknown = [t for t in triggers if t not in TRIGGERS]
        if unknown:
            raise BadRequestDataError(
                f"unknown notificationTrigger {unknown!r}; use {', '.join(TRIGGERS)}"
            )
    interval = _positive_number(document, "timeInterval", allow_zero=False)
    throttling = _positive_number(document, "throttling", allow_zero=True)
    if interval is not None and "watchedAttributes" in document:
        raise BadRequestDataError("timeInterval and watchedAttributes cannot be used together")
    if interval is not None and throttling is not None:
        raise BadRequestDataError("timeInterval and throttling cannot be used together")
    if "isActive" in document and not isinstance(document["isActive"], bool):
        raise BadRequestDataError("isActive must be true or false")
    if "expiresAt" in document:
        expires_at = parse_instant(document["expiresAt"], "expiresAt")
        if creating and expires_at <= now:
            raise BadRequestDataError("expiresAt must be in the future")
    _check_queries(document)
    if "jsonldContext" in document and not is_uri(document["jsonldContext"]):
        raise BadRequestDataError("jsonldContext must be a URI")
    if "datasetId" in document:
        for item in _non_empty_list(document["datasetId"], "datasetId"):
            if not (item == "@none" or is_uri(item)):
                raise BadRequestDataError(f"datasetId {item!r} is not a URI")
    if "notification" not in document:
        raise BadRequestDataError("a subscription needs notification parameters")
    document["notification"] = _notification(document["notification"])


def _check_queries(document: Mapping[str, Any]) -> None:
    for member in ("q", "scopeQ", "csf"):
        if member in document and not isinstance(document[member], str):
            raise BadRequestDataError(f"{member} must be a string")
    parameters = {"q": document.get("q"), "scopeQ": document.get("scopeQ")}
    if "geoQ" in document:
        parameters.update(geo_parameters(document["geoQ"]))
    parse_query({k: v for k, v in parameters.items() if v is not None}, max_limit=VALIDATION_LIMIT)
    if document.get("csf") is not None:
        parse_query({"q": document["csf"]}, max_limit=VALIDATION_LIMIT)


def geo_parameters(geo_q: object) -> dict[str, str]:
    """A geoQ object as the Query Entities parameters that express it."""
    if not isinstance(geo_q, Mapping):
        raise BadRequestDataError("geoQ must be an object")
    missing = [m for m in ("geometry", "coordinates", "georel") if geo_q.get(m) is None]
    if missing:
        raise BadRequestDataError(f"geoQ needs {', '.join(missing)}")
    coordinates = geo_q["coordinates"]
    parameters = {
        "geometry": str(geo_q["geometry"]),
        "georel": str(geo_q["georel"]),
        "coordinates": (
            coordinates if isinstance(coordinates, str) else orjson.dumps(coordinates).decode()
        ),
    }
    if geo_q.get("geoproperty") is not None:
        parameters["geoproperty"] = str(geo_q["geoproperty"])
    return parameters


def _entity_selector(item: object, where: str) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise BadRequestDataError(f"{where} must be an object")
    selector = {k: item[k] for k in ("id", "idPattern", "type") if k in item}
    kind = selector.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadRequestDataError(f"{where} needs a type")
    parse_query({"type": kind}, max_limit=VALIDATION_LIMIT)
    if "id" in selector and not is_uri(selector["id"]):
        raise BadRequestDataError(f"{where}.id {selector['id']!r} is not a URI")
    if "idPattern" in selector:
        pattern = selector["idPattern"]
        try:
            re.compile(pattern if isinstance(pattern, str) else "(")
        except re.error as exc:
            raise BadRequestDataError(f"{where}.idPattern is not a regular expression") from exc
    return selector


def _notification(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequestDataError("notification must be an object")
    notification = {k: v for k, v in value.items() if k in NOTIFICATION_MEMBERS}
    for member in ("attributes", "pick", "omit"):
        if member in notification:
            notification[member] = _names(notification[member], f"notification.{member}")
    if "pick" in notification and "omit" in notification:
        raise BadRequestDataError("notification.pick and notification.omit exclude each other")
    if "attributes" in notification and ("pick" in notification or "omit" in notification):
        raise BadRequestDataError("notification.attributes excludes pick and omit")
    fmt = notification.get("format", "normalized")
    if fmt not in FORMATS:
        raise BadRequestDataError(f"notification.format must be one of {', '.join(FORMATS)}")
    for member in ("sysAttrs", "showChanges"):
        if member in notification and not isinstance(notification[member], bool):
            raise BadRequestDataError(f"notification.{member} must be true or false")
    if notification.get("showChanges") and fmt in ("keyValues", "simplified"):
        raise BadRequestDataError("showChanges cannot be used with the keyValues format")
    if "endpoint" not in notification:
        raise BadRequestDataError("notification needs an endpoint")
    notification["endpoint"] = _endpoint(notification["endpoint"])
    return notification


def _endpoint(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequestDataError("notification.endpoint must be an object")
    endpoint = {k: v for k, v in value.items() if k in ENDPOINT_MEMBERS}
    uri = endpoint.get("uri")
    scheme = uri.split(":", 1)[0].lower() if isinstance(uri, str) else None
    if not is_uri(uri) or scheme not in ENDPOINT_SCHEMES or "//" not in str(uri):
        raise BadRequestDataError(
            f"notification.endpoint.uri {uri!r} is not an http(s):// or mqtt(s):// URI"
        )
    if "accept" in endpoint and endpoint["accept"] not in ENDPOINT_MEDIA_TYPES:
        raise BadRequestDataError(
            f"notification.endpoint.accept must be one of {', '.join(ENDPOINT_MEDIA_TYPES)}"
        )
    for member in ("timeout", "cooldown"):
        _positive_number(endpoint, member, allow_zero=False, where="notification.endpoint.")
    for member in ("receiverInfo", "notifierInfo"):
        if member in endpoint:
            endpoint[member] = _key_values(endpoint[member], f"notification.endpoint.{member}")
    for pair in endpoint.get("notifierInfo", []):
        _check_notifier_info(pair["key"], pair["value"])
    return endpoint


def _check_notifier_info(key: str, value: str) -> None:
    if key == "MQTT-QoS" and value not in ("0", "1", "2"):
        raise BadRequestDataError("notifierInfo MQTT-QoS must be 0, 1 or 2")
    if key == "MQTT-Version" and value not in ("mqtt3.1.1", "mqtt5.0"):
        raise BadRequestDataError("notifierInfo MQTT-Version must be mqtt3.1.1 or mqtt5.0")


def _key_values(value: object, where: str) -> list[dict[str, str]]:
    """KeyValuePair (5.2.22): both members are strings."""
    items = _non_empty_list(value, where)
    for item in items:
        if (
            not isinstance(item, Mapping)
            or set(item) != {"key", "value"}
            or not isinstance(item["key"], str)
            or not item["key"]
            or not isinstance(item["value"], str)
        ):
            raise BadRequestDataError(f"{where} items must be {{'key': string, 'value': string}}")
    return [{"key": item["key"], "value": item["value"]} for item in items]


def _names(value: object, where: str) -> list[str]:
    return [check_name(name, where) for name in _non_empty_list(value, where)]


def _non_empty_list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise BadRequestDataError(f"{where} must be a non-empty array")
    return value


def _positive_number(
    document: Mapping[str, Any], member: str, *, allow_zero: bool, where: str = ""
) -> float | None:
    if member not in document:
        return None
    value = document[member]
    valid = isinstance(value, int | float) and not isinstance(value, bool)
    if not valid or value < 0 or (value == 0 and not allow_zero):
        raise BadRequestDataError(
            f"{where}{member} must be a {'non-negative' if allow_zero else 'positive'} number"
        )
    return float(value)


# -- the typed view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntitySelector:
    """One member of ``entities``: a type (or type selection) and optionally id/idPattern."""

    type: str
    id: str | None = None
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    uri: str
    accept: str = JSON
    timeout: float | None = None
    receiver_info: tuple[tuple[str, str], ...] = ()
    notifier_info: tuple[tuple[str, str], ...] = ()

    @property
    def scheme(self) -> str:
        return self.uri.split(":", 1)[0].lower()

    def notifier_option(self, key: str) -> str | None:
        for name, value in self.notifier_info:
            if name == key:
                return value
        return None


@dataclass(frozen=True, slots=True)
class NotificationParams:
    endpoint: Endpoint
    format: Format = "normalized"
    attributes: tuple[str, ...] | None = None
    sys_attrs: bool = False
    show_changes: bool = False
    pick: tuple[str, ...] | None = None
    omit: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Subscription:
    """A stored subscription as the notifier reads it (names as the client wrote them)."""

    id: str
    tenant: str | None
    document: dict[str, Any]
    context: ContextValue | None
    entities: tuple[EntitySelector, ...]
    watched_attributes: frozenset[str] | None
    triggers: frozenset[str]
    notification: NotificationParams
    time_interval: float | None = None
    throttling: float | None = None
    expires_at: datetime | None = None
    is_active: bool = True
    q: str | None = None
    scope_q: str | None = None
    geo_q: dict[str, Any] | None = None
    lang: str | None = None
    jsonld_context: str | None = None
    dataset_ids: frozenset[str] | None = None
    #: When it was created or last changed: it notifies the changes made after that.
    since: datetime | None = None
    #: What the subject who created or last updated it may read (None: everything).
    scope: DataScope | None = None

    @classmethod
    def from_document(
        cls,
        tenant: str | None,
        document: Mapping[str, Any],
        context: ContextValue | None,
        since: datetime | None = None,
        *,
        scope: DataScope | None = None,
    ) -> Subscription:
        notification = document["notification"]
        endpoint = notification["endpoint"]
        fmt = notification.get("format", "normalized")
        watched = document.get("watchedAttributes")
        datasets = document.get("datasetId")
        expires = document.get("expiresAt")
        return cls(
            id=document["id"],
            tenant=tenant,
            document=dict(document),
            context=context,
            entities=tuple(
                EntitySelector(item["type"], item.get("id"), item.get("idPattern"))
                for item in document.get("entities", ())
            ),
            watched_attributes=frozenset(watched) if watched else None,
            triggers=frozenset(document.get("notificationTrigger") or DEFAULT_TRIGGERS),
            notification=NotificationParams(
                endpoint=Endpoint(
                    uri=endpoint["uri"],
                    accept=endpoint.get("accept", JSON),
                    timeout=endpoint.get("timeout"),
                    receiver_info=_pairs(endpoint.get("receiverInfo")),
                    notifier_info=_pairs(endpoint.get("notifierInfo")),
                ),
                format="keyValues" if fmt == "simplified" else fmt,
                attributes=_tuple(notification.get("attributes")),
                sys_attrs=bool(notification.get("sysAttrs", False)),
                show_changes=bool(notification.get("showChanges", False)),
                pick=_tuple(notification.get("pick")),
                omit=_tuple(notification.get("omit")),
            ),
            time_interval=document.get("timeInterval"),
            throttling=document.get("throttling") or None,
            expires_at=parse_instant(expires, "expiresAt") if expires else None,
            is_active=bool(document.get("isActive", True)),
            q=document.get("q"),
            scope_q=document.get("scopeQ"),
            geo_q=document.get("geoQ"),
            lang=document.get("lang"),
            jsonld_context=document.get("jsonldContext"),
            dataset_ids=frozenset(datasets) if datasets else None,
            since=since,
            scope=scope,
        )

    @property
    def periodic(self) -> bool:
        return self.time_interval is not None

    def status(self, now: datetime) -> Status:
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active" if self.is_active else "paused"

    def filter_parameters(self) -> dict[str, str]:
        """``q``, ``scopeQ`` and ``geoQ`` as Query Entities parameters (empty: no filter).

        ``q`` and ``scopeQ`` are written as in a query string, so percent-escapes
        (``name=="Eiffel%20Tower"``) are decoded as a query string's would be.
        """
        parameters: dict[str, str] = {}
        if self.q:
            parameters["q"] = unquote(self.q)
        if self.scope_q:
            parameters["scopeQ"] = unquote(self.scope_q)
        if self.geo_q:
            parameters.update(geo_parameters(self.geo_q))
        return parameters


def _pairs(items: list[dict[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple((item["key"], item["value"]) for item in items or ())


def _tuple(items: list[str] | None) -> tuple[str, ...] | None:
    return tuple(items) if items else None
