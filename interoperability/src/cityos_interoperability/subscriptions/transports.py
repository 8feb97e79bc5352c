"""Moving a notification to its endpoint: HTTP (httpx) and MQTT (paho-mqtt 2.x).

HTTP (6.3.17 binding): a POST of the Notification with ``Content-Type`` from
``endpoint.accept``, the @context ``Link`` header for JSON, ``NGSILD-Tenant``, and every
``receiverInfo`` pair as a header; any 2xx answer is a success.

MQTT (the NGSI-LD MQTT binding): ``mqtt[s]://[user[:password]@]host[:port]/topic``; the
message is ``{"metadata": {headers…}, "body": Notification}`` published with the QoS of
``notifierInfo`` ``MQTT-QoS`` (0 by default) over MQTT 5.0 or 3.1.1 (``MQTT-Version``,
``mqtt5.0`` by default). One client per broker and credentials is kept connected; paho's
network loop runs in its own thread and publishing waits in a worker thread, never on the
event loop.

A failure raises :class:`DeliveryError`; ``retryable`` says whether trying again can help
(network errors, timeouts, 5xx, 408 and 429).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cityos_interoperability.subscriptions.model import Endpoint
from cityos_interoperability.subscriptions.rendering import Notification


class DeliveryError(Exception):
    """A notification did not reach its endpoint."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Transport(Protocol):
    async def send(self, notification: Notification) -> None: ...

    async def close(self) -> None: ...


def timeout_of(endpoint: Endpoint, default: float) -> float:
    """``endpoint.timeout`` is in milliseconds (5.2.15)."""
    return endpoint.timeout / 1000.0 if endpoint.timeout else default


class HttpTransport:
    """POSTs notifications with one pooled async HTTP client."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(self, notification: Notification) -> None:
        endpoint = notification.endpoint
        try:
            response = await self._client.post(
                endpoint.uri,
                content=orjson.dumps(notification.body),
                headers=notification.headers,
                timeout=timeout_of(endpoint, self._timeout),
            )
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"timed out: {type(exc).__name__}", retryable=True) from exc
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if not 200 <= response.status_code < 300:
            status = response.status_code
            raise DeliveryError(f"HTTP {status}", retryable=status >= 500 or status in (408, 429))

    async def close(self) -> None:
        await self._client.aclose()


class MqttTransport:
    """Publishes notifications on MQTT brokers, one connected client per broker."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._clients: dict[tuple[Any, ...], mqtt.Client] = {}
        self._lock = threading.Lock()

    async def send(self, notification: Notification) -> None:
        await asyncio.to_thread(self._publish, notification)

    def _publish(self, notification: Notification) -> None:
        endpoint = notification.endpoint
        parts = urlsplit(endpoint.uri)
        topic = unquote(parts.path.lstrip("/"))
        if not topic:
            raise DeliveryError("the MQTT endpoint names no topic", retryable=False)
        qos = int(endpoint.notifier_option("MQTT-QoS") or 0)
        timeout = timeout_of(endpoint, self._timeout)
        client = self._client(endpoint, timeout)
        payload = orjson.dumps({"metadata": notification.headers, "body": notification.body})
        info = client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._forget(endpoint)
            raise DeliveryError(
                f"MQTT publish failed: {mqtt.error_string(info.rc)}", retryable=True
            )
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            self._forget(endpoint)
            raise DeliveryError(f"MQTT publish failed: {exc}", retryable=True) from exc
        if not info.is_published():
            raise DeliveryError("MQTT publish not confirmed in time", retryable=True)

    def _client(self, endpoint: Endpoint, timeout: float) -> mqtt.Client:
        key = _broker_key(endpoint)
        with self._lock:
            client = self._clients.get(key)
        if client is not None and client.is_connected():
            return client
        if client is not None:
            # The broker went away (a restart): connect again now rather than fail this
            # notification while paho's own reconnection waits out its back-off.
            with self._lock:
                if self._clients.get(key) is client:
                    del self._clients[key]
            _disconnect(client)
        client = _connect(endpoint, timeout)
        with self._lock:
            existing = self._clients.get(key)
            if existing is None:
                self._clients[key] = client
                return client
        _disconnect(client)
        return existing

    def _forget(self, endpoint: Endpoint) -> None:
        with self._lock:
            client = self._clients.pop(_broker_key(endpoint), None)
        if client is not None:
            _disconnect(client)

    async def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            await asyncio.to_thread(_disconnect, client)


def _broker_key(endpoint: Endpoint) -> tuple[Any, ...]:
    parts = urlsplit(endpoint.uri)
    return (
        parts.scheme.lower(),
        parts.hostname,
        parts.port,
        parts.username,
        parts.password,
        endpoint.notifier_option("MQTT-Version") or "mqtt5.0",
    )


def _connect(endpoint: Endpoint, timeout: float) -> mqtt.Client:
    """A client connected to the endpoint's broker (DeliveryError when it cannot be)."""
    parts = urlsplit(endpoint.uri)
    secure = parts.scheme.lower() == "mqtts"
    version = endpoint.notifier_option("MQTT-Version") or "mqtt5.0"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"cityos-notifier-{uuid.uuid4().hex[:12]}",
        protocol=mqtt.MQTTv5 if version == "mqtt5.0" else mqtt.MQTTv311,
    )
    if parts.username:
        client.username_pw_set(
            unquote(parts.username), unquote(parts.password) if parts.password else None
        )
    if secure:
        client.tls_set()
    client.connect_timeout = timeout
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(
        client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(parts.hostname or "localhost", parts.port or (8883 if secure else 1883))
    except OSError as exc:
        raise DeliveryError(f"MQTT broker unreachable: {exc}", retryable=True) from exc
    client.loop_start()
    if not connected.wait(timeout) or refused:
        _disconnect(client)
        reason = refused[0] if refused else "no CONNACK in time"
        raise DeliveryError(f"MQTT connection refused: {reason}", retryable=not refused)
    return client


def _disconnect(client: mqtt.Client) -> None:
    try:
        client.disconnect()
    finally:
        client.loop_stop()
