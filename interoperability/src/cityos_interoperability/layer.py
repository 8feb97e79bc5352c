"""How the interoperability layer plugs into a cityos process (see ``cityos_kernel.layer``).

It contributes the NGSI-LD API (``/ngsi-ld/v1``). Notifications and open-data publication
arrive with their own issues and register here, so the runtime never changes for them.
"""

from __future__ import annotations

from pathlib import Path

from cityos_interoperability.ngsild.errors import translate_domain_error
from cityos_interoperability.ngsild.facade import KnowledgeFacade
from cityos_interoperability.ngsild.jsonld.context import ContextResolver
from cityos_interoperability.ngsild.jsonld.documents import (
    ContextDocumentLoader,
    core_context_url,
)
from cityos_interoperability.ngsild.router import build_router
from cityos_interoperability.ngsild.routing import route_class
from cityos_interoperability.ngsild.services import ApiServices
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_interoperability.store.contexts import HostedContexts
from cityos_interoperability.subscriptions.wiring import add_subscriptions
from cityos_kernel.database import create_pooled_engine
from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec

MIGRATIONS = Path(__file__).parent / "store" / "migrations"


class InteroperabilityLayer:
    """The interoperability layer as the composition root sees it."""

    name = "interoperability"

    def __init__(self, settings: InteroperabilitySettings | None = None) -> None:
        self._settings = settings

    def migrations(self) -> list[MigrationSpec]:
        return [MigrationSpec("interoperability", MIGRATIONS)]

    def build(self, context: LayerContext) -> LayerParts:
        settings = self._settings or InteroperabilitySettings()
        services = build_services(settings, context.database_url)
        parts = LayerParts(routers=[build_router(services)], services=[ApiResources(services)])
        add_subscriptions(parts, settings, services, context.database_url)
        return parts


class ApiResources:
    """Closes what the API holds (the facade's pool, the @context HTTP client) at stop."""

    name = "ngsi-ld-api"

    def __init__(self, services: ApiServices) -> None:
        self._services = services

    def start(self) -> None:
        """Nothing to start: pools connect on first use."""

    def stop(self) -> None:
        if self._services.knowledge is not None:
            self._services.knowledge.close()
        self._services.loader.close()


def build_services(settings: InteroperabilitySettings, database_url: str | None) -> ApiServices:
    """Everything the NGSI-LD routes share, built from settings (no I/O happens here)."""
    hosted = None
    knowledge = None
    if database_url:
        engine = create_pooled_engine(database_url, pool_size=2)
        hosted = HostedContexts(engine)
        knowledge = KnowledgeFacade.from_url(database_url, pool_size=8)
    loader = ContextDocumentLoader(
        timeout_seconds=settings.context_fetch_timeout_seconds,
        ttl_seconds=settings.context_cache_seconds,
        max_bytes=settings.context_max_bytes,
        hosted=hosted.lookup_url if hosted is not None else None,
        url_map=settings.context_url_map,
    )
    resolver = ContextResolver(loader, core_context_url(settings.core_context_version))
    return ApiServices(
        settings=settings,
        loader=loader,
        resolver=resolver,
        hosted_contexts=hosted,
        knowledge=knowledge,
        route_class=route_class(
            max_request_bytes=settings.max_request_bytes, translate=translate_domain_error
        ),
    )


def create() -> InteroperabilityLayer:
    """Entry point used by the runtime."""
    return InteroperabilityLayer()
