"""``cityos auth …`` and ``cityos audit …`` (mounted by the runtime's command line)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from sqlalchemy import create_engine

from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.errors import ConfigurationError
from cityos_kernel.settings import PlatformSettings
from cityos_support.audit.signing import CheckpointSigner
from cityos_support.audit.store import AuditStore
from cityos_support.security.keycloak_admin import (
    RealmProvisioner,
    load_realm_config,
)
from cityos_support.settings import SupportSettings

auth_app = typer.Typer(
    help="Keycloak: realm bootstrap and client registration.", no_args_is_help=True
)
client_app = typer.Typer(help="OAuth2 clients of vertical applications.", no_args_is_help=True)
auth_app.add_typer(client_app, name="client")
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

DEFAULT_REALM_CONFIG = Path("deploy/keycloak/realm.json")

RealmOption = Annotated[
    Path, typer.Option("--config", help="Realm description (deploy/keycloak/realm.json).")
]


def _settings() -> tuple[PlatformSettings, SupportSettings]:
    try:
        platform = PlatformSettings()
        return platform, SupportSettings(env=platform.env)
    except (ValidationError, ValueError) as exc:
        typer.echo(f"cityos: invalid configuration:\n{exc}", err=True)
        raise typer.Exit(2) from exc


def _provisioner(config_path: Path) -> RealmProvisioner:
    from keycloak import KeycloakAdmin

    _, support = _settings()
    if not support.keycloak_admin_url or support.keycloak_admin_password is None:
        typer.echo(
            "cityos: set CITYOS_KEYCLOAK_ADMIN_URL and CITYOS_KEYCLOAK_ADMIN_PASSWORD "
            "(and CITYOS_KEYCLOAK_ADMIN_USERNAME if not 'admin')",
            err=True,
        )
        raise typer.Exit(2)
    admin = KeycloakAdmin(
        server_url=support.keycloak_admin_url,
        username=support.keycloak_admin_username,
        password=support.keycloak_admin_password.get_secret_value(),
        realm_name=support.keycloak_admin_realm,
        user_realm_name=support.keycloak_admin_realm,
    )
    return RealmProvisioner(admin, load_realm_config(config_path))


@auth_app.command("bootstrap")
def auth_bootstrap(
    config: RealmOption = DEFAULT_REALM_CONFIG,
    admin_password: Annotated[
        str | None,
        typer.Option(
            envvar="CITYOS_FIRST_ADMIN_PASSWORD",
            help="Temporary password of the first administrator (changed at first login).",
        ),
    ] = None,
) -> None:
    """Create or update the realm's roles, clients and first administrator."""
    for line in _provisioner(config).bootstrap(admin_password=admin_password):
        typer.echo(line)


@client_app.command("create")
def auth_client_create(
    app: Annotated[str, typer.Argument(help="Client id of the vertical application.")],
    role: Annotated[list[str], typer.Option("--role", help="Realm role (repeatable).")] = [],  # noqa: B006
    tenant: Annotated[list[str], typer.Option("--tenant", help="Tenant (repeatable).")] = [],  # noqa: B006
    config: RealmOption = DEFAULT_REALM_CONFIG,
) -> None:
    """Register a vertical application as a confidential client; prints its secret once."""
    try:
        client = _provisioner(config).create_client(app, roles=role or ["app"], tenants=tenant)
    except ValueError as exc:
        typer.echo(f"cityos: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"client_id: {client.client_id}")
    typer.echo(f"client_secret: {client.secret}")
    typer.echo(f"roles: {', '.join(client.roles)}")
    typer.echo(f"tenants: {', '.join(client.tenants) or '(none)'}")


@audit_app.command("verify")
def audit_verify(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's chain.")] = None,
) -> None:
    """Recompute the audit hash chains and check the signed checkpoints."""
    platform, support = _settings()
    url = platform.database_dsn()
    if not url:
        typer.echo("cityos: set CITYOS_DATABASE_URL to the database to verify", err=True)
        raise typer.Exit(2)
    try:
        signer = CheckpointSigner.from_settings(support)
    except ConfigurationError as exc:
        typer.echo(f"cityos: {exc}", err=True)
        raise typer.Exit(2) from exc
    engine = create_engine(sqlalchemy_url(url))
    try:
        report = AuditStore(engine, signer, checkpoint_every=support.audit_checkpoint_every).verify(
            tenant
        )
    finally:
        engine.dispose()
    typer.echo(
        f"checked {report.records} record(s) in {report.tenants} chain(s), "
        f"{report.checkpoints} signed checkpoint(s)"
    )
    if report.ok:
        typer.echo("audit log intact")
        return
    typer.echo(f"FIRST BROKEN LINK: {report.breaks[0]}")
    for found in report.breaks[1:]:
        typer.echo(f"also broken: {found}")
    sys.stdout.flush()
    raise typer.Exit(1)
