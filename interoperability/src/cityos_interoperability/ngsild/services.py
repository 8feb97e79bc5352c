"""What the NGSI-LD routes share: settings, @context machinery, stores, the facade."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from cityos_interoperability.ngsild.errors import ServiceUnavailableError
from cityos_interoperability.ngsild.facade import KnowledgeFacade
from cityos_interoperability.ngsild.jsonld.context import ContextResolver, ContextValue, TermMap
from cityos_interoperability.ngsild.jsonld.documents import ContextDocumentLoader
from cityos_interoperability.ngsild.routing import NgsiLdRoute
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_interoperability.store.contexts import HostedContexts


@dataclass
class ApiServices:
    """Built once per process by the layer; every route module receives it."""

    settings: InteroperabilitySettings
    loader: ContextDocumentLoader
    resolver: ContextResolver
    hosted_contexts: HostedContexts | None
    route_class: type[NgsiLdRoute]
    #: ``cityos_knowledge.service``'s facade; None in a process without a context store.
    knowledge: KnowledgeFacade | None = None

    async def terms(self, context: ContextValue | None) -> TermMap:
        """The term map of a request's @context (fetching it off the event loop)."""
        known = self.resolver.cached(context)
        if known is not None:
            return known
        return await run_in_threadpool(self.resolver.resolve, context)

    def require_hosted_contexts(self) -> HostedContexts:
        if self.hosted_contexts is None:
            raise ServiceUnavailableError("hosted @contexts need a database; none is configured")
        return self.hosted_contexts
