"""ChirpStack v4 and The Things Stack v3 uplink JSON, as their integrations publish it."""

from __future__ import annotations

import base64

import orjson
import pytest

from cityos_acquisition.codecs import DecodeError
from cityos_acquisition.codecs.lorawan import decode_chirpstack_uplink, decode_things_stack_uplink


def chirpstack_uplink(frame: bytes = b"\x03\x67\x01\x10", **changes: object) -> bytes:
    document: dict[str, object] = {
        "deduplicationId": "3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        "time": "2026-11-22T09:34:15.775023242+00:00",
        "deviceInfo": {
            "tenantId": "52f14cd4-c6f1-4fbd-8f87-4025e1d49242",
            "tenantName": "ChirpStack",
            "applicationId": "17c82e96-be03-4f38-aef3-f83d48582d97",
            "applicationName": "Test application",
            "deviceProfileName": "E103",
            "deviceName": "Test device",
            "devEui": "0101010101010101",
            "tags": {},
        },
        "devAddr": "00189440",
        "dr": 1,
        "fPort": 1,
        "fCnt": 10,
        "data": base64.b64encode(frame).decode(),
        "rxInfo": [
            {"gatewayId": "0016c001f153a14c", "rssi": -36, "snr": 10.5},
            {"gatewayId": "0016c001f153a14d", "rssi": -90, "snr": -2.0},
        ],
        "txInfo": {"frequency": 868100000},
    }
    document.update(changes)
    return orjson.dumps(document)


def tts_uplink(**message_changes: object) -> bytes:
    message: dict[str, object] = {
        "session_key_id": "AXA50...",
        "f_port": 2,
        "f_cnt": 7,
        "frm_payload": base64.b64encode(b"\x01\x67\x00\xeb").decode(),
        "decoded_payload": {"temperature_1": 23.5},
        "rx_metadata": [{"gateway_ids": {"gateway_id": "gw1"}, "rssi": -35, "snr": 5.2}],
        "received_at": "2026-11-22T15:15:45.787Z",
    }
    message.update(message_changes)
    return orjson.dumps(
        {
            "end_device_ids": {
                "device_id": "dev1",
                "application_ids": {"application_id": "app1"},
                "dev_eui": "0004A30B001C0530",
                "dev_addr": "00BCB929",
            },
            "received_at": "2026-11-22T15:15:45.800Z",
            "uplink_message": message,
        }
    )


def test_chirpstack_uplink_carries_frame_identity_and_best_gateway() -> None:
    uplink = decode_chirpstack_uplink(chirpstack_uplink())
    assert uplink.device_id == "0101010101010101"
    assert uplink.payload == b"\x03\x67\x01\x10"
    assert (uplink.f_port, uplink.f_cnt) == (1, 10)
    assert uplink.device_time == "2026-11-22T09:34:15.775023242+00:00"
    assert uplink.radio_measures() == {"rssi": -36, "snr": 10.5, "fCnt": 10}
    assert uplink.gateway_count == 2
    assert uplink.decoded is None


def test_chirpstack_decoded_object_is_kept() -> None:
    uplink = decode_chirpstack_uplink(chirpstack_uplink(object={"temperature": 27.2}))
    assert uplink.decoded == {"temperature": 27.2}


def test_tts_uplink() -> None:
    uplink = decode_things_stack_uplink(tts_uplink())
    assert (uplink.application_id, uplink.device_id) == ("app1", "dev1")
    assert uplink.dev_eui == "0004a30b001c0530"
    assert uplink.payload == b"\x01\x67\x00\xeb"
    assert uplink.decoded == {"temperature_1": 23.5}
    assert uplink.device_time == "2026-11-22T15:15:45.787Z"
    assert uplink.radio_measures() == {"rssi": -35, "snr": 5.2, "fCnt": 7}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"{}", "no 'deviceInfo'"),
        (chirpstack_uplink(deviceInfo={"applicationId": "x"}), "devEui"),
        (chirpstack_uplink(data="!!notbase64!!"), "bad base64 in ChirpStack data"),
        (chirpstack_uplink(data=12), "must be a base64 string"),
    ],
)
def test_chirpstack_rejects(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_chirpstack_uplink(payload)


def test_tts_rejects_bad_payloads() -> None:
    with pytest.raises(DecodeError, match="bad base64"):
        decode_things_stack_uplink(tts_uplink(frm_payload="%%%"))
    with pytest.raises(DecodeError, match="uplink_message"):
        decode_things_stack_uplink(b'{"end_device_ids": {"device_id": "d"}}')
