"""MQTT ingestion end to end through a real Mosquitto: every topic family and codec."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from cityos_acquisition.codecs.cayenne_lpp import encode_cayenne_lpp
from cityos_acquisition.layer import AcquisitionParts, build_parts
from cityos_acquisition.registry.schemas import DeviceIn, GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, OBSERVATIONS
from tests.fixtures.acquisition import publish_mqtt, read_topic, wait_for

pytestmark = pytest.mark.mqtt


@dataclass
class Running:
    wired: AcquisitionParts
    bus: MemoryBus
    apikey: str

    def observations(self) -> list[object]:
        return [e.payload for e in read_topic(self.bus, OBSERVATIONS.name, timeout=0.05)]

    def dead_letters(self) -> list[object]:
        return [e.payload for e in read_topic(self.bus, ACQUISITION_DEADLETTER.name, timeout=0.05)]


@pytest.fixture(params=["3.1.1", "5"])
def running(mqtt_url: str, request: pytest.FixtureRequest) -> Iterator[Running]:
    """The MQTT service with each protocol version it supports."""
    bus = MemoryBus(partitions=2)
    apikey = uuid.uuid4().hex[:12]
    settings = AcquisitionSettings(
        mqtt_client_id=f"test-{apikey}", registry_cache_ttl=0, mqtt_protocol=request.param
    )
    wired = build_parts(bus, MemoryRegistryStore(), settings, mqtt_url)
    scope = Scope("openiot", "/")
    wired.registry.create_groups(
        scope, [GroupIn(apikey=apikey, entity_type="AirQualityObserved", autoprovision=False)]
    )
    wired.registry.create_devices(
        scope,
        [
            DeviceIn.model_validate(
                {
                    "device_id": f"aq-{apikey}",
                    "apikey": apikey,
                    "attributes": [{"object_id": "t", "name": "temperature", "type": "Number"}],
                    "commands": [{"name": "reset"}],
                }
            ),
            DeviceIn.model_validate(
                {
                    "device_id": f"cs-{apikey}",
                    "entity_type": "WeatherObserved",
                    "lorawan": {"dev_eui": f"a1{apikey}00", "data_model": "cayennelpp"},
                }
            ),
            DeviceIn.model_validate(
                {
                    "device_id": f"tts-{apikey}",
                    "entity_type": "WasteContainer",
                    "lorawan": {"application_id": "bins", "data_model": "application_server"},
                }
            ),
        ],
    )
    assert wired.mqtt is not None
    wired.mqtt._session_expiry = 60
    wired.mqtt.start()
    wired.mqtt.wait_connected()
    try:
        yield Running(wired, bus, apikey)
    finally:
        wired.mqtt.stop()


def test_iot_agent_topics_json_ul_single_attribute_and_legacy(
    running: Running, mqtt_url: str
) -> None:
    key, device = running.apikey, f"aq-{running.apikey}"
    publish_mqtt(
        mqtt_url,
        [
            (f"/json/{key}/{device}/attrs", b'{"t": 21.5, "no2": 40}'),
            (f"/json/{key}/{device}/attrs/pm10", b"17"),
            (f"/ul/{key}/{device}/attrs", b"t|22.5#t|23.5"),
            (f"/{key}/{device}/attrs", b"t|24.5"),
            (f"/{key}/{device}/attrs", b'{"t": 25.5}'),
            (f"json/{key}/{device}/attrs", b'{"t": 26.5}'),
        ],
    )
    observations = wait_for(lambda: len(found := running.observations()) >= 7 and found)
    temperatures = [a.value for o in observations for a in o.attributes if a.name == "temperature"]
    assert temperatures == [21.5, 22.5, 23.5, 24.5, 25.5, 26.5]
    first = observations[0]
    assert first.entity_id == f"urn:ngsi-ld:AirQualityObserved:{device}"
    assert {a.name: a.unit_code for a in first.attributes}["no2"] == "GQ"
    assert any(a.name == "pm10" and a.value == 17 for o in observations for a in o.attributes)
    assert running.wired.mqtt is not None
    wait_for(lambda: running.wired.mqtt.acknowledged == 6)  # type: ignore[union-attr]


def test_chirpstack_cayenne_and_tts_decoded_payloads(running: Running, mqtt_url: str) -> None:
    key = running.apikey
    device_time = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=775023)
    frame = encode_cayenne_lpp([(1, "temperature", 12.5), (2, "relative_humidity", 80)])
    chirpstack = {
        "time": device_time.isoformat().replace("+00:00", "123+00:00"),
        "deviceInfo": {"applicationId": "app-1", "devEui": f"a1{key}00"},
        "fPort": 1,
        "fCnt": 42,
        "data": base64.b64encode(frame).decode(),
        "rxInfo": [{"gatewayId": "gw", "rssi": -87, "snr": 7.5}],
    }
    tts = {
        "end_device_ids": {
            "device_id": f"tts-{key}",
            "application_ids": {"application_id": "bins"},
        },
        "uplink_message": {
            "f_port": 2,
            "f_cnt": 3,
            "frm_payload": "AQ==",
            "decoded_payload": {"fillingLevel": 0.8},
            "rx_metadata": [{"rssi": -101, "snr": -3.0}],
        },
    }
    publish_mqtt(
        mqtt_url,
        [
            (f"application/app-1/device/a1{key}00/event/up", orjson.dumps(chirpstack)),
            (f"v3/bins@city/devices/tts-{key}/up", orjson.dumps(tts)),
        ],
    )
    observations = wait_for(lambda: len(found := running.observations()) >= 4 and found)
    by_entity = {o.entity_id: {a.name: a.value for a in o.attributes} for o in observations}
    assert by_entity[f"urn:ngsi-ld:WeatherObserved:cs-{key}"] == {
        "temperature": 12.5,
        "relativeHumidity": 80,
    }
    assert by_entity[f"urn:ngsi-ld:Device:cs-{key}"] == {
        "rssi": -87,
        "snr": 7.5,
        "frameCounter": 42,
    }
    assert by_entity[f"urn:ngsi-ld:WasteContainer:tts-{key}"] == {"fillingLevel": 0.8}
    weather = next(o for o in observations if o.entity_type == "WeatherObserved")
    assert weather.attributes[0].observed_at == device_time  # nanoseconds cut to microseconds


def test_rejected_messages_are_dead_lettered_and_do_not_block_others(
    running: Running, mqtt_url: str
) -> None:
    key, device = running.apikey, f"aq-{running.apikey}"
    bad_lpp = {
        "deviceInfo": {"devEui": f"a1{key}00"},
        "data": base64.b64encode(b"\x01\x67\x01").decode(),
    }
    publish_mqtt(
        mqtt_url,
        [
            (f"/json/{key}/{device}/attrs", b'{"t": '),
            (f"/ul/{key}/{device}/attrs", b"t|1|h"),
            (f"/json/{key}/ghost-{key}/attrs", b'{"t": 1}'),
            (f"/json/wrong-{key}/{device}/attrs", b'{"t": 1}'),
            (f"application/x/device/a1{key}00/event/up", orjson.dumps(bad_lpp)),
            (
                f"application/x/device/a1{key}00/event/up",
                b'{"deviceInfo": {"devEui": "x"}, "data": "%%"}',
            ),
            (f"/json/{key}/{device}/attrs", b'{"t": "warm"}'),
            (f"/json/{key}/{device}/attrs", b'{"t": 30}'),
        ],
    )
    letters = wait_for(lambda: len(found := running.dead_letters()) >= 7 and found)
    reasons = sorted(
        (letter.reason for letter in letters), key=str.lower
    )  # keys differ: no global order
    expected = [
        "attribute 'temperature' (Number): expected a number",
        "bad base64 in ChirpStack data",
        f"device 'ghost-{key}' is not provisioned",
        "malformed JSON",
        "truncated CayenneLPP payload",
        "UltraLight group 0: odd number of fields",
        f"wrong apikey 'wrong-{key}' for device '{device}'",
    ]
    assert len(reasons) == len(expected)
    for reason, start in zip(reasons, expected, strict=True):
        assert reason.startswith(start), (reason, start)
    assert {letter.source for letter in letters} == {"mqtt", "chirpstack"}
    malformed = next(letter for letter in letters if letter.reason.startswith("malformed"))
    assert malformed.topic == f"/json/{key}/{device}/attrs" and malformed.payload == '{"t": '
    (observation,) = wait_for(running.observations)
    assert observation.attributes[0].value == 30
