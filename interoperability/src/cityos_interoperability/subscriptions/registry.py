"""The subscriptions a notifier process matches against: compiled once, reloaded on change.

Compiling a subscription resolves its @context (through the API's resolver and its
cache) and expands the names it uses — selector types, watched and notified attributes —
so that matching a change is set look-ups. The registry asks the store for its version
(highest revision, row count) at most every ``check_interval`` seconds and reloads
everything when it moved; a process that changed a subscription itself calls
:meth:`SubscriptionRegistry.invalidate` so that its own notifier sees the change at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from cityos_interoperability.ngsild.errors import NgsiLdError, ServiceUnavailableError
from cityos_interoperability.ngsild.jsonld.context import ContextResolver, TermMap
from cityos_interoperability.subscriptions.access import ReadAccess
from cityos_interoperability.subscriptions.matcher import Change, Selector, TypeSelection
from cityos_interoperability.subscriptions.model import Subscription
from cityos_interoperability.subscriptions.store import SubscriptionStore
from cityos_knowledge.service import DataAccess

logger = logging.getLogger(__name__)

TenantKey = str | None


@dataclass(frozen=True)
class CompiledSubscription:
    """A subscription with its names expanded with its own @context."""

    subscription: Subscription
    selectors: tuple[Selector, ...]
    watched: frozenset[str] | None
    #: ``notification.attributes`` expanded (None: every attribute).
    attributes: frozenset[str] | None
    #: Expands the names of ``q``/``scopeQ``/``geoQ`` (the subscription's @context).
    terms: TermMap
    #: Compacts notifications: ``jsonldContext`` when given, else the subscription's.
    render_terms: TermMap
    #: What its subject may read, names expanded (None: everything; see :mod:`.access`).
    access: DataAccess | None = None

    @property
    def key(self) -> tuple[TenantKey, str]:
        return self.subscription.tenant, self.subscription.id

    def selects(self, change: Change) -> bool:
        """Whether an entity selector (or, without any, watchedAttributes alone) matches."""
        if not self.selectors:
            return True
        return any(s.matches(change.entity_id, change.types) for s in self.selectors)


def compile_subscription(
    subscription: Subscription, resolver: ContextResolver, read_access: ReadAccess | None = None
) -> CompiledSubscription:
    """Resolve the @context(s) and expand names (NgsiLdError when a context is unusable).

    A subscription with a data scope needs ``read_access`` (the knowledge facade's) to
    expand it; without one it is refused rather than left unrestricted.
    """
    access = None
    if subscription.scope is not None:
        if read_access is None:
            raise ServiceUnavailableError(
                "a subscription limited to a data scope needs the knowledge layer"
            )
        access = read_access(subscription.scope)
    terms = resolver.resolve(subscription.context)
    render_terms = (
        resolver.resolve(subscription.jsonld_context) if subscription.jsonld_context else terms
    )
    selectors = tuple(
        Selector(
            TypeSelection(item.type, terms.expand),
            item.id,
            re.compile(item.id_pattern) if item.id_pattern else None,
        )
        for item in subscription.entities
    )
    watched = subscription.watched_attributes
    notified = subscription.notification.attributes
    return CompiledSubscription(
        subscription=subscription,
        selectors=selectors,
        watched=frozenset(terms.expand(name) for name in watched) if watched else None,
        attributes=frozenset(terms.expand(name) for name in notified) if notified else None,
        terms=terms,
        render_terms=render_terms,
        access=access,
    )


class SubscriptionRegistry:
    """Thread-safe cache of every tenant's compiled subscriptions."""

    def __init__(
        self,
        store: SubscriptionStore,
        resolver: ContextResolver,
        *,
        read_access: ReadAccess | None = None,
        check_interval: float = 0.25,
    ) -> None:
        self._store = store
        self._resolver = resolver
        self.read_access = read_access
        self._check_interval = check_interval
        self._lock = threading.Lock()
        self._version: tuple[int, int] | None = None
        self._checked_at = float("-inf")
        self._by_key: dict[tuple[TenantKey, str], CompiledSubscription] = {}
        self._by_type: dict[TenantKey, dict[str, list[CompiledSubscription]]] = {}
        self._untyped: dict[TenantKey, list[CompiledSubscription]] = {}

    def invalidate(self) -> None:
        """Reload at the next :meth:`refresh` (this process changed a subscription)."""
        with self._lock:
            self._version = None
            self._checked_at = float("-inf")

    def refresh(self) -> None:
        """Reload when the stored subscriptions changed (checked at most every interval)."""
        with self._lock:
            if time.monotonic() - self._checked_at < self._check_interval:
                return
            self._checked_at = time.monotonic()
            known = self._version
        version = self._store.version()
        if version == known:
            return
        compiled = [self._compile(item) for item in self._store.load_all()]
        by_type: dict[TenantKey, dict[str, list[CompiledSubscription]]] = defaultdict(
            lambda: defaultdict(list)
        )
        untyped: dict[TenantKey, list[CompiledSubscription]] = defaultdict(list)
        for item in compiled:
            if item is None:
                continue
            tenant = item.subscription.tenant
            if not item.selectors:
                untyped[tenant].append(item)
            for name in {n for s in item.selectors for n in s.types.names}:
                by_type[tenant][name].append(item)
        with self._lock:
            self._version = version
            self._by_key = {item.key: item for item in compiled if item is not None}
            self._by_type = {tenant: dict(types) for tenant, types in by_type.items()}
            self._untyped = dict(untyped)

    def _compile(self, subscription: Subscription) -> CompiledSubscription | None:
        try:
            return compile_subscription(subscription, self._resolver, self.read_access)
        except NgsiLdError as exc:
            logger.warning(
                "subscription %s cannot notify until it compiles: %s",
                subscription.id,
                exc.detail,
            )
            return None

    def candidates(self, change: Change) -> list[CompiledSubscription]:
        """Change-driven subscriptions of the change's tenant whose selectors match it."""
        with self._lock:
            by_type = self._by_type.get(change.tenant, {})
            found = {item.key: item for name in change.types for item in by_type.get(name, ())}
            for item in self._untyped.get(change.tenant, ()):
                found[item.key] = item
        return [
            item
            for item in found.values()
            if not item.subscription.periodic and item.selects(change)
        ]

    def get(self, tenant: TenantKey, subscription_id: str) -> CompiledSubscription | None:
        with self._lock:
            return self._by_key.get((tenant, subscription_id))
