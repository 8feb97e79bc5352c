"""What subscriptions add to the layer's parts: routes, the consumer, the notifier.

``add_subscriptions`` is the one call ``layer.py`` makes. The ``/subscriptions`` routes are
always mounted; without a database they answer 503 and nothing else is started. With one,
the ``interop-notifier`` consumer group reads ``knowledge.entities.changed.v1`` (several
processes share its partitions), and one background service runs the notifier and the
periodic (``timeInterval``) scheduler.
"""

from __future__ import annotations

from fastapi import APIRouter

from cityos_interoperability.ngsild.api import subscriptions as subscription_routes
from cityos_interoperability.ngsild.router import PREFIX
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_interoperability.subscriptions.dispatcher import (
    NotificationDispatcher,
    PeriodicNotifications,
)
from cityos_interoperability.subscriptions.notifier import Notifier
from cityos_interoperability.subscriptions.registry import SubscriptionRegistry
from cityos_interoperability.subscriptions.service import SubscriptionService
from cityos_interoperability.subscriptions.store import SubscriptionStore
from cityos_kernel.bus.consumer import ConsumerSpec
from cityos_kernel.database import create_pooled_engine
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_kernel.layer import LayerParts

CONSUMER_GROUP = "interop-notifier"


class NotificationServices:
    """Starts the notifier before the scheduler; stops them the other way round."""

    name = "ngsi-ld-notifications"

    def __init__(
        self, store: SubscriptionStore, notifier: Notifier, periodic: PeriodicNotifications
    ) -> None:
        self._store = store
        self.notifier = notifier
        self.periodic = periodic

    def start(self) -> None:
        self.notifier.start()
        self.periodic.start()

    def stop(self) -> None:
        try:
            self.periodic.stop()
            self.notifier.stop()
        finally:
            self._store.engine.dispose()


def add_subscriptions(
    parts: LayerParts,
    settings: InteroperabilitySettings,
    services: ApiServices,
    database_url: str | None,
) -> None:
    """Add the subscription routes and, with a database, the notifier to ``parts``."""
    service = None
    if database_url:
        engine = create_pooled_engine(database_url, pool_size=3)
        store = SubscriptionStore(engine)
        knowledge = services.knowledge
        registry = SubscriptionRegistry(
            store,
            services.resolver,
            read_access=None if knowledge is None else knowledge.data_access,
        )
        notifier = Notifier(store, settings)
        dispatcher = NotificationDispatcher(
            registry=registry,
            store=store,
            facade=services.knowledge,
            notifier=notifier,
            max_entities=settings.max_page_size,
        )
        periodic = PeriodicNotifications(dispatcher, tick_seconds=settings.periodic_tick_seconds)
        service = SubscriptionService(store, registry, services.resolver)
        parts.services.append(NotificationServices(store, notifier, periodic))
        parts.consumers.append(
            ConsumerSpec(
                name=CONSUMER_GROUP,
                group=CONSUMER_GROUP,
                topics=[ENTITIES_CHANGED],
                handler=dispatcher.handle,
            )
        )
    router = APIRouter(prefix=PREFIX, route_class=services.route_class)
    router.include_router(subscription_routes.build(services, service))
    parts.routers.append(router)
