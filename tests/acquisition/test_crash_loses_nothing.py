"""A process killed between MQTT receipt and bus confirmation loses no message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from cityos_kernel.bus import ConsumerTuning, KafkaBus
from cityos_kernel.events.topics import OBSERVATIONS
from tests.fixtures.acquisition import publish_mqtt, wait_for

SCRIPT = Path(__file__).with_name("crash_ingest_process.py")
MESSAGES = 200


def start(
    mqtt_url: str, bootstrap: str, apikey: str, mode: str, state: Path
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            mqtt_url,
            bootstrap,
            apikey,
            f"crash-{apikey}",
            mode,
            str(state),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(state / f"{mode}.log", "wb"),  # noqa: SIM115
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    try:
        wait_for(
            lambda: process.poll() is not None or (state / f"{mode}-subscribed").exists(),
            timeout=60,
        )
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, (state / f"{mode}.log").read_text()
    return process


@pytest.mark.mqtt
@pytest.mark.kafka
@pytest.mark.slow
def test_sigkill_between_receipt_and_confirmation_loses_no_message(
    mqtt_url: str, kafka_bootstrap: str
) -> None:
    apikey = uuid.uuid4().hex[:12]
    state = Path(tempfile.mkdtemp(prefix="cityos-crash-"))
    reader = KafkaBus(
        kafka_bootstrap,
        partitions=2,
        client_id=f"reader-{apikey}",
        consumer_tuning=ConsumerTuning(session_timeout_ms=2000, heartbeat_interval_ms=500),
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        hanging = start(mqtt_url, kafka_bootstrap, apikey, "hang", state)
        processes.append(hanging)
        publish_mqtt(
            mqtt_url,
            [(f"/json/{apikey}/meter-{apikey}/attrs", f'{{"seq": {n}}}') for n in range(MESSAGES)],
        )
        wait_for(lambda: (state / "hanging").exists(), timeout=30)
        in_flight = int((state / "hanging").read_text())
        assert in_flight > 0  # a batch was received and is waiting for the bus
        os.kill(hanging.pid, signal.SIGKILL)
        hanging.wait(10)

        processes.append(start(mqtt_url, kafka_bootstrap, apikey, "normal", state))

        device = f"meter-{apikey}"
        entity = f"urn:ngsi-ld:Thing:{device}"
        subscription = reader.subscribe(f"reader-{apikey}", [OBSERVATIONS.name])
        seen: list[int] = []
        deadline = time.monotonic() + 60
        while len(set(seen)) < MESSAGES and time.monotonic() < deadline:
            for delivery in subscription.poll(500, 1.0):
                envelope = OBSERVATIONS.decode(delivery.value)
                if envelope.tenant == "crash" and envelope.payload.device_id == device:
                    assert envelope.payload.entity_id == entity
                    seen.extend(a.value for a in envelope.payload.attributes if a.name == "seq")
        subscription.close()
        missing = sorted(set(range(MESSAGES)) - set(seen))
        assert missing == [], f"lost {len(missing)} messages: {missing[:20]}"
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        reader.close()
