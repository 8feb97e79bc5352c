"""``cityos up``: the whole platform in one process, on embedded services by default.

When ``CITYOS_DATABASE_URL`` is unset, a PostgreSQL+PostGIS cluster is created (first run)
and started in the state directory; when ``CITYOS_MQTT_URL`` is unset, so is a Mosquitto
broker. Both stop when the platform stops. An operator who sets the URLs gets neither.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from cityos.bootstrap import build_platform
from cityos.demo import DemoTraffic
from cityos.embedded.mosquitto import EmbeddedMosquitto
from cityos.embedded.ports import port_is_free
from cityos.embedded.postgres import EmbeddedPostgres
from cityos.layers import load_layers
from cityos.migrate import upgrade
from cityos.server import serve_http
from cityos_kernel.settings import PlatformSettings

logger = logging.getLogger(__name__)

DATABASE_NAME = "cityos"
DEFAULT_MQTT_PORT = 1883


def run_all_in_one(
    settings: PlatformSettings,
    *,
    host: str,
    port: int,
    state_dir: Path,
    migrate: bool,
    mqtt_port: int = DEFAULT_MQTT_PORT,
    simulate: int = 0,
) -> None:
    with contextlib.ExitStack() as stack:
        database_url = settings.database_dsn()
        if database_url is None:
            postgres = EmbeddedPostgres(state_dir / "postgres")
            logger.info("starting embedded PostgreSQL in %s", postgres.data_dir)
            postgres.ensure_initialized()
            postgres.start()
            stack.callback(postgres.stop)
            postgres.create_database(DATABASE_NAME)
            database_url = postgres.url(DATABASE_NAME)
            logger.info("embedded PostgreSQL on port %d", postgres.port)
        mqtt_url = settings.mqtt_url
        if mqtt_url is None:
            # Devices expect 1883; if something else holds it, take a free port and say so.
            wanted = mqtt_port if port_is_free(mqtt_port) else None
            if wanted is None:
                logger.warning("port %d is taken; the embedded Mosquitto picks another", mqtt_port)
            mosquitto = EmbeddedMosquitto(state_dir / "mosquitto", port=wanted)
            mosquitto.start()
            stack.callback(mosquitto.stop)
            mqtt_url = mosquitto.url
            logger.info("embedded Mosquitto at %s", mqtt_url)
        layers = load_layers()
        if migrate:
            for line in upgrade(database_url, layers):
                logger.info("migrations %s", line)
        platform = build_platform(settings, layers, database_url=database_url, mqtt_url=mqtt_url)
        if simulate > 0:
            client_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
            demo = DemoTraffic(
                mqtt_url=mqtt_url, api_url=f"http://{client_host}:{port}", devices=simulate
            )
            demo.start()
            stack.callback(demo.stop)
        serve_http(platform, host=host, port=port)
