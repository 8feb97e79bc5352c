"""From entity changes (and clocks) to notifications: the ``interop-notifier`` consumer.

For each batch of ``knowledge.entities.changed.v1`` events the dispatcher finds the
subscriptions whose selectors, ``watchedAttributes`` and ``notificationTrigger`` a change
fires (:mod:`.matcher`) — on the change as the subscription's data scope lets it see it
(:mod:`.access`) — then, for a subscription with ``q``, ``scopeQ`` or ``geoQ``, asks
the knowledge facade which of the changed entities match them — one SQL query per
subscription and batch, the same query engine Query Entities uses. A deleted entity is no
longer in the store, so its filters are not evaluated: it is selected by its selectors
alone. ``throttling`` is claimed in the database so that several notifier processes agree;
a change inside the throttling period is not notified. A subscription notifies the changes
made after it was created or last updated (the envelope's time against its
``modified_at``): one made while it was paused, or before it existed, is not notified even
when it reaches the notifier later. Then each subscription sends one notification with the
batch's changes.

:class:`PeriodicNotifications` runs ``timeInterval`` subscriptions: every tick it claims the
due ones and sends the current state of the entities they select.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from cityos_interoperability.ngsild.facade import KnowledgeFacade, parse_query
from cityos_interoperability.subscriptions.access import visible_change
from cityos_interoperability.subscriptions.matcher import Change, Fired, fired_triggers
from cityos_interoperability.subscriptions.notifier import Notifier
from cityos_interoperability.subscriptions.registry import (
    CompiledSubscription,
    SubscriptionRegistry,
)
from cityos_interoperability.subscriptions.rendering import (
    NotificationBuilder,
    changed_entity,
    keep_attributes,
    only_datasets,
)
from cityos_interoperability.subscriptions.store import SubscriptionStore
from cityos_kernel.bus.consumer import Message
from cityos_kernel.events.envelope import DEFAULT_TENANT
from cityos_kernel.events.payloads import EntityChangedV1

logger = logging.getLogger(__name__)

#: Entity ids per filtering query.
FILTER_CHUNK = 500

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def change_of(tenant: str, payload: BaseModel) -> Change:
    """The notifier's view of one ``EntityChangedV1`` event."""
    assert isinstance(payload, EntityChangedV1)
    return Change(
        tenant=None if tenant in (DEFAULT_TENANT, "") else tenant,
        entity_id=payload.entity_id,
        types=frozenset(payload.entity_types),
        kind=payload.change,
        attributes=frozenset(payload.attributes),
        entity=payload.entity,
        previous=payload.previous,
    )


