"""LoRaWAN network-server uplinks: ChirpStack v4 and The Things Stack v3 integration JSON.

Both become a :class:`LoraUplink`: who sent it, the raw frame payload, what the network
server decoded (if it runs a codec), the device's time and the radio metadata that the
platform keeps as Device attributes (RSSI, SNR, frame counter).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from cityos_acquisition.codecs.errors import DecodeError
from cityos_acquisition.codecs.json_measures import load_json


@dataclass(frozen=True, slots=True)
class LoraUplink:
    """One uplink frame as the network server reported it."""

    network: str
    application_id: str
    device_id: str
    dev_eui: str | None
    payload: bytes
    f_port: int | None
    f_cnt: int | None
    decoded: dict[str, Any] | None
    device_time: str | None
    rssi: float | None = None
    snr: float | None = None
    gateway_count: int = 0
    tenant: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def radio_measures(self) -> dict[str, Any]:
        """Radio metadata as measures (``rssi``, ``snr``, ``fCnt``), only those present."""
        found = {"rssi": self.rssi, "snr": self.snr, "fCnt": self.f_cnt}
        return {name: value for name, value in found.items() if value is not None}


def _object(document: Any, key: str, where: str) -> dict[str, Any]:
    value = document.get(key) if isinstance(document, dict) else None
    if not isinstance(value, dict):
        raise DecodeError(f"{where} uplink has no {key!r} object")
    return value


def _base64(text: Any, what: str) -> bytes:
    if text is None or text == "":
        return b""
    if not isinstance(text, str):
        raise DecodeError(f"{what} must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"bad base64 in {what}: {exc}") from exc


def _best_gateway(rx: Any, rssi_key: str, snr_key: str) -> tuple[float | None, float | None, int]:
    """RSSI and SNR of the gateway that heard the frame best."""
    if not isinstance(rx, list) or not rx:
        return None, None, 0
    heard = [item for item in rx if isinstance(item, dict)]
    rssis = [item for item in heard if isinstance(item.get(rssi_key), int | float)]
    if not rssis:
        return None, None, len(heard)
    best = max(rssis, key=lambda item: item[rssi_key])
    snr = best.get(snr_key)
    return best[rssi_key], snr if isinstance(snr, int | float) else None, len(heard)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def decode_chirpstack_uplink(raw: bytes | str) -> LoraUplink:
    """ChirpStack v4 ``application/<app>/device/<devEui>/event/up`` JSON."""
    document = load_json(raw)
    info = _object(document, "deviceInfo", "ChirpStack")
    dev_eui = info.get("devEui")
    if not isinstance(dev_eui, str) or not dev_eui:
        raise DecodeError("ChirpStack uplink has no deviceInfo.devEui")
    decoded = document.get("object")
    rssi, snr, gateways = _best_gateway(document.get("rxInfo"), "rssi", "snr")
    return LoraUplink(
        network="chirpstack",
        application_id=str(info.get("applicationId") or ""),
        device_id=dev_eui.lower(),
        dev_eui=dev_eui.lower(),
        payload=_base64(document.get("data"), "ChirpStack data"),
        f_port=_int_or_none(document.get("fPort")),
        f_cnt=_int_or_none(document.get("fCnt")),
        decoded=decoded if isinstance(decoded, dict) else None,
        device_time=document.get("time") if isinstance(document.get("time"), str) else None,
        rssi=rssi,
        snr=snr,
        gateway_count=gateways,
        tenant=info.get("tenantId") if isinstance(info.get("tenantId"), str) else None,
        extra={"deviceName": info.get("deviceName"), "dr": document.get("dr")},
    )


def decode_things_stack_uplink(raw: bytes | str) -> LoraUplink:
    """The Things Stack v3 ``v3/<app>@<tenant>/devices/<dev>/up`` JSON."""
    document = load_json(raw)
    ids = _object(document, "end_device_ids", "The Things Stack")
    message = _object(document, "uplink_message", "The Things Stack")
    device_id = ids.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise DecodeError("The Things Stack uplink has no end_device_ids.device_id")
    application = ids.get("application_ids")
    application_id = application.get("application_id") if isinstance(application, dict) else None
    dev_eui = ids.get("dev_eui")
    decoded = message.get("decoded_payload")
    rssi, snr, gateways = _best_gateway(message.get("rx_metadata"), "rssi", "snr")
    device_time = message.get("received_at") or document.get("received_at")
    return LoraUplink(
        network="tts",
        application_id=str(application_id or ""),
        device_id=device_id,
        dev_eui=dev_eui.lower() if isinstance(dev_eui, str) else None,
        payload=_base64(message.get("frm_payload"), "uplink_message.frm_payload"),
        f_port=_int_or_none(message.get("f_port")),
        f_cnt=_int_or_none(message.get("f_cnt")),
        decoded=decoded if isinstance(decoded, dict) else None,
        device_time=device_time if isinstance(device_time, str) else None,
        rssi=rssi,
        snr=snr,
        gateway_count=gateways,
    )
