"""HTTP southbound: devices post JSON and UltraLight measures; rejected input is dead-lettered."""

from __future__ import annotations

from prometheus_client import REGISTRY

from cityos_kernel.events.topics import ACQUISITION_DEADLETTER, OBSERVATIONS
from tests.fixtures.acquisition import AcquisitionApp

OPENIOT = {"Fiware-Service": "openiot", "Fiware-ServicePath": "/"}
APIKEY = "4jggokgpepnvsb2uv4s40d59ov"


def provision(app: AcquisitionApp, *, autoprovision: bool = True) -> None:
    group = {
        "apikey": APIKEY,
        "entity_type": "Thing",
        "resource": "/iot/d",
        "autoprovision": autoprovision,
    }
    device = {
        "device_id": "motion001",
        "entity_name": "urn:ngsi-ld:Motion:001",
        "entity_type": "Motion",
        "apikey": APIKEY,
        "attributes": [{"object_id": "c", "name": "count", "type": "Integer"}],
        "static_attributes": [
            {"name": "refStore", "type": "Relationship", "value": "urn:ngsi-ld:Store:001"}
        ],
    }
    client = app.client
    assert client.post("/iot/groups", json={"groups": [group]}, headers=OPENIOT).status_code == 201
    assert (
        client.post("/iot/devices", json={"devices": [device]}, headers=OPENIOT).status_code == 201
    )


def dead_letters(transport: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "cityos_acquisition_dead_letters_total", {"transport": transport, "reason": reason}
    )
    return value or 0.0


def test_ultralight_get_and_json_post_become_observations(acquisition_app: AcquisitionApp) -> None:
    provision(acquisition_app)
    client = acquisition_app.client
    ul = client.get("/iot/d", params={"k": APIKEY, "i": "motion001", "d": "c|1"})
    assert ul.status_code == 200
    posted = client.post(
        "/iot/json",
        params={"k": APIKEY, "i": "motion001", "t": "2026-11-22T09:00:00Z"},
        content=b'{"c": 2}',
    )
    assert posted.status_code == 200
    first, second = acquisition_app.envelopes(OBSERVATIONS.name)
    assert first.tenant == "openiot"
    assert first.payload.entity_id == "urn:ngsi-ld:Motion:001"
    values = {a.name: a.value for a in first.payload.attributes}
    assert values == {"count": 1, "refStore": "urn:ngsi-ld:Store:001"}
    assert second.payload.attributes[0].observed_at.isoformat() == "2026-11-22T09:00:00+00:00"


def test_autoprovisioned_device_takes_the_group_entity_type(
    acquisition_app: AcquisitionApp,
) -> None:
    provision(acquisition_app)
    response = acquisition_app.client.post(
        "/iot/d", params={"k": APIKEY, "i": "sensor9"}, content=b"t|21.5"
    )
    assert response.status_code == 200
    (observation,) = acquisition_app.payloads(OBSERVATIONS.name)
    assert observation.entity_id == "urn:ngsi-ld:Thing:sensor9"
    listed = acquisition_app.client.get("/iot/devices", headers=OPENIOT).json()
    assert {d["device_id"] for d in listed["devices"]} == {"motion001", "sensor9"}


def test_rejected_inputs_are_dead_lettered_with_reason_and_counted(
    any_store_app: AcquisitionApp,
) -> None:
    acquisition_app = any_store_app
    provision(acquisition_app, autoprovision=False)
    client = acquisition_app.client
    before = dead_letters("http", "unknown_device")

    unknown_key = client.get("/iot/d", params={"k": "nokey", "i": "motion001", "d": "c|1"})
    assert unknown_key.status_code == 404
    not_provisioned = client.get("/iot/d", params={"k": APIKEY, "i": "ghost", "d": "c|1"})
    assert not_provisioned.status_code == 404
    malformed = client.post("/iot/json", params={"k": APIKEY, "i": "motion001"}, content=b'{"c":')
    assert malformed.status_code == 400
    bad_value = client.get("/iot/d", params={"k": APIKEY, "i": "motion001", "d": "c|many"})
    assert bad_value.status_code == 400

    letters = acquisition_app.payloads(ACQUISITION_DEADLETTER.name)
    reasons = [letter.reason for letter in letters]
    assert reasons[0] == "wrong apikey 'nokey' for device 'motion001'"
    assert "does not autoprovision" in reasons[1]
    assert reasons[2].startswith("malformed JSON")
    assert "expected a number" in reasons[3]
    assert letters[2].payload == '{"c":' and letters[2].source == "http"
    assert letters[2].topic == "/iot/json"
    assert dead_letters("http", "unknown_device") == before + 2
    assert acquisition_app.payloads(OBSERVATIONS.name) == []
    # The service keeps serving the good device after all of that.
    assert (
        client.get("/iot/d", params={"k": APIKEY, "i": "motion001", "d": "c|3"}).status_code == 200
    )


def test_a_changed_mapping_applies_to_the_next_message(any_store_app: AcquisitionApp) -> None:
    provision(any_store_app)
    client = any_store_app.client
    params = {"k": APIKEY, "i": "motion001", "d": "c|2"}
    assert client.get("/iot/d", params=params).status_code == 200
    changed = {"attributes": [{"object_id": "c", "name": "count", "type": "Integer",
                               "expression": "c * 10"}]}  # fmt: skip
    assert client.put("/iot/devices/motion001", json=changed, headers=OPENIOT).status_code == 204
    assert client.get("/iot/d", params=params).status_code == 200
    counts = [
        {a.name: a.value for a in o.attributes}["count"]
        for o in any_store_app.payloads(OBSERVATIONS.name)
    ]
    assert counts == [2, 20]
