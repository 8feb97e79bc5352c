"""The MQTT ingestion service as a separate process, for the crash test (not a test module).

``python crash_ingest_process.py MQTT_URL BOOTSTRAP APIKEY CLIENT_ID MODE STATE_DIR``

MODE ``hang``: the first bus publish goes through, the second never returns (after
writing ``STATE_DIR/hanging``), so the process sits between MQTT receipt and bus
confirmation until the test kills it. MODE ``normal``: a plain Kafka bus. Both write
``STATE_DIR/<mode>-subscribed`` once subscribed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from cityos_acquisition.layer import build_parts
from cityos_acquisition.registry.schemas import GroupIn
from cityos_acquisition.registry.service import Scope
from cityos_acquisition.registry.store import MemoryRegistryStore
from cityos_acquisition.settings import AcquisitionSettings
from cityos_kernel.bus import ConsumerTuning, KafkaBus
from cityos_kernel.bus.port import Record


class HangingBus:
    """A Kafka bus whose second publish blocks forever (a stalled broker, a slow disk)."""

    def __init__(self, inner: KafkaBus, marker: Path) -> None:
        self._inner = inner
        self._marker = marker
        self._calls = 0

    def publish(self, records: Sequence[Record]) -> None:
        self._calls += 1
        if self._calls >= 2:
            self._marker.write_text(str(len(records)))
            threading.Event().wait()
        self._inner.publish(records)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def main(mqtt_url: str, bootstrap: str, apikey: str, client_id: str, mode: str, state: str) -> None:
    state_dir = Path(state)
    kafka = KafkaBus(
        bootstrap,
        partitions=2,
        client_id=client_id,
        consumer_tuning=ConsumerTuning(session_timeout_ms=2000, heartbeat_interval_ms=500),
    )
    bus = HangingBus(kafka, state_dir / "hanging") if mode == "hang" else kafka
    settings = AcquisitionSettings(mqtt_client_id=client_id, batch_max=20, batch_wait_ms=50)
    wired = build_parts(bus, MemoryRegistryStore(), settings, mqtt_url)  # type: ignore[arg-type]
    wired.registry.create_groups(Scope("crash", "/"), [GroupIn(apikey=apikey, entity_type="Thing")])
    assert wired.mqtt is not None
    wired.mqtt.start()
    wired.mqtt.wait_connected(30)
    (state_dir / f"{mode}-subscribed").write_text("yes")
    threading.Event().wait()


if __name__ == "__main__":
    main(*sys.argv[1:7])
