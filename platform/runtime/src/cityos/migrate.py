"""``cityos db upgrade``: apply every migration history, the platform's first."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from cityos_kernel.database import sqlalchemy_url
from cityos_kernel.layer import Layer, MigrationSpec
from cityos_kernel.migrations import version_table

logger = logging.getLogger(__name__)

PLATFORM_HISTORY = MigrationSpec(
    name="platform", script_location=Path(__file__).parent / "migrations" / "platform"
)


def histories(layers: Sequence[Layer]) -> list[MigrationSpec]:
    """The platform history followed by each layer's, in layer order."""
    found = [PLATFORM_HISTORY]
    for layer in layers:
        found.extend(layer.migrations())
    return found


def _config(spec: MigrationSpec, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(spec.script_location))
    # Alembic's ini interpolation treats % specially.
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url).replace("%", "%%"))
    config.set_main_option("cityos.history", spec.name)
    return config


def current_revision(spec: MigrationSpec, database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": version_table(spec.name)}
            )
            return context.get_current_revision()
    finally:
        engine.dispose()


def upgrade(database_url: str, layers: Sequence[Layer], revision: str = "heads") -> list[str]:
    """Upgrade every history; returns one line per history saying where it ended."""
    report: list[str] = []
    for spec in histories(layers):
        config = _config(spec, database_url)
        head = ScriptDirectory.from_config(config).get_current_head()
        before = current_revision(spec, database_url)
        command.upgrade(config, revision)
        after = current_revision(spec, database_url)
        state = "up to date" if before == after else f"{before or 'empty'} -> {after}"
        logger.info("migrations %s: %s (head %s)", spec.name, state, head)
        report.append(f"{spec.name}: {state}")
    return report
