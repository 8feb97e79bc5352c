"""Subscription operations behind ``/subscriptions`` (5.8.1-5.8.5) and their JSON form.

Blocking (the store is SQLAlchemy on psycopg2, a @context may be fetched): the routes
call it in a worker thread. Every change invalidates this process's notifier registry, so
a notification can follow a subscription created a moment before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cityos_interoperability.ngsild.errors import (
    AlreadyExistsError,
    BadRequestDataError,
    ResourceNotFoundError,
)
from cityos_interoperability.ngsild.jsonld.context import ContextResolver, ContextValue, TermMap
from cityos_interoperability.ngsild.jsonld.expansion import is_uri
from cityos_interoperability.subscriptions.access import (
    require_readable_selection,
    scope_document,
    scope_of,
)
from cityos_interoperability.subscriptions.model import (
    DEFAULT_TRIGGERS,
    Subscription,
    check_subscription,
    merge_subscription,
)
from cityos_interoperability.subscriptions.registry import (
    CompiledSubscription,
    SubscriptionRegistry,
    compile_subscription,
)
from cityos_interoperability.subscriptions.rendering import format_instant
from cityos_interoperability.subscriptions.store import StoredSubscription, SubscriptionStore
from cityos_support.security.policy import DataScope


def check_subscription_id(subscription_id: str) -> str:
    if not is_uri(subscription_id):
        raise BadRequestDataError(f"subscription id {subscription_id!r} is not a URI")
    return subscription_id


class SubscriptionService:
    """Create, read, update and delete subscriptions of a tenant."""

    def __init__(
        self,
        store: SubscriptionStore,
        registry: SubscriptionRegistry,
        resolver: ContextResolver,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._registry = registry
        self._resolver = resolver
        self._clock = clock

    def create(
        self, tenant: str | None, body: object, context: ContextValue | None, *, scope: DataScope
    ) -> str:
        """Store a new subscription; returns its id (409 AlreadyExists when taken).

        Its notifications are limited to what ``scope`` (its creator's) may read; a
        subscription selecting only types the scope cannot read is refused (403).
        """
        now = self._clock()
        document = check_subscription(body, now=now)
        kept_scope = scope_document(scope)
        self._compile(tenant, document, context, kept_scope)
        if not self._store.create(tenant, document, context, now, data_scope=kept_scope):
            raise AlreadyExistsError(f"subscription {document['id']} already exists")
        self._registry.invalidate()
        return str(document["id"])

    def get(self, tenant: str | None, subscription_id: str) -> StoredSubscription:
        found = self._store.get(tenant, check_subscription_id(subscription_id))
        if found is None:
            raise ResourceNotFoundError(f"subscription {subscription_id} does not exist")
        return found

    def page(
        self, tenant: str | None, *, limit: int, offset: int
    ) -> tuple[list[StoredSubscription], int]:
        return self._store.page(tenant, limit=limit, offset=offset)

    def update(
        self, tenant: str | None, subscription_id: str, fragment: object, *, scope: DataScope
    ) -> None:
        """Merge a fragment into a subscription (its @context stays the one it was made with).

        Its notifications are limited from now on to what ``scope`` (its updater's) may read.
        """
        stored = self.get(tenant, subscription_id)
        now = self._clock()
        current = stored.subscription
        document = merge_subscription(current.document, fragment, now=now)
        kept_scope = scope_document(scope)
        self._compile(tenant, document, current.context, kept_scope)
        if not self._store.replace(tenant, document, current.context, now, data_scope=kept_scope):
            raise ResourceNotFoundError(f"subscription {subscription_id} does not exist")
        self._registry.invalidate()

    def _compile(
        self,
        tenant: str | None,
        document: dict[str, Any],
        context: ContextValue | None,
        kept_scope: dict[str, Any] | None,
    ) -> CompiledSubscription:
        """Compile now, so an unusable @context or scope fails the request, not the notifier."""
        subscription = Subscription.from_document(
            tenant, document, context, scope=scope_of(kept_scope)
        )
        compiled = compile_subscription(subscription, self._resolver, self._registry.read_access)
        named = {name for selector in compiled.selectors for name in selector.types.names}
        require_readable_selection(named, compiled.access)
        return compiled

    def delete(self, tenant: str | None, subscription_id: str) -> None:
        if not self._store.delete(tenant, check_subscription_id(subscription_id)):
            raise ResourceNotFoundError(f"subscription {subscription_id} does not exist")
        self._registry.invalidate()

    def to_json(
        self, stored: StoredSubscription, terms: TermMap, *, sys_attrs: bool
    ) -> dict[str, Any]:
        """The Subscription as a client reads it, names compacted with ``terms``."""
        own = self._resolver.resolve(stored.subscription.context)
        rename = _renamer(own, terms)
        return subscription_json(stored, self._clock(), rename, sys_attrs=sys_attrs)


def _renamer(own: TermMap, wanted: TermMap) -> Callable[[str], str]:
    if own is wanted:
        return lambda name: name
    return lambda name: wanted.compact(own.expand(name))


def subscription_json(
    stored: StoredSubscription,
    now: datetime,
    rename: Callable[[str], str],
    *,
    sys_attrs: bool,
) -> dict[str, Any]:
    subscription = stored.subscription
    document = subscription.document
    body: dict[str, Any] = {"id": subscription.id, "type": "Subscription"}
    for name, value in document.items():
        if name in {"id", "type", "notification"}:
            continue
        if name == "entities":
            value = [
                {**item, "type": rename(item["type"])} if _simple(item["type"]) else item
                for item in value
            ]
        elif name == "watchedAttributes":
            value = [rename(item) for item in value]
        body[name] = value
    body.setdefault("notificationTrigger", list(DEFAULT_TRIGGERS))
    body["notification"] = _notification_json(stored, rename)
    body["status"] = subscription.status(now)
    if sys_attrs:
        body["createdAt"] = format_instant(stored.created_at)
        body["modifiedAt"] = format_instant(stored.modified_at)
    return body


def _notification_json(stored: StoredSubscription, rename: Callable[[str], str]) -> dict[str, Any]:
    notification = dict(stored.subscription.document["notification"])
    for member in ("attributes", "pick", "omit"):
        if member in notification:
            notification[member] = [rename(name) for name in notification[member]]
    if stored.times_sent:
        notification["timesSent"] = stored.times_sent
    if stored.times_failed:
        notification["timesFailed"] = stored.times_failed
    if stored.last_status is not None:
        notification["status"] = stored.last_status
    for member, instant in (
        ("lastNotification", stored.last_notification),
        ("lastSuccess", stored.last_success),
        ("lastFailure", stored.last_failure),
    ):
        if instant is not None:
            notification[member] = format_instant(instant)
    return notification


def _simple(type_selection: str) -> bool:
    return not any(mark in type_selection for mark in "(),;|")
