"""Every transport and codec, end to end to acquisition.observations.v1 on a real Kafka broker."""

from __future__ import annotations

import base64
import time
import uuid

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cityos_acquisition.codecs.cayenne_lpp import encode_cayenne_lpp
from cityos_acquisition.layer import build_parts
from cityos_acquisition.registry.schemas import DeviceIn, GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_kernel.bus import ConsumerTuning, KafkaBus
from cityos_kernel.events.topics import OBSERVATIONS
from tests.fixtures.acquisition import publish_mqtt

TUNING = ConsumerTuning(session_timeout_ms=2000, heartbeat_interval_ms=500)


@pytest.mark.mqtt
@pytest.mark.kafka
def test_mqtt_http_chirpstack_and_tts_reach_kafka(mqtt_url: str, kafka_bootstrap: str) -> None:
    tag = uuid.uuid4().hex[:8]
    bus = KafkaBus(kafka_bootstrap, partitions=3, client_id=f"e2e-{tag}", consumer_tuning=TUNING)
    settings = AcquisitionSettings(mqtt_client_id=f"e2e-{tag}", registry_cache_ttl=0)
    wired = build_parts(bus, MemoryRegistryStore(), settings, mqtt_url)
    scope = Scope(f"tenant-{tag}", "/")
    wired.registry.create_groups(scope, [GroupIn(apikey=tag, entity_type="WeatherObserved")])
    wired.registry.create_devices(
        scope,
        [
            DeviceIn.model_validate(
                {
                    "device_id": f"cs-{tag}",
                    "entity_type": "AirQualityObserved",
                    "lorawan": {"dev_eui": f"cafe{tag}", "data_model": "cayennelpp"},
                }
            ),
            DeviceIn.model_validate(
                {
                    "device_id": f"tts-{tag}",
                    "entity_type": "WasteContainer",
                    "lorawan": {"application_id": f"app-{tag}", "data_model": "cayennelpp"},
                }
            ),
        ],
    )
    assert wired.mqtt is not None
    wired.mqtt._session_expiry = 60
    wired.mqtt.start()
    reader = bus.subscribe(f"reader-{tag}", [OBSERVATIONS.name])
    try:
        wired.mqtt.wait_connected()
        frame = base64.b64encode(encode_cayenne_lpp([(1, "temperature", 19.5)])).decode()
        tts_frame = base64.b64encode(encode_cayenne_lpp([(1, "percentage", 70)])).decode()
        publish_mqtt(
            mqtt_url,
            [
                (f"/json/{tag}/json-{tag}/attrs", b'{"t": 11.5}'),
                (f"/ul/{tag}/ul-{tag}/attrs", b"t|12.5"),
                (
                    f"application/a/device/cafe{tag}/event/up",
                    orjson.dumps({"deviceInfo": {"devEui": f"cafe{tag}"}, "data": frame}),
                ),
                (
                    f"v3/app-{tag}@city/devices/tts-{tag}/up",
                    orjson.dumps(
                        {
                            "end_device_ids": {
                                "device_id": f"tts-{tag}",
                                "application_ids": {"application_id": f"app-{tag}"},
                            },
                            "uplink_message": {"frm_payload": tts_frame, "f_cnt": 1},
                        }
                    ),
                ),
            ],
        )
        client = TestClient(FastAPI())
        client.app.include_router(wired.parts.routers[1])  # type: ignore[attr-defined]
        assert (
            client.post(f"/iot/json?k={tag}&i=http-{tag}", content=b'{"t": 13.5}').status_code
            == 200
        )
        assert client.get(f"/iot/d?k={tag}&i=httpul-{tag}&d=t|14.5").status_code == 200

        found: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + 60
        while len(found) < 7 and time.monotonic() < deadline:
            for delivery in reader.poll(500, 1.0):
                envelope = OBSERVATIONS.decode(delivery.value)
                if envelope.tenant == scope.tenant:
                    found[envelope.payload.entity_id] = {
                        a.name: a.value for a in envelope.payload.attributes
                    }
        weather = "urn:ngsi-ld:WeatherObserved:"
        assert found[f"{weather}json-{tag}"] == {"temperature": 11.5}
        assert found[f"{weather}ul-{tag}"] == {"temperature": 12.5}
        assert found[f"{weather}http-{tag}"] == {"temperature": 13.5}
        assert found[f"{weather}httpul-{tag}"] == {"temperature": 14.5}
        assert found[f"urn:ngsi-ld:AirQualityObserved:cs-{tag}"] == {"temperature": 19.5}
        assert found[f"urn:ngsi-ld:WasteContainer:tts-{tag}"] == {"percentage_1": 70}
        assert found[f"urn:ngsi-ld:Device:tts-{tag}"] == {"frameCounter": 1}
    finally:
        reader.close()
        wired.mqtt.stop()
        bus.close()
