"""How the support layer plugs into a cityos process (see ``cityos_kernel.layer``).

It contributes:

- the audit consumer (``support.audit.v1`` → hash-chained table) and the checkpoint signer;
- the configuration repository's REST API (``/admin/api``), its page (``/admin``) and a
  listener that applies broadcast changes in this process;
- the monitoring loop (warning rules over indicators, e-mail and webhook messages) and the
  consumer feeding it dead letters and device events;
- the auditors' API (``/support/audit``) and ``/support/monitoring``.

The security seam itself (token validation, policies) is used by every process through
:func:`cityos_support.security.modes.authorizer_for`, whichever layers it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import Engine, text

from cityos_kernel.database import create_pooled_engine
from cityos_kernel.layer import LayerContext, LayerParts, MigrationSpec, ReadinessCheck
from cityos_support.audit.consumer import CheckpointService, audit_consumer
from cityos_support.audit.router import audit_router
from cityos_support.audit.signing import CheckpointSigner
from cityos_support.audit.store import AuditStore
from cityos_support.config.broadcast import config_listener
from cityos_support.config.keys import KNOWN_KEYS
from cityos_support.config.live import LiveValue
from cityos_support.config.repository import ConfigRepository
from cityos_support.config.router import admin_page_router, admin_router
from cityos_support.monitoring.indicators import Indicators
from cityos_support.monitoring.metrics import DB_POOLS
from cityos_support.monitoring.notifiers import Dispatcher, SmtpConfig
from cityos_support.monitoring.router import monitoring_router
from cityos_support.monitoring.rules import WARNING_RULES_KEY
from cityos_support.monitoring.service import MonitoringService
from cityos_support.security.directory import UserDirectory
from cityos_support.settings import SupportSettings

MIGRATIONS = Path(__file__).parent / "migrations"


class _NeedsDatabase:
    """Hands out a database-backed object, or answers 503 when the process has no database."""

    def __init__(self, value: Any, what: str) -> None:
        self._value = value
        self._what = what

    def __call__(self) -> Any:
        if self._value is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the {self._what} needs a database (CITYOS_DATABASE_URL)",
            )
        return self._value


def smtp_config(settings: SupportSettings) -> SmtpConfig | None:
    if not settings.smtp_host:
        return None
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        sender=settings.smtp_from,
        starttls=settings.smtp_starttls,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
    )


class SupportLayer:
    """The support layer as the composition root sees it."""

    name = "support"

    def __init__(self, settings: SupportSettings | None = None) -> None:
        self._settings = settings
        self.live: dict[str, LiveValue[Any]] = {}
        self.monitoring: MonitoringService | None = None
        self.audit_store: AuditStore | None = None
        self.repository: ConfigRepository | None = None

    def migrations(self) -> list[MigrationSpec]:
        return [MigrationSpec("support", MIGRATIONS)]

    def build(self, context: LayerContext) -> LayerParts:
        settings = self._settings or SupportSettings(env=context.settings.env)
        engine: Engine | None = None
        if context.database_url:
            # Only a process that keeps the audit log needs the signing key.
            signer = CheckpointSigner.from_settings(settings)
            engine = create_pooled_engine(context.database_url, pool_size=5)
            DB_POOLS.track("support", engine)
            self.repository = ConfigRepository(engine)
            self.audit_store = AuditStore(
                engine, signer, checkpoint_every=settings.audit_checkpoint_every
            )
        self.live = {
            key: LiveValue(
                key,
                known.model,
                known.default,
                repository=self.repository,
                refresh_seconds=settings.auth_policy_refresh_seconds,
            )
            for key, known in KNOWN_KEYS.items()
        }
        # Users' roles for /admin come from Keycloak's admin API, when it is configured.
        directory = (
            UserDirectory.from_settings(settings) if context.settings.auth == "keycloak" else None
        )
        indicators = Indicators(disk_paths=settings.monitoring_disk_paths)
        self.monitoring = MonitoringService(
            indicators,
            self.live[WARNING_RULES_KEY].get,
            Dispatcher(smtp_config(settings)),
            interval=settings.monitoring_interval_seconds,
        )
        parts = LayerParts(
            routers=[
                admin_router(
                    _NeedsDatabase(self.repository, "configuration repository"),
                    context.bus,
                    self.live,
                    users=directory,
                ),
                admin_page_router(),
                audit_router(_NeedsDatabase(self.audit_store, "audit log")),
                monitoring_router(self.monitoring),
            ],
            consumers=[
                config_listener(self.live, process="support"),
                indicators.consumer(),
            ],
            services=[self.monitoring],
        )
        if engine is not None and self.audit_store is not None:
            parts.consumers.append(audit_consumer(self.audit_store))
            parts.services.append(
                CheckpointService(
                    self.audit_store, interval=settings.audit_checkpoint_interval_seconds
                )
            )
            parts.readiness.append(ReadinessCheck("support", _schema_check(engine)))
        return parts


def _schema_check(engine: Engine) -> Any:
    def check() -> str:
        with engine.connect() as connection:
            found = connection.execute(
                text("SELECT to_regclass('support_audit_records') IS NOT NULL")
            ).scalar()
        if not found:
            raise RuntimeError("support tables missing; run `cityos db upgrade`")
        return "audit log and configuration repository present"

    return check


def create() -> SupportLayer:
    """Entry point used by the runtime."""
    return SupportLayer()
