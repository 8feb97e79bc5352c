"""A configuration key read before the support schema exists keeps its default, said in one line."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import create_engine

from cityos_kernel.database import sqlalchemy_url
from cityos_support.config.keys import RetentionSettings
from cityos_support.config.live import LiveValue
from cityos_support.config.repository import ConfigRepository


@pytest.mark.postgres
def test_missing_configuration_table_keeps_the_default_and_logs_one_line(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(sqlalchemy_url(database_url))  # no migrations: no support tables
    try:
        live = LiveValue(
            "retention",
            RetentionSettings,
            RetentionSettings(),
            repository=ConfigRepository(engine),
        )
        with caplog.at_level(logging.ERROR, logger="cityos_support.config.live"):
            value = live.get()
    finally:
        engine.dispose()

    assert value == RetentionSettings()
    assert live.version == 0
    [record] = [r for r in caplog.records if r.name == "cityos_support.config.live"]
    message = record.getMessage()
    assert "cannot read configuration key 'retention'" in message
    assert "support_config_entries" in message  # the driver's reason is kept
    assert "\n" not in message and "SELECT" not in message  # not the statement
