"""The IoT-Agent-compatible provisioning API, with payloads from the IoT Agent documentation."""

from __future__ import annotations

from typing import Any

import pytest

from cityos_kernel.events.topics import DEVICES
from tests.fixtures.acquisition import AcquisitionApp

OPENIOT = {"Fiware-Service": "openiot", "Fiware-ServicePath": "/"}

# From the IoT Agent tutorials ("Provisioning an IoT Agent").
SERVICE_GROUP = {
    "services": [
        {
            "apikey": "4jggokgpepnvsb2uv4s40d59ov",
            "cbroker": "http://orion:1026",
            "entity_type": "Thing",
            "resource": "/iot/d",
        }
    ]
}
MOTION_SENSOR = {
    "devices": [
        {
            "device_id": "motion001",
            "entity_name": "urn:ngsi-ld:Motion:001",
            "entity_type": "Motion",
            "timezone": "Europe/Berlin",
            "attributes": [{"object_id": "c", "name": "count", "type": "Integer"}],
            "static_attributes": [
                {"name": "refStore", "type": "Relationship", "value": "urn:ngsi-ld:Store:001"}
            ],
        }
    ]
}
SMART_LAMP = {
    "devices": [
        {
            "device_id": "lamp001",
            "entity_name": "urn:ngsi-ld:Lamp:001",
            "entity_type": "Lamp",
            "protocol": "PDI-IoTA-UltraLight",
            "transport": "HTTP",
            "endpoint": "http://iot-sensors:3001/iot/lamp001",
            "commands": [{"name": "on", "type": "command"}, {"name": "off", "type": "command"}],
            "attributes": [{"object_id": "s", "name": "state", "type": "Text"}],
        }
    ]
}


def test_groups_create_list_update_delete(any_store_app: AcquisitionApp) -> None:
    app = any_store_app
    client = app.client
    assert client.post("/iot/groups", json=SERVICE_GROUP, headers=OPENIOT).status_code == 201
    again = client.post("/iot/groups", json=SERVICE_GROUP, headers=OPENIOT)
    assert again.status_code == 409 and again.json()["name"] == "DUPLICATE_GROUP"
    listed = client.get("/iot/groups", headers=OPENIOT).json()
    assert listed["count"] == 1
    assert listed["groups"][0]["cbroker"] == "http://orion:1026"  # unknown fields are kept
    assert client.get("/iot/groups", headers={"Fiware-Service": "other"}).json()["count"] == 0

    query = {"resource": "/iot/d", "apikey": "4jggokgpepnvsb2uv4s40d59ov"}
    changed = client.put(
        "/iot/groups", params=query, json={"entity_type": "Sensor"}, headers=OPENIOT
    )
    assert changed.status_code == 204
    assert client.get("/iot/groups", headers=OPENIOT).json()["groups"][0]["entity_type"] == "Sensor"
    assert client.delete("/iot/groups", params=query, headers=OPENIOT).status_code == 204
    missing = client.delete("/iot/groups", params=query, headers=OPENIOT)
    assert missing.status_code == 404


def test_devices_lifecycle_publishes_device_events(any_store_app: AcquisitionApp) -> None:
    app = any_store_app
    client = app.client
    assert client.post("/iot/devices", json=MOTION_SENSOR, headers=OPENIOT).status_code == 201
    assert client.post("/iot/devices", json=SMART_LAMP, headers=OPENIOT).status_code == 201
    duplicate = client.post("/iot/devices", json=MOTION_SENSOR, headers=OPENIOT)
    assert duplicate.status_code == 409 and duplicate.json()["name"] == "DUPLICATE_DEVICE_ID"

    device = client.get("/iot/devices/motion001", headers=OPENIOT).json()
    assert device["entity_name"] == "urn:ngsi-ld:Motion:001"
    assert device["timezone"] == "Europe/Berlin"
    listed = client.get("/iot/devices", headers=OPENIOT, params={"limit": 1}).json()
    assert listed["count"] == 2 and len(listed["devices"]) == 1

    assert (
        client.put(
            "/iot/devices/motion001", json={"entity_type": "MotionSensor"}, headers=OPENIOT
        ).status_code
        == 204
    )
    assert client.delete("/iot/devices/motion001", headers=OPENIOT).status_code == 204
    gone = client.get("/iot/devices/motion001", headers=OPENIOT)
    assert gone.status_code == 404 and gone.json()["name"] == "DEVICE_NOT_FOUND"

    events = app.envelopes(DEVICES.name)
    motion = [(e.tenant, e.payload.event) for e in events if e.payload.device_id == "motion001"]
    assert motion == [("openiot", "provisioned"), ("openiot", "updated"), ("openiot", "deleted")]
    provisioned = next(e.payload for e in events if e.payload.device_id == "lamp001")
    assert provisioned.device["entity_id"] == "urn:ngsi-ld:Lamp:001"


def test_tenancy_headers(any_store_app: AcquisitionApp) -> None:
    app = any_store_app
    client = app.client
    ngsild = {"NGSILD-Tenant": "urn:ngsi-ld:tenant:sevilla"}
    assert client.post("/iot/devices", json=MOTION_SENSOR, headers=ngsild).status_code == 201
    assert client.get("/iot/devices/motion001", headers=ngsild).status_code == 200
    assert client.get("/iot/devices/motion001", headers=OPENIOT).status_code == 404
    other_path = {"Fiware-Service": "urn:ngsi-ld:tenant:sevilla", "Fiware-ServicePath": "/x"}
    assert client.get("/iot/devices/motion001", headers=other_path).status_code == 404


@pytest.mark.parametrize(
    "device",
    [
        {"device_id": "d1", "attributes": [{"object_id": "t", "name": "t", "expression": "t *"}]},
        {"device_id": "bad/id"},
        {"device_id": "d2", "lorawan": {"dev_eui": "01", "data_model": "protobuf"}},
    ],
)
def test_invalid_devices_are_refused(
    acquisition_app: AcquisitionApp, device: dict[str, Any]
) -> None:
    response = acquisition_app.client.post("/iot/devices", json={"devices": [device]})
    assert response.status_code == 422


def test_about_is_open(acquisition_app: AcquisitionApp) -> None:
    about = acquisition_app.client.get("/iot/about").json()
    assert "PDI-IoTA-UltraLight" in about["protocols"]


def test_lorawan_iot_agent_device_shape_is_understood(acquisition_app: AcquisitionApp) -> None:
    """A device as the LoRaWAN IoT Agent documents it (internal_attributes.lorawan)."""
    device = {
        "device_id": "lora-n-003",
        "entity_name": "LORA-N-003",
        "entity_type": "LoraDevice",
        "attributes": [{"object_id": "temperature_1", "name": "temperature", "type": "Number"}],
        "internal_attributes": {
            "lorawan": {
                "application_server": {"host": "eu.thethings.network", "provider": "TTN"},
                "dev_eui": "3339343771356214",
                "app_eui": "70B3D57ED0000AC0",
                "application_id": "ari_ioe_app_demo1",
                "application_key": "9BE6B8EF16415B5F6ED4FBEAFE695C49",
                "data_model": "cayennelpp",
            }
        },
    }
    client = acquisition_app.client
    assert client.post("/iot/devices", json={"devices": [device]}).status_code == 201
    record = acquisition_app.wired.registry.store.device_by_dev_eui("3339343771356214")
    assert record is not None
    profile = acquisition_app.wired.registry.profile(record)
    assert profile.data_model == "cayennelpp"
    assert profile.lorawan["provider"] == "ttn"
    assert profile.lorawan["application_id"] == "ari_ioe_app_demo1"
