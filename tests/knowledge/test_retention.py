"""History retention applied live from the ``retention`` configuration key (issues 3 and 6).

The platform keeps all history by default; a ``retention`` change written to the
configuration repository and broadcast on ``support.config.changed.v1`` makes the knowledge
layer's maintenance drop, at once, the monthly partitions older than the cut-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.events.payloads import ObservationV1, ObservedAttribute
from cityos_kernel.layer import LayerContext, LayerParts
from cityos_kernel.settings import PlatformSettings
from cityos_knowledge.layer import KnowledgeLayer
from cityos_knowledge.settings import KnowledgeSettings
from cityos_knowledge.store.database import KnowledgeStore
from cityos_knowledge.store.history import month_start, partition_name
from cityos_knowledge.store.maintenance import RetentionValue, StoreMaintenance, month_bound
from cityos_support.config.broadcast import publish_change
from cityos_support.config.repository import ConfigRepository
from cityos_support.layer import SupportLayer
from tests.knowledge.ingest_helpers import count_instances, publish
from tests.knowledge.test_maintenance import partitions

pytestmark = pytest.mark.postgres

NOW = datetime.now(UTC)
#: Observation times: well past any period below, within 200 days, and this month.
OLD, RECENT, CURRENT = (
    NOW - timedelta(days=800),
    NOW - timedelta(days=100),
    month_bound(month_start(NOW)),
)


def at(moment: datetime, entity: str) -> ObservationV1:
    return ObservationV1(
        entity_id=entity,
        entity_type="WeatherObserved",
        attributes=[ObservedAttribute(name="temperature", value=1.0, observed_at=moment)],
    )


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def platform_url(knowledge_url: str) -> str:
    """The knowledge database with the support layer's tables (the configuration repository)."""
    upgrade(knowledge_url, [SupportLayer()])
    return knowledge_url


class Running:
    """The knowledge layer's parts, as a process runs them, on a memory bus."""

    def __init__(self, url: str, settings: KnowledgeSettings) -> None:
        self.bus = MemoryBus(partitions=2)
        self.parts: LayerParts = KnowledgeLayer(settings).build(
            LayerContext(PlatformSettings(), self.bus, url, None)
        )
        self.runners = [ConsumerRunner(self.bus, spec) for spec in self.parts.consumers]
        for runner in self.runners:
            runner.start()
        self.store = KnowledgeStore.from_url(url, settings)

    @property
    def maintenance(self) -> StoreMaintenance:
        found = [s for s in self.parts.services if isinstance(s, StoreMaintenance)]
        assert len(found) == 1
        return found[0]

    def write_history(self) -> str:
        """Observations in an old, a recent and the current month; the tenant's schema."""
        publish(
            self.bus, [at(OLD, "urn:w:old"), at(RECENT, "urn:w:recent"), at(CURRENT, "urn:w:now")]
        )
        wait_for(lambda: self._count() == 3, "the three observations to be stored")
        return self.store.tenants.lookup(None)

    def _count(self) -> int:
        try:
            return count_instances(self.store)
        except Exception:  # the tenant does not exist before the first batch
            return 0

    def close(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.maintenance.stop()
        self.store.close()


@pytest.fixture
def running(platform_url: str) -> Iterator[Running]:
    process = Running(platform_url, KnowledgeSettings())
    try:
        yield process
    finally:
        process.close()


def test_by_default_maintenance_drops_nothing(running: Running) -> None:
    schema = running.write_history()
    running.maintenance.run_once()
    assert count_instances(running.store) == 3
    # A retention value that does not set history_days keeps all history too.
    repository = ConfigRepository(running.store.engine)
    repository.put("retention", {"audit_days": 4000}, changed_by="test")
    StoreMaintenance(running.store, retention=RetentionValue(repository=repository)).run_once()
    assert count_instances(running.store) == 3
    assert partition_name(month_start(OLD)) in partitions(running.store, schema)


def test_a_broadcast_retention_change_drops_old_months_at_once(
    running: Running, platform_url: str
) -> None:
    schema = running.write_history()
    running.maintenance.start()  # its first run keeps everything, then it waits an hour
    entry = ConfigRepository(running.store.engine).put(
        "retention", {"history_days": 200}, changed_by="test"
    )
    publish_change(running.bus, entry)
    old = partition_name(month_start(OLD))
    wait_for(lambda: old not in partitions(running.store, schema), "the old month to be dropped")
    assert count_instances(running.store) == 2
    kept = partitions(running.store, schema)
    assert {partition_name(month_start(RECENT)), partition_name(month_start(CURRENT))} <= kept


def test_the_current_month_is_never_dropped(running: Running) -> None:
    schema = running.write_history()
    future_cutoff = NOW + timedelta(days=90)
    dropped = running.maintenance.drop_before(schema, future_cutoff)
    current = partition_name(month_start(NOW))
    assert partition_name(month_start(OLD)) in dropped
    assert current not in dropped
    assert current in partitions(running.store, schema)
    assert count_instances(running.store) == 1  # the observation of this month


def test_the_environment_period_applies_until_the_repository_sets_one(platform_url: str) -> None:
    process = Running(platform_url, KnowledgeSettings(knowledge_retention="200 days"))
    try:
        process.write_history()
        # The repository explicitly keeps everything: it wins over the environment.
        ConfigRepository(process.store.engine).put(
            "retention", {"history_days": None}, changed_by="test"
        )
        repository_first = StoreMaintenance(
            process.store,
            retention=RetentionValue(repository=ConfigRepository(process.store.engine)),
        )
        repository_first.run_once()
        assert count_instances(process.store) == 3
        # Without a repository value, the environment's period is applied.
        StoreMaintenance(process.store).run_once()
        assert count_instances(process.store) == 2
    finally:
        process.close()
