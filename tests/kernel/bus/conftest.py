"""The ``bus`` fixture: every contract test runs on the in-memory bus and on real Kafka (Tansu).

The Kafka adapter gets short group timings (see :data:`KAFKA_TEST_TUNING`) so a member joins
in about a second instead of three; Apache Kafka would refuse a session timeout this short
(its ``group.min.session.timeout.ms`` is 6 s), Tansu accepts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from cityos_kernel.bus import Bus, ConsumerTuning, KafkaBus, MemoryBus

#: Partitions per topic; test_bus_contract.PARTITIONS says the same.
PARTITIONS = 6

KAFKA_TEST_TUNING = ConsumerTuning(
    session_timeout_ms=2000,
    heartbeat_interval_ms=500,
    max_poll_interval_ms=20_000,
    commit_timeout_ms=5000,
)


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("kafka", id="kafka", marks=pytest.mark.kafka),
    ]
)
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """A fresh bus of each adapter with :data:`PARTITIONS` partitions per topic."""
    adapter: Bus
    if request.param == "memory":
        adapter = MemoryBus(partitions=PARTITIONS)
    else:
        bootstrap: str = request.getfixturevalue("kafka_bootstrap")
        adapter = KafkaBus(
            bootstrap,
            partitions=PARTITIONS,
            client_id=f"test-{uuid.uuid4().hex[:8]}",
            consumer_tuning=KAFKA_TEST_TUNING,
        )
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture
def topic() -> str:
    """A topic name no other test uses (the broker is shared by the session)."""
    return f"test.contract.{uuid.uuid4().hex}.v1"


@pytest.fixture
def new_group() -> Callable[[], str]:
    """Make consumer-group names no other test uses."""
    return lambda: f"test-group-{uuid.uuid4().hex}"
