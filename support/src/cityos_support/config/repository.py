"""Reading and writing the configuration repository (SQLAlchemy Core, psycopg2).

Each change inserts a new version of its key; nothing is updated in place, so the history
of a key is the list of its rows. A writer may state the version it edited
(``expected_version``); if someone else wrote in between, it gets
:class:`VersionConflictError` instead of silently overwriting their change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from cityos_kernel.errors import CityosError
from cityos_support.config.tables import config_entries


class VersionConflictError(CityosError):
    """The key changed since the version the writer edited."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"{key} is at version {actual}, not {expected}; reload and retry")
        self.key = key
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True)
class ConfigEntry:
    """One version of one configuration key."""

    key: str
    version: int
    value: Any
    changed_by: str
    changed_at: datetime
    comment: str | None = None


def _entry(row: Any) -> ConfigEntry:
    return ConfigEntry(
        key=row.key,
        version=row.version,
        value=row.value,
        changed_by=row.changed_by,
        changed_at=row.changed_at,
        comment=row.comment,
    )


class ConfigRepository:
    """Versioned keys in ``support_config_entries``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def current(self) -> dict[str, ConfigEntry]:
        """The latest version of every key."""
        latest = (
            select(config_entries.c.key, func.max(config_entries.c.version).label("version"))
            .group_by(config_entries.c.key)
            .subquery()
        )
        query = select(config_entries).join(
            latest,
            (config_entries.c.key == latest.c.key) & (config_entries.c.version == latest.c.version),
        )
        with self._engine.connect() as connection:
            return {row.key: _entry(row) for row in connection.execute(query)}

    def get(self, key: str) -> ConfigEntry | None:
        """The latest version of ``key``, or None if it was never written."""
        query = (
            select(config_entries)
            .where(config_entries.c.key == key)
            .order_by(config_entries.c.version.desc())
            .limit(1)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        return None if row is None else _entry(row)

    def history(self, key: str) -> list[ConfigEntry]:
        """Every version of ``key``, newest first."""
        query = (
            select(config_entries)
            .where(config_entries.c.key == key)
            .order_by(config_entries.c.version.desc())
        )
        with self._engine.connect() as connection:
            return [_entry(row) for row in connection.execute(query)]

    def put(
        self,
        key: str,
        value: Any,
        *,
        changed_by: str,
        expected_version: int | None = None,
        comment: str | None = None,
    ) -> ConfigEntry:
        """Write a new version of ``key``; with ``expected_version``, only on top of it."""
        with self._engine.begin() as connection:
            current = connection.execute(
                select(func.coalesce(func.max(config_entries.c.version), 0)).where(
                    config_entries.c.key == key
                )
            ).scalar_one()
            if expected_version is not None and expected_version != current:
                raise VersionConflictError(key, expected_version, current)
            try:
                row = connection.execute(
                    config_entries.insert()
                    .values(
                        key=key,
                        version=current + 1,
                        value=value,
                        changed_by=changed_by,
                        comment=comment,
                    )
                    .returning(*config_entries.c)
                ).one()
            except IntegrityError as exc:
                # Another writer took the same version number first.
                raise VersionConflictError(key, current, current + 1) from exc
        return _entry(row)
