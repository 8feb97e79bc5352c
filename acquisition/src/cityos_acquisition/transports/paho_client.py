"""A paho-mqtt client with a buffered receive path and acknowledgements sent in bulk.

paho reads every packet with at least three ``recv`` calls (the command byte, each byte of
the remaining length, the body), builds an ``MQTTMessage`` (with a ``threading.Condition``)
and matches callbacks per message, and sends every PUBACK in a ``send`` call of its own.
At QoS 1 that is about 40 µs of CPU per message, more than decoding and mapping it
(ADR 0025). This subclass keeps paho for the connection and the protocol and changes how
bytes move:

- ``_sock_recv`` serves paho's small reads from a buffer filled by one large ``recv``;
- with ``on_publish_batch`` set, complete MQTT 3.1.1 PUBLISH packets (QoS 0 or 1) already
  in that buffer are parsed here in one pass and handed over as a list of
  :class:`ReceivedPublish`; every other packet (CONNACK, SUBACK, PUBACK, PINGRESP, QoS 2,
  a packet cut at the end of the buffer, MQTT 5) goes through paho as before;
- :meth:`BufferedClient.ack_many` queues the PUBACKs of a whole batch as one write.

These hook paho 2.x internals (``_sock_recv``, ``_sock_close``, ``_packet_read``,
``_packet_queue``, ``_in_packet``), which is why the paho version is pinned in
``uv.lock`` and ``tests/acquisition/test_paho_client.py`` runs them against a real broker.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

#: Bytes asked of the socket per ``recv`` (one call can bring thousands of small packets).
READ_SIZE = 256 * 1024
_PUBACK = 0x40
_puback = struct.Struct("!BBH")


_PUBLISH = 0x30


# Not frozen: a frozen dataclass's __init__ costs ~5x more, and this is built per message.
@dataclass(slots=True)
class ReceivedPublish:
    """A received PUBLISH: what the ingestion needs of paho's ``MQTTMessage``."""

    topic: str
    payload: bytes
    mid: int
    qos: int


class BufferedClient(mqtt.Client):
    """``mqtt.Client`` reading the socket in large chunks and acking batches in one write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_buffer = b""
        self._read_position = 0
        #: Receives the PUBLISH packets parsed from the buffer in one pass (MQTT 3.1.1);
        #: when ``None`` every packet goes through paho and ``on_message``.
        self.on_publish_batch: Callable[[list[ReceivedPublish]], None] | None = None

    def buffered(self) -> int:
        """Bytes already read from the socket that paho has not consumed yet."""
        return len(self._read_buffer) - self._read_position

    def _sock_recv(self, bufsize: int) -> bytes:
        available = len(self._read_buffer) - self._read_position
        if available == 0:
            # Raises BlockingIOError when the socket holds nothing, as paho expects.
            chunk = super()._sock_recv(READ_SIZE)
            if not chunk:
                return chunk  # connection closed
            self._read_buffer = chunk
            self._read_position = 0
            available = len(chunk)
        start = self._read_position
        end = start + min(bufsize, available)
        self._read_position = end
        return self._read_buffer[start:end]

    def _packet_read(self) -> MQTTErrorCode:
        if (
            self.on_publish_batch is not None
            and self._manual_ack  # paho's automatic PUBACK is not sent on this path
            and self._in_packet["command"] == 0
            and self._read_position < len(self._read_buffer)
            and self._protocol != mqtt.MQTTv5
        ):
            received = self._take_publishes()
            if received:
                self.on_publish_batch(received)
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_read()

    def _take_publishes(self) -> list[ReceivedPublish]:
        """Parse the complete QoS 0/1 PUBLISH packets at the head of the buffer."""
        buffer, position, end = self._read_buffer, self._read_position, len(self._read_buffer)
        received: list[ReceivedPublish] = []
        append = received.append
        while position < end:
            header = buffer[position]
            qos = (header >> 1) & 3
            if header & 0xF0 != _PUBLISH or qos == 2:
                break  # anything else is paho's
            cursor, length, shift = position + 1, 0, 0
            while True:
                if cursor >= end or shift > 21:
                    return self._taken(received, position)  # cut, or malformed: paho's
                byte = buffer[cursor]
                cursor += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            body_end = cursor + length
            if body_end > end or length < 2:
                break
            topic_end = cursor + 2 + ((buffer[cursor] << 8) | buffer[cursor + 1])
            payload_start = topic_end + 2 if qos else topic_end
            if payload_start > body_end or topic_end == cursor + 2:
                break  # malformed (or an empty topic): paho reports it
            topic = buffer[cursor + 2 : topic_end].decode("utf-8", "replace")
            mid = (buffer[topic_end] << 8) | buffer[topic_end + 1] if qos else 0
            append(ReceivedPublish(topic, buffer[payload_start:body_end], mid, qos))
            position = body_end
        return self._taken(received, position)

    def _taken(self, received: list[ReceivedPublish], position: int) -> list[ReceivedPublish]:
        if received:
            self._read_position = position
            with self._msgtime_mutex:
                self._last_bytes_received = time.monotonic()
        return received

    def _sock_close(self) -> None:
        # Bytes of a closed connection must never be read as the next connection's.
        self._read_buffer = b""
        self._read_position = 0
        super()._sock_close()

    def ack_many(self, message_ids: Iterable[int]) -> int:
        """Queue PUBACKs (QoS 1 manual acks) for ``message_ids`` as one write; returns how many.

        Equivalent to ``ack(mid, 1)`` for each id, which paho would send one ``send`` call
        at a time. Call it from the thread that runs the network loop.
        """
        packet = b"".join(_puback.pack(_PUBACK, 2, mid) for mid in message_ids)
        if packet:
            self._packet_queue(_PUBACK, packet, 0, 1)
        return len(packet) // _puback.size
