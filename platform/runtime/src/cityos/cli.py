"""The ``cityos`` command line."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

import cityos
from cityos.layers import LAYER_NAMES, load_layers
from cityos_kernel.errors import CityosError
from cityos_kernel.logging import configure_logging
from cityos_kernel.settings import PlatformSettings
from cityos_support.cli import audit_app, auth_app

logger = logging.getLogger("cityos")

app = typer.Typer(
    name="cityos",
    help="cityos, the city data platform: run it, serve one layer, manage its database.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema: apply and inspect migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(auth_app, name="auth")
app.add_typer(audit_app, name="audit")


def default_state_dir() -> Path:
    """Where the all-in-one keeps its embedded database and broker.

    PostgreSQL refuses to run as root, so as root the embedded cluster runs as the
    ``postgres`` user, who cannot reach ``/root``: root's default lives in /var/lib.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/cityos")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cityos"


def load_settings() -> PlatformSettings:
    try:
        settings = PlatformSettings()
    except ValidationError as exc:
        typer.echo(f"cityos: invalid configuration:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    configure_logging(env=settings.env, level=settings.log_level)
    return settings


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cityos {cityos.__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """cityos, the city data platform."""


HostOption = Annotated[str, typer.Option(help="Address the HTTP server listens on.")]
PortOption = Annotated[int, typer.Option(help="Port the HTTP server listens on.")]


@app.command()
def up(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Where embedded PostgreSQL/Mosquitto keep their data."),
    ] = None,
    migrate: Annotated[bool, typer.Option(help="Apply database migrations at start.")] = True,
    mqtt_port: Annotated[
        int, typer.Option(help="Port of the embedded Mosquitto (a free one if taken).")
    ] = 1883,
    simulate: Annotated[
        int, typer.Option(min=0, help="Also run this many simulated city sensors (0: none).")
    ] = 0,
) -> None:
    """Run the whole platform in one process (all-in-one, embedded defaults)."""
    from cityos.allinone import run_all_in_one

    settings = load_settings()
    try:
        run_all_in_one(
            settings,
            host=host,
            port=port,
            state_dir=state_dir or default_state_dir(),
            migrate=migrate,
            mqtt_port=mqtt_port,
            simulate=simulate,
        )
    except CityosError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc


@app.command()
def serve(
    layer: Annotated[str, typer.Argument(help=f"One of: {', '.join(LAYER_NAMES)}.")],
    host: HostOption = "0.0.0.0",
    port: PortOption = 8080,
) -> None:
    """Run one layer in this process, talking to the others through Kafka."""
    from cityos.bootstrap import build_platform
    from cityos.server import serve_http

    settings = load_settings()
    if layer not in LAYER_NAMES:
        typer.echo(
            f"cityos: unknown layer {layer!r}; choose from {', '.join(LAYER_NAMES)}", err=True
        )
        raise typer.Exit(2)
    if settings.bus == "memory":
        logger.warning(
            "CITYOS_BUS=memory: this process cannot exchange messages with other layers; "
            "set CITYOS_BUS=kafka for a distributed deployment"
        )
    try:
        platform = build_platform(settings, load_layers((layer,)))
        serve_http(platform, host=host, port=port)
    except CityosError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc


@app.command()
def simulate(
    mqtt_url: Annotated[
        str | None,
        typer.Option(help="Broker to publish to (default: CITYOS_MQTT_URL or 127.0.0.1:1883)."),
    ] = None,
    devices: Annotated[int, typer.Option(min=1, help="Number of simulated devices.")] = 20,
    rate: Annotated[
        float, typer.Option(help="Messages per second in total (0: as fast as possible).")
    ] = 10.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: never).")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
    kinds: Annotated[
        str | None, typer.Option(help="Comma-separated device kinds (default: all).")
    ] = None,
    api: Annotated[
        str | None,
        typer.Option(help="Platform URL to provision the devices first (http://127.0.0.1:8080)."),
    ] = None,
) -> None:
    """Publish realistic traffic from simulated city sensors over MQTT."""
    from cityos_acquisition.simulator import KINDS, SimulationProgress, run_simulation

    settings = load_settings()
    chosen = [kind.strip() for kind in kinds.split(",")] if kinds else None
    unknown = sorted(set(chosen or []) - set(KINDS))
    if unknown:
        typer.echo(
            f"cityos: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}",
            err=True,
        )
        raise typer.Exit(2)

    def show(progress: SimulationProgress) -> None:
        typer.echo(
            f"\rsent {progress.sent} messages from {progress.devices} devices "
            f"in {progress.elapsed:.1f}s ({progress.rate:.1f} msg/s)",
            nl=False,
            err=True,
        )

    try:
        run_simulation(
            mqtt_url or settings.mqtt_url or "mqtt://127.0.0.1:1883",
            devices=devices,
            rate=rate,
            duration=duration,
            count=count,
            kinds=chosen,
            api_url=api,
            progress=show,
        )
    except KeyboardInterrupt:
        pass
    except (CityosError, OSError) as exc:
        typer.echo(f"\ncityos: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("", err=True)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="Target revision (default: every head).")] = "heads",
) -> None:
    """Apply the migrations of the platform and of every layer."""
    from cityos.migrate import upgrade

    settings = load_settings()
    url = settings.database_dsn()
    if not url:
        typer.echo("cityos: set CITYOS_DATABASE_URL to the database to upgrade", err=True)
        raise typer.Exit(2)
    for line in upgrade(url, load_layers(), revision):
        typer.echo(line)


@db_app.command("current")
def db_current() -> None:
    """Show the applied revision of every migration history."""
    from cityos.migrate import current_revision, histories

    settings = load_settings()
    url = settings.database_dsn()
    if not url:
        typer.echo("cityos: set CITYOS_DATABASE_URL to the database to inspect", err=True)
        raise typer.Exit(2)
    for spec in histories(load_layers()):
        typer.echo(f"{spec.name}: {current_revision(spec, url) or 'empty'}")


def main() -> None:
    """Console-script entry point."""
    with contextlib.suppress(BrokenPipeError):
        app()
    sys.exit(0)
