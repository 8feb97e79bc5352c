"""One raw input from any transport, with what its route (topic or URL) says about it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

#: How the payload must be read: JSON or UltraLight measures, one JSON attribute, a
#: command result, or a LoRaWAN network server's uplink.
PayloadKind = Literal[
    "json", "json_attr", "ul", "ul_attr", "json_cmdexe", "ul_cmdexe", "auto", "auto_attr",
    "auto_cmdexe", "chirpstack", "tts",
]  # fmt: skip


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and this is built per message.
@dataclass(slots=True)
class Inbound:
    transport: str
    kind: PayloadKind
    payload: bytes
    received_at: datetime
    topic: str | None = None
    apikey: str | None = None
    device_id: str | None = None
    attribute: str | None = None
    #: The config group resource an HTTP request came through (``/iot/json``, ``/iot/d``).
    resource: str | None = None
    #: A time for the whole input (HTTP ``t=``), used where a group carries none.
    device_time: str | None = None
