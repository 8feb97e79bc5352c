"""Commands from knowledge.commands.v1 to devices, with their status coming back."""

from __future__ import annotations

import base64
import queue
import threading
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cityos_acquisition.commands.downlink import downlink_for
from cityos_acquisition.layer import build_parts
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.registry.schemas import DeviceIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_kernel.bus.consumer import ConsumerRunner
from cityos_kernel.bus.memory import MemoryBus
from cityos_kernel.bus.port import Record
from cityos_kernel.events.payloads import CommandV1
from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, COMMANDS, OBSERVATIONS
from tests.fixtures.acquisition import AcquisitionApp, read_topic, wait_for


def send_command(bus: MemoryBus, tenant: str, entity_id: str, command: str, params: object) -> None:
    payload = CommandV1(
        command_id=uuid.uuid4().hex, entity_id=entity_id, command=command, params=params
    )
    envelope = COMMANDS.envelope(payload, source="test", tenant=tenant)
    bus.publish([Record(COMMANDS.name, entity_id, COMMANDS.encode(envelope))])


def statuses(bus: MemoryBus, command: str) -> list[tuple[str, object]]:
    found = []
    for envelope in read_topic(bus, OBSERVATIONS.name, timeout=0.05):
        values = {a.name: a.value for a in envelope.payload.attributes}
        if f"{command}_status" in values:
            found.append((values[f"{command}_status"], values.get(f"{command}_info")))
    return found


class FakeDevice:
    """A real MQTT client acting as the device: it answers each command on cmdexe."""

    def __init__(self, url: str, apikey: str, device_id: str) -> None:
        parts = urlsplit(url)
        self.received: queue.Queue[bytes] = queue.Queue()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()

        def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
            self.received.put(message.payload)
            command = message.payload.decode().split("|")[0]  # "dev@cmd"
            client.publish(f"/ul/{apikey}/{device_id}/cmdexe", f"{command}|rang twice", qos=1)

        self.client.on_message = on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.subscribe(f"/{apikey}/{device_id}/cmd", qos=1)
        self.client.loop_start()
        assert subscribed.wait(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def bell(mqtt_url: str) -> Iterator[tuple[MemoryBus, str, FakeDevice]]:
    bus = MemoryBus(partitions=2)
    apikey = uuid.uuid4().hex[:12]
    settings = AcquisitionSettings(mqtt_client_id=f"cmd-{apikey}", registry_cache_ttl=0)
    wired = build_parts(bus, MemoryRegistryStore(), settings, mqtt_url)
    device = {
        "device_id": f"bell-{apikey}",
        "entity_type": "Bell",
        "apikey": apikey,
        "protocol": "PDI-IoTA-UltraLight",
        "transport": "MQTT",
        "commands": [{"name": "ring", "type": "command"}],
    }
    wired.registry.create_devices(Scope("openiot", "/"), [DeviceIn.model_validate(device)])
    assert wired.mqtt is not None
    wired.mqtt._session_expiry = 60
    wired.mqtt.start()
    wired.mqtt.wait_connected()
    runner = ConsumerRunner(bus, wired.parts.consumers[0])
    runner.start()
    fake = FakeDevice(mqtt_url, apikey, f"bell-{apikey}")
    try:
        yield bus, apikey, fake
    finally:
        fake.close()
        runner.stop()
        wired.mqtt.stop()


@pytest.mark.mqtt
def test_mqtt_ultralight_command_round_trip(bell: tuple[MemoryBus, str, FakeDevice]) -> None:
    bus, apikey, device = bell
    send_command(bus, "openiot", f"urn:ngsi-ld:Bell:bell-{apikey}", "ring", {"times": 2})
    assert device.received.get(timeout=10) == f"bell-{apikey}@ring|times=2".encode()
    found = wait_for(lambda: len(s := statuses(bus, "ring")) >= 3 and s)
    assert found == [("PENDING", None), ("DELIVERED", None), ("OK", "rang twice")]


def test_http_device_polls_its_commands(acquisition_app: AcquisitionApp) -> None:
    client = acquisition_app.client
    lamp = {
        "device_id": "lamp001",
        "entity_name": "urn:ngsi-ld:Lamp:001",
        "entity_type": "Lamp",
        "apikey": "lampkey",
        "protocol": "PDI-IoTA-UltraLight",
        "transport": "HTTP",
        "commands": [{"name": "on", "type": "command"}],
    }
    assert client.post("/iot/devices", json={"devices": [lamp]}).status_code == 201
    bus, wired = acquisition_app.bus, acquisition_app.wired
    send_command(bus, "urn:ngsi-ld:tenant:default", "urn:ngsi-ld:Lamp:001", "on", None)
    send_command(bus, "urn:ngsi-ld:tenant:default", "urn:ngsi-ld:Lamp:001", "explode", None)
    send_command(bus, "urn:ngsi-ld:tenant:default", "urn:ngsi-ld:Lamp:404", "on", None)
    runner = ConsumerRunner(bus, wired.parts.consumers[0])
    subscription = bus.subscribe("acquisition-commands", [COMMANDS.name])
    runner.process(subscription, subscription.poll(10, 0.1))
    subscription.close()

    polled = client.get("/iot/d", params={"k": "lampkey", "i": "lamp001", "getCmd": 1})
    assert polled.status_code == 200 and polled.text == "lamp001@on"
    assert client.get("/iot/d", params={"k": "lampkey", "i": "lamp001", "getCmd": 1}).text == ""
    assert statuses(bus, "on") == [("PENDING", None), ("DELIVERED", None)]
    assert statuses(bus, "explode") == [("ERROR", "device has no command 'explode'")]
    (letter,) = acquisition_app.payloads(ACQUISITION_DEADLETTER.name)
    assert letter.reason == "no device behind entity urn:ngsi-ld:Lamp:404"


def test_lorawan_downlinks_for_chirpstack_and_tts() -> None:
    chirpstack = DeviceProfile(
        device_id="valve",
        tenant="t",
        lorawan={"dev_eui": "0101010101010101", "application_id": "app-1"},
    )
    downlink = downlink_for(chirpstack, "open", {"data": "AQ==", "fPort": 10})
    assert downlink.topic == "application/app-1/device/0101010101010101/command/down"
    assert orjson.loads(downlink.payload) == {
        "devEui": "0101010101010101",
        "confirmed": False,
        "fPort": 10,
        "data": "AQ==",
    }
    tts = DeviceProfile(
        device_id="valve-2",
        tenant="t",
        lorawan={"application_id": "water@city", "provider": "tts"},
    )
    pushed = downlink_for(tts, "open", {"level": 3})
    assert pushed.topic == "v3/water@city/devices/valve-2/down/push"
    (frame,) = orjson.loads(pushed.payload)["downlinks"]
    assert base64.b64decode(frame["frm_payload"]) == b'{"level":3}' and frame["f_port"] == 1
    json_device = DeviceProfile(device_id="d", tenant="t", apikey="k", protocol="IoTA-JSON")
    assert downlink_for(json_device, "on", None).payload == b'{"on":""}'
