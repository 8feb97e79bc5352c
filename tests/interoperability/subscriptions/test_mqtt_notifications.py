"""Notifications over MQTT, to the session's real Mosquitto broker (``mqtt://`` endpoints)."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from tests.interoperability.subscriptions.calls import create, status, subscribe

pytestmark = [pytest.mark.postgres, pytest.mark.mqtt]


@pytest.fixture
def topic_messages(mqtt_url: str) -> Iterator[tuple[str, queue.Queue[Any]]]:
    """A fresh topic and the messages a listening client receives on it (with their QoS)."""
    topic = f"notify/{uuid.uuid4().hex}"
    received: queue.Queue[Any] = queue.Queue()
    subscribed = queue.Queue[bool]()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listener-{uuid.uuid4().hex[:8]}")
    client.on_message = lambda c, u, message: received.put(message)
    client.on_subscribe = lambda c, u, mid, codes, properties: subscribed.put(True)
    address = urlsplit(mqtt_url)
    client.connect(address.hostname or "127.0.0.1", address.port or 1883)
    client.loop_start()
    client.subscribe(topic, qos=2)
    subscribed.get(timeout=5)
    try:
        yield topic, received
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize(("qos", "version"), [("1", "mqtt5.0"), ("2", "mqtt3.1.1")])
def test_round_trip_over_mqtt(
    notifying_client: TestClient,
    mqtt_url: str,
    topic_messages: tuple[str, queue.Queue[Any]],
    entity_type: str,
    qos: str,
    version: str,
) -> None:
    topic, received = topic_messages
    subscription_id = subscribe(
        notifying_client,
        entity_type,
        f"{mqtt_url}/{topic}",
        notification={
            "format": "keyValues",
            "endpoint": {
                "receiverInfo": [{"key": "X-Origin", "value": "cityos-test"}],
                "notifierInfo": [
                    {"key": "MQTT-QoS", "value": qos},
                    {"key": "MQTT-Version", "value": version},
                ],
            },
        },
    )
    entity_id = create(notifying_client, entity_type, speed=12)
    message = received.get(timeout=10)
    assert message.qos == int(qos)
    payload = json.loads(message.payload)
    assert payload["metadata"]["Content-Type"] == "application/json"
    assert payload["metadata"]["X-Origin"] == "cityos-test"
    assert "Link" in payload["metadata"]
    body = payload["body"]
    assert body["type"] == "Notification" and body["subscriptionId"] == subscription_id
    assert body["data"] == [{"id": entity_id, "type": entity_type, "speed": 12}]


def test_an_unreachable_broker_fails_the_notification(
    notifying_client: TestClient, entity_type: str
) -> None:
    subscription_id = subscribe(notifying_client, entity_type, "mqtt://127.0.0.1:9/nowhere")
    create(notifying_client, entity_type, speed=1)
    state = status(notifying_client, subscription_id, until=lambda s: s.get("timesFailed", 0) > 0)
    assert state["status"] == "failed" and "lastFailure" in state
