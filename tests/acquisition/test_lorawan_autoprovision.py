"""LoRaWAN autoprovisioning through a real Mosquitto, on the in-memory and PostgreSQL registry.

An uplink from a device nobody provisioned, of an application that a config group names in
its ``lorawan`` settings, creates the device (ChirpStack: by devEUI; The Things Stack: by
device id) with the group's entity type and data model, as the IoT Agent does. With
``autoprovision`` off, or for an application no group names, the uplink is a dead letter
with the reason.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
from sqlalchemy import create_engine

from cityos.migrate import upgrade
from cityos_acquisition.codecs.cayenne_lpp import encode_cayenne_lpp
from cityos_acquisition.layer import AcquisitionLayer, AcquisitionParts, build_parts
from cityos_acquisition.registry.postgres import PostgresRegistryStore
from cityos_acquisition.registry.schemas import GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore, RegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, DEVICES, OBSERVATIONS
from tests.fixtures.acquisition import publish_mqtt, read_topic, wait_for

pytestmark = pytest.mark.mqtt

SCOPE = Scope("city", "/lora")


@dataclass
class Running:
    wired: AcquisitionParts
    bus: MemoryBus
    tag: str

    def payloads(self, topic: str) -> list[object]:
        return [e.payload for e in read_topic(self.bus, topic, timeout=0.05)]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def running(mqtt_url: str, request: pytest.FixtureRequest) -> Iterator[Running]:
    store: RegistryStore = MemoryRegistryStore()
    if request.param == "postgres":
        database_url = request.getfixturevalue("database_url")
        upgrade(database_url, [AcquisitionLayer()])
        store = PostgresRegistryStore(create_engine(sqlalchemy_url(database_url)))
    bus = MemoryBus(partitions=2)
    tag = uuid.uuid4().hex[:8]
    settings = AcquisitionSettings(mqtt_client_id=f"test-lora-{tag}", registry_cache_ttl=60)
    wired = build_parts(bus, store, settings, mqtt_url)
    wired.registry.create_groups(
        SCOPE,
        [
            GroupIn.model_validate(
                {
                    "apikey": f"bins-{tag}",
                    "entity_type": "WasteContainer",
                    "lorawan": {
                        "provider": "chirpstack",
                        "application_id": f"cs-{tag}",
                        "data_model": "cayennelpp",
                    },
                }
            ),
            # The LoRaWAN IoT Agent's shape: internal_attributes, TTS "app@tenant".
            GroupIn.model_validate(
                {
                    "apikey": f"weather-{tag}",
                    "entity_type": "WeatherObserved",
                    "internal_attributes": {
                        "lorawan": {
                            "application_server": {"provider": "TTN"},
                            "application_id": f"tts-{tag}@ttn",
                            "data_model": "application_server",
                        }
                    },
                }
            ),
            GroupIn.model_validate(
                {
                    "apikey": f"closed-{tag}",
                    "entity_type": "Streetlight",
                    "autoprovision": False,
                    "lorawan": {"application_id": f"closed-{tag}", "data_model": "raw"},
                }
            ),
        ],
    )
    assert wired.mqtt is not None
    wired.mqtt._session_expiry = 60
    wired.mqtt.start()
    wired.mqtt.wait_connected()
    try:
        yield Running(wired, bus, tag)
    finally:
        wired.mqtt.stop()


def chirpstack(application: str, dev_eui: str, frame: bytes, f_cnt: int) -> tuple[str, bytes]:
    uplink = {
        "deviceInfo": {"applicationId": application, "devEui": dev_eui.upper()},
        "fPort": 1,
        "fCnt": f_cnt,
        "data": base64.b64encode(frame).decode(),
        "rxInfo": [{"gatewayId": "gw", "rssi": -80, "snr": 4.5}],
    }
    return f"application/{application}/device/{dev_eui}/event/up", orjson.dumps(uplink)


def things_stack(application: str, device: str, decoded: dict[str, object]) -> tuple[str, bytes]:
    uplink = {
        "end_device_ids": {"device_id": device, "application_ids": {"application_id": application}},
        "uplink_message": {
            "f_port": 2,
            "f_cnt": 1,
            "frm_payload": "AQ==",
            "decoded_payload": decoded,
        },
    }
    return f"v3/{application}@ttn/devices/{device}/up", orjson.dumps(uplink)


def test_unknown_devices_of_an_autoprovisioning_application_are_created(
    running: Running, mqtt_url: str
) -> None:
    tag = running.tag
    dev_eui = f"70b3d5{tag}"[:16]
    frame = encode_cayenne_lpp([(1, "temperature", 18.5)])
    publish_mqtt(
        mqtt_url,
        [
            chirpstack(f"cs-{tag}", dev_eui, frame, 1),
            chirpstack(f"cs-{tag}", dev_eui, frame, 2),
            things_stack(f"tts-{tag}", f"station-{tag}", {"temperature": 7.5}),
        ],
    )
    observations = wait_for(
        lambda: len(found := running.payloads(OBSERVATIONS.name)) >= 5 and found
    )
    by_entity = {o.entity_id: o for o in observations}  # type: ignore[attr-defined]
    bin_entity = by_entity[f"urn:ngsi-ld:WasteContainer:{dev_eui}"]
    assert {a.name: a.value for a in bin_entity.attributes} == {"temperature": 18.5}
    assert f"urn:ngsi-ld:Device:{dev_eui}" in by_entity  # radio metadata
    station = by_entity[f"urn:ngsi-ld:WeatherObserved:station-{tag}"]
    assert {a.name: a.value for a in station.attributes} == {"temperature": 7.5}

    registry = running.wired.registry
    created = registry.get_device(SCOPE, dev_eui)
    assert created is not None
    assert created.document["lorawan"] == {
        "dev_eui": dev_eui,
        "application_id": f"cs-{tag}",
        "provider": "chirpstack",
        "data_model": "cayennelpp",
    }
    assert created.apikey == f"bins-{tag}"
    tts_device = registry.get_device(SCOPE, f"station-{tag}")
    assert tts_device is not None
    assert tts_device.document["lorawan"]["application_id"] == f"tts-{tag}@ttn"
    assert tts_device.document["lorawan"]["provider"] == "tts"

    events = [e for e in running.payloads(DEVICES.name) if e.event == "provisioned"]  # type: ignore[attr-defined]
    autoprovisioned = sorted(e.device_id for e in events if e.details.get("autoprovisioned"))  # type: ignore[attr-defined]
    assert autoprovisioned == sorted([dev_eui, f"station-{tag}"])  # the second uplink: no event
    assert running.payloads(ACQUISITION_DEADLETTER.name) == []


def test_closed_and_unknown_applications_are_dead_letters(running: Running, mqtt_url: str) -> None:
    tag = running.tag
    frame = encode_cayenne_lpp([(1, "digital_output", 1)])
    publish_mqtt(
        mqtt_url,
        [
            chirpstack(f"closed-{tag}", "0011223344556677", frame, 1),
            chirpstack(f"nobody-{tag}", "8899aabbccddeeff", frame, 1),
        ],
    )
    letters = wait_for(
        lambda: len(found := running.payloads(ACQUISITION_DEADLETTER.name)) >= 2 and found
    )
    reasons = sorted(letter.reason for letter in letters)  # type: ignore[attr-defined]
    assert "does not autoprovision" in reasons[0]
    assert f"closed-{tag}" in reasons[0]
    assert reasons[1].startswith("unknown LoRaWAN device '8899aabbccddeeff'")
    assert running.wired.registry.get_device(SCOPE, "0011223344556677") is None
    assert running.payloads(OBSERVATIONS.name) == []
    assert running.wired.mqtt is not None
    wait_for(lambda: running.wired.mqtt.acknowledged == 2)  # type: ignore[union-attr]
