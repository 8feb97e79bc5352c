"""What the NGSI-LD routes share: settings, @context machinery, stores, the facade."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from cityos_interoperability.ngsild.errors import ServiceUnavailableError
from cityos_interoperability.ngsild.facade import KnowledgeFacade
from cityos_interoperability.ngsild.jsonld.context import ContextResolver, ContextValue, TermMap
from cityos_interoperability.ngsild.jsonld.documents import ContextDocumentLoader
from cityos_interoperability.ngsild.routing import NgsiLdRoute
from cityos_interoperability.settings import InteroperabilitySettings
from cityos_interoperability.store.contexts import HostedContexts

P = ParamSpec("P")
T = TypeVar("T")

#: Threads for the routes' blocking calls (as many as Starlette's default thread limiter).
BLOCKING_THREADS = 40

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _blocking_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="ngsild-blocking")
        return _pool


async def run_in_threadpool(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a blocking call (the knowledge facade, a context fetch) off the event loop.

    What ``starlette.concurrency.run_in_threadpool`` does, for the NGSI-LD routes' hop to
    the facade on every request, at about half its cost: a ``ThreadPoolExecutor`` hands the
    call over through a C queue, where anyio's worker threads wait on a Python
    ``Condition`` whose hand-off contends for the GIL with the event loop (~11 % of an API
    worker's CPU under PATCH load, docs/performance.md). The caller's context variables
    (log tenant and correlation id) go with the call. One difference: a cancelled request
    (server shutdown) stops waiting at once while the call finishes in its thread.
    """
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_blocking_pool(), call)


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
