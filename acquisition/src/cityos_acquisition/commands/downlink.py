"""What a command looks like on the wire, per transport (pure)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from cityos_acquisition.codecs.ultralight import format_ultralight_command
from cityos_acquisition.mapping.config import DeviceProfile
from cityos_acquisition.transports.mqtt_topics import (
    chirpstack_downlink_topic,
    command_topic,
    things_stack_downlink_topic,
)

DEFAULT_F_PORT = 1


class CommandRejectedError(ValueError):
    """The command cannot be sent to this device (its reason goes to ``<cmd>_info``)."""


@dataclass(frozen=True)
class Downlink:
    topic: str
    payload: bytes


def _frame(params: Any) -> tuple[bytes, int]:
    """LoRaWAN frame bytes and port: ``{"data": base64, "fPort": n}``, base64 text or JSON."""
    port = DEFAULT_F_PORT
    if isinstance(params, dict) and "data" in params:
        port = int(params.get("fPort") or params.get("f_port") or DEFAULT_F_PORT)
        params = params["data"]
    if isinstance(params, str):
        try:
            return base64.b64decode(params, validate=True), port
        except ValueError as exc:
            raise CommandRejectedError(f"LoRaWAN command data is not base64: {exc}") from exc
    return orjson.dumps(params), port


def is_ultralight(profile: DeviceProfile) -> bool:
    protocol = (profile.protocol or "").lower()
    return "ul" in protocol or "ultralight" in protocol


def downlink_for(profile: DeviceProfile, command: str, params: Any) -> Downlink:
    """The MQTT message that carries ``command`` to the device."""
    lorawan = profile.lorawan
    if lorawan:
        frame, port = _frame(params)
        data = base64.b64encode(frame).decode()
        provider = str(lorawan.get("provider") or "").lower()
        application = lorawan.get("application_id")
        if provider in ("tts", "ttn", "thethingsstack") or (
            application and not lorawan.get("dev_eui")
        ):
            if not application:
                raise CommandRejectedError("a TTS device needs lorawan.application_id")
            push = {"downlinks": [{"f_port": port, "frm_payload": data, "priority": "NORMAL"}]}
            topic = things_stack_downlink_topic(str(application), profile.device_id)
            return Downlink(topic, orjson.dumps(push))
        dev_eui = lorawan.get("dev_eui")
        if not dev_eui or not application:
            raise CommandRejectedError(
                "a ChirpStack device needs lorawan.dev_eui and application_id"
            )
        payload = {"devEui": dev_eui, "confirmed": False, "fPort": port, "data": data}
        return Downlink(
            chirpstack_downlink_topic(str(application), str(dev_eui)), orjson.dumps(payload)
        )
    if not profile.apikey:
        raise CommandRejectedError(f"device {profile.device_id!r} has no apikey to address it")
    topic = command_topic(profile.apikey, profile.device_id)
    if is_ultralight(profile):
        try:
            line = format_ultralight_command(profile.device_id, command, params)
        except ValueError as exc:
            raise CommandRejectedError(str(exc)) from exc
        return Downlink(topic, line.encode())
    return Downlink(topic, orjson.dumps({command: params if params is not None else ""}))
