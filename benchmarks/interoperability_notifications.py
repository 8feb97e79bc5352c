"""Notification pipeline throughput: change events in, HTTP notifications out.

    uv run python benchmarks/interoperability_notifications.py [--events 20000]
        [--subscriptions 100] [--receivers 4] [--filtered]

Starts an embedded PostgreSQL+PostGIS (or uses ``--database-url``), applies the
migrations and starts the knowledge and interoperability layers on the in-memory bus.
``--subscriptions`` subscriptions (each on an entity type of its own, keyValues, spread over
``--receivers`` loopback HTTP receivers) are created through the API; then ``--events``
``knowledge.entities.changed.v1`` events are published on the bus in batches of 500, each
for one of those types. It prints how long the interop-notifier consumer, the matcher,
the renderer and the per-endpoint delivery took until every changed entity had reached
its receiver: events/s, notifications sent (one per subscription and consumed batch) and
the delay from publication to receipt (p50, p95).

With ``--filtered`` every subscription also has ``q=speed>=0``, so each consumed batch
costs one SQL query per subscription through the knowledge facade (the entities are
created first, through the facade).

Figures are printed, never asserted (``docs/performance.md``).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Process, Queue
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

from cityos.app import create_app
from cityos.bootstrap import build_platform
from cityos.embedded import EmbeddedPostgres
from cityos.layers import load_layers
from cityos.migrate import upgrade
from cityos_kernel.bus import MemoryBus, Record
from cityos_kernel.events.payloads import EntityChangedV1
from cityos_kernel.events.topics import ENTITIES_CHANGED
from cityos_kernel.settings import PlatformSettings
from cityos_knowledge.service import KnowledgeService

API = "/ngsi-ld/v1"
LAYERS = ("knowledge", "interoperability")
VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
BATCH = 500


class Counter:
    """What the receivers got: entity ids with the (wall-clock) time they arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.notifications = 0
        self.done = threading.Event()
        self.expected = 0

    def collect(self, inbox: Queue[tuple[list[str], float]]) -> None:
        while True:
            ids, at = inbox.get()
            self.notifications += 1
            for entity_id in ids:
                self.arrived.setdefault(entity_id, at)
            if self.expected and len(self.arrived) >= self.expected:
                self.done.set()


def serve(port: int, inbox: Queue[tuple[list[str], float]]) -> None:
    """A receiver in a process of its own (so it does not share the notifier's GIL)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            inbox.put(([item["id"] for item in body["data"]], time.time()))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    base = Path(tempfile.mkdtemp(prefix="cityos-bench-notify-"))
    base.chmod(0o755)
    server = EmbeddedPostgres(base / "data", durable=False)
    server.start()
    try:
        server.create_database("bench")
        yield server.url("bench")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--subscriptions", type=int, default=100)
    parser.add_argument("--receivers", type=int, default=4)
    parser.add_argument("--filtered", action="store_true")
    parser.add_argument("--database-url")
    args = parser.parse_args()

    with database(args.database_url) as url:
        upgrade(url, load_layers(LAYERS))
        bus = MemoryBus()
        platform = build_platform(
            PlatformSettings(env="development", auth="off"),
            load_layers(LAYERS),
            database_url=url,
            bus=bus,
        )
        counter = Counter()
        inbox: Queue[tuple[list[str], float]] = Queue()
        ports = [free_port() for _ in range(args.receivers)]
        receivers = [Process(target=serve, args=(port, inbox), daemon=True) for port in ports]
        for process in receivers:
            process.start()
        threading.Thread(target=counter.collect, args=(inbox,), daemon=True).start()
        time.sleep(1)
        types = [f"Sensor{n}" for n in range(args.subscriptions)]
        entity_ids = [f"urn:ngsi-ld:Sensor:{n}" for n in range(args.events)]
        with TestClient(create_app(platform)) as client:
            for n, entity_type in enumerate(types):
                port = ports[n % len(ports)]
                body: dict[str, Any] = {
                    "type": "Subscription",
                    "entities": [{"type": entity_type}],
                    "notification": {
                        "format": "keyValues",
                        "endpoint": {"uri": f"http://127.0.0.1:{port}/notify"},
                    },
                }
                if args.filtered:
                    body["q"] = "speed>=0"
                response = client.post(f"{API}/subscriptions", json=body)
                assert response.status_code == 201, response.text
            if args.filtered:
                facade = KnowledgeService.from_url(url)
                facade.batch_upsert(
                    None,
                    [
                        {
                            "id": entity_id,
                            "type": [VOCAB + types[i % len(types)]],
                            VOCAB + "speed": {"type": "Property", "value": 1},
                        }
                        for i, entity_id in enumerate(entity_ids)
                    ],
                )
                facade.close()
                time.sleep(2)  # let the notifications of those creations pass
            counter.arrived.clear()
            counter.notifications = 0
            counter.expected = args.events
            published: dict[str, float] = {}
            started = time.perf_counter()
            for start in range(0, args.events, BATCH):
                records = []
                for i in range(start, min(start + BATCH, args.events)):
                    entity_type = VOCAB + types[i % len(types)]
                    payload = EntityChangedV1(
                        entity_id=entity_ids[i],
                        entity_types=[entity_type],
                        change="updated",
                        attributes=[VOCAB + "speed"],
                        entity={
                            "id": entity_ids[i],
                            "type": [entity_type],
                            VOCAB + "speed": {"type": "Property", "value": i},
                        },
                    )
                    envelope = ENTITIES_CHANGED.envelope(payload, source="benchmark")
                    records.append(
                        Record(
                            ENTITIES_CHANGED.name, entity_ids[i], ENTITIES_CHANGED.encode(envelope)
                        )
                    )
                    published[entity_ids[i]] = time.time()
                bus.publish(records)
            finished = counter.done.wait(300)
            elapsed = time.perf_counter() - started
        for process in receivers:
            process.terminate()
        delays = sorted(counter.arrived[i] - published[i] for i in counter.arrived)
        print(
            f"{len(counter.arrived):,} of {args.events:,} changed entities notified to "
            f"{args.subscriptions} subscriptions on {args.receivers} receivers"
            f"{' (q filter in SQL)' if args.filtered else ''}{'' if finished else ' (TIMED OUT)'}"
        )
        per_notification = len(counter.arrived) / max(counter.notifications, 1)
        print(
            f"  {len(counter.arrived) / elapsed:,.0f} changes/s end to end; "
            f"{counter.notifications:,} notifications ({per_notification:.1f} entities each)"
        )
        if delays:
            p50 = statistics.median(delays) * 1000
            p95 = delays[int(len(delays) * 0.95) - 1] * 1000
            print(f"  delay from publication to receipt: p50 {p50:,.0f} ms, p95 {p95:,.0f} ms")


if __name__ == "__main__":
    main()
