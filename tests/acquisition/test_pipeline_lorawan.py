"""LoRaWAN data models in the pipeline: CayenneLPP, network-server decoded, raw, unknown."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from cityos_acquisition.ingest.inbound import Inbound
from cityos_acquisition.ingest.pipeline import IngestPipeline
from cityos_acquisition.registry.schemas import DeviceIn
from cityos_acquisition.registry.service import Registry, Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, OBSERVATIONS

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def pipeline(data_model: str) -> IngestPipeline:
    registry = Registry(MemoryRegistryStore(), MemoryBus(partitions=1))
    device = {
        "device_id": "node-1",
        "entity_type": "Device",
        "lorawan": {"dev_eui": "00AA00AA00AA00AA", "data_model": data_model},
    }
    registry.create_devices(Scope("t", "/"), [DeviceIn.model_validate(device)])
    return IngestPipeline(registry)


def uplink(dev_eui: str = "00aa00aa00aa00aa", **extra: object) -> Inbound:
    document = {"deviceInfo": {"devEui": dev_eui}, "fPort": 5, "data": "AQI=", **extra}
    return Inbound("chirpstack", "chirpstack", orjson.dumps(document), NOW, topic="application/x")


def values(outcome: object) -> dict[str, object]:
    observations = outcome.observations  # type: ignore[attr-defined]
    return {a.name: a.value for o in observations for a in o.attributes}


def test_raw_data_model_keeps_the_frame() -> None:
    outcome = pipeline("raw").process(uplink())
    assert outcome.rejected is None
    assert values(outcome) == {"payload": base64.b64encode(b"\x01\x02").decode(), "fPort": 5}


def test_application_server_uses_the_network_servers_object() -> None:
    outcome = pipeline("application_server").process(uplink(object={"level": 3}))
    assert values(outcome) == {"level": 3}
    missing = pipeline("application_server").process(uplink())
    assert missing.rejected is not None and "no decoded object" in missing.rejected


@pytest.mark.parametrize(
    ("inbound", "reason"),
    [
        (uplink(dev_eui="ffffffffffffffff"), "unknown LoRaWAN device"),
        (uplink(data="AWc="), "truncated CayenneLPP"),
    ],
)
def test_rejections_become_dead_letter_records(inbound: Inbound, reason: str) -> None:
    outcome = pipeline("cayennelpp").process(inbound)
    assert outcome.rejected is not None and reason in outcome.rejected
    (record,) = outcome.records
    assert record.topic == ACQUISITION_DEADLETTER.name
    letter = ACQUISITION_DEADLETTER.decode(record.value).payload
    assert letter.source == "chirpstack" and letter.topic == "application/x"
    assert orjson.loads(letter.payload)["deviceInfo"] == orjson.loads(inbound.payload)["deviceInfo"]
    assert all(r.topic != OBSERVATIONS.name for r in outcome.records)
