"""Run PostgreSQL+PostGIS, Mosquitto and Tansu detached for local development.

    python -m cityos.embedded.devservices start|stop|status|env [--state-dir DIR]

``start`` and ``env`` print ``export`` lines on stdout (``eval "$(... env)"`` works); progress
goes to stderr. The servers keep running after this command exits; ``stop`` ends them via
the pid files in the state directory. ``start`` on running services only prints the env.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cityos.embedded.kafka import EmbeddedKafka
from cityos.embedded.mosquitto import EmbeddedMosquitto
from cityos.embedded.postgres import SERVER_USER, EmbeddedPostgres
from cityos.embedded.process import EmbeddedServiceError

DATABASE = "cityos"
STATE_ENV_VAR = "CITYOS_DEV_STATE"
_NOT_ALL_RUNNING = 3


def default_state_dir() -> Path:
    """``$CITYOS_DEV_STATE``, else /var/lib/cityos-dev for root (PostgreSQL runs as the
    ``postgres`` user, which cannot reach /root), else ``./.cityos-dev``."""
    configured = os.environ.get(STATE_ENV_VAR)
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/cityos-dev")
    return Path.cwd() / ".cityos-dev"


@dataclass(frozen=True)
class DevServices:
    """The three servers of one development state directory."""

    postgres: EmbeddedPostgres
    mosquitto: EmbeddedMosquitto
    kafka: EmbeddedKafka

    @classmethod
    def in_dir(cls, state_dir: Path) -> DevServices:
        state_dir = state_dir.absolute()
        return cls(
            postgres=EmbeddedPostgres(state_dir / "postgres"),
            mosquitto=EmbeddedMosquitto(state_dir / "mosquitto"),
            kafka=EmbeddedKafka(state_dir=state_dir / "kafka"),
        )

    def start(self) -> None:
        running = self.running()
        _progress(_starting("PostgreSQL", running["postgres"], "data is kept across restarts"))
        self.postgres.start(detach=True)
        self.postgres.create_database(DATABASE)
        _progress(_starting("Mosquitto", running["mosquitto"], "persistent sessions are kept"))
        self.mosquitto.start(detach=True)
        _progress(_starting("Tansu", running["kafka"], "topics live in memory only"))
        self.kafka.start(detach=True)

    def stop(self) -> None:
        for name, stop in (
            ("Tansu", self.kafka.stop),
            ("Mosquitto", self.mosquitto.stop),
            ("PostgreSQL", self.postgres.stop),
        ):
            _progress(f"stopping {name} ...")
            stop()

    def running(self) -> dict[str, bool]:
        return {
            "postgres": self.postgres.is_running(),
            "mosquitto": self.mosquitto.is_running(),
            "kafka": self.kafka.is_running(),
        }

    def env(self) -> dict[str, str]:
        return {
            "CITYOS_DATABASE_URL": (
                f"postgresql://{SERVER_USER}@127.0.0.1:{self.postgres.port}/{DATABASE}"
            ),
            "CITYOS_MQTT_URL": self.mosquitto.url,
            "CITYOS_KAFKA_BOOTSTRAP": self.kafka.bootstrap,
            "CITYOS_BUS": "kafka",
        }


def _starting(name: str, already_running: bool, note: str) -> str:
    return f"{name}: already running" if already_running else f"{name}: starting ({note})"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _print_env(services: DevServices) -> None:
    for name, value in services.env().items():
        print(f"export {name}={value}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cityos.embedded.devservices",
        description="Run PostgreSQL+PostGIS, Mosquitto and Tansu for local development.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help=f"where data, logs and pid files live (default: ${STATE_ENV_VAR}, "
        "/var/lib/cityos-dev for root, ./.cityos-dev otherwise)",
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir or default_state_dir()
    services = DevServices.in_dir(state_dir)

    try:
        if args.command == "start":
            services.start()
            _progress(f"services are running; state, logs and pid files in {state_dir}")
            _print_env(services)
        elif args.command == "stop":
            services.stop()
        elif args.command == "status":
            running = services.running()
            for name, is_running in running.items():
                print(f"{name}: {'running' if is_running else 'stopped'}")
            if not all(running.values()):
                return _NOT_ALL_RUNNING
            _print_env(services)
        else:
            if not all(services.running().values()):
                _progress(f"not all services are running in {state_dir}; run `start` first")
                return _NOT_ALL_RUNNING
            _print_env(services)
    except EmbeddedServiceError as exc:
        _progress(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