class NotificationDispatcher:
    """The consumer handler (:meth:`handle`) and the periodic runs' entity selection."""

    def __init__(
        self,
        *,
        registry: SubscriptionRegistry,
        store: SubscriptionStore,
        facade: KnowledgeFacade | None,
        notifier: Notifier,
        max_entities: int,
        clock: Clock = utc_now,
    ) -> None:
        self._registry = registry
        self._store = store
        self._facade = facade
        self._notifier = notifier
        self._max_entities = max_entities
        self._clock = clock

    # -- change-driven ---------------------------------------------------------------------

    def handle(self, messages: Sequence[Message]) -> None:
        """Notify every subscription the batch's changes fire (the ConsumerSpec handler)."""
        self._registry.refresh()
        now = self._clock()
        fired: dict[tuple[str | None, str], tuple[CompiledSubscription, list[Fired]]] = {}
        for message in messages:
            envelope = message.envelope
            change = change_of(envelope.tenant, envelope.payload)
            for compiled in self._registry.candidates(change):
                subscription = compiled.subscription
                if subscription.status(now) != "active":
                    continue
                if subscription.since is not None and envelope.time < subscription.since:
                    continue  # made before the subscription (as it is now) existed
                visible = visible_change(change, compiled.access)
                if visible is None:
                    continue  # nothing of it is readable with the subscription's scope
                hit = fired_triggers(visible, subscription.triggers, compiled.watched)
                if hit is not None:
                    fired.setdefault(compiled.key, (compiled, []))[1].append(hit)
        for compiled, hits in fired.values():
            self._notify(compiled, hits, now)

    def _notify(self, compiled: CompiledSubscription, hits: list[Fired], now: datetime) -> None:
        subscription = compiled.subscription
        params = subscription.notification
        live = sorted({h.change.entity_id for h in hits if h.change.kind != "deleted"})
        current: dict[str, dict[str, Any]] | None = None
        if live and (subscription.filter_parameters() or params.sys_attrs):
            # The filters ran on the entities as they are now, so the notification shows
            # them as they are now too: once per entity, whatever changes led here.
            current = self._matching(compiled, live, sys_attrs=params.sys_attrs)
            latest = {h.change.entity_id: h for h in hits}
            hits = [
                h
                for h in latest.values()
                if h.change.kind == "deleted" or h.change.entity_id in current
            ]
        if not hits:
            return
        if subscription.throttling and not self._store.claim_throttled(
            subscription.tenant, subscription.id, subscription.throttling, now
        ):
            return
        builder = NotificationBuilder(compiled)
        entities = [
            builder.render(
                changed_entity(hit, compiled, (current or {}).get(hit.change.entity_id), now),
                hit,
            )
            for hit in hits
        ]
        self._notifier.submit(builder.notification(entities, now))

    def _matching(
        self, compiled: CompiledSubscription, ids: Sequence[str], *, sys_attrs: bool
    ) -> dict[str, dict[str, Any]]:
        """Which of ``ids`` match the subscription's q/scopeQ/geoQ now (in SQL), by id."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), FILTER_CHUNK):
            chunk = ids[start : start + FILTER_CHUNK]
            parameters = {
                **compiled.subscription.filter_parameters(),
                "id": ",".join(chunk),
                "limit": str(len(chunk)),
            }
            for entity in self._query(compiled, parameters, sys_attrs=sys_attrs, limit=len(chunk)):
                found[entity["id"]] = entity
        return found

    def _query(
        self,
        compiled: CompiledSubscription,
        parameters: dict[str, str],
        *,
        sys_attrs: bool,
        limit: int,
    ) -> list[dict[str, Any]]:
        if self._facade is None:
            raise RuntimeError("notifications with filters need the knowledge facade")
        query = parse_query(parameters, max_limit=limit)
        subscription = compiled.subscription
        page = self._facade.query_entities(
            subscription.tenant,
            query,
            expand=compiled.terms.expand,
            sys_attrs=sys_attrs,
            scope=subscription.scope,
        )
        return page.entities

    # -- periodic --------------------------------------------------------------------------

    def run_periodic(self, compiled: CompiledSubscription) -> None:
        """Send the current state of what a timeInterval subscription selects (if any)."""
        subscription = compiled.subscription
        params = subscription.notification
        entities: dict[str, dict[str, Any]] = {}
        for parameters in _selector_parameters(compiled):
            parameters = {
                **subscription.filter_parameters(),
                **parameters,
                "limit": str(self._max_entities),
            }
            for entity in self._query(
                compiled, parameters, sys_attrs=params.sys_attrs, limit=self._max_entities
            ):
                entities.setdefault(entity["id"], entity)
        if not entities:
            return
        builder = NotificationBuilder(compiled)
        now = self._clock()
        rendered = [
            builder.render(
                keep_attributes(
                    only_datasets(entity, subscription.dataset_ids), compiled.attributes
                )
            )
            for entity in entities.values()
        ]
        self._notifier.submit(builder.notification(rendered, now))

    def due(self) -> Iterable[CompiledSubscription]:
        """Claim the periodic subscriptions whose time has come."""
        claimed = self._store.claim_due(self._clock())
        if claimed:
            self._registry.refresh()
        for tenant, subscription_id in claimed:
            compiled = self._registry.get(tenant, subscription_id)
            if compiled is None:
                self._registry.invalidate()
                self._registry.refresh()
                compiled = self._registry.get(tenant, subscription_id)
            if compiled is not None:
                yield compiled


def _selector_parameters(compiled: CompiledSubscription) -> list[dict[str, str]]:
    selectors = compiled.subscription.entities
    if not selectors:
        return [{}]
    found = []
    for selector in selectors:
        parameters = {"type": selector.type}
        if selector.id:
            parameters["id"] = selector.id
        if selector.id_pattern:
            parameters["idPattern"] = selector.id_pattern
        found.append(parameters)
    return found


class PeriodicNotifications:
    """Background service: runs due ``timeInterval`` subscriptions every tick."""

    name = "ngsi-ld-periodic-notifications"

    def __init__(self, dispatcher: NotificationDispatcher, *, tick_seconds: float) -> None:
        self._dispatcher = dispatcher
        self._tick = tick_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            try:
                for compiled in self._dispatcher.due():
                    self._dispatcher.run_periodic(compiled)
            except Exception:
                logger.exception("periodic notifications failed; retrying at the next tick")
