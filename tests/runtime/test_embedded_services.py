"""The embedded PostgreSQL, Mosquitto and Tansu servers, exercised for real."""

from __future__ import annotations

import os
import queue
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg2
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer.fetcher import ConsumerRecord
from paho.mqtt.enums import CallbackAPIVersion

from cityos.embedded import EmbeddedMosquitto, EmbeddedPostgres, EmbeddedServiceError
from cityos.embedded import postgres as postgres_module


@pytest.fixture
def service_dir() -> Iterator[Path]:
    """A directory the ``postgres`` user can reach when the tests run as root."""
    path = Path(tempfile.mkdtemp(prefix="cityos-test-embedded-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.mark.postgres
def test_database_url_serves_postgis(database_url: str) -> None:
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT postgis_version(), ST_AsText(ST_MakePoint(-3.7038, 40.4168))")
        row = cursor.fetchone()
    conn.close()
    assert row is not None
    version, point = row
    assert version.startswith("3.")
    assert point == "POINT(-3.7038 40.4168)"


@pytest.mark.postgres
def test_restart_keeps_data_and_port(service_dir: Path) -> None:
    server = EmbeddedPostgres(service_dir / "data")
    with server:
        first_port = server.port
        url = server.url("cityos")
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE sensor (name text)")
            cursor.execute("INSERT INTO sensor VALUES ('air-quality-7')")
        conn.close()
    server.stop()  # a second stop is harmless
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(url, connect_timeout=2)

    with server:
        assert server.port == first_port
        with psycopg2.connect(server.url("cityos")) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT name FROM sensor")
            assert cursor.fetchall() == [("air-quality-7",)]
        conn.close()


@pytest.mark.postgres
def test_start_moves_to_a_free_port_when_the_stored_one_is_taken(service_dir: Path) -> None:
    server = EmbeddedPostgres(service_dir / "data", durable=False)
    with server:
        stored_port = server.port
        server.create_database("kept")
    with socket.socket() as squatter:
        # The stopped server's closed connections may leave the port in TIME_WAIT, which a
        # plain bind refuses; SO_REUSEADDR binds through it, and once this socket listens,
        # no other bind to the port succeeds (PostgreSQL's included).
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", stored_port))
        squatter.listen()
        with server:
            assert server.port != stored_port
            with psycopg2.connect(server.url("kept")) as conn, conn.cursor() as cursor:
                cursor.execute("SELECT 1")
                assert cursor.fetchone() == (1,)
            conn.close()


@pytest.mark.postgres
def test_database_creation_is_idempotent(postgres_server: EmbeddedPostgres) -> None:
    name = f"idem_{uuid.uuid4().hex[:12]}"
    try:
        postgres_server.create_database(name)
        postgres_server.create_database(name)
        with postgres_server.connect(name) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'postgis'")
            assert cursor.fetchone() is not None
    finally:
        postgres_server.drop_database(name)
        postgres_server.drop_database(name)


@pytest.mark.postgres
@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_unreachable_data_dir_fails_fast_with_advice(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    started = time.monotonic()
    with pytest.raises(EmbeddedServiceError, match="cannot reach"):
        EmbeddedPostgres(private / "data").start()
    assert time.monotonic() - started < 10


def test_missing_postgres_binaries_name_the_debian_packages(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(postgres_module, "_PG_ROOT", tmp_path)
    with pytest.raises(EmbeddedServiceError, match="postgresql-15 postgresql-15-postgis-3"):
        EmbeddedPostgres(tmp_path / "data").ensure_initialized()


# -- Mosquitto ---------------------------------------------------------------------------


def _mqtt_client(url: str, client_id: str, *, clean_session: bool = True) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
    )
    address = urlsplit(url)
    assert address.hostname is not None
    assert address.port is not None
    client.connect(address.hostname, address.port)
    return client


def _subscribe(client: mqtt.Client, topic: str) -> queue.Queue[mqtt.MQTTMessage]:
    received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed: queue.Queue[bool] = queue.Queue()
    client.on_message = lambda _client, _userdata, message: received.put(message)
    client.on_subscribe = lambda *_args: subscribed.put(True)
    client.subscribe(topic, qos=1)
    assert subscribed.get(timeout=10)
    return received


@pytest.mark.mqtt
def test_mosquitto_delivers_a_qos1_message(mqtt_url: str) -> None:
    topic = f"cityos/test/{uuid.uuid4().hex}"
    subscriber = _mqtt_client(mqtt_url, f"sub-{uuid.uuid4().hex}")
    publisher = _mqtt_client(mqtt_url, f"pub-{uuid.uuid4().hex}")
    subscriber.loop_start()
    publisher.loop_start()
    try:
        received = _subscribe(subscriber, topic)
        publisher.publish(topic, b'{"temperature": 21.5}', qos=1).wait_for_publish(timeout=10)
        message = received.get(timeout=10)
    finally:
        for client in (subscriber, publisher):
            client.disconnect()
            client.loop_stop()
    assert message.topic == topic
    assert message.payload == b'{"temperature": 21.5}'
    assert message.qos == 1


@pytest.mark.mqtt
def test_mosquitto_restart_keeps_queued_messages_for_a_persistent_session(
    service_dir: Path,
) -> None:
    topic = f"cityos/test/{uuid.uuid4().hex}"
    subscriber_id = f"sub-{uuid.uuid4().hex}"
    broker = EmbeddedMosquitto(service_dir / "mosquitto")
    with broker:
        subscriber = _mqtt_client(broker.url, subscriber_id, clean_session=False)
        subscriber.loop_start()
        _subscribe(subscriber, topic)
        subscriber.disconnect()
        subscriber.loop_stop()
        publisher = _mqtt_client(broker.url, f"pub-{uuid.uuid4().hex}")
        publisher.loop_start()
        publisher.publish(topic, b"while-offline", qos=1).wait_for_publish(timeout=10)
        publisher.disconnect()
        publisher.loop_stop()
    assert not broker.is_running()

    with broker:
        received: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        subscriber = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=subscriber_id,
            clean_session=False,
        )
        subscriber.on_message = lambda _client, _userdata, message: received.put(message)
        subscriber.connect("127.0.0.1", broker.port)
        subscriber.loop_start()
        try:
            message = received.get(timeout=10)
        finally:
            subscriber.disconnect()
            subscriber.loop_stop()
    assert message.payload == b"while-offline"


# -- Tansu (Kafka protocol) --------------------------------------------------------------


@pytest.mark.kafka
def test_tansu_serves_a_three_partition_topic_with_keyed_records(kafka_bootstrap: str) -> None:
    topic = f"cityos.test.{uuid.uuid4().hex}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        assert producer.partitions_for(topic) == {0, 1, 2}
        metadata = producer.send(topic, key=b"urn:ngsi-ld:Sensor:7", value=b"21.5").get(timeout=10)
    finally:
        producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    try:
        partition = TopicPartition(topic, metadata.partition)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + 15
        while not records and time.monotonic() < deadline:
            records = consumer.poll(timeout_ms=500).get(partition, [])
    finally:
        consumer.close()
    assert [(record.key, record.value) for record in records] == [
        (b"urn:ngsi-ld:Sensor:7", b"21.5")
    ]
