"""Prometheus metrics other layers update and the warning rules read.

Defined once here (a metric may be registered only once per process): the interoperability
layer counts notification deliveries per endpoint, and whoever can measure consumer lag
(the bus adapter or a lag exporter) sets the lag gauge.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

NOTIFICATIONS = Counter(
    "cityos_notifications_total",
    "Subscription notifications sent, by endpoint and outcome (success/failure)",
    ["endpoint", "outcome"],
)
CONSUMER_LAG = Gauge(
    "cityos_bus_consumer_lag", "Records not yet committed by a consumer group", ["group", "topic"]
)
DEAD_LETTERS_SEEN = Counter(
    "cityos_dead_letters_seen_total", "Dead letters received by the support layer", ["topic"]
)
AUDIT_RECORDS = Counter("cityos_audit_records_total", "Audit events recorded in the chain")
