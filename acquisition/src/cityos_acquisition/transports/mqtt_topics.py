"""MQTT topics the layer listens to, and what a topic says about its message (pure).

IoT Agent topics (with or without the leading slash):
``/json/<apikey>/<device>/attrs``, ``/json/<apikey>/<device>/attrs/<attr>``,
``/ul/<apikey>/<device>/attrs`` (and ``/attrs/<attr>``), the legacy
``/<apikey>/<device>/attrs`` (JSON or UltraLight, told apart by the payload), and command
results on ``.../cmdexe``. LoRaWAN: ChirpStack v4 ``application/<app>/device/<devEui>/event/up``
and The Things Stack v3 ``v3/<app>@<tenant>/devices/<device>/up``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from cityos_acquisition.ingest.inbound import PayloadKind

IOT_AGENT_SUBSCRIPTIONS: tuple[str, ...] = (
    "/json/+/+/attrs",
    "/json/+/+/attrs/+",
    "/json/+/+/cmdexe",
    "/ul/+/+/attrs",
    "/ul/+/+/attrs/+",
    "/ul/+/+/cmdexe",
    "json/+/+/attrs",
    "json/+/+/attrs/+",
    "json/+/+/cmdexe",
    "ul/+/+/attrs",
    "ul/+/+/attrs/+",
    "ul/+/+/cmdexe",
    "/+/+/attrs",
    "/+/+/attrs/+",
    "/+/+/cmdexe",
)
CHIRPSTACK_SUBSCRIPTIONS: tuple[str, ...] = ("application/+/device/+/event/up",)
THINGS_STACK_SUBSCRIPTIONS: tuple[str, ...] = ("v3/+/devices/+/up",)


@dataclass(frozen=True, slots=True)
class TopicRoute:
    """Where a message came from, read off its topic."""

    transport: str
    kind: PayloadKind
    apikey: str | None = None
    device_id: str | None = None
    attribute: str | None = None
    application_id: str | None = None


def _iot_agent(levels: list[str]) -> TopicRoute | None:
    protocol: str = "auto"
    if levels and levels[0] in ("json", "ul") and len(levels) >= 4:
        protocol, levels = levels[0], levels[1:]
    if len(levels) < 3 or not levels[0] or not levels[1]:
        return None
    apikey, device_id, action, *rest = levels
    if action == "attrs" and not rest:
        kind = protocol
    elif action == "attrs" and len(rest) == 1 and rest[0]:
        kind = f"{protocol}_attr"
    elif action == "cmdexe" and not rest:
        kind = f"{protocol}_cmdexe"
    else:
        return None
    return TopicRoute("mqtt", kind, apikey, device_id, rest[0] if rest else None)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=65536)
def route_topic(topic: str) -> TopicRoute | None:
    """What a topic means, or ``None`` when it is not one the layer understands."""
    levels = topic.split("/")
    if len(levels) == 6 and levels[0] == "application" and levels[2] == "device":
        if levels[4:] == ["event", "up"]:
            return TopicRoute(
                "chirpstack", "chirpstack", device_id=levels[3], application_id=levels[1]
            )
        return None
    if len(levels) == 5 and levels[0] == "v3" and levels[2] == "devices" and levels[4] == "up":
        return TopicRoute("tts", "tts", device_id=levels[3], application_id=levels[1].split("@")[0])
    if topic.startswith("/"):
        levels = levels[1:]
    return _iot_agent(levels)


def command_topic(apikey: str, device_id: str) -> str:
    """Where a device listens for its commands (JSON or UltraLight payload)."""
    return f"/{apikey}/{device_id}/cmd"


def chirpstack_downlink_topic(application_id: str, dev_eui: str) -> str:
    return f"application/{application_id}/device/{dev_eui}/command/down"


def things_stack_downlink_topic(application_id: str, device_id: str) -> str:
    """TTS v3 ``.../down/push``; ``application_id`` may carry ``@tenant``."""
    return f"v3/{application_id}/devices/{device_id}/down/push"
