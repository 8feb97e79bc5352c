"""Session settings for interactive context queries.

A context query reads a few hundred rows through indexes and answers in about a millisecond
when planned serially. PostgreSQL nevertheless plans many of them with parallel workers
(the PostGIS functions and the wide ``attributes`` rows make its estimates high), and
starting a worker costs more than the query: a 500 m near-query over 100,000 entities
took a median 16 ms with parallel plans allowed and 1.5 ms without (``docs/performance.md``).
Parallel plans stay available to everything else (temporal aggregations, analytics).
"""

from __future__ import annotations

from sqlalchemy import Connection, text

_SERIAL_PLANS = text("SET LOCAL max_parallel_workers_per_gather = 0")


def prefer_serial_plans(connection: Connection) -> None:
    """Plan the rest of the current transaction's statements without parallel workers.

    ``SET LOCAL``: the setting ends with the transaction, so a pooled connection comes back
    to the pool as it was. Call it after the transaction has begun, before the queries.
    """
    connection.execute(_SERIAL_PLANS)
