"""Prometheus metrics other layers update and the warning rules read.

Defined once here (a metric may be registered only once per process): the interoperability
layer counts notification deliveries per endpoint, the kernel's consumer loop sets the
consumer lag gauge (re-exported here), and every layer that owns a
database engine shows its pool with ``DB_POOLS.track("knowledge", engine)``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine

# The consumer loop measures lag; the gauge lives in the kernel and is re-exported here.
from cityos_kernel.bus.consumer import CONSUMER_LAG as CONSUMER_LAG

NOTIFICATIONS = Counter(
    "cityos_notifications_total",
    "Subscription notifications sent, by endpoint and outcome (success/failure)",
    ["endpoint", "outcome"],
)
DEAD_LETTERS_SEEN = Counter(
    "cityos_dead_letters_seen_total", "Dead letters received by the support layer", ["topic"]
)
AUDIT_RECORDS = Counter("cityos_audit_records_total", "Audit events recorded in the chain")


class PoolCollector:
    """``cityos_db_pool_connections{owner,state}``: the SQLAlchemy pools a process tracks.

    Read at scrape time (no pool events): ``checked_out`` connections in use, ``idle`` ones
    kept open, and the pool's configured ``size``.
    """

    def __init__(self) -> None:
        self._engines: dict[str, weakref.ref[Engine]] = {}

    def track(self, owner: str, engine: Engine) -> None:
        self._engines[owner] = weakref.ref(engine)

    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for owner, reference in sorted(self._engines.items()):
            engine = reference()
            if engine is None:
                continue
            pool = engine.pool
            for state, reader in (
                ("checked_out", "checkedout"),
                ("idle", "checkedin"),
                ("size", "size"),
            ):
                value = getattr(pool, reader, None)
                if callable(value):
                    family.add_metric([owner, state], float(value()))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "cityos_db_pool_connections", "Database pool connections", labels=["owner", "state"]
        )


DB_POOLS = PoolCollector()
REGISTRY.register(DB_POOLS)
