"""Simulated devices and the MQTT messages they send (pure: no network here)."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from cityos_acquisition.codecs.cayenne_lpp import encode_cayenne_lpp
from cityos_acquisition.codecs.ultralight import format_ultralight_measures
from cityos_acquisition.simulator.kinds import KINDS, DeviceKind

APPLICATION = "cityos-sim"
TTS_TENANT = "cityos"


@dataclass(frozen=True)
class SimulatedDevice:
    kind: DeviceKind
    device_id: str
    apikey: str
    dev_eui: str | None = None


def apikey_for(kind: DeviceKind, prefix: str = "sim") -> str:
    return f"{prefix}-{kind.name.replace('_', '-')}"


def make_devices(
    count: int, kinds: list[str] | None = None, prefix: str = "sim"
) -> list[SimulatedDevice]:
    """``count`` devices spread round-robin over the kinds."""
    chosen = [KINDS[name] for name in (kinds or list(KINDS))]
    devices = []
    for index in range(count):
        kind = chosen[index % len(chosen)]
        device_id = f"{prefix}-{kind.name.replace('_', '-')}-{index:05d}"
        dev_eui = f"{0xC1700000000000 + index:016x}" if kind.protocol == "chirpstack" else None
        devices.append(SimulatedDevice(kind, device_id, apikey_for(kind, prefix), dev_eui))
    return devices


def _lora_frame(measures: dict[str, Any]) -> str:
    return base64.b64encode(encode_cayenne_lpp(measures["lpp"])).decode()


def message_for(device: SimulatedDevice, rng: random.Random, seq: int) -> tuple[str, bytes]:
    """The topic and payload of the device's ``seq``-th message."""
    measures = device.kind.measures(rng, seq)
    protocol = device.kind.protocol
    if protocol == "json":
        return f"/json/{device.apikey}/{device.device_id}/attrs", orjson.dumps(measures)
    if protocol == "ul":
        return (
            f"/ul/{device.apikey}/{device.device_id}/attrs",
            format_ultralight_measures(measures).encode(),
        )
    now = datetime.now(UTC).isoformat()
    rssi, snr = rng.randint(-120, -60), round(rng.uniform(-10, 12), 1)
    if protocol == "chirpstack":
        uplink = {
            "time": now,
            "deviceInfo": {
                "applicationId": APPLICATION,
                "deviceName": device.device_id,
                "devEui": device.dev_eui,
            },
            "fPort": 1,
            "fCnt": seq,
            "data": _lora_frame(measures),
            "rxInfo": [{"gatewayId": "0016c001f0000001", "rssi": rssi, "snr": snr}],
        }
        return f"application/{APPLICATION}/device/{device.dev_eui}/event/up", orjson.dumps(uplink)
    uplink = {
        "end_device_ids": {
            "device_id": device.device_id,
            "application_ids": {"application_id": APPLICATION},
        },
        "received_at": now,
        "uplink_message": {
            "f_port": 1,
            "f_cnt": seq,
            "frm_payload": _lora_frame(measures),
            "rx_metadata": [{"gateway_ids": {"gateway_id": "gw-1"}, "rssi": rssi, "snr": snr}],
            "received_at": now,
        },
    }
    topic = f"v3/{APPLICATION}@{TTS_TENANT}/devices/{device.device_id}/up"
    return topic, orjson.dumps(uplink)


def provisioning(
    devices: list[SimulatedDevice],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Config groups (JSON/UL kinds, autoprovisioned) and LoRaWAN devices, IoT Agent shaped."""
    groups: dict[str, dict[str, Any]] = {}
    lorawan: list[dict[str, Any]] = []
    for device in devices:
        kind = device.kind
        if kind.protocol in ("json", "ul"):
            groups.setdefault(
                device.apikey,
                {
                    "apikey": device.apikey,
                    "resource": "/iot/json" if kind.protocol == "json" else "/iot/d",
                    "entity_type": kind.entity_type,
                    "protocol": "IoTA-JSON" if kind.protocol == "json" else "PDI-IoTA-UltraLight",
                    "transport": "MQTT",
                    "autoprovision": True,
                    "expected_interval": kind.interval * 3,
                    "attributes": list(kind.attributes),
                },
            )
            continue
        identifiers: dict[str, Any] = {"application_id": APPLICATION, "data_model": "cayennelpp"}
        if kind.protocol == "chirpstack":
            identifiers |= {"dev_eui": device.dev_eui, "provider": "chirpstack"}
        else:
            identifiers |= {"provider": "tts"}
        lorawan.append(
            {
                "device_id": device.device_id,
                "entity_type": kind.entity_type,
                "transport": "MQTT",
                "protocol": "LoRaWAN",
                "attributes": list(kind.attributes),
                "expected_interval": kind.interval * 3,
                "lorawan": identifiers,
            }
        )
    return list(groups.values()), lorawan
