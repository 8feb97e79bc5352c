"""Real PostgreSQL+PostGIS, Mosquitto and Tansu servers run as local child processes.

The all-in-one runtime, ``python -m cityos.embedded.devservices`` and the test fixtures use
these to get real services without containers. Importing this package starts nothing.
"""

from __future__ import annotations

from cityos.embedded.kafka import EmbeddedKafka
from cityos.embedded.mosquitto import EmbeddedMosquitto
from cityos.embedded.ports import free_port, wait_for_port
from cityos.embedded.postgres import EmbeddedPostgres
from cityos.embedded.process import EmbeddedServiceError

__all__ = [
    "EmbeddedKafka",
    "EmbeddedMosquitto",
    "EmbeddedPostgres",
    "EmbeddedServiceError",
    "free_port",
    "wait_for_port",
]
